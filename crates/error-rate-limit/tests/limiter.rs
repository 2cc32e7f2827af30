//! The limiter on fake LLM providers, with tokio's paused clock.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use towerguard_error_rate_limit::{
    ErrorRateLimitLayer, ErrorRateLimitLayerBuilder, LimiterStore, ThrottledError,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message};
use towerguard_outcome::{BoxError as OutcomeBoxError, ClassifyError};
use towerguard_testkit::{FakeProvider, Outcome};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn req(client: &str) -> LlmRequest {
    LlmRequest::new("gpt-4o", vec![Message::user("hi")]).with_client_key(client)
}

fn base() -> ErrorRateLimitLayerBuilder {
    ErrorRateLimitLayer::builder()
        .threshold(3)
        .window(secs(60))
        .penalty(secs(10), secs(50))
        .decay(secs(300))
}

async fn send<S>(svc: &mut S, client: &str) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    svc.ready().await?.call(req(client)).await
}

#[tokio::test(start_paused = true)]
async fn throttles_past_the_threshold_without_reaching_the_service() {
    let layer = base().build().unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::InvalidRequest));
    let mut svc = layer.layer(provider.clone());
    for _ in 0..2 {
        let e = send(&mut svc, "mallory").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    }
    assert!(
        handle.throttled().await.is_empty(),
        "2 errors: below the threshold"
    );
    send(&mut svc, "mallory").await.unwrap_err();
    let e = send(&mut svc, "mallory").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.retry_after(), Some(secs(10)));
    assert_eq!(provider.calls(), 3);
    // other clients are not affected
    let e = send(&mut svc, "alice").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    let t = handle.throttled().await;
    assert_eq!(
        (t.len(), t[0].key.as_str(), t[0].remaining, t[0].offences),
        (1, "mallory", secs(10), 1)
    );
    // the penalty ends
    tokio::time::advance(secs(10)).await;
    let e = send(&mut svc, "mallory").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    let s = handle.stats().await;
    assert_eq!(
        (s.throttled, s.rejected, s.offences, s.errors),
        (0, 1, 1, 5)
    );
}

#[tokio::test(start_paused = true)]
async fn errors_older_than_the_window_no_longer_count() {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::InvalidRequest));
    let mut svc = base().build().unwrap().layer(provider.clone());
    for _ in 0..2 {
        send(&mut svc, "bob").await.unwrap_err();
    }
    tokio::time::advance(secs(60)).await;
    for _ in 0..2 {
        send(&mut svc, "bob").await.unwrap_err();
    }
    let e = send(&mut svc, "bob").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(
        provider.calls(),
        5,
        "never throttled before the 3rd error in 60 s"
    );
    assert_eq!(
        send(&mut svc, "bob").await.unwrap_err().kind(),
        ErrorKind::Throttled
    );
}

#[tokio::test(start_paused = true)]
async fn penalties_double_up_to_the_cap_and_decay() {
    let layer = base().build().unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::ContentPolicy));
    let mut svc = layer.layer(provider);
    let mut penalties = Vec::new();
    for _ in 0..4 {
        for _ in 0..3 {
            send(&mut svc, "eve").await.unwrap_err();
        }
        let p = send(&mut svc, "eve")
            .await
            .unwrap_err()
            .retry_after()
            .unwrap();
        penalties.push(p);
        tokio::time::advance(p).await;
    }
    assert_eq!(penalties, [secs(10), secs(20), secs(40), secs(50)]);
    assert_eq!(handle.throttled().await.len(), 0);

    // good behaviour: 2 decay periods forgive 2 of the 4 offences, so the next is the 3rd
    tokio::time::advance(secs(600)).await;
    for _ in 0..3 {
        send(&mut svc, "eve").await.unwrap_err();
    }
    let p = send(&mut svc, "eve")
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert_eq!(p, secs(40));
    assert!(handle.unthrottle("eve").await);
    let e = send(&mut svc, "eve").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
    assert!(!handle.unthrottle("nobody").await);
}

#[tokio::test(start_paused = true)]
async fn upstream_failures_count_only_when_asked() {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Server));
    let mut svc = base().build().unwrap().layer(provider.clone());
    for _ in 0..5 {
        send(&mut svc, "carol").await.unwrap_err();
    }
    assert_eq!(provider.calls(), 5, "an outage is not the client's fault");
    let mut svc = base()
        .count_upstream_errors(true)
        .build()
        .unwrap()
        .layer(provider.clone());
    for _ in 0..4 {
        let _ = send(&mut svc, "carol").await;
    }
    assert_eq!(provider.calls(), 8, "asked: the 3 outages throttled carol");
}

#[tokio::test(start_paused = true)]
async fn an_unpriced_model_never_throttles_tenants() {
    // a model the cost meter has no price for is the operator's configuration error
    let unpriced = || LlmError::new(ErrorKind::Configuration).with_detail("no price for llama3");
    for upstream in [false, true] {
        let provider = FakeProvider::always("p", Outcome::error(unpriced()));
        let mut svc = base()
            .count_upstream_errors(upstream)
            .build()
            .unwrap()
            .layer(provider.clone());
        for _ in 0..10 {
            let e = send(&mut svc, "tenant").await.unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::Configuration,
                "upstream counted: {upstream}"
            );
        }
    }
    // the same error inside a BoxError pipeline, wrapped on the way (as io::Error::other does)
    let boxed = service_fn(|_: LlmRequest| async {
        Err::<(), BoxError>(Box::new(std::io::Error::other(unpriced())))
    });
    let svc = base().build().unwrap().layer(boxed);
    for _ in 0..10 {
        let e = svc.clone().oneshot(req("tenant")).await.unwrap_err();
        assert!(e.downcast_ref::<ThrottledError>().is_none(), "{e}");
    }
}

#[test]
fn a_throttled_error_is_a_declared_refusal() {
    let layer = ErrorRateLimitLayer::builder()
        .requests_per_minute(60)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|_: LlmRequest| async { Ok::<_, BoxError>(()) }));
    let err = rt.block_on(async {
        for _ in 0..6 {
            svc.clone().oneshot(req("x")).await.unwrap();
        }
        svc.clone().oneshot(req("x")).await.unwrap_err()
    });
    let t = *err.downcast_ref::<ThrottledError>().unwrap();
    assert!(t.verdict().is_refusal());
    assert_eq!(t.verdict().retry_after(), Some(t.retry_after()));
    let boxed: OutcomeBoxError = err;
    let v = boxed.verdict();
    assert!(v.is_refusal() && !v.is_retryable() && !v.is_client_fault() && !v.counts_for_breaker());
    assert_eq!(LlmError::from(t).kind(), ErrorKind::Throttled);
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute() {
    let layer = ErrorRateLimitLayer::builder()
        .requests_per_minute(60)
        .build()
        .unwrap();
    let mut svc = layer.layer(FakeProvider::new("p"));
    for _ in 0..6 {
        send(&mut svc, "dave").await.unwrap();
    }
    let e = send(&mut svc, "dave").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.retry_after(), Some(secs(1)));
    send(&mut svc, "erin").await.unwrap();
    tokio::time::advance(secs(1)).await;
    send(&mut svc, "dave").await.unwrap();
    // over a minute, 60 requests fit (plus the burst)
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < secs(60) {
        match send(&mut svc, "frank").await {
            Ok(_) => sent += 1,
            Err(e) => tokio::time::advance(e.retry_after().unwrap()).await,
        }
    }
    assert!((60..=66).contains(&sent), "{sent}");
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_weigh_each_request() {
    let layer = ErrorRateLimitLayer::builder()
        .tokens_per_minute(10_000)
        .build()
        .unwrap();
    let mut svc = layer.layer(FakeProvider::new("p"));
    let big = || req("grace").with_max_tokens(800);
    // each weighs ~805 tokens (6 ms per token at 10,000 per minute); the burst allowance is
    // a tenth of the minute (1,000 tokens), so the second must wait for its share
    svc.ready().await.unwrap().call(big()).await.unwrap();
    let e = svc.ready().await.unwrap().call(big()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    let wait = e.retry_after().unwrap();
    assert!(wait > secs(3) && wait < secs(4), "{wait:?}");
    tokio::time::advance(wait).await;
    svc.ready().await.unwrap().call(big()).await.unwrap();
    // a light request from another client is unaffected
    send(&mut svc, "heidi").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_rejection_message_is_generic() {
    let layer = base().requests_per_minute(600).build().unwrap();
    let provider =
        FakeProvider::always("secret-upstream", Outcome::fail(ErrorKind::InvalidRequest));
    let mut svc = layer.layer(provider);
    for _ in 0..3 {
        send(&mut svc, "ivan").await.unwrap_err();
    }
    let e = send(&mut svc, "ivan").await.unwrap_err();
    let shown = format!("{} | {}", e.client_message(), e);
    for leak in ["ivan", "secret-upstream", "gpt-4o", "errors"] {
        assert!(!shown.contains(leak), "{shown}");
    }
    assert_eq!(
        e.client_message(),
        LlmError::throttled(None).client_message()
    );
}

#[tokio::test(start_paused = true)]
async fn delay_instead_of_reject() {
    let layer = base().delay_instead(1).build().unwrap();
    let provider = FakeProvider::scripted("p", vec![Outcome::fail(ErrorKind::InvalidRequest); 3]);
    let svc = layer.layer(provider.clone());
    for _ in 0..3 {
        svc.clone().oneshot(req("judy")).await.unwrap_err();
    }
    let start = Instant::now();
    let waiting = tokio::spawn(svc.clone().oneshot(req("judy")));
    tokio::task::yield_now().await;
    // only one may wait: the next is rejected at once
    let e = svc.clone().oneshot(req("judy")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(start.elapsed(), Duration::ZERO);
    waiting.await.unwrap().unwrap();
    assert_eq!(
        start.elapsed(),
        secs(10),
        "the delayed request ran when the penalty ended"
    );
    assert_eq!(provider.calls(), 4);
}

/// Which request (by its message) the service served, and when.
type Seen = Arc<Mutex<Vec<(String, Duration)>>>;

/// A service that records which request it served, and when.
fn recorder() -> (
    impl Service<LlmRequest, Response = (), Error = LlmError, Future: Send> + Clone + Send,
    Seen,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let log = seen.clone();
    let svc = service_fn(move |r: LlmRequest| {
        let who = r.messages()[0].text().into_owned();
        log.lock().unwrap().push((who, start.elapsed()));
        async { Ok::<_, LlmError>(()) }
    });
    (svc, seen)
}

fn tagged(tag: &str) -> LlmRequest {
    LlmRequest::new("gpt-4o", vec![Message::user(tag)]).with_client_key("kate")
}

/// A recording service behind a delaying limiter of 60 RPM (a burst of 6, then one a
/// second), its burst already spent by one client key.
async fn delaying_after_a_burst() -> (
    impl Service<LlmRequest, Response = (), Error = LlmError, Future: Send> + Clone + Send,
    Seen,
) {
    let layer = ErrorRateLimitLayer::builder()
        .requests_per_minute(60)
        .delay_instead(10)
        .build()
        .unwrap();
    let (inner, seen) = recorder();
    let svc = layer.layer(inner);
    for _ in 0..6 {
        svc.clone().oneshot(tagged("burst")).await.unwrap();
    }
    (svc, seen)
}

#[tokio::test(start_paused = true)]
async fn delay_mode_asks_again_after_the_wait_and_keeps_arrival_order() {
    // Delayed requests are asked again when their wait ends: all three are told "1 s", only
    // one fits then, the others wait again.
    let (svc, seen) = delaying_after_a_burst().await;
    let waiters: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|tag| {
            let fut = svc.clone().oneshot(tagged(tag));
            tokio::spawn(fut)
        })
        .collect();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    let seen = seen.lock().unwrap();
    let waited: Vec<_> = seen[6..].iter().map(|(t, at)| (t.as_str(), *at)).collect();
    assert_eq!(waited, [("a", secs(1)), ("b", secs(2)), ("c", secs(3))]);
}

#[tokio::test(start_paused = true)]
async fn delay_mode_bounds_the_waiters_and_their_wait() {
    let layer = ErrorRateLimitLayer::builder()
        .requests_per_minute(60)
        .delay_instead(2)
        .max_delay(Duration::from_millis(1500))
        .build()
        .unwrap();
    let handle = layer.handle();
    let (inner, seen) = recorder();
    let svc = layer.layer(inner);
    for _ in 0..6 {
        svc.clone().oneshot(tagged("burst")).await.unwrap();
    }
    let a = tokio::spawn(svc.clone().oneshot(tagged("a")));
    let b = tokio::spawn(svc.clone().oneshot(tagged("b")));
    tokio::task::yield_now().await;
    // two wait already: a third is rejected at once
    let start = Instant::now();
    let e = svc.clone().oneshot(tagged("c")).await.unwrap_err();
    assert_eq!(
        (e.kind(), start.elapsed()),
        (ErrorKind::Throttled, Duration::ZERO)
    );
    a.await.unwrap().unwrap();
    // b was refused again at 1 s; waiting 1 s more would pass max_delay: rejected then
    let e = b.await.unwrap().unwrap_err();
    assert_eq!((e.kind(), start.elapsed()), (ErrorKind::Throttled, secs(1)));
    assert_eq!(seen.lock().unwrap().len(), 7);
    // b's place is free again: one more may wait, and is served
    svc.clone().oneshot(tagged("d")).await.unwrap();
    assert_eq!(start.elapsed(), secs(2));
    assert!(handle.stats().await.rejected >= 4);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_wait_gives_its_place_back() {
    let layer = base().delay_instead(1).build().unwrap();
    let provider = FakeProvider::scripted("p", vec![Outcome::fail(ErrorKind::InvalidRequest); 3]);
    let svc = layer.layer(provider.clone());
    for _ in 0..3 {
        svc.clone().oneshot(req("kim")).await.unwrap_err();
    }
    // the caller gives up while waiting
    let gave_up = tokio::time::timeout(secs(1), svc.clone().oneshot(req("kim"))).await;
    assert!(gave_up.is_err());
    // its place is free again: the next one may wait, and then runs
    let start = Instant::now();
    svc.clone().oneshot(req("kim")).await.unwrap();
    assert_eq!(start.elapsed(), secs(9));
}

#[test]
fn nonsense_configuration_is_refused_naming_the_field() {
    let b = ErrorRateLimitLayer::builder;
    let field = |x: ErrorRateLimitLayerBuilder| x.build().unwrap_err().field().to_owned();
    let year = secs(365 * 24 * 3600);
    assert_eq!(field(b().threshold(0)), "threshold");
    assert_eq!(field(b().threshold(1_001)), "threshold");
    assert_eq!(field(b().window(Duration::ZERO)), "window");
    assert_eq!(field(b().window(Duration::MAX)), "window");
    assert_eq!(field(b().penalty(Duration::ZERO, secs(1))), "penalty.first");
    assert_eq!(field(b().penalty(secs(10), secs(1))), "penalty.max");
    // penalties whose arithmetic would overflow
    assert_eq!(field(b().penalty(secs(1), Duration::MAX)), "penalty.max");
    assert_eq!(
        field(b().penalty(Duration::MAX, Duration::MAX)),
        "penalty.first"
    );
    assert_eq!(field(b().decay(Duration::ZERO)), "decay");
    assert_eq!(field(b().decay(year + secs(1))), "decay");
    assert_eq!(field(b().requests_per_minute(0)), "requests_per_minute");
    // an interval that rounds to zero nanoseconds
    assert_eq!(
        field(b().requests_per_minute(60_000_000_001)),
        "requests_per_minute"
    );
    assert_eq!(field(b().tokens_per_minute(u64::MAX)), "tokens_per_minute");
    assert_eq!(field(b().max_keys(0)), "max_keys");
    // a cap whose table would take gigabytes
    assert_eq!(field(b().max_keys(usize::MAX)), "max_keys");
    assert_eq!(field(b().delay_instead(0)), "delay_instead");
    assert_eq!(
        field(b().delay_instead(1).max_delay(Duration::ZERO)),
        "max_delay"
    );
    assert_eq!(field(b().max_delay(secs(1))), "max_delay");
    let msg = b().threshold(0).build().unwrap_err().to_string();
    assert!(msg.contains("`threshold`"), "{msg}");
    // the largest sensible values build, and allocate nothing up front to speak of
    let info = allocation_counter::measure(|| {
        b().max_keys(10_000_000)
            .requests_per_minute(60_000_000_000)
            .penalty(year, year)
            .window(year)
            .build()
            .unwrap();
    });
    assert!(info.bytes_max < 64 * 1024, "{info:?}");
}

/// In delay mode a request arriving while its key has waiters, and not admissible for it,
/// queues behind them even when it arrives the moment the queue's head is served: the others
/// are served first, in arrival order. The futures are polled by hand, the newest first at
/// every step, so a late arrival that skipped the queue would be the one to pass.
#[tokio::test(start_paused = true)]
async fn delay_mode_serves_a_late_arrival_after_the_waiters_before_it() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    type Call = Pin<Box<dyn Future<Output = Result<(), LlmError>> + Send>>;

    let (svc, seen) = delaying_after_a_burst().await;
    let mut cx = Context::from_waker(Waker::noop());
    let call = |tag: &str| -> Call { Box::pin(svc.clone().oneshot(tagged(tag))) };
    // a, b and c are refused and wait, in that order
    let mut pending: Vec<(&str, Call)> = ["a", "b", "c"].map(|t| (t, call(t))).into();
    for (tag, f) in &mut pending {
        assert!(f.as_mut().poll(&mut cx).is_pending(), "{tag} passed at 0 s");
    }
    let mut served = Vec::new();
    // polls every pending call, the newest first, until none moves
    let mut poll_all = |pending: &mut Vec<(&'static str, Call)>| loop {
        let before = pending.len();
        let mut i = pending.len();
        while i > 0 {
            i -= 1;
            if let Poll::Ready(result) = pending[i].1.as_mut().poll(&mut cx) {
                result.unwrap();
                served.push(pending.remove(i).0);
            }
        }
        if pending.len() == before {
            break served.clone();
        }
    };
    // the head's wait is over: it is served, and at that very moment "late" arrives
    tokio::time::advance(secs(1)).await;
    assert_eq!(poll_all(&mut pending), ["a"]);
    pending.push(("late", call("late")));
    assert_eq!(
        poll_all(&mut pending),
        ["a"],
        "late was refused: b and c wait"
    );
    for _ in 0..3 {
        tokio::time::advance(secs(1)).await;
        poll_all(&mut pending);
    }
    assert!(pending.is_empty());
    let seen = seen.lock().unwrap();
    let waited: Vec<_> = seen[6..].iter().map(|(t, at)| (t.as_str(), *at)).collect();
    assert_eq!(
        waited,
        [
            ("a", secs(1)),
            ("b", secs(2)),
            ("c", secs(3)),
            ("late", secs(4))
        ]
    );
}
