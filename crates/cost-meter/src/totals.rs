//! Running totals: one set per (provider, model) row of the ledger and per client.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use towerguard_outcome::{Padded, shard_count, this_thread_shard};

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

/// The totals of a row that calls on any thread write: one copy per group of threads, each
/// on cache lines of its own (see [`towerguard_outcome::ShardedCounter`]); a read adds the
/// copies up.
#[derive(Debug)]
pub(crate) struct SharedTotals(Box<[Padded<Totals>]>);

impl SharedTotals {
    fn new() -> Self {
        Self((0..shard_count()).map(|_| Padded::default()).collect())
    }

    fn add(&self, c: &Charge) {
        self.0[this_thread_shard(self.0.len())].add(c);
    }

    fn read(&self) -> Spend {
        self.0.iter().fold(Spend::default(), |mut total, copy| {
            total.add(&copy.read());
            total
        })
    }

    fn clear(&self) {
        self.0.iter().for_each(|copy| copy.clear());
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

/// Rows the ledger keeps, besides the first row of each price-table entry, before it adds
/// new (provider, model) pairs to one `"(other)"` row.
const MAX_ROWS: usize = 4096;

/// Shards of the rows of models the price table does not know.
const ROW_SHARDS: usize = 16;

/// One row: a (provider, model) pair and its totals.
#[derive(Debug)]
struct Row {
    provider: Arc<str>,
    model: Arc<str>,
    totals: SharedTotals,
}

impl Row {
    fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: Arc::from(provider),
            model: Arc::from(model),
            totals: SharedTotals::new(),
        }
    }

    fn is(&self, provider: &str, model: &str) -> bool {
        *self.model == *model && *self.provider == *provider
    }
}

/// The rows of one price-table entry. The first (provider, model) pair seen for it (most
/// models have one provider) is found without a lock; others sit in a list.
#[derive(Debug, Default)]
struct Entry {
    first: OnceLock<Row>,
    more: RwLock<Vec<Row>>,
}

/// The rows of one shard, by the hash of their (provider, model) pair (a hash is computed
/// once per call and picks both the shard and the entry; pairs whose hashes collide share
/// an entry).
type Shard = HashMap<u64, Vec<Row>, BuildHasherDefault<Prehashed>>;

/// Totals by (provider, model). Rows of a model in the price table sit with its entry, found
/// without hashing (the entry's first row without a lock either); rows of other models in
/// shards of a map. A call takes a read lock to find any other row, and adds to its row's
/// copy for its thread with atomic adds; only a pair seen for the first time takes the
/// write lock.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    /// By price-table entry.
    priced: Box<[Entry]>,
    /// Models the table does not know.
    shards: [RwLock<Shard>; ROW_SHARDS],
    hasher: ahash::RandomState,
    count: AtomicUsize,
    other: Totals,
}

fn find<'r>(rows: &'r [Row], provider: &str, model: &str) -> Option<&'r Row> {
    rows.iter().find(|r| r.is(provider, model))
}

impl Rows {
    /// Rows for a price table of `models` entries.
    pub(crate) fn new(models: usize) -> Self {
        Self {
            priced: (0..models).map(|_| Entry::default()).collect(),
            ..Self::default()
        }
    }

    /// Adds a call to the row of `provider` and `model` (price-table entry `entry`).
    pub(crate) fn add(&self, entry: Option<usize>, provider: &str, model: &str, c: &Charge) {
        if let Some(entry) = entry.and_then(|i| self.priced.get(i)) {
            let first = entry.first.get_or_init(|| Row::new(provider, model));
            if first.is(provider, model) {
                return first.totals.add(c);
            }
            let list = &entry.more;
            if let Some(row) = find(&read(list), provider, model) {
                return row.totals.add(c);
            }
            let mut rows = list.write().unwrap_or_else(|p| p.into_inner());
            if let Some(row) = find(&rows, provider, model) {
                return row.totals.add(c);
            }
            return self.push(&mut rows, provider, model, c);
        }
        let hash = self.hasher.hash_one((provider, model));
        let shard = &self.shards[hash as usize % ROW_SHARDS];
        let rows = read(shard);
        if let Some(row) = rows.get(&hash).and_then(|r| find(r, provider, model)) {
            return row.totals.add(c);
        }
        drop(rows);
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        let rows = map.entry(hash).or_default();
        if let Some(row) = find(rows, provider, model) {
            return row.totals.add(c);
        }
        self.push(rows, provider, model, c);
    }

    /// A new row, unless the ledger has all it keeps: then the call counts in `"(other)"`.
    fn push(&self, rows: &mut Vec<Row>, provider: &str, model: &str, c: &Charge) {
        if self.count.fetch_add(1, Ordering::Relaxed) >= MAX_ROWS {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return self.other.add(c);
        }
        let row = Row::new(provider, model);
        row.totals.add(c);
        rows.push(row);
    }

    /// Every row with calls, sorted by provider and model.
    pub(crate) fn rows(&self) -> Vec<StatsRow> {
        let mut rows = Vec::new();
        let stats = |r: &Row| StatsRow {
            provider: r.provider.clone(),
            model: r.model.clone(),
            spend: r.totals.read(),
        };
        for entry in &self.priced {
            rows.extend(entry.first.get().map(stats));
            rows.extend(read(&entry.more).iter().map(stats));
        }
        for shard in &self.shards {
            rows.extend(read(shard).values().flatten().map(stats));
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
        let keep = |rows: &mut Vec<Row>| {
            let before = rows.len();
            match provider {
                Some(p) => rows.retain(|r| *r.provider != *p),
                None => rows.clear(),
            }
            self.count.fetch_sub(before - rows.len(), Ordering::Relaxed);
            !rows.is_empty()
        };
        for entry in &self.priced {
            // the first row stays, with nothing counted (rows without calls are not listed)
            if let Some(first) = entry.first.get()
                && provider.is_none_or(|p| *first.provider == *p)
            {
                first.totals.clear();
            }
            keep(&mut entry.more.write().unwrap_or_else(|p| p.into_inner()));
        }
        for shard in &self.shards {
            let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, rows| keep(rows));
        }
        if provider.is_none() {
            self.other.clear();
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
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
