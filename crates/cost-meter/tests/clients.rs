//! Per-client state that forgets: past windows are evicted, what still matters is kept, a
//! flood of new keys stays bounded and cheap.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, ManualClock, Window};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Usage};
use towerguard_testkit::call_now;

fn req(client: &str) -> LlmRequest {
    LlmRequest::new("gpt-4o-mini", vec![Message::user("hi")])
        .with_max_tokens(10)
        .with_client_key(client)
}

/// gpt-4o-mini's worst case for [`req`], which is also what the API below uses.
fn cost() -> u64 {
    let input = req("x").estimated_input_tokens() * 2;
    input * 150 + 10 * 600
}

/// Answers at once, using exactly the request's worst case.
fn api() -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send> + Clone
{
    service_fn(|r: LlmRequest| {
        let usage = Usage::new(r.estimated_input_tokens() * 2, 10);
        std::future::ready(Ok(
            LlmResponse::new("ok", "gpt-4o-mini", "openai").with_usage(usage)
        ))
    })
}

const CAP: usize = 64;

/// A per-client budget of one request per minute.
fn ledger() -> Ledger {
    Ledger::builder()
        .max_clients(CAP)
        .budget(Budget::per_client(cost()).window(Window::Every(Duration::from_secs(60))))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn clients_of_past_windows_are_forgotten_so_no_newcomer_shares_an_entry() {
    let ledger = ledger();
    let svc = CostMeterLayer::new(ledger.clone()).layer(api());
    // 10 times the cap, 32 new clients a minute: each minute has fewer live clients than
    // the cap; a shared entry would refuse the second newcomer in it
    for window in 0..20 {
        for i in 0..32 {
            let client = format!("client-{window}-{i}");
            let served = svc.clone().oneshot(req(&client)).await;
            assert!(served.is_ok(), "{client} was refused: {served:?}");
            assert!(ledger.tracked_clients() <= CAP);
        }
        tokio::time::advance(Duration::from_secs(60)).await;
    }
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, 640);
    let by_client: u64 = snap.clients.iter().map(|(_, s)| s.requests).sum();
    assert_eq!(
        by_client, 640,
        "forgotten clients' totals are kept under (other)"
    );
    assert_eq!(ledger.tracked_clients(), CAP);
}

#[tokio::test(start_paused = true)]
async fn clients_that_still_matter_are_kept_and_reset_clears_the_overflow() {
    let ledger = ledger();
    let svc = CostMeterLayer::new(ledger.clone()).layer(api());
    svc.clone().oneshot(req("victim")).await.unwrap();
    // a hung request of another client holds its reservation across windows
    let hung = CostMeterLayer::new(ledger.clone()).layer(service_fn(|_: LlmRequest| async {
        std::future::pending::<Result<LlmResponse, LlmError>>().await
    }));
    let mut in_flight = Box::pin(hung.oneshot(req("patient")));
    assert!(
        tokio::time::timeout(Duration::from_millis(1), &mut in_flight)
            .await
            .is_err()
    );
    // the cap fills with this minute's clients: the next newcomers share "(other)"
    for i in 0..CAP - 2 {
        svc.clone().oneshot(req(&format!("now-{i}"))).await.unwrap();
    }
    svc.clone().oneshot(req("late-1")).await.unwrap();
    let err = svc.clone().oneshot(req("late-2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded, "shared with late-1");
    assert!(err.detail().unwrap().contains("client (other)"), "{err:?}");
    // the victim spent this minute: still tracked, still limited
    let err = svc.clone().oneshot(req("victim")).await.unwrap_err();
    assert!(err.detail().unwrap().contains("client victim"), "{err:?}");

    // minutes later everyone else can go, but not the client with a request in flight
    tokio::time::advance(Duration::from_secs(600)).await;
    for i in 0..CAP - 1 {
        svc.clone()
            .oneshot(req(&format!("next-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        ledger.budget_spent(0, Some("patient")).await,
        cost(),
        "still held"
    );
    drop(in_flight);
    assert_eq!(ledger.budget_spent(0, Some("patient")).await, 0, "released");

    // reset forgets everyone, "(other)" included
    ledger.reset().await;
    assert_eq!(ledger.tracked_clients(), 0);
    assert!(ledger.snapshot().clients.is_empty());
    for i in 0..CAP {
        svc.clone()
            .oneshot(req(&format!("fresh-{i}")))
            .await
            .unwrap();
    }
    svc.clone().oneshot(req("late-1")).await.unwrap();
}

/// `reset` gives the `"(other)"` entry a fresh budget within the same window: with every
/// tracked client still mattering (each spent today, so none can be forgotten), a newcomer
/// past the cap is served through `"(other)"` after a reset, though `"(other)"` had spent
/// its whole daily budget before it. A reset that kept the old overflow entry (or its
/// counters) would refuse it until the next day.
#[tokio::test]
async fn reset_clears_the_overflow_budget_in_the_same_window() {
    const SMALL_CAP: usize = 4;
    // mid-day (2026-01-31 12:00 UTC); never moved, so every request is in one daily window
    let clock = ManualClock::at(1_769_860_800 * 1_000_000_000);
    let ledger = Ledger::builder()
        .clock(clock)
        .max_clients(SMALL_CAP)
        .budget(Budget::per_client(cost()).daily())
        .build()
        .unwrap();
    let svc = CostMeterLayer::new(ledger.clone()).layer(api());

    // the cap fills with clients that spent today: none can be forgotten
    for i in 0..SMALL_CAP {
        svc.clone().oneshot(req(&format!("day-{i}"))).await.unwrap();
    }
    assert_eq!(ledger.tracked_clients(), SMALL_CAP);
    // newcomers share "(other)": one request spends its daily budget, the next is refused
    svc.clone().oneshot(req("late-1")).await.unwrap();
    let err = svc.clone().oneshot(req("late-2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded, "{err:?}");
    assert!(err.detail().unwrap().contains("client (other)"), "{err:?}");
    assert_eq!(
        ledger.tracked_clients(),
        SMALL_CAP,
        "late-2 was not tracked"
    );

    ledger.reset().await;
    assert_eq!(ledger.tracked_clients(), 0);
    assert!(ledger.snapshot().clients.is_empty());

    // the same day: the cap fills again with clients that matter ...
    for i in 0..SMALL_CAP {
        svc.clone()
            .oneshot(req(&format!("again-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(ledger.tracked_clients(), SMALL_CAP);
    // ... and a newcomer through "(other)" is served: its budget starts afresh
    let served = svc.clone().oneshot(req("late-3")).await;
    assert!(
        served.is_ok(),
        "(other) kept its spend across reset: {served:?}"
    );
    assert_eq!(ledger.tracked_clients(), SMALL_CAP, "late-3 shared (other)");
    let snap = ledger.snapshot();
    let other = snap.clients.iter().find(|(k, _)| &**k == "(other)");
    assert_eq!(other.map(|(_, s)| s.requests), Some(1), "{snap:?}");
    // still one shared, limited entry: the next newcomer is refused again
    let err = svc.clone().oneshot(req("late-4")).await.unwrap_err();
    assert!(err.detail().unwrap().contains("client (other)"), "{err:?}");
}

#[test]
fn a_flood_of_new_keys_stays_bounded_and_counts_every_call() {
    let ledger = Ledger::builder()
        .max_clients(1_000)
        .budget(Budget::per_client(u64::MAX / 4).daily())
        .build()
        .unwrap();
    let mut svc = CostMeterLayer::new(ledger.clone()).layer(api());
    let calls = 200_000u64;
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            for i in 0..calls {
                assert!(call_now(&mut svc, req(&format!("key-{i}"))));
            }
        });
    assert!(ledger.tracked_clients() <= 1_000);
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, calls);
    assert_eq!(snap.total.cost, calls * cost());
    let by_client: u64 = snap.clients.iter().map(|(_, s)| s.requests).sum();
    assert_eq!(by_client, calls);
}
