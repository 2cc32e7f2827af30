//! The in-memory store's table: shards of per-key state, their eviction queues, the overflow.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::PoisonError;

// the shards' locks and the counters from loom when model checking (`--cfg towerguard_loom`)
#[cfg(towerguard_loom)]
pub(crate) use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};
#[cfg(not(towerguard_loom))]
pub(crate) use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

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

/// Locks one of std's mutexes (the delay queues'); a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks a shard or the overflow entry; a poisoned lock is used as is (every critical
/// section leaves the state consistent).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
        let mut keys = locked(self.shard(id));
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
        f(&mut locked(&self.overflow.0), now)
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
        locked(self.shard(id)).states.get_mut(&id).map(f)
    }

    /// Runs `f` on every tracked key's state (not the overflow entry's), one shard at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&KeyState)) {
        for shard in self.shards.iter() {
            locked(&shard.0).states.values().for_each(&mut f);
        }
    }

    /// Forgets every key and the overflow entry.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            let mut keys = locked(&shard.0);
            self.counters
                .tracked
                .fetch_sub(keys.states.len(), Ordering::Relaxed);
            *keys = Keys::default();
        }
        *locked(&self.overflow.0) = KeyState::default();
    }
}

/// Model checking with loom of what is lock-free here: the count of tracked keys a newcomer
/// takes a place from (an atomic, outside the shard locks' reach when shards differ) and
/// the totals. A key's state, its eviction and a hit on it are under the shard's mutex
/// (loom's, so their orderings are explored too). Run with
/// `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg towerguard_loom" cargo test --release -p towerguard-error-rate-limit --lib loom`.
#[cfg(all(test, towerguard_loom))]
mod loom_tests {
    // clippy allows `expect` in `#[test]` functions, not in these tests' helpers
    #![allow(clippy::expect_used)]

    use loom::sync::Arc;
    use loom::thread;
    use towerguard_outcome::ManualClock;

    use super::*;
    use crate::store::Rules;

    /// One error throttles; `max_keys` keys.
    fn table(max_keys: usize) -> (Arc<KeyTable>, Limits) {
        sharded(max_keys, 1)
    }

    /// [`table`] in `shards` shards.
    fn sharded(max_keys: usize, shards: usize) -> (Arc<KeyTable>, Limits) {
        let rules = Rules {
            threshold: 1,
            max_keys,
            ..Rules::default()
        };
        let limits = Limits::new(&rules).expect("rules");
        let table = KeyTable {
            shards: (0..shards).map(|_| Padded::default()).collect(),
            ..KeyTable::new(max_keys)
        };
        (Arc::new(table), limits)
    }

    /// Key `id` sends a request that fails (counted at 0): throttled wherever its state is.
    fn fail(t: &KeyTable, limits: &Limits, id: u64) {
        let clock = ManualClock::at(0);
        let mut now = Now::read(&clock, 0);
        t.with(id, Some("k"), limits, &mut now, |s, _| {
            s.record_error(limits, 0).expect("one error throttles")
        });
    }

    /// Key `id` is throttled: in its own state, or (found no room) in the overflow entry.
    fn throttled(t: &KeyTable, id: u64) -> bool {
        t.get(id, |s| s.penalty.left(0).is_some())
            .unwrap_or_else(|| locked(&t.overflow.0).penalty.left(0).is_some())
    }

    fn tracked_states(t: &KeyTable) -> usize {
        let mut n = 0;
        t.for_each(|_| n += 1);
        n
    }

    /// Runs `f(0)` and `f(1)` on two threads.
    fn both(f: impl Fn(usize) + Send + Sync + 'static) {
        let f = Arc::new(f);
        let spawn = |i| {
            let f = f.clone();
            thread::spawn(move || f(i))
        };
        let (a, b) = (spawn(0), spawn(1));
        a.join().expect("thread");
        b.join().expect("thread");
    }

    /// Two new keys arrive at a table with room for one: one takes the place, the other
    /// shares the overflow entry. The count of tracked keys never passes the limit and ends equal to the
    /// keys held; neither key's error is lost.
    #[test]
    fn loom_newcomers_never_pass_max_keys() {
        loom::model(|| {
            let (t, limits) = table(1);
            let (t2, l2) = (t.clone(), limits);
            both(move |i| fail(&t2, &l2, i as u64 + 1));
            assert_eq!(t.counters.tracked.load(Ordering::Relaxed), 1);
            assert_eq!(tracked_states(&t), 1);
            assert_eq!(t.counters.overflowed.load(Ordering::Relaxed), 1);
            assert!(throttled(&t, 1) && throttled(&t, 2));
        });
    }

    /// The same across two shards (ids differing in bit 32), whose locks do not exclude each
    /// other: only the atomic count of tracked keys keeps the limit.
    #[test]
    fn loom_newcomers_in_two_shards_never_pass_max_keys() {
        loom::model(|| {
            let (t, limits) = sharded(1, 2);
            let (t2, l2) = (t.clone(), limits);
            both(move |i| fail(&t2, &l2, (i as u64) << 32));
            assert_eq!(t.counters.tracked.load(Ordering::Relaxed), 1);
            assert_eq!(tracked_states(&t), 1);
            assert_eq!(t.counters.overflowed.load(Ordering::Relaxed), 1);
            assert!(throttled(&t, 0) && throttled(&t, 1 << 32));
        });
    }

    /// A full table (one key, forgettable) sees a request of that key fail while a new key's
    /// request fails: the eviction either happens before the hit (the old key comes back
    /// through the overflow) or not at all (the newcomer overflows). Either way both errors
    /// count and the tracked count matches the table.
    #[test]
    fn loom_an_eviction_racing_a_hit_loses_no_error() {
        loom::model(|| {
            let (t, limits) = table(1);
            let clock = ManualClock::at(0);
            // key 1 tracked, with nothing to remember
            t.with(1, Some("a"), &limits, &mut Now::read(&clock, 0), |_, _| ());
            let (t2, l2) = (t.clone(), limits);
            both(move |i| fail(&t2, &l2, i as u64 + 1));
            assert_eq!(t.counters.tracked.load(Ordering::Relaxed), 1);
            assert_eq!(tracked_states(&t), 1);
            let evicted = t.counters.evicted.load(Ordering::Relaxed);
            assert!(evicted <= 1);
            assert_eq!(t.counters.overflowed.load(Ordering::Relaxed), 1);
            assert!(throttled(&t, 1) && throttled(&t, 2));
        });
    }

    /// Forgetting every key (an admin reset) while a new key arrives: the count of tracked
    /// keys ends equal to the keys held (it is what admits newcomers, so a drift would
    /// shrink or overfill the table for good).
    #[test]
    fn loom_a_reset_racing_a_newcomer_keeps_the_count() {
        loom::model(|| {
            let (t, limits) = table(4);
            let (t2, l2) = (t.clone(), limits);
            both(move |i| {
                if i == 0 {
                    fail(&t2, &l2, 1);
                } else {
                    t2.clear();
                }
            });
            let held = tracked_states(&t);
            assert_eq!(t.counters.tracked.load(Ordering::Relaxed), held);
        });
    }
}
