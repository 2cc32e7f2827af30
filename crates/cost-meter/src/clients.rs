//! The client keys a ledger tracks: their totals and their per-client budget state, bounded
//! in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use crate::totals::Totals;

/// What the ledger keeps for one client key.
#[derive(Debug)]
pub(crate) struct ClientEntry<C> {
    pub(crate) key: Arc<str>,
    pub(crate) totals: Totals,
    /// The budget store's state for this client.
    pub(crate) budget: C,
}

/// Entries looked at, at most, to make room for one new client.
const EVICTION_TRIES: usize = 8;

/// One shard: its clients, and the same entries in the order they are looked at for
/// eviction (oldest first; one found busy goes to the back).
#[derive(Debug)]
struct Shard<C> {
    map: HashMap<Arc<str>, Arc<ClientEntry<C>>, ahash::RandomState>,
    queue: VecDeque<Arc<ClientEntry<C>>>,
}

/// Client entries in a few shards, each holding at most `per_shard`. A known client costs
/// one read lock and a hash lookup. A new client in a full shard makes room by looking at
/// most [`EVICTION_TRIES`] of the oldest entries, so a flood of new keys never scans the
/// map: an entry is forgotten if no request of it is in flight (only the map and the queue
/// hold it) and the store says it is idle (nothing spent or reserved in its budgets' current
/// windows). Its totals move to the `"(other)"` entry. When none of those entries can go, the new
/// client shares the `"(other)"` entry (totals and budget) with the others past the cap.
#[derive(Debug)]
pub(crate) struct Clients<C> {
    shards: Box<[RwLock<Shard<C>>]>,
    per_shard: usize,
    hasher: ahash::RandomState,
    other: RwLock<Arc<ClientEntry<C>>>,
}

impl<C> ClientEntry<C> {
    pub(crate) fn new(key: &str, budget: C) -> Self {
        Self {
            key: Arc::from(key),
            totals: Totals::default(),
            budget,
        }
    }
}

impl<C> Clients<C> {
    /// A map for at most `max` clients, with `other` as the shared entry.
    pub(crate) fn new(max: usize, other: C) -> Self {
        // shards of at least 256 entries, so the hash's spread cannot fill one shard early
        let shards = (max / 256).clamp(1, 16);
        let hasher = ahash::RandomState::new();
        Self {
            shards: (0..shards)
                .map(|_| {
                    RwLock::new(Shard {
                        map: HashMap::with_hasher(hasher.clone()),
                        queue: VecDeque::new(),
                    })
                })
                .collect(),
            per_shard: max / shards,
            hasher,
            other: RwLock::new(Arc::new(ClientEntry::new("(other)", other))),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard<C>> {
        let i = self.hasher.hash_one(key) as usize % self.shards.len();
        &self.shards[i]
    }

    /// The entry of `key`, if tracked.
    pub(crate) fn find(&self, key: &str) -> Option<Arc<ClientEntry<C>>> {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        shard.map.get(key).cloned()
    }

    /// The entry of `key`: found, made (`new`), or the shared `"(other)"` entry when the
    /// shard is full of clients that cannot be forgotten (`idle` says which can).
    pub(crate) fn get(
        &self,
        key: &str,
        new: impl FnOnce() -> C,
        idle: impl Fn(&C) -> bool,
    ) -> Arc<ClientEntry<C>> {
        if let Some(e) = self.find(key) {
            return e;
        }
        let mut shard = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = shard.map.get(key) {
            return e.clone();
        }
        if shard.map.len() >= self.per_shard && !self.evict_one(&mut shard, idle) {
            return self.other();
        }
        let entry = Arc::new(ClientEntry::new(key, new()));
        shard.map.insert(entry.key.clone(), entry.clone());
        shard.queue.push_back(entry.clone());
        entry
    }

    /// Forgets one of the oldest entries that can go; false if none of those looked at can.
    fn evict_one(&self, shard: &mut Shard<C>, idle: impl Fn(&C) -> bool) -> bool {
        for _ in 0..EVICTION_TRIES {
            let Some(entry) = shard.queue.pop_front() else {
                return false;
            };
            // under the write lock nobody can take a new handle: a count of two (the map's
            // and the queue's) means no request of this client is in flight
            if Arc::strong_count(&entry) == 2 && idle(&entry.budget) {
                if shard.map.remove(&entry.key).is_some() {
                    self.other().totals.add_spend(&entry.totals.read());
                }
                return true;
            }
            shard.queue.push_back(entry);
        }
        false
    }

    fn other(&self) -> Arc<ClientEntry<C>> {
        self.other.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every tracked entry, then the `"(other)"` one.
    pub(crate) fn all(&self) -> Vec<Arc<ClientEntry<C>>> {
        let mut all: Vec<_> = self
            .shards
            .iter()
            .flat_map(|s| {
                let s = s.read().unwrap_or_else(|p| p.into_inner());
                s.map.values().cloned().collect::<Vec<_>>()
            })
            .collect();
        all.push(self.other());
        all
    }

    /// Clients tracked now (not counting `"(other)"`).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    /// Forgets every client and starts a new `"(other)"` entry.
    pub(crate) fn clear(&self, other: C) {
        for s in self.shards.iter() {
            let mut s = s.write().unwrap_or_else(|p| p.into_inner());
            s.map.clear();
            s.queue.clear();
        }
        *self.other.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(ClientEntry::new("(other)", other));
    }
}
