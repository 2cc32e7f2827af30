//! Generated call sequences against a simple reference model of the breaker: the count and
//! time windows, consecutive failures, open time and half-open probing must agree exactly.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use towerguard_circuit_breaker::{CircuitBreakerLayer, CircuitOpenError, State};

#[derive(Debug, Clone, Copy)]
enum Op {
    Call { fail: bool },
    Advance(u64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            6 => any::<bool>().prop_map(|fail| Op::Call { fail }),
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

/// The reference: a plain log of calls, no atomics, no buckets-as-storage.
struct Model {
    window: WindowKind,
    consecutive_limit: u32,
    rate: f64,
    min_calls: u64,
    open_ms: u64,
    log: VecDeque<(u64, bool)>, // (epoch or 0, failed)
    run: u32,
    state: State,
    open_until: u64,
}

impl Model {
    fn counts(&self, now: u64) -> (u64, u64) {
        match self.window {
            WindowKind::Count(n) => {
                let last: Vec<_> = self.log.iter().rev().take(n).collect();
                (
                    last.len() as u64,
                    last.iter().filter(|c| c.1).count() as u64,
                )
            }
            WindowKind::Time(buckets, len) => {
                let e = now / len + 1;
                let oldest = e.saturating_sub(buckets - 1);
                let inside: Vec<_> = self
                    .log
                    .iter()
                    .filter(|c| c.0 >= oldest && c.0 <= e)
                    .collect();
                (
                    inside.len() as u64,
                    inside.iter().filter(|c| c.1).count() as u64,
                )
            }
        }
    }

    /// Returns whether the call reached the service.
    fn call(&mut self, now: u64, fail: bool) -> bool {
        if self.state == State::Open {
            if now < self.open_until {
                return false;
            }
            self.state = State::HalfOpen;
        }
        if self.state == State::HalfOpen {
            if fail {
                self.state = State::Open;
                self.open_until = now + self.open_ms;
            } else {
                self.state = State::Closed;
                self.log.clear();
                self.run = 0;
            }
            return true;
        }
        let epoch = match self.window {
            WindowKind::Count(_) => 0,
            WindowKind::Time(_, len) => now / len + 1,
        };
        self.log.push_back((epoch, fail));
        if fail {
            self.run += 1;
            let (calls, failures) = self.counts(now);
            let rate_trip =
                calls >= self.min_calls && calls > 0 && failures as f64 / calls as f64 >= self.rate;
            if self.run >= self.consecutive_limit || rate_trip {
                self.state = State::Open;
                self.open_until = now + self.open_ms;
            }
        } else {
            self.run = 0;
        }
        true
    }
}

fn run_case(window: WindowKind, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let (consecutive_limit, rate, min_calls, open_ms) = (4, 0.5, 6, 5_000);
        let builder = CircuitBreakerLayer::builder()
            .consecutive_failures(consecutive_limit)
            .failure_rate(rate)
            .min_calls(min_calls)
            .open_duration(Duration::from_millis(open_ms))
            .follow_retry_after(false);
        let builder = match window {
            WindowKind::Count(n) => builder.count_window(n as u32).min_calls(min_calls.min(n as u64)),
            WindowKind::Time(b, len) => {
                builder.time_window(Duration::from_millis(b * len), b as u32)
            }
        };
        let layer = builder.build().unwrap();
        let handle = layer.handle();
        let mut svc = layer.layer(service_fn(|fail: bool| async move {
            if fail { Err(std::io::Error::other("boom")) } else { Ok(()) }
        }));
        let min_calls = match window {
            WindowKind::Count(n) => min_calls.min(n as u64),
            WindowKind::Time(..) => min_calls,
        };
        let mut model = Model {
            window,
            consecutive_limit,
            rate,
            min_calls,
            open_ms,
            log: VecDeque::new(),
            run: 0,
            state: State::Closed,
            open_until: 0,
        };
        let start = tokio::time::Instant::now();
        for op in ops {
            match op {
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::Call { fail } => {
                    let now = start.elapsed().as_millis() as u64;
                    let reached = model.call(now, fail);
                    let result = svc.ready().await.unwrap().call(fail).await;
                    let rejected = matches!(&result, Err(e) if e.get_ref().is_some_and(|i| i.is::<CircuitOpenError>()));
                    prop_assert_eq!(!rejected, reached, "at {} ms", now);
                    prop_assert_eq!(handle.state(), model.state, "at {} ms", now);
                    if model.state == State::Closed {
                        let (calls, failures) = model.counts(now);
                        let w = handle.stats().window;
                        prop_assert_eq!((w.calls, w.failures), (calls, failures), "window at {} ms", now);
                    }
                }
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
