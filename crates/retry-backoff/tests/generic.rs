//! The retry layer on services that have nothing to do with LLMs, and its configuration checks.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use towerguard_outcome::{AttemptRefusal, AttemptRefused, Declared, ManualClock};
use towerguard_retry_backoff::{Backoff, Jitter, RetryBudget, RetryLayer, Verdict};

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
async fn a_closure_records_the_attempts_made() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let flaky = service_fn(move |_: ()| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
                _ => Ok((n, 0u32)),
            }
        }
    });
    let svc = RetryLayer::builder()
        .backoff(Backoff::none())
        .record_attempts(|r: &mut Result<(u32, u32), std::io::Error>, n: u32| {
            if let Ok((_, attempts)) = r {
                *attempts = n;
            }
        })
        .build()
        .unwrap()
        .layer(flaky);
    assert_eq!(svc.clone().oneshot(()).await.unwrap(), (1, 2));
    assert_eq!(svc.oneshot(()).await.unwrap(), (2, 1));
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
            Err(_) => Verdict::transient_after(Duration::from_secs(3)),
            Ok(_) => Verdict::Success,
        })
        .build()
        .unwrap()
        .layer(busy);
    let start = tokio::time::Instant::now();
    assert_eq!(svc.oneshot(()).await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

/// A refusal of "our own" layer, as any layer crate writes one: its verdict is declared in its
/// source chain, so it survives boxing.
#[derive(Debug)]
struct Throttled(Declared);

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("throttled")
    }
}

impl Error for Throttled {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// Calls made by a retry layer (3 retries allowed) over a service that always fails with
/// the error `make` returns, in a `BoxError` pipeline.
async fn calls_for(make: fn() -> BoxError) -> u32 {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let failing = service_fn(move |_: ()| {
        c.fetch_add(1, Ordering::SeqCst);
        async move { Err::<(), BoxError>(make()) }
    });
    let svc = RetryLayer::builder()
        .max_retries(3)
        .backoff(Backoff::none())
        .no_budget()
        .build()
        .unwrap()
        .layer(failing);
    assert!(svc.oneshot(()).await.is_err());
    calls.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn a_boxed_refusal_of_our_layers_is_never_retried() {
    let refused = || -> BoxError { Box::new(Throttled(Declared(Verdict::refused()))) };
    assert_eq!(calls_for(refused).await, 1, "a boxed custom refusal");
    let budget = || -> BoxError {
        Box::new(AttemptRefused::new(
            AttemptRefusal::BudgetExceeded,
            "global daily",
        ))
    };
    assert_eq!(calls_for(budget).await, 1, "a boxed AttemptRefused");
    let in_io = || -> BoxError {
        Box::new(std::io::Error::other(Throttled(Declared(
            Verdict::refused(),
        ))))
    };
    assert_eq!(calls_for(in_io).await, 1, "a refusal inside an io::Error");
    #[cfg(feature = "llm")]
    {
        let open = || -> BoxError {
            Box::new(towerguard_llm_core::LlmError::circuit_open(Some(
                Duration::from_secs(5),
            )))
        };
        assert_eq!(calls_for(open).await, 1, "a boxed LlmError::circuit_open");
        let throttled = || -> BoxError { Box::new(towerguard_llm_core::LlmError::throttled(None)) };
        assert_eq!(calls_for(throttled).await, 1, "a boxed LlmError::throttled");
    }

    let unknown = || -> BoxError { "connection dropped".into() };
    assert_eq!(
        calls_for(unknown).await,
        4,
        "an unknown BoxError is retried"
    );
    let reset =
        || -> BoxError { Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) };
    assert_eq!(
        calls_for(reset).await,
        4,
        "a boxed ConnectionReset is retried"
    );
}

/// A service that counts its clones.
struct Counted {
    clones: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            clones: self.clones.clone(),
            calls: self.calls.clone(),
        }
    }
}

impl Service<u32> for Counted {
    type Response = u32;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u32, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u32) -> Self::Future {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        std::future::ready(if n == 0 && first {
            Err(std::io::ErrorKind::TimedOut.into())
        } else {
            Ok(n)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_inner_service_is_cloned_only_to_retry() {
    let clones = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let inner = Counted {
        clones: clones.clone(),
        calls: calls.clone(),
    };
    let mut svc = RetryLayer::builder()
        .backoff(Backoff::none())
        .build()
        .unwrap()
        .layer(inner);
    let made = clones.load(Ordering::SeqCst); // the layer keeps one spare copy
    for n in 1..=100 {
        assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n);
    }
    assert_eq!(clones.load(Ordering::SeqCst), made, "no clone on success");
    calls.store(0, Ordering::SeqCst);
    assert_eq!(svc.ready().await.unwrap().call(0).await.unwrap(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        clones.load(Ordering::SeqCst),
        made + 1,
        "one clone for the retry"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delay_of_duration_max_ends_the_retries_under_max_elapsed() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let slow_and_down = service_fn(move |_: ()| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut))
        }
    });
    let svc = RetryLayer::builder()
        .backoff(Backoff::fixed(Duration::MAX))
        .max_elapsed(Duration::from_secs(1))
        .build()
        .unwrap()
        .layer(slow_and_down);
    // 10 ms elapsed + Duration::MAX saturates instead of overflowing: the retry is not made
    assert!(svc.oneshot(()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
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
            .to_owned()
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
    let e = RetryLayer::builder()
        .max_elapsed(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_elapsed");
}

#[test]
fn a_budget_whose_arithmetic_could_overflow_is_refused_or_saturates() {
    let field = |ttl: Duration, min_per_sec: u32, percent: f64| {
        RetryBudget::new(ttl, min_per_sec, percent)
            .unwrap_err()
            .field()
            .to_owned()
    };
    let s = Duration::from_secs;
    assert_eq!(field(Duration::ZERO, 10, 0.2), "budget.ttl");
    assert_eq!(field(Duration::MAX, 10, 0.2), "budget.ttl");
    assert_eq!(field(s(3601), 10, 0.2), "budget.ttl");
    for percent in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.1,
        1000.1,
        1e300,
    ] {
        assert_eq!(field(s(10), 10, percent), "budget.percent", "{percent}");
    }
    // the extremes that are allowed work without overflowing (this panicked in debug builds)
    let clock = ManualClock::at(0);
    let huge = RetryBudget::new(s(3600), u32::MAX, 1e-300)
        .unwrap()
        .with_clock(clock.clone());
    for _ in 0..1000 {
        huge.deposit();
        assert!(huge.withdraw());
    }
    assert_eq!(huge.available(), u64::from(u32::MAX) * 3600 - 1000);
    let generous = RetryBudget::new(Duration::from_millis(1), 0, 1000.0)
        .unwrap()
        .with_clock(clock.clone());
    generous.deposit();
    assert_eq!(generous.available(), 1000);
    clock.advance(s(1));
    assert_eq!(generous.available(), 0, "the window moved on");
    assert!(!generous.withdraw());
    assert_eq!(generous.denied(), 1);
}

#[test]
fn budget_counts_deposits_from_many_clones_and_threads() {
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap());
    let noop = service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) });
    let svc = RetryLayer::builder()
        .shared_budget(budget.clone())
        .build()
        .unwrap()
        .layer(noop);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let mut svc = svc.clone();
            scope.spawn(move || {
                for _ in 0..500 {
                    assert!(towerguard_testkit::call_now(&mut svc, ()));
                }
            });
        }
    });
    // 2000 requests at 50 %: 1000 retries, wherever each clone counted its requests
    assert_eq!(budget.available(), 1000);
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

/// Any duration, its extremes often.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::ZERO),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..100_000).prop_map(Duration::from_millis),
    ]
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
    fn no_delay_panics_over_the_whole_duration_range(
        a in any_duration(),
        b in any_duration(),
        mult in prop_oneof![1.0f64..16.0, Just(f64::MAX)],
        jitter in jitters(),
        n in any::<u32>(),
        prev in any_duration(),
        u in prop_oneof![0.0f64..=1.0, Just(1.0), any::<f64>()],
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let custom = move |_: u32| hi;
        for backoff in [
            Backoff::fixed(a),
            Backoff::linear(lo, b, hi),
            Backoff::exponential(lo, mult, hi),
            Backoff::custom(custom),
        ] {
            let backoff = backoff.with_jitter(jitter);
            if backoff.validate().is_err() {
                continue; // refused at build: never used
            }
            let v = backoff.base_delay(n);
            let d = backoff.delay_with(n, prev, u);
            let r = backoff.next_delay(n, prev);
            if jitter != Jitter::Decorrelated {
                prop_assert!(d <= v && r <= v, "{d:?} / {r:?} above {v:?}");
            } else {
                prop_assert!(d <= hi.max(a) && r <= hi.max(a));
            }
        }
    }

    #[test]
    fn exponential_is_monotonic_and_saturates(init in 1u64..1000, mult in 1.0f64..100.0, n in any::<u32>()) {
        let cap = Duration::from_secs(3600);
        let b = Backoff::exponential(Duration::from_millis(init), mult, cap);
        prop_assert!(b.base_delay(n) <= b.base_delay(n.saturating_add(1)));
        prop_assert!(b.base_delay(u32::MAX) <= cap);
    }
}
