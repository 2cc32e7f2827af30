//! A key's throttle and offences: each repeated offence doubles the penalty; one offence
//! is forgiven per decay period without a new one.

use std::time::Duration;

use crate::key_state::{Limits, Now};

/// One key's throttle. Times are nanoseconds on the store's clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Penalty {
    /// Throttled until then; 0 when not throttled (so a key in good standing is checked
    /// without reading the clock).
    until: u64,
    offences: u32,
    last_offence: u64,
}

impl Penalty {
    /// The time left on the throttle, if any (the clock is read only if one is on record);
    /// an ended throttle is cleared.
    pub(crate) fn remaining(&mut self, now: &mut Now<'_>) -> Option<u64> {
        if self.until == 0 {
            return None;
        }
        let left = self.until.checked_sub(now.get()).filter(|&n| n > 0);
        self.until = if left.is_some() { self.until } else { 0 };
        left
    }

    /// The time left at `now`, without clearing.
    pub(crate) fn left(&self, now: u64) -> Option<Duration> {
        (self.until > now).then(|| Duration::from_nanos(self.until - now))
    }

    /// Offences not yet forgiven at `now`.
    pub(crate) fn offences(&self, now: u64, rules: &Limits) -> u32 {
        let forgiven = now.saturating_sub(self.last_offence) / rules.decay;
        self.offences
            .saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX))
    }

    /// A new offence at `now`: throttles the key and returns for how long.
    pub(crate) fn offend(&mut self, now: u64, rules: &Limits) -> Duration {
        self.offences = self.offences(now, rules).saturating_add(1);
        self.last_offence = now;
        let doublings = (self.offences - 1).min(63);
        let penalty = rules.first.saturating_mul(1u64 << doublings).min(rules.max);
        self.until = now.saturating_add(penalty);
        Duration::from_nanos(penalty)
    }

    /// Not throttled and every offence forgiven at `now`: nothing left to remember.
    pub(crate) fn settled(&self, now: u64, rules: &Limits) -> bool {
        self.until <= now && self.offences(now, rules) == 0
    }
}
