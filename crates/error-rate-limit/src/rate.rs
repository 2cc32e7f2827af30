//! Requests and tokens per minute: GCRA on one "theoretical arrival time" per key.

use towerguard_outcome::ConfigError;

const MINUTE_NANOS: u64 = 60_000_000_000;

/// A per-minute allowance. Each unit (a request, a token) adds `interval` nanoseconds to the
/// key's backlog, which drains in real time; a request passes while the backlog it leaves is
/// within the burst, a tenth of the minute's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    interval: u64,
    burst: u64,
    max_cost: u64,
}

impl Rate {
    /// `per_minute` units a minute; refused (naming `field`) when the interval of one unit
    /// would round to zero nanoseconds.
    pub(crate) fn per_minute(field: &'static str, per_minute: u64) -> Result<Self, ConfigError> {
        let per_minute = ConfigError::check_range(field, per_minute, 1, MINUTE_NANOS)?;
        let interval = MINUTE_NANOS / per_minute;
        Ok(Self {
            interval,
            burst: interval * (per_minute / 10).max(1),
            max_cost: per_minute,
        })
    }

    /// Takes `cost` units at `now` from a backlog that ends at `tat`: the new end, or how
    /// many nanoseconds to wait. A request weighing more than the burst passes when nothing
    /// is owed; one weighing more than a minute's allowance counts as a minute's allowance.
    pub(crate) fn take(&self, tat: u64, now: u64, cost: u64) -> Result<u64, u64> {
        let start = tat.max(now);
        let cost = cost.clamp(1, self.max_cost);
        let next = start.saturating_add(self.interval * cost);
        let backlog = next - now;
        if backlog <= self.burst || start == now {
            Ok(next)
        } else {
            Err(backlog - self.burst)
        }
    }
}
