//! The breaker's shared state: the closed / open / half-open machine with its open time and
//! half-open permits, and the window and counts it records into.
//!
//! Calls read the state word without locking; a closed-state success writes only its thread's
//! shards. A transition is made under a small lock: the thread that finds the state word
//! still as it saw it wins, sets what the new state needs (open time, permits, a fresh
//! window) and then publishes the new word. Every transition makes a new generation, so an
//! outcome or a decision taken under an earlier word is recognised as stale and dropped: a
//! losing or stale tripper never touches the open time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use towerguard_outcome::{Clock, Verdict};

use crate::stats::{Counts, Stats};
use crate::sync::{AtomicU64, Mutex, Ordering, lock};
use crate::window::{Tally, Window};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are recorded and may trip the breaker.
    Closed,
    /// Calls are rejected until the open time ends.
    Open,
    /// A bounded number of probe calls pass; successes close, a failure re-opens.
    HalfOpen,
    /// Rejects every call until reset (manual isolation).
    ForcedOpen,
    /// Every call passes and nothing is recorded.
    Disabled,
    /// Every call passes; outcomes are recorded but never trip the breaker.
    MetricsOnly,
}

impl State {
    /// The state's name in snake case, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state word: `generation << 3 | state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word(u64);

impl Word {
    fn new(state: State, generation: u64) -> Self {
        Word(generation << 3 | state as u64)
    }

    fn state(self) -> State {
        match self.0 & 7 {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            4 => State::Disabled,
            _ => State::MetricsOnly,
        }
    }

    fn generation(self) -> u64 {
        self.0 >> 3
    }
}

/// The permits of one half-open period, in one word so that taking one is a single CAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probes {
    /// The period: the low 32 bits of its generation.
    period: u32,
    successes: u16,
    in_flight: u16,
}

impl Probes {
    fn of(word: u64) -> Self {
        Probes {
            period: (word >> 32) as u32,
            successes: (word >> 16) as u16,
            in_flight: word as u16,
        }
    }

    fn word(self) -> u64 {
        u64::from(self.period) << 32 | u64::from(self.successes) << 16 | u64::from(self.in_flight)
    }
}

/// The rules, checked by the builder.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_rate: Option<f64>,
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) min_calls: u64,
    pub(crate) open_duration: Duration,
    pub(crate) max_open_duration: Duration,
    pub(crate) grow_open_duration: bool,
    pub(crate) follow_retry_after: bool,
    pub(crate) half_open_permits: u16,
    pub(crate) half_open_successes: u16,
}

impl Rules {
    fn trips_on(&self, t: Tally) -> bool {
        let c = t.counts;
        let enough = c.calls > 0 && c.calls >= self.min_calls;
        let rate = |limit: Option<f64>, n: u64| {
            enough && limit.is_some_and(|l| n as f64 / c.calls as f64 >= l)
        };
        self.consecutive_failures.is_some_and(|n| t.run >= n)
            || rate(self.failure_rate, c.failures)
            || rate(self.slow_rate, c.slow)
    }

    /// How long the `trips`-th open in a row lasts, for a failure with Retry-After `hint`.
    fn open_time(&self, trips: u32, hint: Option<Duration>) -> Duration {
        let mut open = if self.grow_open_duration {
            self.open_duration
                .saturating_mul(trips)
                .min(self.max_open_duration)
        } else {
            self.open_duration
        };
        if self.follow_retry_after
            && let Some(h) = hint
        {
            open = open.max(h.min(self.max_open_duration));
        }
        open
    }
}

/// What admission decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed or metrics-only: record the outcome under this generation.
    Record(u64),
    /// A half-open probe holding a permit of this generation.
    Probe(u64),
    /// Disabled: pass, record nothing.
    Pass,
    /// Rejected in this state, with the time left open if known.
    Reject(State, Option<Duration>),
}

/// A call's outcome, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// With the callee's Retry-After hint.
    Failure(Option<Duration>),
    /// Neither: not counted, and a half-open permit is given back.
    Ignored,
}

impl Outcome {
    /// A failure iff the verdict counts for the breaker; a refusal by one of our own layers
    /// says nothing of the callee, so it is ignored; anything else shows a callee that is up.
    pub(crate) fn of(verdict: Verdict) -> Self {
        if verdict.counts_for_breaker() {
            Outcome::Failure(verdict.retry_after())
        } else if verdict.is_refusal() {
            Outcome::Ignored
        } else {
            Outcome::Success
        }
    }
}

/// A transition observer: `(from, to)`.
pub(crate) type Observer = Box<dyn Fn(State, State) + Send + Sync>;

/// One breaker, shared by every service, clone and handle made from its layer.
pub(crate) struct Breaker {
    state: AtomicU64,
    /// When the open state ends (clock nanoseconds). Written only by the transition into
    /// `Open`, before it publishes the state word.
    open_until: AtomicU64,
    /// The half-open permits ([`Probes`]).
    probes: AtomicU64,
    /// Opens in a row without closing since; the lock every transition holds.
    trips: Mutex<u32>,
    window: Window,
    counts: Counts,
    rules: Rules,
    clock: Arc<dyn Clock>,
    name: Option<Arc<str>>,
    observer: Option<Observer>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub(crate) fn new(
        rules: Rules,
        window: Window,
        shards: usize,
        clock: Arc<dyn Clock>,
        name: Option<Arc<str>>,
        observer: Option<Observer>,
    ) -> Self {
        Self {
            state: AtomicU64::new(Word::new(State::Closed, 0).0),
            open_until: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            trips: Mutex::new(0),
            window,
            counts: Counts::new(shards),
            rules,
            clock,
            name,
            observer,
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.unix_nanos()
    }

    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }

    pub(crate) fn slow_threshold(&self) -> Option<Duration> {
        self.rules.slow_threshold
    }

    fn word(&self) -> Word {
        Word(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn state(&self) -> State {
        self.word().state()
    }

    /// Decides whether a call on shard `shard` may pass. Reads the clock only when open.
    #[inline]
    pub(crate) fn admit(&self, shard: usize) -> Admission {
        loop {
            let w = self.word();
            let g = w.generation();
            match w.state() {
                State::Closed | State::MetricsOnly => return Admission::Record(g),
                State::Disabled => return Admission::Pass,
                State::ForcedOpen => return self.reject(shard, State::ForcedOpen, None),
                State::HalfOpen => {
                    return match self.take_permit(g) {
                        true => Admission::Probe(g),
                        false => self.reject(shard, State::HalfOpen, None),
                    };
                }
                State::Open => {
                    let now = self.now();
                    let until = self.open_until.load(Ordering::Relaxed);
                    if now < until {
                        let left = Duration::from_nanos(until - now);
                        return self.reject(shard, State::Open, Some(left));
                    }
                    // Open time is over: whoever wins moves to half-open; look again.
                    self.transition(w, State::HalfOpen, None);
                }
            }
        }
    }

    fn reject(&self, shard: usize, state: State, left: Option<Duration>) -> Admission {
        self.counts.add(shard, |c| &c.rejected);
        Admission::Reject(state, left)
    }

    fn take_permit(&self, generation: u64) -> bool {
        let taken = self
            .probes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let p = Probes::of(w);
                let free =
                    p.period == generation as u32 && p.in_flight < self.rules.half_open_permits;
                free.then(|| {
                    let in_flight = p.in_flight + 1;
                    Probes { in_flight, ..p }.word()
                })
            });
        taken.is_ok()
    }

    /// Gives a permit of period `generation` back, counting a success if asked; returns the
    /// successes so far, or `None` if that period is over.
    fn release_permit(&self, generation: u64, success: bool) -> Option<u16> {
        let success = u16::from(success);
        let before = self
            .probes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let p = Probes::of(w);
                (p.period == generation as u32 && p.in_flight > 0).then(|| {
                    let successes = p.successes.saturating_add(success);
                    let in_flight = p.in_flight - 1;
                    Probes {
                        successes,
                        in_flight,
                        ..p
                    }
                    .word()
                })
            });
        Some(Probes::of(before.ok()?).successes.saturating_add(success))
    }

    /// Moves from exactly `from` to `to` if the state is still `from`; returns whether this
    /// call made the transition. `hint` is the Retry-After of the failure that trips.
    fn transition(&self, from: Word, to: State, hint: Option<Duration>) -> bool {
        let mut trips = lock(&self.trips);
        if self.word() != from {
            return false;
        }
        let next = Word::new(to, from.generation() + 1);
        match to {
            State::Open => {
                *trips = trips.saturating_add(1);
                let open = self.rules.open_time(*trips, hint);
                let nanos = u64::try_from(open.as_nanos()).unwrap_or(u64::MAX);
                let until = self.now().saturating_add(nanos);
                self.open_until.store(until, Ordering::Relaxed);
            }
            State::HalfOpen => {
                let probes = Probes {
                    period: next.generation() as u32,
                    successes: 0,
                    in_flight: 0,
                };
                self.probes.store(probes.word(), Ordering::Relaxed);
            }
            State::Closed | State::MetricsOnly => {
                if to == State::Closed {
                    *trips = 0;
                }
                self.window.reset(next.generation());
            }
            State::ForcedOpen | State::Disabled => {}
        }
        self.state.store(next.0, Ordering::Release);
        drop(trips);
        let from = from.state();
        let breaker = self.name.as_deref().unwrap_or("");
        tracing::warn!(breaker, %from, %to, "circuit breaker state change");
        if let Some(observer) = &self.observer {
            observer(from, to);
        }
        true
    }

    /// Records the outcome of a call admitted as `admission` on shard `shard`; `elapsed` is
    /// how long it took, when slow calls are counted.
    #[inline]
    pub(crate) fn record(
        &self,
        admission: Admission,
        outcome: Outcome,
        elapsed: Option<Duration>,
        shard: usize,
    ) {
        if let Admission::Pass | Admission::Reject(..) = admission {
            return; // disabled: nothing is recorded
        }
        let threshold = self.rules.slow_threshold;
        let slow = outcome != Outcome::Ignored && threshold.is_some_and(|t| elapsed >= Some(t));
        self.counts.add(shard, |c| match outcome {
            Outcome::Success => &c.successes,
            Outcome::Failure(_) => &c.failures,
            Outcome::Ignored => &c.ignored,
        });
        if slow {
            self.counts.add(shard, |c| &c.slow);
        }
        match admission {
            Admission::Record(g) => self.record_closed(g, outcome, slow, shard),
            Admission::Probe(g) => self.record_probe(g, outcome),
            Admission::Pass | Admission::Reject(..) => {}
        }
    }

    fn record_closed(&self, g: u64, outcome: Outcome, slow: bool, shard: usize) {
        let w = self.word();
        if w.generation() != g {
            return; // recorded under a state that is gone
        }
        let hint = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => None,
            Outcome::Failure(hint) => Some(hint),
        };
        let now = || self.now();
        let tally = self.window.record(shard, g, hint.is_some(), slow, now);
        if let Some(tally) = tally
            && w.state() == State::Closed
            && self.rules.trips_on(tally)
        {
            self.transition(w, State::Open, hint.flatten());
        }
    }

    fn record_probe(&self, g: u64, outcome: Outcome) {
        let successes = self.release_permit(g, outcome == Outcome::Success);
        let half_open = Word::new(State::HalfOpen, g);
        match outcome {
            Outcome::Failure(hint) => self.transition(half_open, State::Open, hint),
            Outcome::Success if successes >= Some(self.rules.half_open_successes) => {
                self.transition(half_open, State::Closed, None)
            }
            _ => false,
        };
    }

    /// Gives back the permit of an admission whose call never finished (cancelled).
    pub(crate) fn cancel(&self, admission: Admission, shard: usize) {
        if let Admission::Probe(g) = admission {
            self.counts.add(shard, |c| &c.ignored);
            self.release_permit(g, false);
        }
    }

    /// Sets the state by hand (reset, force open, disable, metrics only).
    pub(crate) fn force(&self, to: State) {
        loop {
            let w = self.word();
            // a reset clears the window even when already closed
            if (w.state() == to && to != State::Closed) || self.transition(w, to, None) {
                return;
            }
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let now = self.now();
        let state = self.state();
        let trips = *lock(&self.trips);
        let open_for = (state == State::Open).then(|| {
            Duration::from_nanos(self.open_until.load(Ordering::Relaxed).saturating_sub(now))
        });
        Stats {
            state,
            window: self.window.counts(|| now),
            consecutive_failures: self.window.run(),
            trips,
            successes: self.counts.sum(|c| &c.successes),
            failures: self.counts.sum(|c| &c.failures),
            rejected: self.counts.sum(|c| &c.rejected),
            ignored: self.counts.sum(|c| &c.ignored),
            slow: self.counts.sum(|c| &c.slow),
            open_for,
        }
    }

    /// Half-open probes in flight now.
    pub(crate) fn probes_in_flight(&self) -> u64 {
        let w = self.word();
        let p = Probes::of(self.probes.load(Ordering::Acquire));
        if w.state() == State::HalfOpen && p.period == w.generation() as u32 {
            u64::from(p.in_flight)
        } else {
            0
        }
    }

    pub(crate) fn clear_counts(&self) {
        self.counts.clear();
    }
}
