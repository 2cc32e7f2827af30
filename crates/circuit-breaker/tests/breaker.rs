//! Every transition of the breaker on fake LLM providers, with tokio's paused clock.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt};
use towerguard_circuit_breaker::{
    CircuitBreaker, CircuitBreakerLayer, ClassifyFn, DefaultClassify, State, Verdict,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmResponse};
use towerguard_testkit::{FakeProvider, Outcome, request};

type Svc = CircuitBreaker<FakeProvider, DefaultClassify>;
type Transitions = Arc<Mutex<Vec<(State, State)>>>;

async fn call(svc: &mut Svc) -> Result<LlmResponse, LlmError> {
    svc.ready().await?.call(request("m")).await
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn observed(
    builder: towerguard_circuit_breaker::CircuitBreakerLayerBuilder,
) -> (CircuitBreakerLayer, Transitions) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let layer = builder
        .on_state_change(move |from, to| l.lock().unwrap().push((from, to)))
        .build()
        .unwrap();
    (layer, log)
}

#[tokio::test(start_paused = true)]
async fn closed_open_half_open_closed() {
    let (layer, log) = observed(
        CircuitBreakerLayer::builder()
            .name("openai")
            .consecutive_failures(3)
            .open_duration(secs(10)),
    );
    let handle = layer.handle();
    let provider = FakeProvider::scripted("openai", vec![Outcome::fail(ErrorKind::Server); 3]);
    let mut svc = layer.layer(provider.clone());

    // a success in between resets the run
    for _ in 0..2 {
        assert!(call(&mut svc).await.is_err());
    }
    assert_eq!(handle.stats().consecutive_failures, 2);
    assert_eq!(handle.state(), State::Closed);
    assert!(call(&mut svc).await.is_err());
    assert_eq!(handle.state(), State::Open, "third failure in a row trips");

    // open: rejected at once, the provider is not called, retry_after = time left
    tokio::time::advance(secs(4)).await;
    let err = call(&mut svc).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(err.provider(), Some("openai"));
    assert_eq!(err.retry_after(), Some(secs(6)));
    assert_eq!(provider.calls(), 3);
    assert!(handle.is_rejecting());

    // after the open time: one probe, which succeeds and closes
    tokio::time::advance(secs(6)).await;
    assert!(call(&mut svc).await.is_ok());
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(provider.calls(), 4);
    assert_eq!(
        *log.lock().unwrap(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
    let stats = handle.stats();
    assert_eq!((stats.failures, stats.successes, stats.rejected), (3, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_and_the_open_time_grows() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(secs(10))
        .grow_open_duration(secs(25))
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Overloaded));
    let mut svc = layer.layer(provider.clone());
    assert!(call(&mut svc).await.is_err());
    assert_eq!(handle.stats().open_for, Some(secs(10)));
    tokio::time::advance(secs(10)).await;
    assert_eq!(
        call(&mut svc).await.unwrap_err().kind(),
        ErrorKind::Overloaded
    );
    assert_eq!(handle.state(), State::Open, "a failed probe re-opens");
    assert_eq!(handle.stats().open_for, Some(secs(20)), "10 s x 2");
    tokio::time::advance(secs(20)).await;
    assert!(call(&mut svc).await.is_err());
    assert_eq!(
        handle.stats().open_for,
        Some(secs(25)),
        "10 s x 3, capped at 25 s"
    );
    assert_eq!(handle.stats().trips, 3);
}

#[tokio::test(start_paused = true)]
async fn a_longer_retry_after_sets_the_open_time() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(secs(5))
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::scripted(
        "p",
        [Outcome::fail(ErrorKind::RateLimited).with_retry_after(secs(40))],
    );
    let mut svc = layer.layer(provider);
    let _ = call(&mut svc).await;
    assert_eq!(handle.stats().open_for, Some(secs(40)));
    // a hint beyond the cap (5 minutes) is capped
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::scripted(
        "p",
        [Outcome::fail(ErrorKind::RateLimited).with_retry_after(secs(3600))],
    );
    let mut svc = layer.layer(provider);
    let _ = call(&mut svc).await;
    assert_eq!(handle.stats().open_for, Some(secs(300)));
}

#[tokio::test(start_paused = true)]
async fn errors_that_say_nothing_of_health_do_not_count() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut kinds: Vec<_> = ErrorKind::ALL
        .into_iter()
        .filter(|k| !k.counts_for_breaker())
        .map(Outcome::fail)
        .collect();
    kinds.extend(kinds.clone());
    let n = kinds.len() as u64;
    let provider = FakeProvider::scripted("p", kinds);
    let mut svc = layer.layer(provider);
    for _ in 0..n {
        let _ = call(&mut svc).await;
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.stats().failures, 0);
}

#[tokio::test(start_paused = true)]
async fn no_trip_below_the_minimum_calls() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .failure_rate(0.5)
        .count_window(20)
        .min_calls(10)
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Server));
    let mut svc = layer.layer(provider);
    for _ in 0..9 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(
        handle.state(),
        State::Closed,
        "9 failures of 9 calls: below min_calls"
    );
    let _ = call(&mut svc).await;
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_long_run_of_successes_never_delays_a_trip() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .failure_rate(0.5)
        .count_window(10)
        .min_calls(10)
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::new("p");
    let mut svc = layer.layer(provider.clone());
    for _ in 0..10_000 {
        call(&mut svc).await.unwrap();
    }
    provider.push_script(vec![Outcome::fail(ErrorKind::Server); 5]);
    for _ in 0..4 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(handle.state(), State::Closed);
    let _ = call(&mut svc).await;
    assert_eq!(handle.state(), State::Open, "5 of the last 10 calls failed");
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .failure_rate(0.5)
        .time_window(secs(10), 10)
        .min_calls(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::scripted("p", vec![Outcome::fail(ErrorKind::Server); 3]);
    let mut svc = layer.layer(provider.clone());
    for _ in 0..3 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(handle.stats().window.failures, 3);
    tokio::time::advance(secs(11)).await;
    assert_eq!(
        handle.stats().window.calls,
        0,
        "the failures left the window"
    );
    provider.push_script([Outcome::fail(ErrorKind::Server)]);
    call(&mut svc).await.unwrap_err();
    call(&mut svc).await.unwrap();
    call(&mut svc).await.unwrap();
    call(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed, "1 failure in 4 calls");
}

#[tokio::test(start_paused = true)]
async fn slow_call_rate_trips() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .slow_calls(secs(2), 0.5)
        .count_window(4)
        .min_calls(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::scripted(
        "p",
        [
            Outcome::ok(),
            Outcome::ok().after(secs(3)),
            Outcome::ok(),
            Outcome::ok().after(secs(5)),
        ],
    );
    let mut svc = layer.layer(provider);
    for _ in 0..4 {
        call(&mut svc).await.unwrap();
    }
    assert_eq!(handle.stats().slow, 2);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn half_open_permits_are_never_exceeded_by_concurrent_calls() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(secs(1))
        .half_open_permits(3)
        .half_open_successes(3)
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::builder("p")
        .script([Outcome::fail(ErrorKind::Server)])
        .then(Outcome::ok().after(Duration::from_millis(500)))
        .build();
    let svc = layer.layer(provider.clone());
    let _ = svc.clone().oneshot(request("m")).await;
    assert_eq!(handle.state(), State::Open);
    tokio::time::advance(secs(1)).await;

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = svc.clone();
        tasks.push(tokio::spawn(async move { s.oneshot(request("m")).await }));
    }
    let mut admitted = 0;
    let mut rejected = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::CircuitOpen);
                rejected += 1;
            }
        }
    }
    assert_eq!(provider.max_in_flight(), 3, "probes in flight at once");
    assert_eq!((admitted, rejected), (3, 47));
    assert_eq!(handle.state(), State::Closed, "3 probe successes close");
}

#[tokio::test(start_paused = true)]
async fn ignored_and_cancelled_probes_give_their_permit_back() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(secs(1))
        .classifier(ClassifyFn(|r: &Result<LlmResponse, LlmError>| match r {
            Ok(_) => Verdict::Success,
            Err(e) if e.kind() == ErrorKind::InvalidRequest => Verdict::refused(),
            Err(e) => e.verdict(),
        }))
        .build()
        .unwrap();
    let handle = layer.handle();
    let provider = FakeProvider::scripted(
        "p",
        [
            Outcome::fail(ErrorKind::Server),
            Outcome::fail(ErrorKind::InvalidRequest),
            Outcome::hang(),
        ],
    );
    let mut svc = layer.layer(provider.clone());
    let _ = svc.ready().await.unwrap().call(request("m")).await;
    tokio::time::advance(secs(1)).await;
    // ignored probe: permit back, still half-open
    let e = svc
        .ready()
        .await
        .unwrap()
        .call(request("m"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(handle.probes_in_flight(), 0);
    // cancelled probe (a hang dropped by a timeout): permit back
    let fut = svc.ready().await.unwrap().call(request("m"));
    assert_eq!(handle.probes_in_flight(), 1);
    assert!(tokio::time::timeout(secs(5), fut).await.is_err());
    assert_eq!(handle.probes_in_flight(), 0);
    // a permit taken in poll_ready and never used is given back when the service drops
    let mut other = svc.clone();
    other.ready().await.unwrap();
    assert_eq!(handle.probes_in_flight(), 1);
    drop(other);
    assert_eq!(handle.probes_in_flight(), 0);
    svc.ready().await.unwrap().call(request("m")).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn manual_control() {
    let (layer, log) = observed(CircuitBreakerLayer::builder().consecutive_failures(1));
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Server));
    let mut svc = layer.layer(provider.clone());

    handle.force_open();
    let e = call(&mut svc).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (ErrorKind::CircuitOpen, None));
    tokio::time::advance(secs(3600)).await;
    assert_eq!(
        call(&mut svc).await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(provider.calls(), 0);

    handle.disable();
    for _ in 0..5 {
        assert_eq!(call(&mut svc).await.unwrap_err().kind(), ErrorKind::Server);
    }
    assert_eq!(handle.state(), State::Disabled);
    assert_eq!(handle.stats().failures, 0, "disabled records nothing");

    handle.metrics_only();
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(handle.state(), State::MetricsOnly, "never trips");
    assert_eq!(handle.stats().failures, 5);

    handle.reset();
    assert_eq!(handle.state(), State::Closed);
    let _ = call(&mut svc).await;
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        *log.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Disabled),
            (State::Disabled, State::MetricsOnly),
            (State::MetricsOnly, State::Closed),
            (State::Closed, State::Open),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn poll_ready_never_parks_on_an_open_breaker() {
    // the inner service is never ready; an open breaker still answers at once
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    layer.handle().force_open();
    let mut svc = layer.layer(never_ready());
    let mut fut = tokio_test::task::spawn(async move {
        svc.ready().await.unwrap();
        svc.call(()).await
    });
    let out = tokio_test::assert_ready!(fut.poll());
    assert!(out.unwrap_err().to_string().contains("forced_open"));
}

fn never_ready() -> tower::util::BoxService<(), (), tower::BoxError> {
    struct Never;
    impl Service<()> for Never {
        type Response = ();
        type Error = tower::BoxError;
        type Future = std::future::Ready<Result<(), tower::BoxError>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
        fn call(&mut self, _: ()) -> Self::Future {
            std::future::ready(Ok(()))
        }
    }
    tower::util::BoxService::new(Never)
}

#[tokio::test(start_paused = true)]
async fn a_slow_failure_from_an_earlier_period_never_moves_the_open_time() {
    let (layer, log) = observed(
        CircuitBreakerLayer::builder()
            .consecutive_failures(1)
            .open_duration(secs(10)),
    );
    let handle = layer.handle();
    let provider = FakeProvider::scripted(
        "p",
        [
            // A: called first, fails after 30 s asking for 200 s
            Outcome::fail(ErrorKind::RateLimited)
                .with_retry_after(secs(200))
                .after(secs(30)),
            Outcome::fail(ErrorKind::Server), // B: trips at 0, open until 10
            Outcome::ok(),                    // C: the probe at 10 closes
            Outcome::fail(ErrorKind::Server), // D: trips at 25, open until 35
        ],
    );
    let svc = layer.layer(provider.clone());
    let slow = tokio::spawn(svc.clone().oneshot(request("m")));
    tokio::task::yield_now().await;
    assert_eq!(provider.calls(), 1);
    let mut svc = svc;
    assert!(call(&mut svc).await.is_err());
    tokio::time::advance(secs(10)).await;
    assert!(call(&mut svc).await.is_ok());
    tokio::time::advance(secs(15)).await;
    assert!(call(&mut svc).await.is_err());
    assert_eq!(handle.stats().open_for, Some(secs(10)));
    tokio::time::advance(secs(5)).await;
    let stale = slow.await.unwrap().unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::RateLimited);
    let stats = handle.stats();
    assert_eq!(stats.state, State::Open);
    assert_eq!(
        stats.open_for,
        Some(secs(5)),
        "still until 35 s, not 30 + 200 s"
    );
    assert_eq!(
        stats.failures, 3,
        "counted in the lifetime counts, not in the period"
    );
    assert_eq!(
        log.lock().unwrap().len(),
        4,
        "no transition from the stale failure"
    );
}
