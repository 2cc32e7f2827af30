//! A retry budget shared by all clones of a retry service (Finagle's, as in tower).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::ConfigError;

/// Number of time slots the budget's window is cut into.
const SLOTS: usize = 10;
/// Fixed-point unit of one deposit.
const UNIT: i64 = 1000;

/// Bounds retries to a share of recent traffic, so a total outage cannot multiply load.
///
/// Every request deposits; every retry withdraws `1 / percent` deposits; deposits expire after
/// `ttl`; on top of that `min_per_sec` retries per second are always allowed (so a quiet
/// service can still retry). Under a 100 % failure rate the upstream therefore sees about
/// `(1 + percent) * requests + min_per_sec * seconds` calls, whatever `max_retries` says.
///
/// The success path (a deposit) is one relaxed load and one atomic add, with no clock read:
/// the window advances when a retry asks to withdraw (and on a small sample of deposits).
/// Deposits made while the window was not advanced count for an older slot and so expire
/// early: the budget errs on the side of fewer retries, never more.
///
/// ```
/// use std::time::Duration;
/// use towerguard_retry_backoff::RetryBudget;
///
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2).unwrap();
/// for _ in 0..10 { budget.deposit(); }
/// assert!(budget.withdraw());   // 10 requests * 20 % = 2 retries
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw());
/// assert!(RetryBudget::new(Duration::ZERO, 10, 0.2).is_err());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    slots: [AtomicI64; SLOTS],
    generation: AtomicU64,
    start: Instant,
    slot_nanos: u64,
    deposit_amount: i64,
    withdraw_amount: i64,
    reserve: i64,
    denied: AtomicU64,
}

impl RetryBudget {
    /// A budget over a window of `ttl` (1 ms to 1 hour), allowing `min_per_sec` retries per
    /// second regardless of traffic, plus `percent` (0 or more; 0.2 = 20 %) of requests.
    ///
    /// Tower's and Finagle's defaults are `RetryBudget::new(Duration::from_secs(10), 10, 0.2)`,
    /// which is also [`RetryBudget::default`].
    pub fn new(ttl: Duration, min_per_sec: u32, percent: f64) -> Result<Self, ConfigError> {
        if ttl < Duration::from_millis(1) || ttl > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "budget.ttl",
                format!("must be between 1 ms and 1 hour, got {ttl:?}"),
            ));
        }
        if !percent.is_finite() || percent < 0.0 {
            return Err(ConfigError::new(
                "budget.percent",
                format!("must be a finite number >= 0, got {percent}"),
            ));
        }
        let (deposit_amount, withdraw_amount) = if percent == 0.0 {
            (0, UNIT)
        } else {
            // At least 1 so that a huge percent still costs something.
            (UNIT, ((UNIT as f64 / percent).round() as i64).max(1))
        };
        let reserve = (min_per_sec as f64 * ttl.as_secs_f64()).floor() as i64 * withdraw_amount;
        let slot_nanos = (ttl.as_nanos() / SLOTS as u128).max(1) as u64;
        Ok(Self {
            slots: Default::default(),
            generation: AtomicU64::new(0),
            start: Instant::now(),
            slot_nanos,
            deposit_amount,
            withdraw_amount,
            reserve,
            denied: AtomicU64::new(0),
        })
    }

    /// Records a request. Called once per request (not per retry) by the retry service.
    #[inline]
    pub fn deposit(&self) {
        let g = self.generation.load(Ordering::Relaxed);
        let prev = self.slots[(g % SLOTS as u64) as usize]
            .fetch_add(self.deposit_amount, Ordering::Relaxed);
        if prev & 0x3ff == 0 {
            self.advance(Instant::now());
        }
    }

    /// Asks for one retry; `true` if the budget allows it (and takes it).
    pub fn withdraw(&self) -> bool {
        self.advance(Instant::now());
        let balance: i64 = self.slots.iter().map(|s| s.load(Ordering::Acquire)).sum();
        if balance + self.reserve >= self.withdraw_amount {
            let g = self.generation.load(Ordering::Relaxed);
            self.slots[(g % SLOTS as u64) as usize]
                .fetch_sub(self.withdraw_amount, Ordering::AcqRel);
            true
        } else {
            self.denied.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Retries the budget would allow right now (approximate under concurrency).
    pub fn available(&self) -> u64 {
        self.advance(Instant::now());
        let balance: i64 = self.slots.iter().map(|s| s.load(Ordering::Acquire)).sum();
        ((balance + self.reserve).max(0) / self.withdraw_amount) as u64
    }

    /// Retries refused so far.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    /// Moves the window to `now`, clearing slots that fell out of it.
    fn advance(&self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let target = (elapsed / self.slot_nanos as u128).min(u64::MAX as u128) as u64;
        let mut current = self.generation.load(Ordering::Acquire);
        while current < target {
            match self.generation.compare_exchange_weak(
                current,
                target,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let stale = (target - current).min(SLOTS as u64);
                    for k in 0..stale {
                        let g = target - k;
                        self.slots[(g % SLOTS as u64) as usize].store(0, Ordering::Release);
                    }
                    return;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl Default for RetryBudget {
    /// ttl 10 s, 10 retries per second, 20 % of requests (tower's and Finagle's defaults).
    fn default() -> Self {
        match Self::new(Duration::from_secs(10), 10, 0.2) {
            Ok(b) => b,
            Err(_) => unreachable!("the default budget is valid"),
        }
    }
}
