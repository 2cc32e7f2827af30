//! The breaker's lifetime counts, kept per shard, and the [`Stats`] snapshot.

use std::time::Duration;

use crate::shard::Padded;
use crate::state::State;
use crate::sync::{AtomicU64, Ordering};
use crate::window::WindowCounts;

/// A snapshot of a breaker, from [`CircuitBreakerHandle::stats`](crate::CircuitBreakerHandle::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The current state.
    pub state: State,
    /// What the sliding window holds now (zero when tripping on consecutive failures only).
    pub window: WindowCounts,
    /// Current run of consecutive failures.
    pub consecutive_failures: u32,
    /// Times the breaker opened in a row without closing since.
    pub trips: u32,
    /// Calls that succeeded, since the breaker was made.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Calls rejected without reaching the service.
    pub rejected: u64,
    /// Calls whose outcome was ignored (a refusal by another layer) or that were cancelled.
    pub ignored: u64,
    /// Calls slower than the slow-call threshold.
    pub slow: u64,
    /// Time left open, if open.
    pub open_for: Option<Duration>,
}

/// One shard's counts.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) ignored: AtomicU64,
    pub(crate) slow: AtomicU64,
}

/// Counts since the breaker was made (or since [`clear`](Self::clear)), one copy per shard.
#[derive(Debug)]
pub(crate) struct Counts {
    shards: Box<[Padded<Shard>]>,
}

impl Counts {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| Padded::default()).collect(),
        }
    }

    /// Adds one to the counter `which` picks in shard `shard`.
    #[inline]
    pub(crate) fn add(&self, shard: usize, which: impl Fn(&Shard) -> &AtomicU64) {
        if let Some(s) = self.shards.get(shard) {
            which(s).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter `which` picks, summed over the shards.
    pub(crate) fn sum(&self, which: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| which(s).load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            for c in [&s.successes, &s.failures, &s.rejected, &s.ignored, &s.slow] {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}
