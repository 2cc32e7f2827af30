//! The breaker in front of services that have nothing to do with LLMs; how it classifies
//! their errors; the closed-state success path allocates nothing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower::{BoxError, Layer, ServiceExt, service_fn};
use towerguard_circuit_breaker::{CircuitBreakerLayer, CircuitOpenError, State};
use towerguard_testkit::call_now;

#[tokio::test(start_paused = true)]
async fn guards_a_database_client_speaking_io_errors() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let db = service_fn(move |_query: &'static str| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Err::<u64, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) }
    });
    let layer = CircuitBreakerLayer::builder()
        .name("postgres")
        .consecutive_failures(3)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(db);
    for _ in 0..3 {
        let e = svc.clone().oneshot("select 1").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    assert_eq!(handle.state(), State::Open);
    let e = svc.clone().oneshot("select 1").await.unwrap_err();
    let open = e
        .get_ref()
        .unwrap()
        .downcast_ref::<CircuitOpenError>()
        .unwrap();
    assert_eq!(open.name(), Some("postgres"));
    assert_eq!(open.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn works_with_box_errors() {
    let flaky = service_fn(|n: u32| async move {
        if n.is_multiple_of(2) {
            Err::<u32, BoxError>("even".into())
        } else {
            Ok(n)
        }
    });
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .failure_rate(0.5)
        .count_window(4)
        .min_calls(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(flaky);
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    let _ = svc.clone().oneshot(2).await;
    assert_eq!(svc.clone().oneshot(3).await.unwrap(), 3);
    let _ = svc.clone().oneshot(4).await;
    assert_eq!(handle.state(), State::Open);
    let e = svc.clone().oneshot(5).await.unwrap_err();
    assert!(e.is::<CircuitOpenError>(), "{e}");
}

#[test]
fn closed_success_path_allocates_nothing() {
    let noop = service_fn(|_: u32| std::future::ready(Ok::<_, BoxError>(())));
    for layer in [
        CircuitBreakerLayer::builder().build().unwrap(),
        CircuitBreakerLayer::builder()
            .count_window(100)
            .build()
            .unwrap(),
        CircuitBreakerLayer::builder()
            .time_window(Duration::from_secs(30), 10)
            .build()
            .unwrap(),
    ] {
        let mut svc = layer.layer(noop);
        assert!(call_now(&mut svc, 1)); // warm up (thread shard index)
        let info = allocation_counter::measure(|| {
            for _ in 0..1000 {
                assert!(call_now(&mut svc, 1));
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
        // a clone per request, as axum makes, allocates nothing either
        let info = allocation_counter::measure(|| {
            for _ in 0..1000 {
                assert!(call_now(&mut svc.clone(), 1));
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
    }
}

fn failing_with(
    err: fn() -> BoxError,
) -> impl tower::Service<(), Response = (), Error = BoxError, Future: Send> + Clone {
    service_fn(move |()| std::future::ready(Err::<(), BoxError>(err())))
}

#[tokio::test(start_paused = true)]
async fn a_boxed_refusal_of_another_layer_is_neither_success_nor_failure() {
    use towerguard_outcome::{AttemptRefusal, AttemptRefused};
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(failing_with(|| {
        Box::new(AttemptRefused::new(AttemptRefusal::BudgetExceeded, "daily"))
    }));
    for _ in 0..5 {
        assert!(svc.clone().oneshot(()).await.is_err());
    }
    let stats = handle.stats();
    assert_eq!(
        stats.state,
        State::Closed,
        "a budget refusal says nothing of the callee"
    );
    assert_eq!((stats.failures, stats.successes, stats.ignored), (0, 0, 5));
    // an unknown boxed error is a transient upstream failure: it counts
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let _ = layer
        .layer(failing_with(|| "reset".into()))
        .oneshot(())
        .await;
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn an_inner_breakers_rejection_is_ignored_by_an_outer_one() {
    let inner = CircuitBreakerLayer::builder()
        .name("inner")
        .build()
        .unwrap();
    inner.handle().force_open();
    let outer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let handle = outer.handle();
    // BoxError
    let svc = outer.layer(inner.layer(failing_with(|| "unreached".into())));
    for _ in 0..3 {
        let e = svc.clone().oneshot(()).await.unwrap_err();
        assert!(e.is::<CircuitOpenError>(), "{e}");
    }
    // io::Error
    let io = service_fn(|()| async { Err::<(), _>(std::io::Error::other("unreached")) });
    let svc = outer.layer(inner.layer(io));
    for _ in 0..3 {
        assert!(svc.clone().oneshot(()).await.is_err());
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.stats().ignored, 6);
}

#[test]
fn an_open_breakers_error_declares_a_refusal_worth_a_fallback() {
    use towerguard_circuit_breaker::{ClassifyError, Verdict};
    use towerguard_testkit::call_now;
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let down = service_fn(|()| async { Err::<(), BoxError>("down".into()) });
    let mut svc = layer.layer(down);
    assert!(!call_now(&mut svc, ()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = rt.block_on(svc.oneshot(())).unwrap_err();
    let open = e.downcast_ref::<CircuitOpenError>().unwrap().clone();
    let v = open.verdict();
    assert!(v.is_refusal() && v.should_fallback() && !v.is_retryable() && !v.counts_for_breaker());
    let left = open.retry_after().unwrap();
    assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(29));
    assert_eq!(v.retry_after(), Some(left));
    // the verdict survives boxing and io wrapping, for every other layer's defaults
    assert_eq!(e.verdict(), v);
    assert_eq!(std::io::Error::from(open).verdict(), v);
    assert!(matches!(v, Verdict::Refused(_)));
}

#[tokio::test(start_paused = true)]
async fn client_faults_count_as_successes_and_a_closure_overrides() {
    use towerguard_circuit_breaker::{ClassifyError, Verdict};
    let bad_input = || {
        service_fn(|()| async {
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::InvalidInput))
        })
    };
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let _ = layer.layer(bad_input()).oneshot(()).await;
    assert_eq!(
        (handle.state(), handle.stats().successes),
        (State::Closed, 1)
    );
    // the user decides: every error is the callee's failure
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .classify_with(|r: &Result<(), std::io::Error>| match r {
            Ok(()) => Verdict::Success,
            Err(e) if e.verdict().is_client_fault() => Verdict::transient(),
            Err(e) => e.verdict(),
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let _ = layer.layer(bad_input()).oneshot(()).await;
    assert_eq!(handle.state(), State::Open);
}

#[test]
fn the_service_is_send_and_sync_and_so_is_its_future() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    let noop = service_fn(|_: u32| std::future::ready(Ok::<_, BoxError>(())));
    let layer = CircuitBreakerLayer::builder()
        .count_window(10)
        .build()
        .unwrap();
    let mut svc = layer.layer(noop);
    send_sync(&layer);
    send_sync(&svc);
    let future = tower::Service::call(&mut svc, 1);
    send_sync(&future);
}
