//! Running totals: one set per (provider, model) row of the ledger and per client.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::prices::{Nanos, Tokens};

/// Totals of one row of the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    /// Billed calls.
    pub requests: u64,
    /// Tokens by part (as reported; a call without usage adds none).
    pub tokens: Tokens,
    /// Cost, in nano-dollars.
    pub cost: Nanos,
    /// Calls whose response reported no usage: each was charged its reserved worst case.
    pub unmetered: u64,
    /// Calls answered by a model without a price while unknown models are refused: each was
    /// charged what was reserved for it.
    pub unpriced: u64,
}

impl Spend {
    /// The fields in [`Totals`]' order.
    fn parts(&self) -> [u64; 8] {
        let t = self.tokens;
        let (input, output, cached, write) = (t.input, t.output, t.cached_input, t.cache_write);
        [
            self.requests,
            input,
            output,
            cached,
            write,
            self.cost,
            self.unmetered,
            self.unpriced,
        ]
    }

    fn from_parts(
        [
            requests,
            input,
            output,
            cached_input,
            cache_write,
            cost,
            unmetered,
            unpriced,
        ]: [u64; 8],
    ) -> Self {
        let tokens = Tokens {
            input,
            output,
            cached_input,
            cache_write,
        };
        Self {
            requests,
            tokens,
            cost,
            unmetered,
            unpriced,
        }
    }

    pub(crate) fn add(&mut self, o: &Spend) {
        let (a, b) = (self.parts(), o.parts());
        *self = Self::from_parts(std::array::from_fn(|i| a[i].saturating_add(b[i])));
    }

    /// The cost in US dollars (for display only).
    pub fn cost_usd(&self) -> f64 {
        self.cost as f64 / 1e9
    }
}

/// What one billed call adds to a set of totals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge {
    pub(crate) tokens: Tokens,
    pub(crate) cost: Nanos,
    pub(crate) unmetered: bool,
    pub(crate) unpriced: bool,
}

/// One set of running totals (a [`Spend`]'s fields), on its own cache line: every call to
/// its row writes it.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Totals([AtomicU64; 8]);

impl Totals {
    pub(crate) fn add(&self, c: &Charge) {
        self.add_spend(&Spend {
            requests: 1,
            tokens: c.tokens,
            cost: c.cost,
            unmetered: u64::from(c.unmetered),
            unpriced: u64::from(c.unpriced),
        });
    }

    pub(crate) fn add_spend(&self, s: &Spend) {
        for (a, n) in self.0.iter().zip(s.parts()) {
            if n != 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn read(&self) -> Spend {
        Spend::from_parts(self.0.each_ref().map(|a| a.load(Ordering::Relaxed)))
    }

    pub(crate) fn clear(&self) {
        for a in &self.0 {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// One line of [`Ledger::stats`](crate::Ledger::stats): (provider, model, totals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    /// The provider that served (`"(other)"` for rows past the ledger's row cap).
    pub provider: Arc<str>,
    /// The model that answered.
    pub model: Arc<str>,
    /// Its totals.
    pub spend: Spend,
}

/// Rows the ledger keeps before it adds new (provider, model) pairs to one `"(other)"` row.
const MAX_ROWS: usize = 4096;

/// Shards of rows: calls for different (provider, model) pairs take different locks.
const ROW_SHARDS: usize = 16;

/// One row: a (provider, model) pair and its totals.
#[derive(Debug)]
struct Row {
    provider: Arc<str>,
    model: Arc<str>,
    totals: Totals,
}

/// The rows of one shard, by the hash of their (provider, model) pair (a hash is computed
/// once per call and picks both the shard and the entry; pairs whose hashes collide share
/// an entry).
type Shard = HashMap<u64, Vec<Row>, BuildHasherDefault<Prehashed>>;

/// Totals by (provider, model), in shards. A call takes its shard's read lock to find its
/// row and adds to it with atomic adds; only a pair seen for the first time takes the write
/// lock.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    shards: [RwLock<Shard>; ROW_SHARDS],
    hasher: ahash::RandomState,
    count: AtomicUsize,
    other: Totals,
}

impl Rows {
    pub(crate) fn add(&self, provider: &str, model: &str, c: &Charge) {
        let hash = self.hasher.hash_one((provider, model));
        let shard = &self.shards[hash as usize % ROW_SHARDS];
        let find = |map: &Shard| {
            let rows = map.get(&hash)?;
            let row = rows
                .iter()
                .find(|r| *r.provider == *provider && *r.model == *model);
            row.map(|r| r.totals.add(c))
        };
        if find(&shard.read().unwrap_or_else(|p| p.into_inner())).is_some() {
            return;
        }
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if find(&map).is_some() {
            return;
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= MAX_ROWS {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return self.other.add(c);
        }
        let row = Row {
            provider: Arc::from(provider),
            model: Arc::from(model),
            totals: Totals::default(),
        };
        row.totals.add(c);
        map.entry(hash).or_default().push(row);
    }

    pub(crate) fn rows(&self) -> Vec<StatsRow> {
        let mut rows = Vec::new();
        for shard in &self.shards {
            let map = shard.read().unwrap_or_else(|p| p.into_inner());
            rows.extend(map.values().flatten().map(|r| StatsRow {
                provider: r.provider.clone(),
                model: r.model.clone(),
                spend: r.totals.read(),
            }));
        }
        rows.push(StatsRow {
            provider: Arc::from("(other)"),
            model: Arc::from("(other)"),
            spend: self.other.read(),
        });
        rows.retain(|r| r.spend.requests > 0);
        rows.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        rows
    }

    /// Clears the rows of `provider`, or every row.
    pub(crate) fn clear(&self, provider: Option<&str>) {
        for shard in &self.shards {
            let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
            match provider {
                Some(p) => map.retain(|_, rows| {
                    let before = rows.len();
                    rows.retain(|r| *r.provider != *p);
                    self.count.fetch_sub(before - rows.len(), Ordering::Relaxed);
                    !rows.is_empty()
                }),
                None => map.clear(),
            }
        }
        if provider.is_none() {
            self.count.store(0, Ordering::Relaxed);
            self.other.clear();
        }
    }
}

/// The hasher of a key that is already a hash.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
