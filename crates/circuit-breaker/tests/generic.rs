//! The breaker in front of services that have nothing to do with LLMs; configuration checks;
//! the closed-state success path allocates nothing.
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
fn invalid_configuration_is_rejected_naming_the_field() {
    let field =
        |b: towerguard_circuit_breaker::CircuitBreakerLayerBuilder| b.build().unwrap_err().field();
    let b = CircuitBreakerLayer::builder;
    assert_eq!(field(b().failure_rate(1.5)), "failure_rate");
    assert_eq!(field(b().failure_rate(-0.1)), "failure_rate");
    assert_eq!(field(b().failure_rate(f64::NAN)), "failure_rate");
    assert_eq!(
        field(b().slow_calls(Duration::from_secs(1), 2.0)),
        "slow_calls.rate"
    );
    assert_eq!(field(b().count_window(0)), "count_window");
    assert_eq!(field(b().time_window(Duration::ZERO, 10)), "time_window");
    assert_eq!(
        field(b().time_window(Duration::from_secs(10), 0)),
        "time_window.buckets"
    );
    assert_eq!(field(b().half_open_permits(0)), "half_open_permits");
    assert_eq!(field(b().half_open_successes(0)), "half_open_successes");
    assert_eq!(field(b().consecutive_failures(0)), "consecutive_failures");
    assert_eq!(field(b().no_consecutive_failures()), "consecutive_failures");
    assert_eq!(
        field(
            b().open_duration(Duration::from_secs(600))
                .max_open_duration(Duration::from_secs(60))
        ),
        "max_open_duration"
    );
    assert!(b().open_duration(Duration::from_secs(600)).build().is_ok());
    let msg = b().failure_rate(2.0).build().unwrap_err().to_string();
    assert!(
        msg.contains("`failure_rate`") && msg.contains("0..=1"),
        "{msg}"
    );
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
