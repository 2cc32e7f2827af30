//! The settings of each part of a preset pipeline, with the checks the preset runs on them.

use std::time::Duration;

use crate::outcome::ConfigError;
use crate::retry::Backoff;

/// The most retries a preset allows per provider: more only multiplies traffic.
pub const MAX_RETRIES: u32 = 10;

/// A provider's retry loop (the only one in the pipeline).
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Retries after the first attempt, 0 to 10 (default 2: at most 3 attempts).
    pub max_retries: u32,
    /// The wait between attempts (default: the SDKs' exponential 0.5 s doubling up to 8 s,
    /// full jitter).
    pub backoff: Backoff,
    /// The longest Retry-After hint waited out (default 60 s); a longer one ends the retries
    /// on this provider at once, so the fallback moves on.
    pub max_retry_after: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: crate::retry::DEFAULT_MAX_RETRIES,
            backoff: Backoff::default(),
            max_retry_after: crate::retry::DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetrySettings {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        ConfigError::check_range("max_retries", self.max_retries, 0, MAX_RETRIES)
            .map_err(|e| e.under("retry"))?;
        self.backoff
            .validate()
            .map_err(|e| e.under("retry.backoff"))?;
        if self.max_retry_after.is_zero() {
            return Err(ConfigError::new(
                "retry.max_retry_after",
                "must be longer than zero",
            ));
        }
        Ok(())
    }
}

/// A provider's circuit breaker.
///
/// Besides the rules below the breaker always keeps a window of the last `window` calls, so
/// [`PipelineHandle::health`](super::PipelineHandle::health) can show a recent success rate;
/// without a `failure_rate` that window never trips it on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Open after this many failures in a row (default 5; `None`: only on `failure_rate`).
    pub consecutive_failures: Option<u32>,
    /// Stay open this long before letting a probe through (default 60 s; longer if the
    /// provider's Retry-After says so, up to 5 minutes).
    pub open_duration: Duration,
    /// Also open when this share of the window's calls failed, in (0, 1] (default none).
    pub failure_rate: Option<f64>,
    /// The window: the last this many calls (default 100; 1 to 100,000).
    pub window: u32,
    /// Calls the window must hold before `failure_rate` counts (default 10, at most
    /// `window`).
    pub min_calls: u32,
    /// Probes let through at once when half-open (default 1).
    pub half_open_permits: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: Some(5),
            open_duration: Duration::from_secs(60),
            failure_rate: None,
            window: 100,
            min_calls: 10,
            half_open_permits: 1,
        }
    }
}

impl BreakerSettings {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let at = |f: &str| format!("breaker.{f}");
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                at("consecutive_failures"),
                "must be at least 1",
            ));
        }
        if self.consecutive_failures.is_none() && self.failure_rate.is_none() {
            return Err(ConfigError::new(
                at("consecutive_failures"),
                "is off and no failure_rate is set: the breaker could never open",
            ));
        }
        if self.open_duration.is_zero() {
            return Err(ConfigError::new(
                at("open_duration"),
                "must be longer than zero",
            ));
        }
        if let Some(rate) = self.failure_rate
            && !(rate > 0.0 && rate <= 1.0)
        {
            return Err(ConfigError::new(
                at("failure_rate"),
                format!("must be within (0, 1], got {rate}"),
            ));
        }
        let max = crate::breaker::MAX_COUNT_WINDOW;
        if !(1..=max).contains(&self.window) {
            return Err(ConfigError::new(
                at("window"),
                format!("must be between 1 and {max}, got {}", self.window),
            ));
        }
        if self.min_calls == 0 || self.min_calls > self.window {
            return Err(ConfigError::new(
                at("min_calls"),
                format!(
                    "must be between 1 and the window ({}), got {}",
                    self.window, self.min_calls
                ),
            ));
        }
        let max = crate::breaker::MAX_HALF_OPEN_PERMITS;
        if !(1..=max).contains(&self.half_open_permits) {
            return Err(ConfigError::new(
                at("half_open_permits"),
                format!(
                    "must be between 1 and {max}, got {}",
                    self.half_open_permits
                ),
            ));
        }
        Ok(())
    }
}

/// Requests and tokens per minute sent to one provider (both off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSettings {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (the request's estimated input plus its `max_tokens`).
    pub tpm: Option<u64>,
}

impl RateSettings {
    pub(crate) fn is_set(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for (field, v) in [("rate_limit.rpm", self.rpm), ("rate_limit.tpm", self.tpm)] {
            if v == Some(0) {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The budgets of the ledger a preset makes: amounts in US dollars (kept as integer
/// nano-dollars from there on). Every budget is off by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetSettings {
    /// All spending per UTC day.
    pub daily_usd: Option<f64>,
    /// All spending per UTC calendar month.
    pub monthly_usd: Option<f64>,
    /// Any single request's worst case.
    pub max_per_request_usd: Option<f64>,
    /// Alert (a warning in [`PipelineStats::alerts`](super::PipelineStats)) once per window
    /// when a budget reaches this share of its limit, in (0, 1].
    pub alert_threshold: Option<f64>,
    /// Each tenant's (client key's) spending per UTC day.
    pub per_tenant_daily_usd: Option<f64>,
    /// Count models without a price as free instead of refusing them (default false: a
    /// request for an unpriced model is refused with kind `Configuration`).
    pub free_unknown_models: bool,
}

impl BudgetSettings {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("daily_usd", self.daily_usd),
            ("monthly_usd", self.monthly_usd),
            ("max_per_request_usd", self.max_per_request_usd),
            ("per_tenant_daily_usd", self.per_tenant_daily_usd),
        ] {
            if let Some(v) = v {
                check_usd(field, v)?;
            }
        }
        if let Some(share) = self.alert_threshold
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(ConfigError::new(
                "alert_threshold",
                format!("must be within (0, 1], got {share}"),
            ));
        }
        Ok(())
    }
}

/// `Err` naming `field` unless `v` is a positive, finite amount of at least a nano-dollar.
pub(crate) fn check_usd(field: &'static str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 1e-9 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be a positive amount of US dollars, got {v}"),
        ))
    }
}

/// Per-client (tenant) limits: throttle clients who keep causing errors, and cap each one's
/// requests and tokens per minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Errors of a client within `window` that throttle it (default 5; 1 to 1000).
    pub error_threshold: u32,
    /// The sliding window errors are counted over (default 60 s).
    pub window: Duration,
    /// The first penalty (default 30 s); each repeated offence doubles it.
    pub penalty: Duration,
    /// The longest penalty (default 1 hour).
    pub max_penalty: Duration,
    /// Requests per minute per client (default: no limit).
    pub rpm: Option<u64>,
    /// Tokens per minute per client (default: no limit).
    pub tpm: Option<u64>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            error_threshold: 5,
            window: Duration::from_secs(60),
            penalty: Duration::from_secs(30),
            max_penalty: Duration::from_secs(3600),
            rpm: None,
            tpm: None,
        }
    }
}

impl LimitSettings {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        ConfigError::check_range("error_threshold", self.error_threshold, 1, 1000)?;
        if self.window.is_zero() {
            return Err(ConfigError::new("window", "must be longer than zero"));
        }
        if self.penalty.is_zero() {
            return Err(ConfigError::new("penalty", "must be longer than zero"));
        }
        if self.max_penalty < self.penalty {
            return Err(ConfigError::new(
                "max_penalty",
                format!(
                    "({:?}) is below penalty ({:?})",
                    self.max_penalty, self.penalty
                ),
            ));
        }
        for (field, v) in [("rpm", self.rpm), ("tpm", self.tpm)] {
            if v == Some(0) {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}
