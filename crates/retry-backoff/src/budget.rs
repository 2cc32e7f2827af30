//! A retry budget shared by every clone of a retry service (Finagle's, as in tower).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

// the counters from loom when model checking (`--cfg towerguard_loom`)
#[cfg(towerguard_loom)]
use loom::sync::{
    Mutex,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};
#[cfg(not(towerguard_loom))]
use std::sync::{
    Mutex,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use towerguard_outcome::{Clock, TokioClock};

use crate::ConfigError;

/// Number of time slots the budget's window is cut into.
const SLOTS: usize = 10;
/// Number of request counters (see [`RetryBudget`]'s notes on speed); two under loom, to
/// keep the model small.
const SHARDS: usize = if cfg!(towerguard_loom) { 2 } else { 8 };
/// A counter's deposits between two looks at the clock.
const CLOCK_EVERY: u64 = 64;

/// Keeps a value on a cache line of its own, so writes to it do not slow readers of its
/// neighbours.
#[derive(Debug, Default)]
#[repr(align(64))]
struct CacheLine<T>(T);

/// Bounds retries to a share of recent traffic, so a total outage cannot multiply load.
///
/// Every request deposits; every retry withdraws; a retry is allowed while
/// `percent * requests + min_per_sec * ttl - retries` over the last `ttl` is at least 1. So
/// under a 100 % failure rate the upstream sees about `(1 + percent) * requests` calls, plus
/// `min_per_sec` per second (so a quiet service can still retry), whatever `max_retries` says.
///
/// Speed: a deposit is made on every call, so it must not make threads wait for each other.
/// Requests are counted in 8 counters, each on its own cache line; every clone of a retry
/// service is given one when it is made, so two threads calling their own clones never write
/// the same memory. A deposit reads no clock: the window moves on when a retry asks to
/// withdraw, and on one deposit in 64 (moving it takes a lock, once per tenth of `ttl`; no
/// other call does). Requests counted while the window was not moved on
/// count for an older slot and expire early: the budget errs towards fewer retries, never
/// more. Under concurrency a withdrawal may be refused that an exact count would allow, never
/// the reverse.
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
/// assert_eq!(RetryBudget::new(Duration::ZERO, 10, 0.2).unwrap_err().field(), "budget.ttl");
/// ```
pub struct RetryBudget {
    /// Requests per counter and per time slot.
    deposits: [CacheLine<[AtomicU64; SLOTS]>; SHARDS],
    /// Retries per time slot, and retries refused.
    withdrawals: CacheLine<([AtomicU64; SLOTS], AtomicU64)>,
    /// The time slot deposits go to: slots since `start_nanos`.
    slot: CacheLine<AtomicU64>,
    /// Held by whoever moves the window on (once per slot), so that a new slot's counts are
    /// cleared once, before anyone counts in it.
    moving: Mutex<()>,
    /// The counter the next clone of a retry service will use.
    next_counter: AtomicUsize,
    percent: f64,
    reserve: f64,
    slot_nanos: u64,
    start_nanos: u64,
    clock: Arc<dyn Clock>,
}

impl RetryBudget {
    /// A budget over a window of `ttl` (1 ms to 1 hour), allowing `min_per_sec` retries per
    /// second regardless of traffic, plus `percent` of requests (0 to 1000; 0.2 = 20 %).
    ///
    /// Tower's and Finagle's defaults are `RetryBudget::new(Duration::from_secs(10), 10, 0.2)`,
    /// which is also [`RetryBudget::default`]. The window follows tokio's clock (paused in
    /// tests); see [`with_clock`](Self::with_clock).
    pub fn new(ttl: Duration, min_per_sec: u32, percent: f64) -> Result<Self, ConfigError> {
        if ttl < Duration::from_millis(1) || ttl > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "budget.ttl",
                format!("must be between 1 ms and 1 hour, got {ttl:?}"),
            ));
        }
        let percent = ConfigError::check_non_negative("budget.percent", percent)?;
        let percent = ConfigError::check_range("budget.percent", percent, 0.0, 1000.0)?;
        let clock = TokioClock::new();
        Ok(Self {
            deposits: Default::default(),
            withdrawals: Default::default(),
            slot: Default::default(),
            moving: Mutex::new(()),
            next_counter: AtomicUsize::new(0),
            percent,
            reserve: f64::from(min_per_sec) * ttl.as_secs_f64(),
            // ttl is at least 1 ms, so a slot is at least 100 µs
            slot_nanos: (ttl.as_nanos() / SLOTS as u128) as u64,
            start_nanos: clock.unix_nanos(),
            clock: Arc::new(clock),
        })
    }

    /// The same budget, reading time from `clock` (e.g. a
    /// [`ManualClock`](towerguard_outcome::ManualClock) outside a tokio runtime).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.start_nanos = clock.unix_nanos();
        self.clock = Arc::new(clock);
        self
    }

    /// Records a request made outside a retry service (a retry service records its own
    /// requests, once per request, not per retry).
    #[inline]
    pub fn deposit(&self) {
        self.deposit_to(0);
    }

    /// The request counter for a new clone of a retry service: the counters are handed out
    /// in turn.
    pub(crate) fn counter(&self) -> usize {
        self.next_counter.fetch_add(1, Ordering::Relaxed) % SHARDS
    }

    /// Records a request on one of the counters.
    #[inline]
    pub(crate) fn deposit_to(&self, counter: usize) {
        if self.percent == 0.0 {
            return; // requests earn no retries: nothing to count
        }
        let slot = slot_index(self.slot.0.load(Ordering::Acquire));
        let before = self.deposits[counter % SHARDS].0[slot].fetch_add(1, Ordering::Relaxed);
        if before.is_multiple_of(CLOCK_EVERY) {
            self.move_window();
        }
    }

    /// Asks for one retry; `true` if the budget allows it (and takes it).
    pub fn withdraw(&self) -> bool {
        self.move_window();
        let slot = slot_index(self.slot.0.load(Ordering::Acquire));
        let (withdrawals, denied) = &self.withdrawals.0;
        // Take first, then check: two retries racing for the last one cannot both get it.
        withdrawals[slot].fetch_add(1, Ordering::AcqRel);
        if self.balance() >= 0.0 {
            true
        } else {
            // give it back; saturating, in case the slot was cleared meanwhile (the window
            // moved on by a whole `ttl` since this retry read the slot)
            let _ = withdrawals[slot].fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
            denied.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Retries the budget would allow right now (approximate under concurrency).
    pub fn available(&self) -> u64 {
        self.move_window();
        // a float to integer cast saturates: never panics
        self.balance().max(0.0).floor() as u64
    }

    /// Retries refused so far.
    pub fn denied(&self) -> u64 {
        self.withdrawals.0.1.load(Ordering::Relaxed)
    }

    /// Retries earned and not yet taken in the window. Counts are summed as floats, so no
    /// configuration or traffic can overflow them; a millionth of a retry is forgiven, so
    /// `100 * 0.29` earns 29 retries, not 28.
    fn balance(&self) -> f64 {
        let sum = |slots: &[AtomicU64; SLOTS]| -> f64 {
            slots.iter().map(|s| s.load(Ordering::Acquire) as f64).sum()
        };
        let requests: f64 = self.deposits.iter().map(|c| sum(&c.0)).sum();
        requests * self.percent + self.reserve - sum(&self.withdrawals.0.0) + 1e-6
    }

    /// Moves the window to now, clearing the slots that fell out of it. The new slots are
    /// cleared before the slot number is published, under a lock taken once per slot, so a
    /// count made in a new slot is never wiped by a late clear (two retries racing for the
    /// last one as the window moves could otherwise both get it).
    fn move_window(&self) {
        let elapsed = self.clock.unix_nanos().saturating_sub(self.start_nanos);
        let target = elapsed / self.slot_nanos;
        if self.slot.0.load(Ordering::Acquire) >= target {
            return;
        }
        let _moving = self
            .moving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.slot.0.load(Ordering::Acquire);
        if current >= target {
            return; // moved on meanwhile
        }
        // the slots of the time between `current` and `target`, at most all
        for s in (current + 1..=target).rev().take(SLOTS) {
            let s = slot_index(s);
            for counter in &self.deposits {
                counter.0[s].store(0, Ordering::Release);
            }
            self.withdrawals.0.0[s].store(0, Ordering::Release);
        }
        self.slot.0.store(target, Ordering::Release);
    }
}

/// Where a time slot's counts are kept.
fn slot_index(slot: u64) -> usize {
    (slot % SLOTS as u64) as usize
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("percent", &self.percent)
            .field("reserve", &self.reserve)
            .field("balance", &self.balance())
            .field("denied", &self.denied())
            .finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_count_requests_on_cache_lines_of_their_own() {
        let budget = RetryBudget::default();
        let counters: Vec<usize> = (0..SHARDS + 1).map(|_| budget.counter()).collect();
        assert_eq!(counters[..SHARDS], (0..SHARDS).collect::<Vec<_>>());
        assert_eq!(counters[SHARDS], 0, "handed out in turn");
        let address = |i: usize| &budget.deposits[i] as *const _ as usize;
        assert_eq!(address(0) % 64, 0);
        assert!(address(1) - address(0) >= 64);
        let slot = &budget.slot as *const _ as usize;
        assert_eq!(
            slot % 64,
            0,
            "the slot number is read by every deposit: no writer beside it"
        );
        budget.deposit_to(3);
        budget.deposit_to(5);
        assert_eq!(budget.available(), 100, "the 10 s * 10/s reserve");
    }
}
