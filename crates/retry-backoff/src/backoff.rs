//! Backoff strategies and jitter.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;

/// How a delay is randomised (formulas from "Exponential Backoff and Jitter", with
/// `v = min(cap, strategy(n))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly `v`. Under contention this is the worst choice: clients retry in lockstep.
    #[default]
    None,
    /// `U(0, v)`: the least total work under contention.
    Full,
    /// `v/2 + U(0, v/2)`: never less than half the backoff.
    Equal,
    /// `min(cap, U(base, 3 * previous))`: finishes soonest under contention.
    Decorrelated,
}

#[derive(Clone, Debug)]
enum Strategy {
    Fixed(Duration),
    Linear {
        initial: Duration,
        step: Duration,
        max: Duration,
    },
    Exponential {
        initial: Duration,
        multiplier: f64,
        max: Duration,
    },
    Custom(CustomFn),
}

/// A custom strategy's function.
#[derive(Clone)]
struct CustomFn(Arc<dyn Fn(u32) -> Duration + Send + Sync>);

impl fmt::Debug for CustomFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomFn")
    }
}

/// How long to wait before each retry.
///
/// `n` below is the retry index: 0 before the first retry, 1 before the second, and so on.
///
/// ```
/// use std::time::Duration;
/// use towerguard_retry_backoff::{Backoff, Jitter};
///
/// // The OpenAI/Anthropic SDKs' schedule: min(0.5 s * 2^n, 8 s), then jitter.
/// let b = Backoff::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(8));
/// assert_eq!(b.base_delay(0), Duration::from_millis(500));
/// assert_eq!(b.base_delay(3), Duration::from_secs(4));
/// assert_eq!(b.base_delay(10), Duration::from_secs(8));
/// let jittered = b.with_jitter(Jitter::Full);
/// # let _ = jittered;
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    strategy: Strategy,
    jitter: Jitter,
}

impl Default for Backoff {
    /// The SDKs' default: exponential from 500 ms, doubling, capped at 8 s, full jitter.
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(8))
            .with_jitter(Jitter::Full)
    }
}

impl Backoff {
    /// No delay at all.
    pub fn none() -> Self {
        Self::fixed(Duration::ZERO)
    }

    /// The same delay before every retry.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            strategy: Strategy::Fixed(delay),
            jitter: Jitter::None,
        }
    }

    /// `min(max, initial + step * n)`.
    pub fn linear(initial: Duration, step: Duration, max: Duration) -> Self {
        Self {
            strategy: Strategy::Linear { initial, step, max },
            jitter: Jitter::None,
        }
    }

    /// `min(max, initial * multiplier^n)`.
    pub fn exponential(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self {
            strategy: Strategy::Exponential {
                initial,
                multiplier,
                max,
            },
            jitter: Jitter::None,
        }
    }

    /// Any function of the retry index. [`Jitter::Full`] and [`Jitter::Equal`] apply to its
    /// result; [`Jitter::Decorrelated`] needs a base and a cap, so it is refused for it.
    pub fn custom(f: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        Self {
            strategy: Strategy::Custom(CustomFn(Arc::new(f))),
            jitter: Jitter::None,
        }
    }

    /// The same strategy with this jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The jitter in use.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (initial, max) = match &self.strategy {
            Strategy::Fixed(_) => return Ok(()),
            Strategy::Custom(_) if self.jitter == Jitter::Decorrelated => {
                return Err(ConfigError::new(
                    "backoff.jitter",
                    "decorrelated jitter needs a base and a cap; a custom backoff has neither",
                ));
            }
            Strategy::Custom(_) => return Ok(()),
            Strategy::Exponential { multiplier, .. }
                if !multiplier.is_finite() || *multiplier < 1.0 =>
            {
                return Err(ConfigError::new(
                    "backoff.multiplier",
                    format!("must be a finite number >= 1, got {multiplier}"),
                ));
            }
            Strategy::Linear { initial, max, .. } | Strategy::Exponential { initial, max, .. } => {
                (initial, max)
            }
        };
        if max < initial {
            return Err(ConfigError::new(
                "backoff.max",
                format!("({max:?}) is below backoff.initial ({initial:?})"),
            ));
        }
        Ok(())
    }

    /// The delay before retry `n` without jitter: `v` in the formulas. Never overflows: it
    /// saturates at the strategy's cap.
    pub fn base_delay(&self, n: u32) -> Duration {
        match &self.strategy {
            Strategy::Fixed(d) => *d,
            Strategy::Linear { initial, step, max } => step
                .checked_mul(n)
                .and_then(|s| s.checked_add(*initial))
                .map_or(*max, |d| d.min(*max)),
            Strategy::Exponential {
                initial,
                multiplier,
                max,
            } => {
                let exp = i32::try_from(n).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * multiplier.powi(exp);
                match Duration::try_from_secs_f64(secs) {
                    Ok(d) => d.min(*max),
                    // 0 * inf is NaN: a zero initial delay stays zero
                    Err(_) if initial.is_zero() => Duration::ZERO,
                    Err(_) => *max,
                }
            }
            Strategy::Custom(f) => (f.0)(n),
        }
    }

    /// The (base, cap) pair decorrelated jitter works between.
    fn bounds(&self) -> (Duration, Duration) {
        match &self.strategy {
            Strategy::Fixed(d) => (*d, *d),
            Strategy::Linear { initial, max, .. } => (*initial, *max),
            Strategy::Exponential { initial, max, .. } => (*initial, *max),
            Strategy::Custom(_) => (Duration::ZERO, Duration::MAX),
        }
    }

    /// The delay before retry `n`, given the previous delay (for decorrelated jitter; pass
    /// `Duration::ZERO` before the first retry) and a uniform random number `u` in `[0, 1]`.
    ///
    /// A pure function, so every formula is testable; [`next_delay`](Self::next_delay) draws
    /// `u` from a per-thread generator. Never panics, for any durations up to
    /// `Duration::MAX`: every step saturates.
    pub fn delay_with(&self, n: u32, prev: Duration, u: f64) -> Duration {
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self.jitter {
            Jitter::None => self.base_delay(n),
            Jitter::Full => scale(self.base_delay(n), u),
            Jitter::Equal => {
                let v = self.base_delay(n);
                let half = v / 2;
                half.saturating_add(scale(v - half, u))
            }
            Jitter::Decorrelated => {
                let (base, cap) = self.bounds();
                let hi = prev.max(base).saturating_mul(3);
                base.saturating_add(scale(hi.saturating_sub(base), u))
                    .min(cap)
            }
        }
    }

    /// The delay before retry `n` with fresh randomness.
    pub fn next_delay(&self, n: u32, prev: Duration) -> Duration {
        let u = if self.jitter == Jitter::None {
            0.0
        } else {
            random_unit()
        };
        self.delay_with(n, prev, u)
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        // std's RandomState is seeded per process from the OS: a good enough seed, no dependency.
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x9E37_79B9_7F4A_7C15);
        h.finish() | 1
    });
}

/// `d * u` for `u` in `[0, 1]`, never above `d` (a plain `mul_f64` can round `Duration::MAX`
/// past itself and panic).
fn scale(d: Duration, u: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * u).map_or(d, |x| x.min(d))
}

/// A uniform number in `[0, 1)` from a per-thread xorshift64* generator (jitter only needs
/// decorrelation between clients, not cryptographic quality).
fn random_unit() -> f64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 / (1u64 << 53) as f64
    })
}
