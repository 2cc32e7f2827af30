//! Running totals: one set per (provider, model) row of the ledger and per client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    pub(crate) fn add(&mut self, o: &Spend) {
        self.requests += o.requests;
        self.tokens.input += o.tokens.input;
        self.tokens.output += o.tokens.output;
        self.tokens.cached_input += o.tokens.cached_input;
        self.tokens.cache_write += o.tokens.cache_write;
        self.cost += o.cost;
        self.unmetered += o.unmetered;
        self.unpriced += o.unpriced;
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

/// One set of running totals, on its own cache line (every call to its row writes it).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Totals {
    requests: AtomicU64,
    input: AtomicU64,
    output: AtomicU64,
    cached_input: AtomicU64,
    cache_write: AtomicU64,
    cost: AtomicU64,
    unmetered: AtomicU64,
    unpriced: AtomicU64,
}

impl Totals {
    fn parts(&self) -> [&AtomicU64; 8] {
        [
            &self.requests,
            &self.input,
            &self.output,
            &self.cached_input,
            &self.cache_write,
            &self.cost,
            &self.unmetered,
            &self.unpriced,
        ]
    }

    pub(crate) fn add(&self, c: &Charge) {
        let t = c.tokens;
        self.add_spend(&Spend {
            requests: 1,
            tokens: t,
            cost: c.cost,
            unmetered: u64::from(c.unmetered),
            unpriced: u64::from(c.unpriced),
        });
    }

    pub(crate) fn add_spend(&self, s: &Spend) {
        let t = s.tokens;
        let values = [
            s.requests,
            t.input,
            t.output,
            t.cached_input,
            t.cache_write,
            s.cost,
            s.unmetered,
            s.unpriced,
        ];
        for (a, n) in self.parts().into_iter().zip(values) {
            if n != 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn read(&self) -> Spend {
        let [
            requests,
            input,
            output,
            cached_input,
            cache_write,
            cost,
            unmetered,
            unpriced,
        ] = self.parts().map(|a| a.load(Ordering::Relaxed));
        Spend {
            requests,
            tokens: Tokens {
                input,
                output,
                cached_input,
                cache_write,
            },
            cost,
            unmetered,
            unpriced,
        }
    }

    pub(crate) fn clear(&self) {
        for a in self.parts() {
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

/// Totals by provider, then model. A call takes the read lock to find its row and adds to
/// it with atomic adds; only a pair seen for the first time takes the write lock.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    map: RwLock<HashMap<Arc<str>, ByModel, ahash::RandomState>>,
    other: Totals,
}

impl Rows {
    pub(crate) fn add(&self, provider: &str, model: &str, c: &Charge) {
        {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = map.get(provider).and_then(|m| m.get(model)) {
                t.add(c);
                return;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let rows: usize = map.values().map(HashMap::len).sum();
        let by_model = match map.get_mut(provider) {
            Some(m) => m,
            None if rows < MAX_ROWS => map.entry(Arc::from(provider)).or_default(),
            None => return self.other.add(c),
        };
        match by_model.get(model) {
            Some(t) => t.add(c),
            None if rows < MAX_ROWS => by_model.entry(Arc::from(model)).or_default().add(c),
            None => self.other.add(c),
        }
    }

    pub(crate) fn rows(&self) -> Vec<StatsRow> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<StatsRow> = map
            .iter()
            .flat_map(|(p, by_model)| {
                by_model.iter().map(|(m, t)| StatsRow {
                    provider: p.clone(),
                    model: m.clone(),
                    spend: t.read(),
                })
            })
            .chain(std::iter::once(StatsRow {
                provider: Arc::from("(other)"),
                model: Arc::from("(other)"),
                spend: self.other.read(),
            }))
            .filter(|r| r.spend.requests > 0)
            .collect();
        rows.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        rows
    }

    /// Clears the rows of `provider`, or every row.
    pub(crate) fn clear(&self, provider: Option<&str>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match provider {
            Some(p) => {
                map.remove(p);
            }
            None => {
                map.clear();
                self.other.clear();
            }
        }
    }
}
