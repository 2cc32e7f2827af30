//! Model checking of the permit and state CAS paths with loom. Run with
//! `RUSTFLAGS="--cfg towerguard_loom" cargo test -p towerguard-circuit-breaker --lib --release loom`.

use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use crate::core::{Admission, Core, Outcome, Rules, State};
use crate::window::CountWindow;

const FAIL: Outcome = Outcome::Failure { retry_after: None };

fn rules(permits: u32, successes: u32) -> Rules {
    Rules {
        consecutive_failures: Some(1),
        failure_rate: Some(0.5),
        slow_rate: None,
        slow_threshold: None,
        min_calls: 2,
        open_duration: Duration::from_nanos(10),
        max_open_duration: Duration::from_nanos(10),
        grow_open_duration: false,
        follow_retry_after: false,
        half_open_permits: permits,
        half_open_successes: successes,
    }
}

/// A core that has tripped at t=0 and is due to probe from t=10.
fn tripped(permits: u32, successes: u32) -> Core {
    let core = Core::new(
        rules(permits, successes),
        Some(crate::core::Window::Count(CountWindow::new(2))),
        None,
        None,
    );
    let a = core.admit(&|| 0);
    core.record(a, FAIL, None, &|| 0);
    assert_eq!(core.state(), State::Open);
    core
}

#[test]
fn loom_half_open_permits_are_never_exceeded() {
    loom::model(|| {
        let core = Arc::new(tripped(1, 1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let core = core.clone();
                let in_flight = in_flight.clone();
                thread::spawn(move || {
                    let a = core.admit(&|| 100);
                    if let Admission::Probe(_) = a {
                        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(n <= 1, "two probes at once");
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let outcome = if i == 0 { Outcome::Success } else { FAIL };
                        core.record(a, outcome, None, &|| 100);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(core.probes_in_flight(), 0);
        assert!(matches!(
            core.state(),
            State::Closed | State::Open | State::HalfOpen
        ));
    });
}

#[test]
fn loom_concurrent_probe_results_settle_in_one_state() {
    loom::model(|| {
        let core = Arc::new(tripped(2, 2));
        let results: Vec<_> = (0..2)
            .map(|_| {
                let core = core.clone();
                thread::spawn(move || {
                    let a = core.admit(&|| 50);
                    if let Admission::Probe(_) = a {
                        core.record(a, Outcome::Success, None, &|| 50);
                        true
                    } else {
                        false
                    }
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
        assert_eq!(core.state(), State::Closed);
        assert_eq!(core.probes_in_flight(), 0);
    });
}

#[test]
fn loom_racing_failures_trip_once() {
    loom::model(|| {
        let core = Arc::new(Core::new(rules(1, 1), None, None, None));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let core = core.clone();
                thread::spawn(move || {
                    let a = core.admit(&|| 0);
                    core.record(a, FAIL, None, &|| 0);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(core.state(), State::Open);
        assert_eq!(core.stats(0).trips, 1);
    });
}
