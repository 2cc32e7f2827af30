//! The in-memory store's table: shards of per-key state, their eviction queues, the overflow.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use towerguard_outcome::Padded;

use crate::key_state::{KeyState, Limits, Now};

/// How many eviction candidates a newcomer to a full shard looks at, at most.
const SWEEP: usize = 8;
/// Keys per shard the shard count aims at (a power of two, at most 64 shards).
const KEYS_PER_SHARD: usize = 256;

/// Totals, on a cache line of their own: written on errors and refusals only.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Counters {
    pub(crate) rejected: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) offences: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    /// Keys tracked now, in all shards.
    tracked: AtomicUsize,
}

/// Hashes a key id to itself: an id is already a keyed hash of the key.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only `u64` ids are hashed; this fold is for completeness
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

#[derive(Debug, Default)]
struct Keys {
    states: HashMap<u64, KeyState, BuildHasherDefault<IdHasher>>,
    /// Every key of `states` once, the longest unexamined first: the eviction candidates.
    queue: VecDeque<u64>,
}

/// Up to `max_keys` keys' state, in shards by key id; see [`MemoryStore`](crate::MemoryStore).
#[derive(Debug)]
pub(crate) struct KeyTable {
    shards: Box<[Padded<Mutex<Keys>>]>,
    max_keys: usize,
    overflow: Padded<Mutex<KeyState>>,
    pub(crate) counters: Counters,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyTable {
    pub(crate) fn new(max_keys: usize) -> Self {
        let shards = (max_keys / KEYS_PER_SHARD).clamp(1, 64).next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Padded::default()).collect(),
            max_keys,
            overflow: Padded::default(),
            counters: Counters::default(),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<Keys> {
        // the count is a power of two: bits 32.. of the id pick the shard (a shard's map
        // places its keys by the low bits, and tells them apart by the top ones)
        &self.shards[(id >> 32) as usize & (self.shards.len() - 1)].0
    }

    /// Runs `f` on key `id`'s state; a new key (named `name`) gets a place or the overflow.
    pub(crate) fn with<T>(
        &self,
        id: u64,
        name: Option<&str>,
        limits: &Limits,
        now: &mut Now<'_>,
        f: impl FnOnce(&mut KeyState, &mut Now<'_>) -> T,
    ) -> T {
        let mut keys = lock(self.shard(id));
        match keys.states.get_mut(&id) {
            Some(state) => {
                if state.name.is_none() {
                    state.name = name.map(Box::from);
                }
                f(state, now)
            }
            None => self.with_new(keys, id, name, limits, now, f),
        }
    }

    /// [`with`](Self::with) for a key not tracked in its shard (locked as `keys`).
    fn with_new<T>(
        &self,
        mut keys: MutexGuard<'_, Keys>,
        id: u64,
        name: Option<&str>,
        limits: &Limits,
        now: &mut Now<'_>,
        f: impl FnOnce(&mut KeyState, &mut Now<'_>) -> T,
    ) -> T {
        if self.take_place() || self.evict_one(&mut keys, limits, now.get()) {
            keys.queue.push_back(id);
            let state = keys.states.entry(id).or_default();
            state.name = name.map(Box::from);
            return f(state, now);
        }
        drop(keys);
        self.counters.overflowed.fetch_add(1, Ordering::Relaxed);
        f(&mut lock(&self.overflow.0), now)
    }

    fn take_place(&self) -> bool {
        let tracked = &self.counters.tracked;
        if tracked.fetch_add(1, Ordering::Relaxed) < self.max_keys {
            return true;
        }
        tracked.fetch_sub(1, Ordering::Relaxed);
        false
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
                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
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
            let mut keys = lock(&shard.0);
            self.counters
                .tracked
                .fetch_sub(keys.states.len(), Ordering::Relaxed);
            *keys = Keys::default();
        }
        *lock(&self.overflow.0) = KeyState::default();
    }
}
