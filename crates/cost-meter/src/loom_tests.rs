//! Model checking of the budget counters and of a request's reservation with loom. Run with
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg towerguard_loom" cargo test --release -p towerguard-cost-meter --lib loom`.
//!
//! What is checked: a counter's compare-and-swap reserve never lets two requests together
//! pass the limit, a settlement racing a reservation or a window's rollover neither loses nor
//! double-counts spend and never goes below zero, raises are all or nothing, the per-window
//! alert fires once, and a reservation raised while it is released leaves nothing held.

// clippy allows `expect` in `#[test]` functions, not in these tests' helpers
#![allow(clippy::expect_used)]

use loom::sync::Arc;
use loom::thread;
use towerguard_outcome::ManualClock;

use crate::budget::Counter;
use crate::reservation::{Handle, Raise};
use crate::store::{ClientRef, CounterRef, Hold};
use crate::{
    Budget, BudgetStore, CostRequest, Ledger, MemoryClient, MemoryStore, Price, UnknownModel,
    WorstCase,
};

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

/// Two requests race for room for one: exactly one reservation is granted, and the total
/// never passes the limit.
#[test]
fn loom_concurrent_reserves_never_pass_the_limit() {
    loom::model(|| {
        let c = Arc::new(Counter::default());
        let c2 = c.clone();
        let got = both(move |_| c2.try_reserve(0, 60, 100));
        let granted = got.iter().filter(|r| r.is_ok()).count();
        assert_eq!(granted, 1, "{got:?}");
        for r in got {
            match r {
                Ok(total) => assert_eq!(total, 60),
                Err(seen) => assert_eq!(seen, 60, "refused only on the other's 60"),
            }
        }
        assert_eq!(c.spent(0), 60);
    });
}

/// A settlement (60 reserved, 30 spent) races a new reservation of 50 under a limit of 100:
/// the new one fits only once the settlement gave 30 back, the total is never above the
/// limit, and the end total is exactly what is spent and held.
#[test]
fn loom_a_settlement_racing_a_reservation_is_exact() {
    loom::model(|| {
        let c = Arc::new(Counter::default());
        assert_eq!(c.try_reserve(0, 60, 100), Ok(60));
        let c2 = c.clone();
        let [settled, reserved] = both(move |i| {
            if i == 0 {
                Ok(c2.settle(0, 60, 30))
            } else {
                c2.try_reserve(0, 50, 100)
            }
        });
        let settled = settled.expect("a settlement always applies");
        match reserved {
            Ok(total) => {
                assert_eq!(total, 80, "50 on top of the settled 30");
                assert!(settled == 30 || settled == 80, "{settled}");
                assert_eq!(c.spent(0), 80);
            }
            Err(seen) => {
                assert_eq!(seen, 60, "refused only before the settlement");
                assert_eq!(settled, 30);
                assert_eq!(c.spent(0), 30);
            }
        }
    });
}

/// Two requests each holding 30 raise to 60 (a fallback attempt on a dearer model) under a
/// limit of 100: one raise fits, the other is refused and changes nothing; releasing both
/// brings the counter back to zero, never below.
#[test]
fn loom_racing_raises_fit_once_and_release_to_zero() {
    loom::model(|| {
        let c = Arc::new(Counter::default());
        assert_eq!(c.try_reserve(0, 30, 100), Ok(30));
        assert_eq!(c.try_reserve(0, 30, 100), Ok(60));
        let c2 = c.clone();
        let raised = both(move |_| c2.try_reserve(0, 30, 100).is_ok());
        assert_eq!(raised.iter().filter(|r| **r).count(), 1, "{raised:?}");
        assert_eq!(c.spent(0), 90);
        // then the requests end without spending: what they hold is released, concurrently
        let c2 = c.clone();
        both(move |i| c2.settle(0, if raised[i] { 60 } else { 30 }, 0));
        assert_eq!(c.spent(0), 0);
    });
}

/// A reservation made in window 1 settles in window 2 while another request reserves in
/// window 2: the counter rolls over once, forgetting window 1's settled spend (20) and
/// keeping the open reservation (60) until it settles. No interleaving loses or
/// double-counts spend or goes below zero.
#[test]
fn loom_a_rollover_racing_a_settlement_keeps_open_reservations() {
    loom::model(|| {
        let c = Arc::new(Counter::default());
        assert_eq!(c.try_reserve(1, 60, 100), Ok(60));
        assert_eq!(c.try_reserve(1, 20, 100), Ok(80));
        assert_eq!(c.settle(1, 20, 20), 80);
        let c2 = c.clone();
        let [_, reserved] = both(move |i| {
            if i == 0 {
                c2.settle(2, 60, 10);
                Ok(0)
            } else {
                c2.try_reserve(2, 50, 100)
            }
        });
        let held = if reserved.is_ok() { 50 } else { 0 };
        assert_eq!(c.spent(2), 10 + held);
        if let Err(seen) = reserved {
            assert_eq!(seen, 60, "refused only on the open 60, never on old spend");
        }
        // window 3: the 10 spent in window 2 is forgotten, the open 50 is kept
        assert_eq!(c.spent(3), held);
        c.settle(3, held, 0);
        assert_eq!(c.spent(3), 0);
    });
}

/// Two settlements reach the alert share of one window at once: one alert.
#[test]
fn loom_an_alert_fires_once_per_window() {
    loom::model(|| {
        let c = Arc::new(Counter::default());
        let c2 = c.clone();
        let fired = both(move |_| c2.first_alert(7));
        assert_eq!(fired.iter().filter(|f| **f).count(), 1);
        assert!(c.first_alert(8), "the next window alerts again");
    });
}

/// A reset (the admin forgetting spend) racing a settlement: the open reservation stays until
/// it settles, settled spend is either forgotten or counted once, never below zero.
#[test]
fn loom_a_reset_racing_a_settlement_never_goes_negative() {
    loom::model(|| {
        let c = Arc::new(Counter::default());
        assert_eq!(c.try_reserve(0, 60, 100), Ok(60));
        let c2 = c.clone();
        both(move |i| {
            if i == 0 {
                c2.settle(0, 60, 40);
            } else {
                c2.clear();
            }
        });
        let spent = c.spent(0);
        assert!(spent == 0 || spent == 40, "{spent}");
    });
}

/// The memory store's reservation is all or nothing over several budgets: a request whose
/// client budget is full takes nothing from the global budget it reserved on first, while
/// another request reserves there. The global total never passes its limit, and the refused
/// request leaves nothing behind.
#[test]
fn loom_store_reservations_are_all_or_nothing() {
    loom::model(|| {
        let mut store = MemoryStore::default();
        let budgets = [Budget::global(100), Budget::per_client(100)];
        store.prepare(&budgets).expect("budgets");
        let client = store.client("acme");
        let store = Arc::new((store, client));
        // the client has 80 of its 100 held already
        let (st, cl) = &*store;
        st.reserve([per_client(cl, 80)]).into_inner().expect("room");
        let s2 = store.clone();
        let [acme, other] = both(move |i| {
            let (st, cl) = &*s2;
            if i == 0 {
                st.reserve([global(50), per_client(cl, 50)]).into_inner()
            } else {
                st.reserve([global(60)]).into_inner()
            }
        });
        // refused on the client budget (20 left), or on the global one if the other request
        // took 60 of it first
        let short = acme.expect_err("the client budget has 20 left");
        assert!(short.budget == 1 || other.is_ok(), "{short:?}");
        let spent = |budget, client| {
            let counter = CounterRef {
                budget,
                window: 0,
                client,
            };
            st.spent(counter).into_inner()
        };
        let client_ref = || {
            Some(ClientRef {
                key: "acme",
                state: cl,
            })
        };
        // the other request may have been refused while acme's 50 was briefly held: the
        // store errs towards refusing, never towards passing a limit
        assert_eq!(spent(0, None), if other.is_ok() { 60 } else { 0 });
        assert_eq!(spent(1, client_ref()), 80);
    });
}

fn global(amount: u64) -> Hold<'static, MemoryClient> {
    Hold {
        counter: CounterRef {
            budget: 0,
            window: 0,
            client: None,
        },
        amount,
        limit: 100,
    }
}

fn per_client(state: &MemoryClient, amount: u64) -> Hold<'_, MemoryClient> {
    Hold {
        counter: CounterRef {
            budget: 1,
            window: 0,
            client: Some(ClientRef { key: "acme", state }),
        },
        amount,
        limit: 100,
    }
}

/// A request priced at one nano-dollar per output token.
struct Request(u64);

impl CostRequest for Request {
    fn model(&self) -> &str {
        "m"
    }

    fn worst_case(&self) -> WorstCase {
        WorstCase {
            input_tokens: 0,
            max_output_tokens: Some(self.0),
        }
    }
}

fn ledger(limit: u64) -> Ledger {
    let price = Price {
        input: 0,
        output: 1_000,
        cached_input: 0,
        cache_write: 0,
    };
    Ledger::builder()
        .unknown_model(UnknownModel::Price(price))
        .budget(Budget::global(limit))
        .clock(ManualClock::at(0))
        .build()
        .expect("ledger")
}

fn global_spent(ledger: &Ledger) -> u64 {
    let counter = CounterRef {
        budget: 0,
        window: 0,
        client: None,
    };
    ledger.inner().store.spent(counter).into_inner()
}

fn reserved(ledger: &Ledger, tokens: u64) -> Handle<MemoryStore> {
    let handle = Handle::new(ledger, &Request(tokens), true).expect("priced");
    assert!(matches!(handle.reserve_requested(), Raise::Done(Ok(()))));
    handle
}

/// A fallback raises a request's reservation (30 to 70) while the request is cancelled on
/// another thread: whichever comes first, nothing stays held afterwards, and the counter
/// never goes below zero or above the limit.
#[test]
fn loom_a_raise_racing_a_release_leaves_nothing_held() {
    loom::model(|| {
        let ledger = ledger(100);
        let handle = Arc::new(reserved(&ledger, 30));
        assert_eq!(global_spent(&ledger), 30);
        let (h2, l2) = (handle.clone(), ledger.clone());
        both(move |i| {
            if i == 0 {
                match h2.raise(None, 70) {
                    Raise::Done(r) => r.expect("room for 70"),
                    Raise::Pending(_) => panic!("the memory store answers at once"),
                }
                assert!(global_spent(&l2) <= 100);
            } else {
                drop(h2.release());
            }
        });
        assert_eq!(global_spent(&ledger), 0, "released in full");
        drop(handle);
        assert_eq!(global_spent(&ledger), 0, "released once");
    });
}

/// Two requests holding 30 each raise to 60 at once under a limit of 100: one raise is
/// granted, the other refused with the budget named; both end and the budget is back at
/// zero.
#[test]
fn loom_racing_request_raises_are_all_or_nothing() {
    loom::model(|| {
        let ledger = ledger(100);
        let handles = Arc::new([reserved(&ledger, 30), reserved(&ledger, 30)]);
        let h2 = handles.clone();
        let raised = both(move |i| match h2[i].raise(None, 60) {
            Raise::Done(r) => r.is_ok(),
            Raise::Pending(_) => panic!("the memory store answers at once"),
        });
        assert_eq!(raised.iter().filter(|r| **r).count(), 1, "{raised:?}");
        assert_eq!(global_spent(&ledger), 90);
        drop(handles);
        assert_eq!(global_spent(&ledger), 0);
    });
}
