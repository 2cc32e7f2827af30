//! The in-memory store's table: per-key state in shards behind a mutex each, a queue of
//! eviction candidates per shard, and the shared overflow entry.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::key_state::{KeyState, Limits, Now};

/// How many eviction candidates a newcomer to a full shard looks at, at most.
const SWEEP: usize = 8;
/// Keys per shard the shard count aims at (at most 64 shards).
const KEYS_PER_SHARD: usize = 256;

/// Totals, on a cache line of their own (they are written on errors and refusals, while
/// every call reads the table's fields).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Counters {
    pub(crate) rejected: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) offences: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) overflowed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A value on cache lines of its own (every call locks one shard).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded<T>(T);

#[derive(Debug, Default)]
struct Keys {
    states: HashMap<u64, KeyState, ahash::RandomState>,
    /// Every key of `states` once, the longest unexamined first: the eviction candidates.
    queue: VecDeque<u64>,
}

/// Per-key state for up to `max_keys` keys, split evenly over the shards (a key's shard is
/// chosen by its id). Memory grows with the keys seen, never more than the cap.
///
/// A newcomer to a full shard looks at the next [`SWEEP`] keys of the shard's queue: the first
/// forgettable one is evicted and the newcomer takes its place; a key that still matters goes
/// to the back of the queue. If none of them is forgettable (the shard is full of keys that
/// still matter), the newcomer shares the overflow entry: its requests are limited and its
/// errors counted together with every other such newcomer's.
#[derive(Debug)]
pub(crate) struct KeyTable {
    shards: Box<[Padded<Mutex<Keys>>]>,
    per_shard: usize,
    overflow: Padded<Mutex<KeyState>>,
    pub(crate) counters: Counters,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyTable {
    pub(crate) fn new(max_keys: usize) -> Self {
        let shards = (max_keys / KEYS_PER_SHARD).clamp(1, 64);
        Self {
            shards: (0..shards).map(|_| Padded::default()).collect(),
            per_shard: max_keys / shards,
            overflow: Padded::default(),
            counters: Counters::default(),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<Keys> {
        &self.shards[(id % self.shards.len() as u64) as usize].0
    }

    /// Runs `f` on the state of key `id`. A new key is given a place (named `name`), or the
    /// overflow entry if its shard is full of keys that still matter.
    pub(crate) fn with<T>(
        &self,
        id: u64,
        name: Option<&str>,
        limits: &Limits,
        now: &mut Now<'_>,
        f: impl FnOnce(&mut KeyState, &mut Now<'_>) -> T,
    ) -> T {
        let mut keys = lock(self.shard(id));
        if let Some(state) = keys.states.get_mut(&id) {
            if state.name.is_none() && name.is_some() {
                state.name = name.map(Box::from);
            }
            return f(state, now);
        }
        if keys.states.len() < self.per_shard || self.evict_one(&mut keys, limits, now.get()) {
            keys.queue.push_back(id);
            return f(keys.states.entry(id).or_insert(KeyState::named(name)), now);
        }
        drop(keys);
        Counters::add(&self.counters.overflowed);
        f(&mut lock(&self.overflow.0), now)
    }

    fn evict_one(&self, keys: &mut Keys, limits: &Limits, now: u64) -> bool {
        for _ in 0..keys.queue.len().min(SWEEP) {
            let Some(id) = keys.queue.pop_front() else {
                break;
            };
            if keys
                .states
                .get(&id)
                .is_none_or(|s| s.forgettable(limits, now))
            {
                keys.states.remove(&id);
                Counters::add(&self.counters.evicted);
                return true;
            }
            keys.queue.push_back(id);
        }
        false
    }

    /// Runs `f` on key `id`'s state if it is tracked.
    pub(crate) fn get<T>(&self, id: u64, f: impl FnOnce(&mut KeyState) -> T) -> Option<T> {
        lock(self.shard(id)).states.get_mut(&id).map(f)
    }

    /// Runs `f` on every tracked key's state (not the overflow entry's), one shard at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&KeyState)) {
        for shard in self.shards.iter() {
            lock(&shard.0).states.values().for_each(&mut f);
        }
    }

    /// Forgets every key and the overflow entry.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            *lock(&shard.0) = Keys::default();
        }
        *lock(&self.overflow.0) = KeyState::default();
    }
}
