//! Statistics add up: every request is counted once, under how it ended.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt};
use towerguard_llm_core::outcome::{
    AttemptBudget, AttemptCheck, AttemptHook, AttemptRefusal, AttemptRefused,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse};
use towerguard_provider_fallback::{FallbackLayer, FallbackStats};
use towerguard_testkit::{FakeProvider, Outcome, request};

/// Refuses every attempt while `broke` is set.
#[derive(Default)]
struct Budget {
    broke: AtomicBool,
}

impl AttemptBudget for Budget {
    fn before_attempt(&self, _: &str, _: &str) -> AttemptCheck {
        AttemptCheck::ready(if self.broke.load(Ordering::SeqCst) {
            Err(AttemptRefused::new(AttemptRefusal::BudgetExceeded, "daily"))
        } else {
            Ok(())
        })
    }
}

async fn send<S>(svc: &mut S, budget: &Arc<Budget>) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    let mut req = request("m");
    req.set_attempt_hook(Some(AttemptHook::new(budget.clone())));
    svc.ready().await?.call(req).await
}

fn assert_adds_up(s: &FallbackStats) {
    assert_eq!(
        s.requests,
        s.served_by_first + s.served_after_failure + s.served_after_skip + s.failed,
        "{s:?}"
    );
    assert_eq!(s.failed, s.exhausted + s.stopped + s.refused, "{s:?}");
    let served: u64 = s.providers.iter().map(|p| p.served).sum();
    assert_eq!(served + s.failed, s.requests, "{s:?}");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One request of each kind, on the fast path (`hedge: None`) or hedging.
async fn mix(hedge: Option<Duration>) -> FallbackStats {
    let a = FakeProvider::scripted(
        "a",
        [
            Outcome::ok(),                                                      // 1: first
            Outcome::fail(ErrorKind::Server),                                   // 2
            Outcome::fail(ErrorKind::RateLimited).with_retry_after(ms(30_000)), // 3
            // 4: skipped while it cools down
            Outcome::ok().after(ms(5_000)), // 5: slow (hedging: b wins)
            Outcome::fail(ErrorKind::InvalidRequest), // 7: stops
            Outcome::fail(ErrorKind::Server), // 8
        ],
    );
    let mut script = vec![Outcome::ok(); 3]; // 2, 3, 4
    if hedge.is_some() {
        script.push(Outcome::ok().after(ms(100))); // 5
    }
    script.push(Outcome::fail(ErrorKind::Server)); // 8
    let b = FakeProvider::scripted("b", script);
    let mut builder = FallbackLayer::builder()
        .primary("a")
        .provider("b", b.clone());
    if let Some(delay) = hedge {
        builder = builder.hedge_after(delay);
    }
    let layer = builder.build().unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(a.clone());
    let budget = Arc::new(Budget::default());
    let served_by = |r: Result<LlmResponse, LlmError>| r.unwrap().provider().to_owned();

    assert_eq!(served_by(send(&mut svc, &budget).await), "a"); // 1
    assert_eq!(served_by(send(&mut svc, &budget).await), "b"); // 2
    assert_eq!(served_by(send(&mut svc, &budget).await), "b"); // 3
    assert_eq!(served_by(send(&mut svc, &budget).await), "b"); // 4
    assert!(stats.stats().providers[0].down);
    tokio::time::advance(ms(30_001)).await;
    let fifth = served_by(send(&mut svc, &budget).await); // 5
    assert_eq!(fifth, if hedge.is_some() { "b" } else { "a" });
    budget.broke.store(true, Ordering::SeqCst);
    let refused = send(&mut svc, &budget).await.unwrap_err(); // 6
    assert_eq!(refused.kind(), ErrorKind::BudgetExceeded);
    budget.broke.store(false, Ordering::SeqCst);
    let stopped = send(&mut svc, &budget).await.unwrap_err(); // 7
    assert_eq!(stopped.kind(), ErrorKind::InvalidRequest);
    let exhausted = send(&mut svc, &budget).await.unwrap_err(); // 8
    assert_eq!(exhausted.kind(), ErrorKind::AllProvidersFailed);
    assert_eq!(a.calls(), 6);
    stats.stats()
}

#[tokio::test(start_paused = true)]
async fn every_request_is_counted_once_under_how_it_ended() {
    let s = mix(None).await;
    assert_adds_up(&s);
    assert_eq!(s.requests, 8);
    assert_eq!(
        (
            s.served_by_first,
            s.served_after_failure,
            s.served_after_skip
        ),
        (2, 2, 1)
    );
    assert_eq!((s.failed, s.refused, s.stopped, s.exhausted), (3, 1, 1, 1));
    assert_eq!((s.fallbacks, s.hedges), (3, 0));
    assert_eq!((s.providers[0].served, s.providers[1].served), (2, 3));
    assert_eq!((s.providers[0].failed, s.providers[1].failed), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn hedged_requests_add_up_too() {
    let s = mix(Some(ms(1_000))).await;
    assert_adds_up(&s);
    assert_eq!(s.requests, 8);
    // the fifth was served by the hedge: the first choice had not answered in time
    assert_eq!(
        (
            s.served_by_first,
            s.served_after_failure,
            s.served_after_skip
        ),
        (1, 3, 1)
    );
    assert_eq!((s.failed, s.refused, s.stopped, s.exhausted), (3, 1, 1, 1));
    assert_eq!(s.hedges, 1);
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_hedging_is_not_counted_twice() {
    // the primary is slow, the hedge fails with an error that does not fall back, then the
    // primary serves: one request, served (old code counted it served and stopped)
    let a = FakeProvider::always("a", Outcome::ok().after(ms(3_000)));
    let b = FakeProvider::always("b", Outcome::fail(ErrorKind::InvalidRequest));
    let layer = FallbackLayer::builder()
        .primary("a")
        .provider("b", b.clone())
        .hedge_after(ms(1_000))
        .build()
        .unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(a.clone());
    let budget = Arc::new(Budget::default());
    assert_eq!(send(&mut svc, &budget).await.unwrap().provider(), "a");
    let s = stats.stats();
    assert_adds_up(&s);
    assert_eq!((s.requests, s.served_by_first, s.failed), (1, 1, 0));
}
