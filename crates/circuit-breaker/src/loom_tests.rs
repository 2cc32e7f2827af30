//! Model checking of the permits, the transitions and the open time with loom. Run with
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg towerguard_loom" cargo test --release -p towerguard-circuit-breaker --lib loom`.

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use towerguard_outcome::{Clock, ManualClock};

use crate::state::{Admission, Breaker, Observer, Outcome, Rules, State};
use crate::window::{Spec, Window};

const FAIL: Outcome = Outcome::Failure(None);

fn rules(permits: u16, successes: u16) -> Rules {
    Rules {
        consecutive_failures: Some(1),
        failure_rate: Some(0.5),
        slow_rate: None,
        slow_threshold: None,
        min_calls: 2,
        open_duration: Duration::from_nanos(10),
        max_open_duration: Duration::from_nanos(1_000),
        grow_open_duration: false,
        follow_retry_after: true,
        half_open_permits: permits,
        half_open_successes: successes,
    }
}

fn breaker(rules: Rules, spec: Spec, clock: &ManualClock, observer: Option<Observer>) -> Breaker {
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(clock.clone());
    Breaker::new(rules, Window::new(spec, 1), 1, clock, None, observer)
}

/// A breaker that tripped at t=0 and is due to probe from t=10, with the clock at 100.
fn tripped(permits: u16, successes: u16) -> Breaker {
    let clock = ManualClock::at(0);
    let b = breaker(rules(permits, successes), Spec::Count(2), &clock, None);
    let a = b.admit(0);
    b.record(a, FAIL, None, 0);
    assert_eq!(b.state(), State::Open);
    clock.set(100);
    b
}

/// The open time left at the breaker's clock.
fn open_for(b: &Breaker) -> Option<Duration> {
    b.stats().open_for
}

#[test]
fn loom_half_open_permits_are_never_exceeded() {
    loom::model(|| {
        let b = Arc::new(tripped(1, 1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let b = b.clone();
                let in_flight = in_flight.clone();
                thread::spawn(move || {
                    let a = b.admit(0);
                    if let Admission::Probe(_) = a {
                        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(n <= 1, "two probes at once");
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let outcome = if i == 0 { Outcome::Success } else { FAIL };
                        b.record(a, outcome, None, 0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(b.probes_in_flight(), 0);
        assert!(matches!(
            b.state(),
            State::Closed | State::Open | State::HalfOpen
        ));
    });
}

#[test]
fn loom_concurrent_probe_results_settle_in_one_state() {
    loom::model(|| {
        let b = Arc::new(tripped(2, 2));
        let results: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    let a = b.admit(0);
                    let probe = matches!(a, Admission::Probe(_));
                    b.record(a, Outcome::Success, None, 0);
                    probe
                })
            })
            .collect();
        let probes = results
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(|p| *p)
            .count();
        // both probes fit in the 2 permits, and 2 successes close
        assert_eq!(probes, 2);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.probes_in_flight(), 0);
    });
}

/// Two failures of one closed period race to trip with different Retry-After hints: one
/// transition happens, and the open time is the one its winner set.
#[test]
fn loom_the_winning_tripper_sets_the_open_time() {
    loom::model(|| {
        let winners = Arc::new(Mutex::new(Vec::new()));
        let log = winners.clone();
        let observer: Observer = Box::new(move |_, to| {
            if to == State::Open {
                log.lock().expect("log").push(thread::current().id());
            }
        });
        let clock = ManualClock::at(0);
        let b = Arc::new(breaker(rules(1, 1), Spec::None, &clock, Some(observer)));
        let handles: Vec<_> = [100, 200]
            .into_iter()
            .map(|hint| {
                let b = b.clone();
                thread::spawn(move || {
                    let a = b.admit(0);
                    b.record(
                        a,
                        Outcome::Failure(Some(Duration::from_nanos(hint))),
                        None,
                        0,
                    );
                    (thread::current().id(), hint)
                })
            })
            .collect();
        let ids: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let winners = winners.lock().expect("log").clone();
        assert_eq!(winners.len(), 1, "one transition to open");
        let hint = ids
            .iter()
            .find(|(id, _)| *id == winners[0])
            .map(|(_, h)| *h);
        assert_eq!(open_for(&b), hint.map(Duration::from_nanos));
        assert_eq!(b.stats().trips, 1);
    });
}

/// A failure from an earlier closed period is recorded while the breaker trips, half-opens,
/// closes and trips again: it is either the first trip's legitimate winner, or stale and
/// without effect. It never moves a later period's open time.
#[test]
fn loom_a_stale_failure_never_moves_the_open_time() {
    loom::model(|| {
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let log = transitions.clone();
        let observer: Observer =
            Box::new(move |from, to| log.lock().expect("log").push((from, to)));
        let clock = ManualClock::at(0);
        let b = Arc::new(breaker(rules(1, 1), Spec::None, &clock, Some(observer)));
        let slow = b.admit(0);
        let quick = b.admit(0);
        let stale = {
            let b = b.clone();
            thread::spawn(move || {
                b.record(
                    slow,
                    Outcome::Failure(Some(Duration::from_nanos(500))),
                    None,
                    0,
                );
            })
        };
        // trips at 0 (open until 10), probes at 10 and closes, trips again (until 20)
        let b2 = b.clone();
        let chain = thread::spawn(move || {
            b2.record(quick, FAIL, None, 0);
            clock.set(10);
            let probe = b2.admit(0);
            b2.record(probe, Outcome::Success, None, 0);
            let again = b2.admit(0);
            b2.record(again, FAIL, None, 0);
        });
        stale.join().expect("thread");
        chain.join().expect("thread");
        let transitions = transitions.lock().expect("log").clone();
        assert_eq!(b.state(), State::Open);
        if transitions.len() == 1 {
            // the slow failure tripped first, at 0 with its hint: the rest was rejected
            assert_eq!(open_for(&b), Some(Duration::from_nanos(490)));
        } else {
            assert_eq!(
                transitions,
                [
                    (State::Closed, State::Open),
                    (State::Open, State::HalfOpen),
                    (State::HalfOpen, State::Closed),
                    (State::Closed, State::Open),
                ]
            );
            assert_eq!(
                open_for(&b),
                Some(Duration::from_nanos(10)),
                "until 20, at 10"
            );
        }
    });
}

#[test]
fn loom_racing_failures_trip_once() {
    loom::model(|| {
        let clock = ManualClock::at(0);
        let b = Arc::new(breaker(rules(1, 1), Spec::Count(2), &clock, None));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    let a = b.admit(0);
                    b.record(a, FAIL, None, 0);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.stats().trips, 1);
    });
}
