//! The fake provider: scripts, latency, hangs, counters and seeded chaos.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt};
use towerguard_llm_core::{ErrorKind, LlmError, Usage};
use towerguard_testkit::{FakeProvider, FaultPlan, Latency, Outcome, request};

async fn call(p: &mut FakeProvider) -> Result<towerguard_llm_core::LlmResponse, LlmError> {
    p.ready().await?.call(request("gpt-4o")).await
}

#[tokio::test(start_paused = true)]
async fn plays_the_script_in_order_then_succeeds() {
    let mut p = FakeProvider::scripted(
        "openai",
        [
            Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(3)),
            Outcome::fail(ErrorKind::Overloaded),
            Outcome::ok_with_usage(Usage::new(7, 9)).with_content("hi"),
        ],
    );
    let e = call(&mut p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.status(), Some(429));
    assert_eq!(e.provider(), Some("openai"));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        call(&mut p).await.unwrap_err().kind(),
        ErrorKind::Overloaded
    );
    let r = call(&mut p).await.unwrap();
    assert_eq!((&*r.text(), r.usage), ("hi", Usage::new(7, 9)));
    assert_eq!(r.model(), "gpt-4o");
    // after the script: default success with the request's estimated usage
    let r = call(&mut p).await.unwrap();
    assert_eq!(
        r.usage.input_tokens,
        request("gpt-4o").estimated_input_tokens()
    );
    assert_eq!((p.calls(), p.successes(), p.failures()), (4, 2, 2));
    assert_eq!(p.remaining_script(), 0);
}

#[tokio::test(start_paused = true)]
async fn latency_uses_tokios_clock() {
    let mut p = FakeProvider::always("slow", Outcome::ok().after(Duration::from_secs(30)));
    let start = Instant::now();
    call(&mut p).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_hang_never_answers_and_is_released_when_dropped() {
    let mut p = FakeProvider::always("stuck", Outcome::hang());
    let fut = p.ready().await.unwrap().call(request("m"));
    assert_eq!(p.in_flight(), 1);
    let res = tokio::time::timeout(Duration::from_secs(3600), fut).await;
    assert!(res.is_err(), "a hang must not answer");
    assert_eq!(p.in_flight(), 0, "dropping the future ends the call");
    assert_eq!(p.max_in_flight(), 1);
    assert_eq!((p.successes(), p.failures()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn clones_share_script_and_counters() {
    let p = FakeProvider::scripted("x", [Outcome::fail(ErrorKind::Server)]);
    let mut a = p.clone();
    let mut b = p.clone();
    assert!(call(&mut a).await.is_err());
    assert!(call(&mut b).await.is_ok());
    assert_eq!(p.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn counts_concurrency() {
    let p = FakeProvider::always("c", Outcome::ok().after(Duration::from_millis(10)));
    let futs: Vec<_> = (0..5).map(|_| p.clone().call(request("m"))).collect();
    assert_eq!(p.in_flight(), 5);
    for f in futs {
        f.await.unwrap();
    }
    assert_eq!((p.in_flight(), p.max_in_flight()), (0, 5));
}

#[tokio::test(start_paused = true)]
async fn records_requests_when_asked() {
    let mut p = FakeProvider::builder("rec").record_requests().build();
    let req = request("claude-sonnet-4-5");
    let id = req.request_id().clone();
    p.ready().await.unwrap().call(req).await.unwrap();
    let seen = p.recorded();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_id(), &id);
    assert_eq!(seen[0].model(), "claude-sonnet-4-5");
}

async fn run_chaos(seed: u64, n: usize) -> Vec<Option<ErrorKind>> {
    let faults = FaultPlan::seeded(seed)
        .fail(ErrorKind::RateLimited, 0.2)
        .fail(ErrorKind::Server, 0.1)
        .retry_after(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut p = FakeProvider::chaotic("chaos", faults);
    let mut out = Vec::new();
    for _ in 0..n {
        let r = call(&mut p).await;
        if let Err(e) = &r
            && e.kind() == ErrorKind::RateLimited
        {
            assert_eq!(e.retry_after(), Some(Duration::from_millis(500)));
        }
        out.push(r.err().map(|e| e.kind()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn chaos_is_seeded_and_follows_the_rates() {
    let a = run_chaos(9, 2000).await;
    let b = run_chaos(9, 2000).await;
    assert_eq!(a, b, "same seed, same run");
    assert_ne!(a, run_chaos(10, 2000).await, "another seed, another run");
    let rate = |k| a.iter().filter(|o| **o == Some(k)).count() as f64 / a.len() as f64;
    assert!(
        (0.17..0.23).contains(&rate(ErrorKind::RateLimited)),
        "{}",
        rate(ErrorKind::RateLimited)
    );
    assert!(
        (0.07..0.13).contains(&rate(ErrorKind::Server)),
        "{}",
        rate(ErrorKind::Server)
    );
}

#[tokio::test(start_paused = true)]
async fn chaos_latency_stays_in_bounds() {
    let faults = FaultPlan::seeded(1)
        .latency(Latency::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    let mut p = FakeProvider::chaotic("lat", faults);
    for _ in 0..200 {
        let start = Instant::now();
        call(&mut p).await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(10) && took <= Duration::from_millis(20),
            "{took:?}"
        );
    }
}

#[test]
fn invalid_plans_are_rejected_naming_the_field() {
    let e = FaultPlan::seeded(0)
        .fail(ErrorKind::Server, -0.1)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "fail.rate");
    let e = FaultPlan::seeded(0)
        .fail(ErrorKind::Server, 0.7)
        .hang(0.5)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("more than 1"), "{e}");
    let e = FaultPlan::seeded(0).hang(f64::NAN).build().unwrap_err();
    assert_eq!(e.field(), "hang_rate");
    let e = FaultPlan::seeded(0)
        .latency(Latency::Uniform {
            min: Duration::from_secs(2),
            max: Duration::from_secs(1),
        })
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "latency.max");
}

#[test]
fn request_clones_share_their_heavy_parts() {
    let req = request("gpt-4o");
    let copy = req.clone();
    assert!(req.shares_parts_with(&copy));
    assert!(Arc::ptr_eq(req.messages_arc(), copy.messages_arc()));
    let mut mapped = copy.clone();
    mapped.set_model("claude-sonnet-4-5");
    assert_eq!(
        (req.model(), mapped.model()),
        ("gpt-4o", "claude-sonnet-4-5")
    );
    assert!(
        Arc::ptr_eq(req.messages_arc(), mapped.messages_arc()),
        "messages stay shared"
    );
}
