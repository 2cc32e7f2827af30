//! The breaker's state machine: lock-free, clock passed in (nanoseconds since the breaker
//! was made), so the same code runs under tokio's clock, under a test's and under loom.

use std::fmt;
use std::time::Duration;

use crate::shard::Counters;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::window::{CountWindow, FAILED, SLOW, TimeWindow, WindowCounts};

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
    const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
            State::MetricsOnly => 5,
        }
    }

    const fn from_code(code: u64) -> State {
        match code & 7 {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            4 => State::Disabled,
            _ => State::MetricsOnly,
        }
    }

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

const fn word(state: State, generation: u64) -> u64 {
    (generation << 3) | state.code()
}

const fn generation(word: u64) -> u64 {
    word >> 3
}

// The probe word: generation (low 32 bits of the state's) | successes (16) | in flight (16).
const fn probe_word(generation: u64, successes: u64, in_flight: u64) -> u64 {
    ((generation & 0xffff_ffff) << 32) | ((successes & 0xffff) << 16) | (in_flight & 0xffff)
}

const fn probe_gen(p: u64) -> u64 {
    p >> 32
}

const fn probe_successes(p: u64) -> u64 {
    (p >> 16) & 0xffff
}

const fn probe_in_flight(p: u64) -> u64 {
    p & 0xffff
}

/// The sliding window a breaker trips on, if any.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

/// The rules, checked when the breaker is built.
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
    pub(crate) half_open_permits: u32,
    pub(crate) half_open_successes: u32,
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
    /// Rejected, with the time left open if known.
    Reject(Option<Duration>),
}

/// A call's outcome, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded (or failed in a way that says nothing about the callee's health).
    Success,
    /// The call failed; the callee may have said how long to stay away.
    Failure {
        /// The callee's Retry-After hint.
        retry_after: Option<Duration>,
    },
    /// Neither: not counted, and a half-open permit is given back.
    Ignored,
}

/// Lifetime counts, summed over shards.
const SUCCESSES: usize = 0;
const FAILURES: usize = 1;
const REJECTED: usize = 2;
const IGNORED: usize = 3;
const SLOW_CALLS: usize = 4;

/// A transition observer: `(from, to)`.
pub(crate) type Observer = Box<dyn Fn(State, State) + Send + Sync>;

pub(crate) struct Core {
    state: AtomicU64,
    open_until: AtomicU64,
    probe: AtomicU64,
    consecutive: AtomicU32,
    trips: AtomicU32,
    window: Option<Window>,
    rules: Rules,
    counters: Counters<5>,
    name: Option<std::sync::Arc<str>>,
    observer: Option<Observer>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// A snapshot of a breaker, from [`CircuitBreakerHandle::stats`](crate::CircuitBreakerHandle::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The current state.
    pub state: State,
    /// What the sliding window holds now (zero when tripping on consecutive failures only).
    pub window: WindowCounts,
    /// Current run of consecutive failures.
    pub consecutive_failures: u32,
    /// Times the breaker opened in a row without closing since.
    pub trips: u32,
    /// Calls that succeeded, since the breaker was made.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Calls rejected without reaching the service.
    pub rejected: u64,
    /// Calls whose outcome was ignored (or that were cancelled).
    pub ignored: u64,
    /// Calls slower than the slow-call threshold.
    pub slow: u64,
    /// Time left open, if open.
    pub open_for: Option<Duration>,
}

impl Core {
    pub(crate) fn new(
        rules: Rules,
        window: Option<Window>,
        name: Option<std::sync::Arc<str>>,
        observer: Option<Observer>,
    ) -> Self {
        Self {
            state: AtomicU64::new(word(State::Closed, 0)),
            open_until: AtomicU64::new(0),
            probe: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            trips: AtomicU32::new(0),
            window,
            rules,
            counters: Counters::new(),
            name,
            observer,
        }
    }

    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    pub(crate) fn name(&self) -> Option<&std::sync::Arc<str>> {
        self.name.as_ref()
    }

    pub(crate) fn state(&self) -> State {
        State::from_code(self.state.load(Ordering::Acquire))
    }

    /// Decides whether a call may pass. `now` is read only when the state needs it.
    #[inline]
    pub(crate) fn admit(&self, now: &impl Fn() -> u64) -> Admission {
        loop {
            let w = self.state.load(Ordering::Acquire);
            let g = generation(w);
            match State::from_code(w) {
                State::Closed | State::MetricsOnly => return Admission::Record(g),
                State::Disabled => return Admission::Pass,
                State::ForcedOpen => return self.reject(None),
                State::Open => {
                    let t = now();
                    let until = self.open_until.load(Ordering::Acquire);
                    if t < until {
                        return self.reject(Some(Duration::from_nanos(until - t)));
                    }
                    // Open time is over: prepare the half-open generation, then switch.
                    self.prepare_probe(g + 1);
                    self.transition(w, State::HalfOpen);
                    // Loop: take a permit as any half-open caller would.
                }
                State::HalfOpen => {
                    let mut p = self.probe.load(Ordering::Acquire);
                    loop {
                        if probe_gen(p) != (g & 0xffff_ffff)
                            || probe_in_flight(p) >= u64::from(self.rules.half_open_permits)
                        {
                            return self.reject(None);
                        }
                        match self.probe.compare_exchange_weak(
                            p,
                            p + 1,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => return Admission::Probe(g),
                            Err(actual) => p = actual,
                        }
                    }
                }
            }
        }
    }

    fn reject(&self, retry_after: Option<Duration>) -> Admission {
        self.counters.add(REJECTED, 1);
        Admission::Reject(retry_after)
    }

    /// Moves the probe word to generation `g` with no successes and nothing in flight, unless
    /// it is already there or beyond (so a late writer never hands out permits twice).
    fn prepare_probe(&self, g: u64) {
        let target = probe_word(g, 0, 0);
        let mut p = self.probe.load(Ordering::Acquire);
        loop {
            // generations compared with wrap-around on 32 bits
            let ahead = (probe_gen(p) as u32).wrapping_sub(g as u32) as i32;
            if ahead >= 0 && p != 0 {
                return;
            }
            match self
                .probe
                .compare_exchange_weak(p, target, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => p = actual,
            }
        }
    }

    /// Switches from exactly `from` to `to` (next generation). Only the winner of the race
    /// reports the transition and does the side effects; returns whether this call won.
    fn transition(&self, from: u64, to: State) -> bool {
        let next = word(to, generation(from) + 1);
        if self
            .state
            .compare_exchange(from, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        if to == State::Closed {
            self.clear_window();
            self.consecutive.store(0, Ordering::Release);
            self.trips.store(0, Ordering::Release);
        }
        let from_state = State::from_code(from);
        if let Some(name) = &self.name {
            tracing::warn!(
                breaker = &**name,
                from = from_state.as_str(),
                to = to.as_str(),
                "circuit breaker state change"
            );
        } else {
            tracing::warn!(
                from = from_state.as_str(),
                to = to.as_str(),
                "circuit breaker state change"
            );
        }
        if let Some(observer) = &self.observer {
            observer(from_state, to);
        }
        true
    }

    fn clear_window(&self) {
        match &self.window {
            Some(Window::Count(w)) => w.clear(),
            Some(Window::Time(w)) => w.clear(),
            None => {}
        }
    }

    /// Opens from state word `from`, for `hint` (the callee's Retry-After), at time `now`.
    fn trip(&self, from: u64, hint: Option<Duration>, now: u64) {
        let n = self.trips.load(Ordering::Acquire).saturating_add(1);
        let r = &self.rules;
        let mut open = if r.grow_open_duration {
            r.open_duration.saturating_mul(n).min(r.max_open_duration)
        } else {
            r.open_duration
        };
        if r.follow_retry_after
            && let Some(h) = hint
        {
            open = open.max(h.min(r.max_open_duration));
        }
        let until = now.saturating_add(open.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.open_until.store(until, Ordering::Release);
        if self.transition(from, State::Open) {
            self.trips.store(n, Ordering::Release);
        }
    }

    /// Records the outcome of a call admitted as `admission`. `started` is the call's start
    /// (for slow-call detection); `now` is read only when needed.
    #[inline]
    pub(crate) fn record(
        &self,
        admission: Admission,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: &impl Fn() -> u64,
    ) {
        let slow = match (self.rules.slow_threshold, elapsed) {
            (Some(threshold), Some(e)) => e >= threshold,
            _ => false,
        };
        match outcome {
            Outcome::Success => self.counters.add(SUCCESSES, 1),
            Outcome::Failure { .. } => self.counters.add(FAILURES, 1),
            Outcome::Ignored => self.counters.add(IGNORED, 1),
        }
        if slow && outcome != Outcome::Ignored {
            self.counters.add(SLOW_CALLS, 1);
        }
        match admission {
            Admission::Record(g) => self.record_closed(g, outcome, slow, now),
            Admission::Probe(g) => self.record_probe(g, outcome, now),
            Admission::Pass | Admission::Reject(_) => {}
        }
    }

    fn record_closed(&self, g: u64, outcome: Outcome, slow: bool, now: &impl Fn() -> u64) {
        let w = self.state.load(Ordering::Acquire);
        if generation(w) != g {
            return; // recorded under a state that is gone
        }
        let (failed, hint) = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => (false, None),
            Outcome::Failure { retry_after } => (true, retry_after),
        };
        let mut tripped = false;
        if failed {
            let run = self
                .consecutive
                .fetch_add(1, Ordering::AcqRel)
                .saturating_add(1);
            tripped = self
                .rules
                .consecutive_failures
                .is_some_and(|limit| run >= limit);
        } else if self.consecutive.load(Ordering::Relaxed) != 0 {
            // only write shared memory when the run actually ends
            self.consecutive.store(0, Ordering::Relaxed);
        }
        let bits = if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let mut t = None;
        match &self.window {
            Some(Window::Count(win)) => {
                win.record(bits);
                if bits != 0 {
                    tripped |= self.rates_exceeded(win.counts());
                }
            }
            Some(Window::Time(win)) => {
                let at = now();
                t = Some(at);
                win.record(at, bits);
                if bits != 0 {
                    tripped |= self.rates_exceeded(win.counts(at));
                }
            }
            None => {}
        }
        if tripped && State::from_code(w) == State::Closed {
            self.trip(w, hint, t.unwrap_or_else(now));
        }
    }

    fn rates_exceeded(&self, c: WindowCounts) -> bool {
        let r = &self.rules;
        if c.calls == 0 || c.calls < r.min_calls {
            return false;
        }
        let calls = c.calls as f64;
        r.failure_rate
            .is_some_and(|limit| c.failures as f64 / calls >= limit)
            || r.slow_rate
                .is_some_and(|limit| c.slow as f64 / calls >= limit)
    }

    fn record_probe(&self, g: u64, outcome: Outcome, now: &impl Fn() -> u64) {
        let g32 = g & 0xffff_ffff;
        match outcome {
            Outcome::Failure { retry_after } => {
                self.release_probe(g32, false);
                let w = self.state.load(Ordering::Acquire);
                if w == word(State::HalfOpen, g) {
                    self.trip(w, retry_after, now());
                }
            }
            Outcome::Ignored => {
                self.release_probe(g32, false);
            }
            Outcome::Success => {
                if let Some(successes) = self.release_probe(g32, true)
                    && successes >= u64::from(self.rules.half_open_successes)
                {
                    let w = word(State::HalfOpen, g);
                    if self.state.load(Ordering::Acquire) == w {
                        self.transition(w, State::Closed);
                    }
                }
            }
        }
    }

    /// Gives a permit of generation `g32` back, counting a success if asked; returns the
    /// successes so far, or None if that generation is over.
    fn release_probe(&self, g32: u64, success: bool) -> Option<u64> {
        let mut p = self.probe.load(Ordering::Acquire);
        loop {
            if probe_gen(p) != g32 || probe_in_flight(p) == 0 {
                return None;
            }
            let successes = probe_successes(p) + u64::from(success);
            let next = probe_word(g32, successes, probe_in_flight(p) - 1);
            match self
                .probe
                .compare_exchange_weak(p, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(successes),
                Err(actual) => p = actual,
            }
        }
    }

    /// Gives back a permit of an admission whose call never finished (cancelled).
    pub(crate) fn cancel(&self, admission: Admission) {
        if let Admission::Probe(g) = admission {
            self.counters.add(IGNORED, 1);
            self.release_probe(g & 0xffff_ffff, false);
        }
    }

    /// Sets the state by hand (reset, force open, disable, metrics only).
    pub(crate) fn force(&self, to: State) {
        loop {
            let w = self.state.load(Ordering::Acquire);
            if to == State::Closed {
                // reset clears the window even if already closed
                if self.transition(w, to) {
                    return;
                }
                continue;
            }
            if State::from_code(w) == to || self.transition(w, to) {
                return;
            }
        }
    }

    pub(crate) fn stats(&self, now: u64) -> Stats {
        let state = self.state();
        let window = match &self.window {
            Some(Window::Count(w)) => w.counts(),
            Some(Window::Time(w)) => w.counts(now),
            None => WindowCounts::default(),
        };
        let open_for = (state == State::Open).then(|| {
            Duration::from_nanos(self.open_until.load(Ordering::Acquire).saturating_sub(now))
        });
        Stats {
            state,
            window,
            consecutive_failures: self.consecutive.load(Ordering::Acquire),
            trips: self.trips.load(Ordering::Acquire),
            successes: self.counters.sum(SUCCESSES),
            failures: self.counters.sum(FAILURES),
            rejected: self.counters.sum(REJECTED),
            ignored: self.counters.sum(IGNORED),
            slow: self.counters.sum(SLOW_CALLS),
            open_for,
        }
    }

    /// Half-open probes in flight now (for tests and stats).
    pub(crate) fn probes_in_flight(&self) -> u64 {
        let w = self.state.load(Ordering::Acquire);
        let p = self.probe.load(Ordering::Acquire);
        if State::from_code(w) == State::HalfOpen && probe_gen(p) == (generation(w) & 0xffff_ffff) {
            probe_in_flight(p)
        } else {
            0
        }
    }

    pub(crate) fn clear_counters(&self) {
        self.counters.clear();
    }
}
