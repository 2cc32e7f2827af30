//! Model checking of the retry budget's deposits and withdrawals with loom. Run with
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg towerguard_loom" cargo test --release -p towerguard-retry-backoff --lib loom`.
//!
//! What is checked: two retries racing for the last one never both get it (in one time slot,
//! and when the window moves on to a new slot at the same moment), a refused retry never
//! leaves a count behind, and a deposit racing a withdrawal is neither lost nor counted twice.

// clippy allows `expect` in `#[test]` functions, not in these tests' helpers
#![allow(clippy::expect_used)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use towerguard_outcome::ManualClock;

use crate::RetryBudget;

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

/// 20 % of requests over 10 s (slots of 1 s), no reserve, with `requests` deposited at 0.
fn budget(requests: usize, clock: &ManualClock) -> Arc<RetryBudget> {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2)
        .expect("budget")
        .with_clock(clock.clone());
    for _ in 0..requests {
        budget.deposit();
    }
    Arc::new(budget)
}

fn race_for_the_last_retry(budget: &Arc<RetryBudget>) {
    let b2 = budget.clone();
    let got = both(move |_| b2.withdraw());
    let granted = got.iter().filter(|g| **g).count() as u64;
    // both may be refused (each saw the other's take: the budget errs towards fewer
    // retries), never both granted
    assert!(granted <= 1, "{got:?}");
    assert_eq!(budget.denied(), 2 - granted);
    assert_eq!(
        budget.available(),
        1 - granted,
        "a refusal leaves no count behind"
    );
}

/// 5 requests earn one retry; two retries ask at once: at most one gets it.
#[test]
fn loom_two_retries_never_both_get_the_last_one() {
    loom::model(|| {
        let clock = ManualClock::at(0);
        let budget = budget(5, &clock);
        race_for_the_last_retry(&budget);
    });
}

/// The same race as the window moves on to a new time slot (whoever moves it clears the new
/// slot's counts): still at most one retry, and a refused one leaves no count behind, so
/// the next 5 requests earn exactly one more.
#[test]
fn loom_the_last_retry_is_taken_once_as_the_window_moves() {
    loom::model(|| {
        let clock = ManualClock::at(0);
        let budget = budget(5, &clock);
        clock.set(1_500_000_000);
        race_for_the_last_retry(&budget);
        let left = budget.available();
        for _ in 0..5 {
            budget.deposit();
        }
        assert_eq!(budget.available(), left + 1);
    });
}

/// A request's deposit (the 5th, earning the first retry) races a retry asking to withdraw:
/// the retry gets it only if the deposit came first, and either way the retry is counted
/// once: granted plus still available is exactly one.
#[test]
fn loom_a_deposit_racing_a_withdrawal_is_counted_once() {
    loom::model(|| {
        let clock = ManualClock::at(0);
        let budget = budget(4, &clock);
        let b2 = budget.clone();
        let [_, granted] = both(move |i| {
            if i == 0 {
                b2.deposit();
                false
            } else {
                b2.withdraw()
            }
        });
        assert_eq!(u64::from(granted) + budget.available(), 1);
        assert_eq!(budget.denied(), u64::from(!granted));
    });
}
