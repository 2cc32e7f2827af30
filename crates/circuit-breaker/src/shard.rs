//! Per-thread shards: state that every call writes lives in one shard per thread group, so
//! threads do not fight over a cache line.

use crate::sync::{AtomicU64, Ordering};

/// A value padded to its own cache lines (128 bytes covers adjacent-line prefetching).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

/// The number of shards: a power of two, about four per core, at most 64.
pub(crate) fn shard_count() -> usize {
    #[cfg(towerguard_loom)]
    {
        1
    }
    #[cfg(not(towerguard_loom))]
    {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cores * 4).next_power_of_two().clamp(2, 64)
    }
}

/// This thread's shard index, masked to `count` (a power of two).
#[inline]
pub(crate) fn shard_index(count: usize) -> usize {
    #[cfg(towerguard_loom)]
    {
        let _ = count;
        0
    }
    #[cfg(not(towerguard_loom))]
    {
        use std::cell::Cell;
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        INDEX.with(|i| {
            let mut v = i.get();
            if v == usize::MAX {
                v = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i.set(v);
            }
            v & (count - 1)
        })
    }
}

/// Counters every call may bump, sharded per thread.
#[derive(Debug)]
pub(crate) struct Counters<const N: usize> {
    shards: Box<[Padded<[AtomicU64; N]>]>,
}

impl<const N: usize> Counters<N> {
    pub(crate) fn new() -> Self {
        let shards = (0..shard_count())
            .map(|_| Padded(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        Self { shards }
    }

    #[inline]
    pub(crate) fn add(&self, which: usize, n: u64) {
        let shard = &self.shards[shard_index(self.shards.len())];
        shard.0[which].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self, which: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[which].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            for c in &s.0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}
