//! Seeded random fault injection: [`FaultPlan`] and [`Latency`].

use std::fmt;
use std::time::Duration;

use towerguard_llm_core::{ErrorKind, LlmError};

use crate::outcome::{At, Outcome, StreamFault};

/// How long a call under a [`FaultPlan`] takes before it answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Answer at once.
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between `min` and `max`.
    Uniform {
        /// Shortest latency.
        min: Duration,
        /// Longest latency.
        max: Duration,
    },
    /// Usually `base`; with probability `rate`, `spike` instead (a tail-latency model).
    Spiky {
        /// The usual latency.
        base: Duration,
        /// The occasional slow latency.
        spike: Duration,
        /// Probability of a spike, 0 to 1.
        rate: f64,
    },
}

/// Seeded random faults: each call fails with a kind at a given rate, hangs at a rate, and
/// otherwise succeeds, after a latency drawn from a [`Latency`]. The same seed and the same
/// order of calls give the same outcomes.
///
/// Stream faults ([`cut`](Self::cut), [`stall`](Self::stall),
/// [`error_event`](Self::error_event), [`garbage`](Self::garbage)) strike only requests that
/// ask for a stream, at a point drawn uniformly from "before the first chunk" (the call then
/// fails, or hangs for a stall: the commit point was not passed) to "after the last chunk";
/// a request that does not stream answers a success when one is drawn. They come after the
/// other faults in the draw, so adding them leaves the outcomes a seed gives for the other
/// kinds unchanged.
///
/// ```
/// use std::time::Duration;
/// use towerguard_llm_core::ErrorKind;
/// use towerguard_testkit::{FaultPlan, Latency};
///
/// let faults = FaultPlan::seeded(7)
///     .fail(ErrorKind::RateLimited, 0.10)
///     .fail(ErrorKind::Server, 0.05)
///     .hang(0.01)
///     .latency(Latency::Uniform { min: Duration::from_millis(20), max: Duration::from_millis(80) })
///     .build()
///     .unwrap();
/// # let _ = faults;
/// // A chaos soak of streams: 5 % cut, 1 % stalled, 2 % overloaded mid-stream, 1 % garbage.
/// let streams = FaultPlan::seeded(7)
///     .cut(0.05)
///     .stall(0.01)
///     .error_event(ErrorKind::Overloaded, 0.02)
///     .garbage(0.01)
///     .chunk_latency(Duration::from_millis(15))
///     .build()
///     .unwrap();
/// # let _ = streams;
/// assert!(FaultPlan::seeded(1).fail(ErrorKind::Server, 1.5).build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FaultPlan {
    seed: u64,
    faults: Vec<(Outcome, f64)>,
    hang_rate: f64,
    retry_after: Option<Duration>,
    latency: Latency,
    stream_faults: Vec<(StreamFault, f64)>,
    chunk_latency: Duration,
}

impl FaultPlan {
    /// A plan with no faults and no latency, drawing from a generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            faults: Vec::new(),
            hang_rate: 0.0,
            retry_after: None,
            latency: Latency::None,
            stream_faults: Vec::new(),
            chunk_latency: Duration::ZERO,
        }
    }

    /// Fail with `kind` (and its typical HTTP status) at `rate` (0 to 1).
    pub fn fail(mut self, kind: ErrorKind, rate: f64) -> Self {
        self.faults.push((Outcome::fail(kind), rate));
        self
    }

    /// Fail with exactly this error at `rate`.
    pub fn fail_with(mut self, err: LlmError, rate: f64) -> Self {
        self.faults.push((Outcome::error(err), rate));
        self
    }

    /// Hang (never answer) at `rate`.
    pub fn hang(mut self, rate: f64) -> Self {
        self.hang_rate = rate;
        self
    }

    /// Give every injected rate-limit or overload failure this Retry-After hint.
    pub fn retry_after(mut self, hint: Duration) -> Self {
        self.retry_after = Some(hint);
        self
    }

    /// The latency of every call.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Cut streams at `rate`: they stop without their terminator (a `Connection` error item).
    pub fn cut(mut self, rate: f64) -> Self {
        self.stream_faults.push((StreamFault::Cut, rate));
        self
    }

    /// Stall streams at `rate`: they never send another item.
    pub fn stall(mut self, rate: f64) -> Self {
        self.stream_faults.push((StreamFault::Stall, rate));
        self
    }

    /// End streams with an error event of `kind` at `rate`.
    pub fn error_event(mut self, kind: ErrorKind, rate: f64) -> Self {
        self.stream_faults.push((StreamFault::Error(kind), rate));
        self
    }

    /// End streams with an event that does not parse (a `Server` "malformed stream event"
    /// error item) at `rate`.
    pub fn garbage(mut self, rate: f64) -> Self {
        self.stream_faults.push((StreamFault::Garbage, rate));
        self
    }

    /// The delay before each chunk of every stream (default none).
    pub fn chunk_latency(mut self, latency: Duration) -> Self {
        self.chunk_latency = latency;
        self
    }

    /// Checks the plan: every rate in 0..=1, rates summing to at most 1, latency bounds in order.
    pub fn build(self) -> Result<Faults, ConfigError> {
        let mut total = 0.0;
        for (_, rate) in &self.faults {
            check_rate(*rate, "fail.rate")?;
            total += rate;
        }
        check_rate(self.hang_rate, "hang_rate")?;
        total += self.hang_rate;
        for (fault, rate) in &self.stream_faults {
            check_rate(*rate, stream_field(*fault))?;
            total += rate;
        }
        if total > 1.0 + 1e-9 {
            return Err(ConfigError::new(
                "fail.rate",
                format!("the fault, hang and stream fault rates add up to {total}, more than 1"),
            ));
        }
        match self.latency {
            Latency::Uniform { min, max } if max < min => {
                return Err(ConfigError::new("latency.max", "is below latency.min"));
            }
            Latency::Spiky { rate, .. } => check_rate(rate, "latency.rate")?,
            _ => {}
        }
        let mut faults = self.faults;
        if let Some(hint) = self.retry_after {
            for (outcome, _) in &mut faults {
                if matches!(
                    outcome.error_kind(),
                    Some(ErrorKind::RateLimited | ErrorKind::Overloaded)
                ) {
                    *outcome = outcome.clone().with_retry_after(hint);
                }
            }
        }
        Ok(Faults {
            rng: fastrand::Rng::with_seed(self.seed),
            faults,
            hang_rate: self.hang_rate,
            latency: self.latency,
            stream_faults: self.stream_faults,
            chunk_latency: self.chunk_latency,
        })
    }
}

fn stream_field(fault: StreamFault) -> &'static str {
    match fault {
        StreamFault::Cut => "cut.rate",
        StreamFault::Stall => "stall.rate",
        StreamFault::Error(_) => "error_event.rate",
        StreamFault::Garbage => "garbage.rate",
    }
}

fn check_rate(rate: f64, field: &'static str) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be within 0..=1, got {rate}"),
        ))
    }
}

/// A checked [`FaultPlan`], ready to give to a fake provider.
#[derive(Debug, Clone)]
pub struct Faults {
    rng: fastrand::Rng,
    faults: Vec<(Outcome, f64)>,
    hang_rate: f64,
    latency: Latency,
    stream_faults: Vec<(StreamFault, f64)>,
    chunk_latency: Duration,
}

impl Faults {
    /// Draws the next outcome.
    pub(crate) fn draw(&mut self) -> Outcome {
        let latency = self.draw_latency();
        let mut u = self.rng.f64();
        for (outcome, rate) in &self.faults {
            if u < *rate {
                return outcome.clone().after(latency);
            }
            u -= rate;
        }
        if u < self.hang_rate {
            return Outcome::hang();
        }
        u -= self.hang_rate;
        let ok = Outcome::ok()
            .after(latency)
            .chunk_latency(self.chunk_latency);
        for (fault, rate) in &self.stream_faults {
            if u < *rate {
                // where it strikes: u is uniform within the rate, so u / rate is uniform in
                // 0..1 (no extra draw, so the sequence of draws stays the same)
                return ok.with_stream_fault(At::Fraction(u / rate), *fault);
            }
            u -= rate;
        }
        ok
    }

    fn draw_latency(&mut self) -> Duration {
        match self.latency {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                let span = max.saturating_sub(min).as_nanos().min(u64::MAX as u128) as u64;
                min + Duration::from_nanos(self.rng.u64(0..=span))
            }
            Latency::Spiky { base, spike, rate } => {
                if self.rng.f64() < rate {
                    spike
                } else {
                    base
                }
            }
        }
    }
}

/// Invalid testkit configuration, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fault plan: `{}` {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}
