//! A `BoxError` pipeline outside LLMs (tower's own error type, as behind `tower::timeout`):
//! ErrorRateLimit -> Retry -> CircuitBreaker -> a flaky backend. The defaults of the shared
//! vocabulary never punish the wrong party: the breaker's refusal is not retried and does not
//! count against the client, an unknown upstream error is retried and not the client's fault.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
use towerguard_circuit_breaker::{CircuitBreakerLayer, State};
use towerguard_error_rate_limit::{ErrorRateLimitLayer, LimiterStore};
use towerguard_outcome::ClassifyError;
use towerguard_retry_backoff::{Backoff, RetryLayer};

#[derive(Clone)]
struct Query {
    client: Arc<str>,
}

#[tokio::test(start_paused = true)]
async fn refusals_are_never_retried_and_upstream_errors_never_throttle_the_client() {
    let calls = Arc::new(AtomicU64::new(0));
    let backend = {
        let calls = calls.clone();
        service_fn(move |_: Query| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), BoxError>("database went away".into()) }
        })
    };
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let limiter = ErrorRateLimitLayer::builder()
        .threshold(2)
        .key_with(|q: &Query| Some(&*q.client))
        .build()
        .unwrap();
    let limiter_handle = limiter.handle();
    let svc = ServiceBuilder::new()
        .layer(limiter)
        .layer(
            RetryLayer::builder()
                .max_retries(5)
                .backoff(Backoff::fixed(Duration::from_millis(10)))
                .build()
                .unwrap(),
        )
        .layer(breaker)
        .service(backend);
    let q = Query {
        client: Arc::from("tenant-1"),
    };

    // the unknown error is retried until the breaker opens; the open breaker's refusal ends
    // the retries at once
    let err = svc.clone().oneshot(q.clone()).await.unwrap_err();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "three attempts tripped the breaker"
    );
    assert_eq!(handle.state(), State::Open);
    assert!(
        err.verdict().is_refusal(),
        "the caller sees the breaker's refusal: {err}"
    );

    // while it stays open: refused at once, never retried, never reaching the backend
    for _ in 0..10 {
        let err = svc.clone().oneshot(q.clone()).await.unwrap_err();
        assert!(err.verdict().is_refusal());
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);

    // none of it was the client's fault: the client is not throttled
    assert!(limiter_handle.throttled().await.is_empty());
}
