//! Model checking of the permits, the transitions and the open time with loom. Run with
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg towerguard_loom" cargo test --release -p towerguard-circuit-breaker --lib loom`.

// clippy allows `expect` in `#[test]` functions, not in these tests' helpers
#![allow(clippy::expect_used)]

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use towerguard_outcome::ManualClock;

use crate::state::{Admission, Breaker, Observer, Outcome, Rules, State};
use crate::window::{Spec, Window};

const FAIL: Outcome = Outcome::Failure(None);

fn hint(nanos: u64) -> Outcome {
    Outcome::Failure(Some(Duration::from_nanos(nanos)))
}

/// Trips on 1 failure, opens 10 ns (longer for a hint, up to 1 µs).
fn breaker(permits: u16, clock: &ManualClock, observer: Option<Observer>) -> Arc<Breaker> {
    let rules = Rules {
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
        half_open_successes: permits,
    };
    let window = Window::new(Spec::Count(2), 1);
    let clock = std::sync::Arc::new(clock.clone());
    Arc::new(Breaker::new(rules, window, 1, clock, None, observer))
}

/// A breaker that tripped at 0 and is due to probe, with the clock at 100.
fn tripped(permits: u16) -> Arc<Breaker> {
    let clock = ManualClock::at(0);
    let b = breaker(permits, &clock, None);
    b.record(b.admit(0), FAIL, None, 0);
    assert_eq!(b.state(), State::Open);
    clock.set(100);
    b
}

/// Runs `f(0)` and `f(1)` on two threads and returns what they return.
fn both<T: Send + 'static>(f: impl Fn(usize) -> T + Send + Sync + 'static) -> [T; 2] {
    let f = Arc::new(f);
    let spawn = |i| {
        let f = f.clone();
        thread::spawn(move || f(i))
    };
    let (a, b) = (spawn(0), spawn(1));
    [a.join().expect("thread"), b.join().expect("thread")]
}

/// The transitions an observer saw, with the thread that made each.
type Log = Arc<Mutex<Vec<(State, thread::ThreadId)>>>;

/// An observer that logs every transition, with the thread that made it.
fn logged() -> (Observer, Log) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let observer: Observer =
        Box::new(move |_, to| l.lock().expect("log").push((to, thread::current().id())));
    (observer, log)
}

#[test]
fn loom_half_open_permits_are_never_exceeded() {
    loom::model(|| {
        let b = tripped(1);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (b2, flying) = (b.clone(), in_flight.clone());
        both(move |i| {
            let a = b2.admit(0);
            if let Admission::Probe(_) = a {
                assert_eq!(
                    flying.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two probes at once"
                );
                flying.fetch_sub(1, Ordering::SeqCst);
                b2.record(a, if i == 0 { Outcome::Success } else { FAIL }, None, 0);
            }
        });
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
        let b = tripped(2);
        let b2 = b.clone();
        let probes = both(move |_| {
            let a = b2.admit(0);
            b2.record(a, Outcome::Success, None, 0);
            matches!(a, Admission::Probe(_))
        });
        // both probes fit in the 2 permits, and 2 successes close
        assert_eq!(probes, [true, true]);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.probes_in_flight(), 0);
    });
}

/// Two failures of one closed period race to trip with different Retry-After hints: one
/// transition happens, and the open time is the one its winner set.
#[test]
fn loom_the_winning_tripper_sets_the_open_time() {
    loom::model(|| {
        let (observer, log) = logged();
        let b = breaker(1, &ManualClock::at(0), Some(observer));
        let b2 = b.clone();
        let threads = both(move |i| {
            let nanos = 100 * (i as u64 + 1);
            b2.record(b2.admit(0), hint(nanos), None, 0);
            (thread::current().id(), nanos)
        });
        let log = log.lock().expect("log").clone();
        assert_eq!(log.len(), 1, "one transition");
        let won = threads.iter().find(|(id, _)| *id == log[0].1).map(|t| t.1);
        assert_eq!(b.stats().open_for, won.map(Duration::from_nanos));
        assert_eq!(b.stats().trips, 1);
    });
}

/// A failure from an earlier closed period is recorded while the breaker trips, half-opens,
/// closes and trips again: it is either the first trip's legitimate winner, or stale and
/// without effect. It never moves a later period's open time.
#[test]
fn loom_a_stale_failure_never_moves_the_open_time() {
    loom::model(|| {
        let (observer, log) = logged();
        let clock = ManualClock::at(0);
        let b = breaker(1, &clock, Some(observer));
        let (slow, quick) = (b.admit(0), b.admit(0));
        let b2 = b.clone();
        both(move |i| {
            if i == 0 {
                b2.record(slow, hint(500), None, 0);
                return;
            }
            // trips at 0 (open until 10), probes at 10 and closes, trips again (until 20)
            b2.record(quick, FAIL, None, 0);
            clock.set(10);
            b2.record(b2.admit(0), Outcome::Success, None, 0);
            b2.record(b2.admit(0), FAIL, None, 0);
        });
        let log: Vec<_> = log.lock().expect("log").iter().map(|t| t.0).collect();
        assert_eq!(b.state(), State::Open);
        if log.len() == 1 {
            // the slow failure tripped first, at 0 with its hint: the rest was rejected
            assert_eq!(b.stats().open_for, Some(Duration::from_nanos(490)));
        } else {
            let trip_probe_close_trip = [State::Open, State::HalfOpen, State::Closed, State::Open];
            assert_eq!(log, trip_probe_close_trip);
            assert_eq!(
                b.stats().open_for,
                Some(Duration::from_nanos(10)),
                "until 20, at 10"
            );
        }
    });
}

#[test]
fn loom_racing_failures_trip_once() {
    loom::model(|| {
        let b = breaker(1, &ManualClock::at(0), None);
        let b2 = b.clone();
        both(move |_| b2.record(b2.admit(0), FAIL, None, 0));
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.stats().trips, 1);
    });
}

/// With two permits and two successes needed, one probe fails while the other succeeds: the
/// failure reopens the breaker, and the success (of a half-open period that is over) never
/// closes it.
#[test]
fn loom_a_failed_probe_beats_a_successful_one() {
    loom::model(|| {
        let b = tripped(2);
        let b2 = b.clone();
        both(move |i| {
            let a = b2.admit(0);
            if matches!(a, Admission::Probe(_)) {
                b2.record(a, if i == 0 { Outcome::Success } else { FAIL }, None, 0);
            }
        });
        // the failing probe was admitted: either both probed, or the success came first and
        // the failure was then still a probe of the same period (one success of two)
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.stats().trips, 2);
        assert_eq!(b.probes_in_flight(), 0);
    });
}

/// A probe cancelled (its caller gave up) while another call asks to probe: the permit comes
/// back, so the other call probes then or is refused while it is taken; never two at once,
/// and none is left taken.
#[test]
fn loom_a_cancelled_probe_gives_its_permit_back() {
    loom::model(|| {
        let b = tripped(1);
        let first = b.admit(0);
        assert!(matches!(first, Admission::Probe(_)));
        let b2 = b.clone();
        let [_, second] = both(move |i| {
            if i == 0 {
                b2.cancel(first, 0);
                None
            } else {
                Some(b2.admit(0))
            }
        });
        match second.expect("admitted") {
            a @ Admission::Probe(_) => {
                assert_eq!(b.probes_in_flight(), 1);
                b.record(a, Outcome::Success, None, 0);
                assert_eq!(b.state(), State::Closed);
            }
            Admission::Reject(State::HalfOpen, _) => {
                assert_eq!(b.probes_in_flight(), 0, "the permit came back");
                assert!(matches!(b.admit(0), Admission::Probe(_)));
            }
            other => panic!("{other:?}"),
        }
    });
}

/// An operator forces the breaker open while a probe succeeds: the breaker ends forced open
/// (a probe of the half-open period never closes a breaker that left it).
#[test]
fn loom_forcing_open_wins_over_a_probe() {
    loom::model(|| {
        let b = tripped(1);
        let probe = b.admit(0);
        assert!(matches!(probe, Admission::Probe(_)));
        let b2 = b.clone();
        both(move |i| {
            if i == 0 {
                b2.record(probe, Outcome::Success, None, 0);
            } else {
                b2.force(State::ForcedOpen);
            }
        });
        assert_eq!(b.state(), State::ForcedOpen);
        assert!(matches!(
            b.admit(0),
            Admission::Reject(State::ForcedOpen, _)
        ));
    });
}
