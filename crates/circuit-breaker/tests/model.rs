//! Generated call sequences against a simple reference model of the breaker: the count and
//! time windows, consecutive failures, open time (with Retry-After hints) and half-open
//! probing must agree exactly, including calls that start in one state period and end in a
//! later one (their outcome is stale and changes nothing).
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use towerguard_circuit_breaker::{
    CircuitBreakerLayer, CircuitOpenError, ClassifyError, State, Verdict,
};

/// The service's error: a failure with an optional Retry-After (ms), or the breaker's.
#[derive(Debug)]
enum Error {
    Down(Option<u64>),
    Open(CircuitOpenError),
}

impl From<CircuitOpenError> for Error {
    fn from(e: CircuitOpenError) -> Self {
        Error::Open(e)
    }
}

impl ClassifyError for Error {
    fn verdict(&self) -> Verdict {
        match self {
            Error::Down(hint) => {
                Verdict::transient().with_retry_after(hint.map(Duration::from_millis))
            }
            Error::Open(e) => e.verdict(),
        }
    }
}

/// Where a pending call's answer is put when the test finishes it.
type Slot = Arc<Mutex<Option<Result<(), Error>>>>;
type Pending = tokio_test::task::Spawn<Pin<Box<dyn Future<Output = Result<(), Error>>>>>;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A call that ends at once.
    Call {
        fail: bool,
        hint: Option<u64>,
    },
    /// A call that ends when finished.
    Start {
        fail: bool,
        hint: Option<u64>,
    },
    /// Finishes the n-th pending call (modulo how many there are).
    Finish(usize),
    Advance(u64),
}

fn hint() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![3 => Just(None), 1 => (0u64..20_000).prop_map(Some)]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            6 => (any::<bool>(), hint()).prop_map(|(fail, hint)| Op::Call { fail, hint }),
            1 => (any::<bool>(), hint()).prop_map(|(fail, hint)| Op::Start { fail, hint }),
            1 => any::<usize>().prop_map(Op::Finish),
            1 => (1u64..4000).prop_map(Op::Advance),
        ],
        1..200,
    )
}

#[derive(Debug, Clone, Copy)]
enum WindowKind {
    Count(usize),
    /// buckets, bucket length in ms
    Time(u64, u64),
}

/// How the model admitted a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admitted {
    Rejected,
    /// Closed, in this period.
    Record(u64),
    /// The half-open probe of this period.
    Probe(u64),
}

/// The reference: a plain log of calls, no atomics, no buckets-as-storage.
struct Model {
    window: WindowKind,
    consecutive_limit: u32,
    rate: f64,
    min_calls: u64,
    open_ms: u64,
    max_open_ms: u64,
    log: VecDeque<(u64, bool)>, // (epoch or 0, failed)
    run: u32,
    state: State,
    /// Counts transitions: an outcome admitted in an earlier period is stale.
    period: u64,
    open_until: u64,
    probe_out: bool,
}

impl Model {
    fn counts(&self, now: u64) -> (u64, u64) {
        let inside: Vec<_> = match self.window {
            WindowKind::Count(n) => self.log.iter().rev().take(n).collect(),
            WindowKind::Time(buckets, len) => {
                let e = now / len + 1;
                let oldest = e.saturating_sub(buckets - 1);
                self.log
                    .iter()
                    .filter(|c| c.0 >= oldest && c.0 <= e)
                    .collect()
            }
        };
        let failures = inside.iter().filter(|c| c.1).count();
        (inside.len() as u64, failures as u64)
    }

    fn go(&mut self, to: State) {
        self.state = to;
        self.period += 1;
    }

    fn open(&mut self, now: u64, hint: Option<u64>) {
        let open = hint.map_or(self.open_ms, |h| self.open_ms.max(h.min(self.max_open_ms)));
        self.open_until = now + open;
        self.go(State::Open);
    }

    fn admit(&mut self, now: u64) -> Admitted {
        if self.state == State::Open {
            if now < self.open_until {
                return Admitted::Rejected;
            }
            self.go(State::HalfOpen);
            self.probe_out = false;
        }
        match self.state {
            State::HalfOpen if self.probe_out => Admitted::Rejected,
            State::HalfOpen => {
                self.probe_out = true;
                Admitted::Probe(self.period)
            }
            _ => Admitted::Record(self.period),
        }
    }

    fn finish(&mut self, now: u64, admitted: Admitted, fail: bool, hint: Option<u64>) {
        match admitted {
            Admitted::Rejected => {}
            Admitted::Probe(p) | Admitted::Record(p) if p != self.period => {} // stale
            Admitted::Probe(_) => {
                self.probe_out = false;
                if fail {
                    self.open(now, hint);
                } else {
                    self.go(State::Closed);
                    self.log.clear();
                    self.run = 0;
                }
            }
            Admitted::Record(_) => {
                let epoch = match self.window {
                    WindowKind::Count(_) => 0,
                    WindowKind::Time(_, len) => now / len + 1,
                };
                self.log.push_back((epoch, fail));
                if !fail {
                    self.run = 0;
                    return;
                }
                self.run += 1;
                let (calls, failures) = self.counts(now);
                let rate_trip = calls >= self.min_calls
                    && calls > 0
                    && failures as f64 / calls as f64 >= self.rate;
                if self.run >= self.consecutive_limit || rate_trip {
                    self.open(now, hint);
                }
            }
        }
    }
}

fn answer(fail: bool, hint: Option<u64>) -> Result<(), Error> {
    if fail { Err(Error::Down(hint)) } else { Ok(()) }
}

fn run_case(window: WindowKind, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let (consecutive_limit, rate, open_ms) = (4, 0.5, 5_000);
        let min_calls = match window {
            WindowKind::Count(n) => 6.min(n as u64),
            WindowKind::Time(..) => 6,
        };
        let builder = CircuitBreakerLayer::builder()
            .consecutive_failures(consecutive_limit)
            .failure_rate(rate)
            .min_calls(min_calls)
            .open_duration(Duration::from_millis(open_ms));
        let builder = match window {
            WindowKind::Count(n) => builder.count_window(n as u32),
            WindowKind::Time(b, len) => {
                builder.time_window(Duration::from_millis(b * len), b as u32)
            }
        };
        let layer = builder.build().unwrap();
        let handle = layer.handle();
        let mut svc = layer.layer(service_fn(|slot: Slot| {
            std::future::poll_fn(move |_| match slot.lock().unwrap().take() {
                Some(answer) => Poll::Ready(answer),
                None => Poll::Pending,
            })
        }));
        let mut model = Model {
            window,
            consecutive_limit,
            rate,
            min_calls,
            open_ms,
            max_open_ms: 300_000,
            log: VecDeque::new(),
            run: 0,
            state: State::Closed,
            period: 0,
            open_until: 0,
            probe_out: false,
        };
        let mut pending: Vec<(Pending, Slot, Admitted, bool, Option<u64>)> = Vec::new();
        let start = tokio::time::Instant::now();
        for op in ops {
            let now = start.elapsed().as_millis() as u64;
            match op {
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::Call { fail, hint } | Op::Start { fail, hint } => {
                    let admitted = model.admit(now);
                    let slot = Slot::default();
                    let fut = svc.ready().await.unwrap().call(slot.clone());
                    let mut fut: Pending = tokio_test::task::spawn(Box::pin(fut));
                    if admitted == Admitted::Rejected {
                        let rejected = matches!(fut.poll(), Poll::Ready(Err(Error::Open(_))));
                        prop_assert!(rejected, "at {} ms: the model rejects", now);
                    } else if matches!(op, Op::Call { .. }) {
                        *slot.lock().unwrap() = Some(answer(fail, hint));
                        let reached = matches!(fut.poll(), Poll::Ready(r) if r.is_ok() != fail);
                        prop_assert!(reached, "at {} ms: the model admits", now);
                        model.finish(now, admitted, fail, hint);
                    } else {
                        prop_assert!(fut.poll().is_pending(), "at {} ms: admitted, pending", now);
                        pending.push((fut, slot, admitted, fail, hint));
                    }
                }
                Op::Finish(i) => {
                    if pending.is_empty() {
                        continue;
                    }
                    let (mut fut, slot, admitted, fail, hint) = pending.remove(i % pending.len());
                    *slot.lock().unwrap() = Some(answer(fail, hint));
                    prop_assert!(fut.poll().is_ready());
                    model.finish(now, admitted, fail, hint);
                }
            }
            let now = start.elapsed().as_millis() as u64;
            let stats = handle.stats();
            prop_assert_eq!(stats.state, model.state, "at {} ms after {:?}", now, op);
            match model.state {
                State::Closed => {
                    let w = stats.window;
                    let counts = model.counts(now);
                    prop_assert_eq!((w.calls, w.failures), counts, "window at {} ms", now);
                }
                State::Open => {
                    let left = Duration::from_millis(model.open_until.saturating_sub(now));
                    prop_assert_eq!(stats.open_for, Some(left), "open time at {} ms", now);
                }
                _ => {}
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn count_window_matches_the_model(size in 1usize..12, ops in ops()) {
        run_case(WindowKind::Count(size), ops)?;
    }

    #[test]
    fn time_window_matches_the_model(buckets in 1u64..6, len in 100u64..2000, ops in ops()) {
        run_case(WindowKind::Time(buckets, len), ops)?;
    }
}
