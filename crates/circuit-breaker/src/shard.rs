//! Shards: what every call writes is kept once per group of threads, each copy on its own
//! cache lines, so that calls on different threads do not fight over one line. Readers add
//! the copies up.

use std::ops::Deref;

/// A value on cache lines of its own (128 bytes also covers adjacent-line prefetching).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// How many shards a breaker keeps: a power of two, twice the cores, from 2 to 32.
pub(crate) fn count() -> usize {
    if cfg!(towerguard_loom) {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).next_power_of_two().clamp(2, 32)
}

/// The shard of the current thread, below `count` (a power of two). Threads are numbered in
/// the order they first ask, so a few busy threads get different shards.
#[inline]
pub(crate) fn this_thread(count: usize) -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
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
    index & (count - 1)
}
