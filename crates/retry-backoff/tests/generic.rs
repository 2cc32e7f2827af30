//! The retry layer on services that have nothing to do with LLMs, and its configuration checks.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tower::{Layer, ServiceExt, service_fn};
use towerguard_retry_backoff::{Backoff, Decision, Jitter, RetryBudget, RetryLayer};

#[tokio::test(start_paused = true)]
async fn retries_io_errors_of_a_plain_service() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // A "database client": resets twice, then answers.
    let db = service_fn(move |query: &'static str| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
            } else {
                Ok(format!("rows for {query}"))
            }
        }
    });
    let svc = RetryLayer::builder()
        .backoff(Backoff::fixed(Duration::from_millis(5)))
        .build()
        .unwrap()
        .layer(db);
    assert_eq!(svc.oneshot("select 1").await.unwrap(), "rows for select 1");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A permission error is not retried.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let denied = service_fn(move |_: ()| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied)) }
    });
    let svc = RetryLayer::new().layer(denied);
    assert!(svc.oneshot(()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_successful_responses_a_predicate_picks() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let counter = service_fn(move |_: ()| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<u32, std::convert::Infallible>(n) }
    });
    let svc = RetryLayer::builder()
        .max_retries(5)
        .backoff(Backoff::none())
        .retry_if(|r: &Result<u32, std::convert::Infallible>| matches!(r, Ok(n) if *n < 3))
        .build()
        .unwrap()
        .layer(counter);
    assert_eq!(svc.oneshot(()).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn classify_with_passes_a_hint() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let busy = service_fn(move |_: ()| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { if n == 0 { Err("busy") } else { Ok(n) } }
    });
    let svc = RetryLayer::builder()
        .classify_with(|r: &Result<u32, &str>| match r {
            Err(_) => Decision::Retry {
                after: Some(Duration::from_secs(3)),
            },
            Ok(_) => Decision::Accept,
        })
        .build()
        .unwrap()
        .layer(busy);
    let start = tokio::time::Instant::now();
    assert_eq!(svc.oneshot(()).await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[test]
fn invalid_configuration_is_rejected_naming_the_field() {
    let ms = Duration::from_millis;
    let field = |b: Backoff| {
        RetryLayer::builder()
            .backoff(b)
            .build()
            .unwrap_err()
            .field()
    };
    assert_eq!(
        field(Backoff::exponential(ms(100), 0.0, ms(1000))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(Backoff::exponential(ms(100), -2.0, ms(1000))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(Backoff::exponential(ms(100), f64::NAN, ms(1000))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(Backoff::exponential(ms(100), f64::INFINITY, ms(1000))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(Backoff::exponential(ms(500), 2.0, ms(100))),
        "backoff.max"
    );
    assert_eq!(
        field(Backoff::linear(ms(500), ms(1), ms(100))),
        "backoff.max"
    );
    assert_eq!(
        field(Backoff::custom(|_| Duration::from_millis(1)).with_jitter(Jitter::Decorrelated)),
        "backoff.jitter"
    );
    let e = RetryLayer::builder()
        .backoff(Backoff::exponential(ms(100), 0.0, ms(1000)))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("`backoff.multiplier`"), "{e}");

    assert_eq!(
        RetryBudget::new(Duration::ZERO, 10, 0.2)
            .unwrap_err()
            .field(),
        "budget.ttl"
    );
    assert_eq!(
        RetryBudget::new(Duration::from_secs(10), 10, f64::NAN)
            .unwrap_err()
            .field(),
        "budget.percent"
    );
    assert_eq!(
        RetryBudget::new(Duration::from_secs(10), 10, -0.1)
            .unwrap_err()
            .field(),
        "budget.percent"
    );
}

fn backoffs() -> impl Strategy<Value = (Backoff, Duration, Duration)> {
    let exp = (0u64..10_000, 1.0f64..16.0, 0u64..100_000).prop_map(|(init, mult, extra)| {
        let (i, m) = (
            Duration::from_millis(init),
            Duration::from_millis(init + extra),
        );
        (Backoff::exponential(i, mult, m), i, m)
    });
    let lin = (0u64..10_000, 0u64..10_000, 0u64..100_000).prop_map(|(init, step, extra)| {
        let (i, m) = (
            Duration::from_millis(init),
            Duration::from_millis(init + extra),
        );
        (Backoff::linear(i, Duration::from_millis(step), m), i, m)
    });
    let fixed = (0u64..100_000).prop_map(|d| {
        let d = Duration::from_millis(d);
        (Backoff::fixed(d), d, d)
    });
    prop_oneof![exp, lin, fixed]
}

fn jitters() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn jittered_delays_stay_within_their_formulas(
        (backoff, base, cap) in backoffs(),
        jitter in jitters(),
        n in prop_oneof![0u32..64, any::<u32>()],
        prev_ms in 0u64..1_000_000,
        u in 0.0f64..1.0,
    ) {
        let backoff = backoff.with_jitter(jitter);
        prop_assert!(backoff.validate().is_ok());
        let v = backoff.base_delay(n);
        prop_assert!(v <= cap, "v {v:?} above cap {cap:?}");
        let prev = Duration::from_millis(prev_ms).min(cap);
        let d = backoff.delay_with(n, prev, u);
        match jitter {
            Jitter::None => prop_assert_eq!(d, v),
            Jitter::Full => prop_assert!(d <= v),
            Jitter::Equal => prop_assert!(d >= v / 2 && d <= v),
            Jitter::Decorrelated => {
                let hi = prev.max(base).saturating_mul(3).min(cap);
                prop_assert!(d >= base.min(cap) && d <= hi.max(base), "{d:?} not in [{base:?}, {hi:?}]");
            }
        }
        // the per-thread generator stays in bounds too
        let r = backoff.next_delay(n, prev);
        prop_assert!(r <= cap.max(v));
    }

    #[test]
    fn exponential_is_monotonic_and_saturates(init in 1u64..1000, mult in 1.0f64..100.0, n in any::<u32>()) {
        let cap = Duration::from_secs(3600);
        let b = Backoff::exponential(Duration::from_millis(init), mult, cap);
        prop_assert!(b.base_delay(n) <= b.base_delay(n.saturating_add(1)));
        prop_assert!(b.base_delay(u32::MAX) <= cap);
    }
}
