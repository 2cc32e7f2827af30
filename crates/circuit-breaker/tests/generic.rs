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
