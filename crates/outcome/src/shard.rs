//! State that every call writes, kept once per group of threads.
//!
//! Two threads that write one cache line on every call take turns owning it, and a layer
//! that does so runs slower on two threads than on one. What a call must write (a success
//! count, the reference count of the state its future holds) is therefore kept in a few
//! copies, one per group of threads, each on cache lines of its own; readers add the copies
//! up. This is how `java.util.concurrent.atomic.LongAdder` works.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

// the counters from loom when model checking (`--cfg towerguard_loom`); the thread numbering
// stays std's (a static)
#[cfg(towerguard_loom)]
use loom::sync::atomic::AtomicU64;
#[cfg(not(towerguard_loom))]
use std::sync::atomic::AtomicU64;

/// A value on cache lines of its own (128 bytes also covers adjacent-line prefetching).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct Padded<T>(pub T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// How many copies to keep: a power of two, twice the cores, from 2 to 32.
pub fn shard_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).next_power_of_two().clamp(2, 32)
}

/// The current thread's copy, below `count` (a power of two). Threads are numbered in the
/// order they first ask, so a few busy threads get different copies.
#[inline]
pub fn this_thread_shard(count: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
    }
    let index = INDEX.with(|i| match i.get() {
        Some(n) => n,
        None => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            i.set(Some(n));
            n
        }
    });
    index & (count.max(1).next_power_of_two() - 1)
}

/// A count that many threads add to: one padded counter per group of threads.
#[derive(Debug)]
pub struct ShardedCounter(Box<[Padded<AtomicU64>]>);

impl Default for ShardedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardedCounter {
    /// A counter at 0.
    pub fn new() -> Self {
        Self((0..shard_count()).map(|_| Padded::default()).collect())
    }

    /// Adds `n` (saturating is not needed: a u64 of calls does not overflow).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0[this_thread_shard(self.0.len())].fetch_add(n, Ordering::Relaxed);
    }

    /// The total.
    pub fn sum(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |t, c| t.wrapping_add(c.load(Ordering::Relaxed)))
    }

    /// Back to 0.
    pub fn clear(&self) {
        for c in self.0.iter() {
            // a swap rather than a store: the same here, and loom 0.7 models a store racing
            // an add wrongly (it lets a later read miss the store)
            c.swap(0, Ordering::Relaxed);
        }
    }
}

/// Shared state as tower's layers hold it (an `Arc` cloned into each call's response
/// future), with the reference count kept per group of threads: a call clones its thread's
/// [`Lane`], so two threads never write one count.
#[derive(Debug)]
pub struct Lanes<T>(Arc<[Arc<Lane<T>>]>);

/// One group of threads' handle on the shared state; derefs to it. On cache lines of its
/// own, so two lanes' reference counts never share one.
#[derive(Debug)]
#[repr(align(128))]
pub struct Lane<T>(Arc<T>);

impl<T> Deref for Lane<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Lanes<T> {
    /// Lanes over `shared`.
    pub fn new(shared: Arc<T>) -> Self {
        Self(
            (0..shard_count())
                .map(|_| Arc::new(Lane(shared.clone())))
                .collect(),
        )
    }

    /// The current thread's lane, for a response future to hold.
    #[inline]
    pub fn this_thread(&self) -> Arc<Lane<T>> {
        self.0[this_thread_shard(self.0.len())].clone()
    }

    /// The shared state.
    #[inline]
    pub fn shared(&self) -> &T {
        &self.0[0].0
    }
}

/// Clones share the lanes (one reference count, written only when a service is cloned).
impl<T> Clone for Lanes<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[cfg(all(test, not(towerguard_loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = Arc::new(ShardedCounter::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let c = c.clone();
                s.spawn(move || (0..1000).for_each(|_| c.add(1)));
            }
        });
        assert_eq!(c.sum(), 4000);
        c.clear();
        assert_eq!(c.sum(), 0);
    }

    #[test]
    fn lanes_share_one_state() {
        let lanes = Lanes::new(Arc::new(AtomicU64::new(0)));
        let other = lanes.clone();
        lanes.this_thread().fetch_add(1, Ordering::Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| other.this_thread().fetch_add(1, Ordering::Relaxed));
        });
        assert_eq!(lanes.shared().load(Ordering::Relaxed), 2);
        assert!(this_thread_shard(8) < 8);
    }
}

/// Model checking of the counter with loom. Run with
/// `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg towerguard_loom" cargo test --release -p towerguard-outcome --lib loom`.
#[cfg(all(test, towerguard_loom))]
mod loom_tests {
    // clippy allows `expect` in `#[test]` functions, not in these tests' helpers
    #![allow(clippy::expect_used)]

    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Two threads add (each on its own shard, and both on one) while a third reads: a read
    /// never sees more than was added nor less than was added before it started, and
    /// the end sum is every add.
    #[test]
    fn loom_adds_on_any_shards_sum_exactly() {
        loom::model(|| {
            let c = Arc::new(ShardedCounter((0..2).map(|_| Padded::default()).collect()));
            let adders: Vec<_> = [(0, 1), (1, 2)]
                .into_iter()
                .map(|(shard, n)| {
                    let c = c.clone();
                    thread::spawn(move || {
                        c.0[shard].fetch_add(n, Ordering::Relaxed);
                        c.add(n);
                    })
                })
                .collect();
            let seen = c.sum();
            assert!(seen <= 6, "{seen}");
            for a in adders {
                a.join().expect("thread");
            }
            assert_eq!(c.sum(), 6);
            c.clear();
            assert_eq!(c.sum(), 0);
        });
    }

    /// A clear racing an add: the add is either cleared or counted whole.
    #[test]
    fn loom_a_clear_racing_an_add_keeps_or_drops_it_whole() {
        loom::model(|| {
            let c = Arc::new(ShardedCounter((0..2).map(|_| Padded::default()).collect()));
            c.add(5);
            let c2 = c.clone();
            let adder = thread::spawn(move || c2.add(3));
            c.clear();
            adder.join().expect("thread");
            let sum = c.sum();
            assert!(sum == 0 || sum == 3, "{sum}");
        });
    }
}
