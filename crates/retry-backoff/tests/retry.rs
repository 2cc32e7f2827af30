//! Behaviour of the retry layer on fake providers, with tokio's paused clock.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use towerguard_llm_core::{Attempts, ErrorKind, LlmError, LlmResponse};
use towerguard_retry_backoff::{Backoff, Jitter, LlmAttempts, RetryBudget, RetryLayer, attempts};
use towerguard_testkit::{FakeProvider, Outcome, request};

type LlmResult = Result<LlmResponse, LlmError>;

/// Runs one request through a retry layer whose hook records every delay.
async fn delays_of(backoff: Backoff, max_retries: u32) -> (Vec<Duration>, Duration, u64) {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Server));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let seen = seen.clone();
        move |_: &LlmResult, _: u32, d: Duration| seen.lock().unwrap().push(d)
    };
    let layer = RetryLayer::builder()
        .max_retries(max_retries)
        .backoff(backoff)
        .no_budget()
        .on_retry(hook)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(provider.clone());
    let start = Instant::now();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(request("m"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    let delays = seen.lock().unwrap().clone();
    (delays, start.elapsed(), provider.calls())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn exact_delay_sequences_per_strategy() {
    let (d, took, calls) = delays_of(Backoff::fixed(ms(250)), 3).await;
    assert_eq!(d, vec![ms(250); 3]);
    assert_eq!((took, calls), (ms(750), 4));

    let (d, took, _) = delays_of(Backoff::linear(ms(100), ms(50), ms(220)), 4).await;
    assert_eq!(d, vec![ms(100), ms(150), ms(200), ms(220)]);
    assert_eq!(took, ms(670));

    let (d, took, _) = delays_of(Backoff::exponential(ms(500), 2.0, ms(3000)), 5).await;
    assert_eq!(d, vec![ms(500), ms(1000), ms(2000), ms(3000), ms(3000)]);
    assert_eq!(took, ms(9500));

    let (d, _, _) = delays_of(Backoff::custom(|n| ms(u64::from(n) * 7)), 3).await;
    assert_eq!(d, vec![ms(0), ms(7), ms(14)]);

    // jittered forms stay within their formulas, and time really passes by their sum
    let (d, took, _) = delays_of(
        Backoff::exponential(ms(100), 2.0, ms(1000)).with_jitter(Jitter::Equal),
        4,
    )
    .await;
    for (n, delay) in d.iter().enumerate() {
        let v = ms(100 * (1 << n)).min(ms(1000));
        assert!(*delay >= v / 2 && *delay <= v, "{n}: {delay:?}");
    }
    // tokio's timer has millisecond resolution: each sleep ends on the next millisecond
    let sum = d.iter().sum::<Duration>();
    assert!(
        took >= sum && took <= sum + ms(d.len() as u64),
        "{took:?} vs {sum:?}"
    );

    let (d, _, _) = delays_of(
        Backoff::exponential(ms(100), 2.0, ms(1000)).with_jitter(Jitter::Decorrelated),
        8,
    )
    .await;
    let mut prev = ms(100);
    for delay in d {
        assert!(
            delay >= ms(100) && delay <= (prev * 3).min(ms(1000)),
            "{delay:?}"
        );
        prev = delay;
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_exactly_instead_of_the_backoff() {
    let provider = FakeProvider::scripted(
        "openai",
        [Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(7))],
    );
    let layer = RetryLayer::builder()
        .backoff(Backoff::fixed(ms(100)))
        .record_attempts(LlmAttempts)
        .build()
        .unwrap();
    let mut svc = layer.layer_service(provider.clone());
    let start = Instant::now();
    let resp = svc.ready().await.unwrap().call(request("m")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(7));
    assert_eq!(provider.calls(), 2);
    assert_eq!(attempts(&resp.extensions), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hint_longer_than_the_cap_ends_the_retries_at_once() {
    let provider = FakeProvider::always(
        "openai",
        Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(120)),
    );
    let gave_up = Arc::new(AtomicU32::new(0));
    let g = gave_up.clone();
    let layer = RetryLayer::builder()
        .max_retries(5)
        .max_retry_after(Duration::from_secs(60))
        .on_give_up(move |_: &LlmResult, n: u32| g.store(n, Ordering::SeqCst))
        .record_attempts(LlmAttempts)
        .build()
        .unwrap();
    let mut svc = layer.layer_service(provider.clone());
    let start = Instant::now();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(request("m"))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(provider.calls(), 1);
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(120)),
        "the hint is handed on"
    );
    assert_eq!(gave_up.load(Ordering::SeqCst), 1);
    assert_eq!(err.extensions().get::<Attempts>(), Some(&Attempts(1)));
}

#[tokio::test(start_paused = true)]
async fn non_retryable_kinds_are_called_once() {
    for kind in ErrorKind::ALL.into_iter().filter(|k| !k.is_retryable()) {
        let provider = FakeProvider::always("p", Outcome::fail(kind));
        let mut svc = RetryLayer::new().layer_service(provider.clone());
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(request("m"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind);
        assert_eq!(provider.calls(), 1, "{kind} must not be retried");
    }
    // x-should-retry: false wins over a retryable status
    let provider = FakeProvider::always(
        "p",
        Outcome::error(LlmError::new(ErrorKind::Server).with_should_retry(false)),
    );
    let mut svc = RetryLayer::new().layer_service(provider.clone());
    let _ = svc.ready().await.unwrap().call(request("m")).await;
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retryable_kinds_are_retried_up_to_max_retries() {
    for kind in ErrorKind::ALL.into_iter().filter(|k| k.is_retryable()) {
        let provider = FakeProvider::always("p", Outcome::fail(kind));
        let layer = RetryLayer::builder()
            .max_retries(3)
            .record_attempts(LlmAttempts)
            .build()
            .unwrap();
        let mut svc = layer.layer_service(provider.clone());
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(request("m"))
            .await
            .unwrap_err();
        assert_eq!(provider.calls(), 4, "{kind}: 1 call + 3 retries");
        assert_eq!(attempts(err.extensions()), 4);
    }
}

#[tokio::test(start_paused = true)]
async fn a_first_try_success_records_nothing() {
    let provider = FakeProvider::new("p");
    let layer = RetryLayer::builder()
        .record_attempts(LlmAttempts)
        .build()
        .unwrap();
    let mut svc = layer.layer_service(provider);
    let resp = svc.ready().await.unwrap().call(request("m")).await.unwrap();
    assert!(resp.extensions.get::<Attempts>().is_none());
    assert_eq!(attempts(&resp.extensions), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_bounds_amplification_under_total_outage() {
    let requests = 1000u64;
    let run = |budget: Option<RetryBudget>| async move {
        let provider = FakeProvider::always("down", Outcome::fail(ErrorKind::Server));
        let builder = RetryLayer::builder()
            .max_retries(3)
            .backoff(Backoff::none());
        let layer = match budget {
            Some(b) => builder.budget(b).build().unwrap(),
            None => builder.no_budget().build().unwrap(),
        };
        let svc = layer.layer_service(provider.clone());
        for _ in 0..requests {
            let _ = svc.clone().oneshot(request("m")).await;
        }
        provider.calls()
    };
    assert_eq!(
        run(None).await,
        4 * requests,
        "no budget: every retry is made"
    );
    let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.2).unwrap();
    let calls = run(Some(budget)).await;
    // 20 % of 1000 requests plus a reserve of 1/s over the 10 s window
    let bound = requests + requests / 5 + 10;
    assert!(calls <= bound, "{calls} calls > {bound}");
    assert!(
        calls >= requests + requests / 5,
        "the budget's retries are used: {calls}"
    );
}

#[tokio::test(start_paused = true)]
async fn budget_refills_as_the_window_moves() {
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap());
    for _ in 0..4 {
        budget.deposit();
    }
    assert_eq!(budget.available(), 2);
    assert!(budget.withdraw() && budget.withdraw() && !budget.withdraw());
    assert_eq!(budget.denied(), 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(budget.available(), 0, "old deposits expired");
    budget.deposit();
    budget.deposit();
    assert_eq!(budget.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_caps_the_total_time() {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Timeout));
    let layer = RetryLayer::builder()
        .max_retries(10)
        .backoff(Backoff::fixed(Duration::from_secs(1)))
        .max_elapsed(Duration::from_millis(3500))
        .build()
        .unwrap();
    let mut svc = layer.layer_service(provider.clone());
    let start = Instant::now();
    let _ = svc.ready().await.unwrap().call(request("m")).await;
    assert_eq!(provider.calls(), 4);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn callbacks_see_every_retry_and_the_give_up() {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Overloaded));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let layer = RetryLayer::builder()
        .max_retries(2)
        .backoff(Backoff::fixed(ms(10)))
        .on_retry(move |r: &LlmResult, n: u32, d: Duration| {
            l1.lock().unwrap().push(format!(
                "retry {n} after {d:?} on {}",
                r.as_ref().unwrap_err().kind()
            ))
        })
        .on_give_up(move |_: &LlmResult, n: u32| {
            l2.lock().unwrap().push(format!("gave up after {n}"))
        })
        .build()
        .unwrap();
    let mut svc = layer.layer_service(provider);
    let _ = svc.ready().await.unwrap().call(request("m")).await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "retry 1 after 10ms on overloaded",
            "retry 2 after 10ms on overloaded",
            "gave up after 3"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn stop_on_overrides_the_classifier() {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::RateLimited));
    let layer = RetryLayer::builder()
        .stop_on(|r: &LlmResult| matches!(r, Err(e) if e.kind() == ErrorKind::RateLimited))
        .build()
        .unwrap();
    let mut svc = layer.layer_service(provider.clone());
    let _ = svc.ready().await.unwrap().call(request("m")).await;
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn polls_the_inner_service_ready_before_each_attempt() {
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let layer = RetryLayer::builder()
        .retry_if(|r: &Result<u32, tower::BoxError>| r.is_err())
        .backoff(Backoff::none())
        .max_retries(1)
        .build()
        .unwrap();
    let mut svc = tower_test::mock::Spawn::new(layer.layer_service(mock));
    handle.allow(1);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(7));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 7);
    send.send_error("boom");
    // The retry waits for readiness: the mock allows no more calls yet.
    tokio_test::assert_pending!(fut.poll());
    handle.allow(1);
    tokio_test::assert_pending!(fut.poll());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 7, "the retry sends the same request");
    send.send_response(8);
    assert_eq!(fut.await.unwrap(), 8);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_budget() {
    let layer = RetryLayer::builder()
        .budget(RetryBudget::new(Duration::from_secs(10), 0, 1.0).unwrap())
        .backoff(Backoff::none())
        .build()
        .unwrap();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Server));
    let a = layer.layer_service(provider.clone());
    let b = a.clone();
    let _ = a.oneshot(request("m")).await; // deposits 1, retries once
    let _ = b.oneshot(request("m")).await; // deposits 1, retries once
    assert_eq!(provider.calls(), 4);
    assert_eq!(layer.budget().unwrap().denied(), 2);
}

trait LayerExt<S> {
    type Service;
    fn layer_service(&self, s: S) -> Self::Service;
}

impl<S, L: tower::Layer<S>> LayerExt<S> for L {
    type Service = L::Service;
    fn layer_service(&self, s: S) -> L::Service {
        self.layer(s)
    }
}
