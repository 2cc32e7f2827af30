//! Running totals: one set per (provider, model) row of the ledger and per client.

use std::collections::HashMap;
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

type ByModel = HashMap<Arc<str>, Totals, ahash::RandomState>;
type ByProvider = HashMap<Arc<str>, ByModel, ahash::RandomState>;

/// Shards of rows: calls for different (provider, model) pairs take different locks.
const ROW_SHARDS: usize = 16;

/// Totals by provider, then model, in shards. A call takes its shard's read lock to find
/// its row and adds to it with atomic adds; only a pair seen for the first time takes the
/// write lock.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    shards: [RwLock<ByProvider>; ROW_SHARDS],
    hasher: ahash::RandomState,
    count: AtomicUsize,
    other: Totals,
}

impl Rows {
    fn shard(&self, provider: &str, model: &str) -> &RwLock<ByProvider> {
        let i = self.hasher.hash_one((provider, model)) as usize % ROW_SHARDS;
        &self.shards[i]
    }

    pub(crate) fn add(&self, provider: &str, model: &str, c: &Charge) {
        let shard = self.shard(provider, model);
        {
            let map = shard.read().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = map.get(provider).and_then(|m| m.get(model)) {
                t.add(c);
                return;
            }
        }
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(provider).and_then(|m| m.get(model)) {
            return t.add(c);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= MAX_ROWS {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return self.other.add(c);
        }
        let by_model = map.entry(Arc::from(provider)).or_default();
        by_model.entry(Arc::from(model)).or_default().add(c);
    }

    pub(crate) fn rows(&self) -> Vec<StatsRow> {
        let mut rows = Vec::new();
        for shard in &self.shards {
            let map = shard.read().unwrap_or_else(|p| p.into_inner());
            for (provider, by_model) in map.iter() {
                rows.extend(by_model.iter().map(|(model, t)| StatsRow {
                    provider: provider.clone(),
                    model: model.clone(),
                    spend: t.read(),
                }));
            }
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
                Some(p) => {
                    if let Some(gone) = map.remove(p) {
                        self.count.fetch_sub(gone.len(), Ordering::Relaxed);
                    }
                }
                None => map.clear(),
            }
        }
        if provider.is_none() {
            self.count.store(0, Ordering::Relaxed);
            self.other.clear();
        }
    }
}
