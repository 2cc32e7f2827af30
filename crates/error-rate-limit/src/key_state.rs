//! One key's state (recent errors, penalty, rate backlogs) and the checked rules.

use std::collections::VecDeque;
use std::time::Duration;

use towerguard_outcome::{Clock, ConfigError};

use crate::error::ThrottledError;
use crate::penalty::Penalty;
use crate::rate::Rate;
use crate::store::{Admit, Reason, Rules};

/// Longest window, penalty, decay or delay accepted: a year.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Highest error threshold: a key remembers at most this many error times.
pub(crate) const MAX_THRESHOLD: u32 = 1_000;
/// Most keys a store may track.
pub(crate) const MAX_KEYS: usize = 10_000_000;

/// [`Rules`] checked, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    threshold: usize,
    window: u64,
    /// The first and longest penalty, and the decay period of an offence.
    pub(crate) first: u64,
    pub(crate) max: u64,
    pub(crate) decay: u64,
    rpm: Option<Rate>,
    tpm: Option<Rate>,
    pub(crate) max_keys: usize,
}

/// A duration in nanoseconds, refused (naming `field`) unless within `1 ns..=MAX_DURATION`.
pub(crate) fn check_duration(field: &'static str, d: Duration) -> Result<u64, ConfigError> {
    if d.is_zero() || d > MAX_DURATION {
        let reason = format!("must be longer than zero and at most 365 days, got {d:?}");
        return Err(ConfigError::new(field, reason));
    }
    Ok(d.as_nanos() as u64)
}

impl Limits {
    /// Checks `rules`, naming the field at fault.
    pub(crate) fn new(rules: &Rules) -> Result<Self, ConfigError> {
        let threshold = ConfigError::check_range("threshold", rules.threshold, 1, MAX_THRESHOLD)?;
        let first = check_duration("penalty.first", rules.base_penalty)?;
        let max = check_duration("penalty.max", rules.max_penalty)?;
        if max < first {
            let reason = format!("({:?}) is below penalty.first", rules.max_penalty);
            return Err(ConfigError::new("penalty.max", reason));
        }
        Ok(Self {
            threshold: threshold as usize,
            window: check_duration("window", rules.window)?,
            first,
            max,
            decay: check_duration("decay", rules.decay)?,
            rpm: rules
                .rpm
                .map(|n| Rate::per_minute("requests_per_minute", n))
                .transpose()?,
            tpm: rules
                .tpm
                .map(|n| Rate::per_minute("tokens_per_minute", n))
                .transpose()?,
            max_keys: ConfigError::check_range("max_keys", rules.max_keys, 1, MAX_KEYS)?,
        })
    }

    /// Is there a tokens-per-minute limit (so requests must be weighed)?
    pub(crate) fn weighs_tokens(&self) -> bool {
        self.tpm.is_some()
    }
}

/// The time in nanoseconds on a clock, read only if asked (and then once).
pub(crate) struct Now<'a> {
    clock: &'a dyn Clock,
    read: Option<u64>,
}

impl<'a> Now<'a> {
    /// The time on `clock`, not read yet.
    pub(crate) fn on(clock: &'a dyn Clock) -> Self {
        Self { clock, read: None }
    }

    /// The time on `clock`, read already: `at`.
    pub(crate) fn read(clock: &'a dyn Clock, at: u64) -> Self {
        Self {
            clock,
            read: Some(at),
        }
    }

    /// The time, read from the clock on the first ask.
    pub(crate) fn get(&mut self) -> u64 {
        *self.read.get_or_insert_with(|| self.clock.unix_nanos())
    }
}

/// One key's state. Times are nanoseconds on the store's clock.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    /// The key, for listings (`None` only when an error re-created a key forgotten while its
    /// request was in flight; its next request names it again).
    pub(crate) name: Option<Box<str>>,
    /// Times of the counted errors still in the window, oldest first (at most `threshold`).
    errors: VecDeque<u64>,
    pub(crate) penalty: Penalty,
    /// Where the request and token backlogs end (GCRA's theoretical arrival times).
    rpm_tat: u64,
    tpm_tat: u64,
}

impl KeyState {
    /// May a request weighing `tokens` pass? Takes its share of the RPM and TPM allowances
    /// (both or neither) if it does.
    pub(crate) fn admit(&mut self, limits: &Limits, tokens: u64, now: &mut Now<'_>) -> Admit {
        if let Some(left) = self.penalty.remaining(now) {
            return deny(Reason::Errors, left);
        }
        let mut rpm_tat = self.rpm_tat;
        if let Some(rate) = &limits.rpm {
            match rate.take(rpm_tat, now.get(), 1) {
                Ok(tat) => rpm_tat = tat,
                Err(wait) => return deny(Reason::RequestRate, wait),
            }
        }
        if let Some(rate) = &limits.tpm {
            match rate.take(self.tpm_tat, now.get(), tokens) {
                Ok(tat) => self.tpm_tat = tat,
                Err(wait) => return deny(Reason::TokenRate, wait),
            }
        }
        self.rpm_tat = rpm_tat;
        Ok(())
    }

    /// Counts an error at `now`; returns the penalty if it throttled the key.
    pub(crate) fn record_error(&mut self, limits: &Limits, now: u64) -> Option<Duration> {
        while self
            .errors
            .front()
            .is_some_and(|&t| t.saturating_add(limits.window) <= now)
        {
            self.errors.pop_front();
        }
        self.errors.push_back(now);
        if self.errors.len() < limits.threshold {
            return None;
        }
        self.errors.clear();
        Some(self.penalty.offend(now, limits))
    }

    /// Nothing worth remembering at `now`: no counted error in the window, no throttle, every
    /// offence forgiven, both allowances refilled.
    pub(crate) fn forgettable(&self, limits: &Limits, now: u64) -> bool {
        self.errors
            .back()
            .is_none_or(|&t| t.saturating_add(limits.window) <= now)
            && self.penalty.settled(now, limits)
            && self.rpm_tat <= now
            && self.tpm_tat <= now
    }

    /// Lifts the throttle and forgets the errors and offences (the rate backlogs stay).
    pub(crate) fn forgive(&mut self) {
        self.errors.clear();
        self.penalty = Penalty::default();
    }
}

fn deny(reason: Reason, wait_nanos: u64) -> Admit {
    Err(ThrottledError::new(
        reason,
        Duration::from_nanos(wait_nanos),
    ))
}
