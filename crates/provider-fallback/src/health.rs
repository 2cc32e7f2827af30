//! What the layer knows about each provider's health: a cool-down after a Retry-After (or an
//! open breaker's time left), and an optional health check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use towerguard_outcome::Clock;

/// What a health-aware fallback does when every provider in the plan is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllDown {
    /// Try them anyway, in order (default): a provider that is down may be back.
    #[default]
    TryAnyway,
    /// Wait until the first provider's known recovery time (at most this long), then try.
    WaitForRecovery(Duration),
}

pub(crate) type HealthCheck = Box<dyn Fn() -> bool + Send + Sync>;

/// One provider's health.
pub(crate) struct Health {
    check: Option<HealthCheck>,
    /// Skipped until this Unix time in nanoseconds (0: not cooling down).
    cool_until: AtomicU64,
}

impl Health {
    pub(crate) fn new(check: Option<HealthCheck>) -> Self {
        Self {
            check,
            cool_until: AtomicU64::new(0),
        }
    }

    /// Up as far as we know: not cooling down and its health check (if any) says up. Reads
    /// the clock only while it cools down.
    pub(crate) fn is_up(&self, clock: &dyn Clock) -> bool {
        let until = self.cool_until.load(Ordering::Relaxed);
        if until != 0 && clock.unix_nanos() < until {
            return false;
        }
        self.check.as_ref().is_none_or(|up| up())
    }

    /// Time until it is expected back (zero if up or unknown).
    pub(crate) fn recovers_in(&self, clock: &dyn Clock) -> Duration {
        let until = self.cool_until.load(Ordering::Relaxed);
        Duration::from_nanos(until.saturating_sub(clock.unix_nanos()))
    }

    /// Skips it for `time` from now.
    pub(crate) fn cool_down(&self, clock: &dyn Clock, time: Duration) {
        let time = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        let until = clock.unix_nanos().saturating_add(time).max(1);
        self.cool_until.store(until, Ordering::Relaxed);
    }

    /// It answered: whatever it said before, it is up.
    pub(crate) fn answered(&self) {
        if self.cool_until.load(Ordering::Relaxed) != 0 {
            self.cool_until.store(0, Ordering::Relaxed);
        }
    }
}
