//! The one clock abstraction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where layers read the time: nanoseconds since the Unix epoch. Read it only where the
/// semantics need it (time windows, open durations, budget windows).
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch.
    fn unix_nanos(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn unix_nanos(&self) -> u64 {
        (**self).unix_nanos()
    }
}

/// The default clock: the wall clock when it was made, moved on by tokio's monotonic clock,
/// so it never runs backwards and tests drive it with `tokio::time::pause` / `advance`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
    start_unix_nanos: u64,
}

impl TokioClock {
    /// A clock anchored at the wall clock now.
    pub fn new() -> Self {
        Self::anchored_at(system_unix_nanos())
    }

    /// A clock that reads `unix_nanos` now and moves with tokio's clock (tests use this to
    /// start at a chosen date).
    pub fn anchored_at(unix_nanos: u64) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            start_unix_nanos: unix_nanos,
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn unix_nanos(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.start_unix_nanos.saturating_add(elapsed)
    }
}

fn system_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The operating system's wall clock (may step when the system time is set).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn unix_nanos(&self) -> u64 {
        system_unix_nanos()
    }
}

/// A clock moved by hand, for tests outside a tokio runtime. Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock that reads `unix_nanos`.
    pub fn at(unix_nanos: u64) -> Self {
        Self(Arc::new(AtomicU64::new(unix_nanos)))
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the time.
    pub fn set(&self, unix_nanos: u64) {
        self.0.store(unix_nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn unix_nanos(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_the_paused_clock() {
        let clock = TokioClock::anchored_at(1_000);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.unix_nanos(), 1_000 + 2_000_000_000);
    }

    #[test]
    fn manual_clock_is_shared_by_clones() {
        let a = ManualClock::at(5);
        let b = a.clone();
        a.advance(Duration::from_nanos(10));
        assert_eq!(b.unix_nanos(), 15);
        assert!(SystemClock.unix_nanos() > 1_600_000_000_000_000_000);
    }
}
