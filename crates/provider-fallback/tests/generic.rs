//! Fallback between services that have nothing to do with LLMs, and the primary's success
//! path allocating nothing.
#![allow(clippy::unwrap_used)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use towerguard_outcome::{
    AttemptBudget, AttemptCheck, AttemptHook, AttemptRefusal, AttemptRefused, ClassifyError,
    Declared, Verdict,
};
use towerguard_provider_fallback::{AllProvidersFailed, FallbackLayerBuilder};
use towerguard_testkit::call_now;

type Mirror = BoxCloneSyncService<String, String, BoxError>;

fn mirror(name: &'static str, up: bool) -> Mirror {
    BoxCloneSyncService::new(service_fn(move |path: String| async move {
        if up {
            Ok(format!("{name}:{path}"))
        } else {
            Err::<String, BoxError>(format!("{name} unreachable").into())
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn falls_back_across_download_mirrors() {
    let layer = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .primary("eu")
        .provider("us", mirror("us", false))
        .provider("asia", mirror("asia", true))
        .map_request(|name, path: &String| format!("/{name}{path}"))
        .build()
        .unwrap();
    let svc = layer.layer(mirror("eu", false));
    assert_eq!(
        svc.oneshot("/file".into()).await.unwrap(),
        "asia:/asia/file"
    );

    let layer_all_down = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .provider("us", mirror("us", false))
        .build()
        .unwrap();
    let err = layer_all_down
        .layer(mirror("eu", false))
        .oneshot("/x".into())
        .await
        .unwrap_err();
    let all = err.downcast_ref::<AllProvidersFailed<BoxError>>().unwrap();
    let names: Vec<&str> = all.attempts.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["primary", "us"]);
    assert!(err.to_string().contains("us unreachable"), "{err}");
}

#[derive(Clone)]
struct Ok1;

impl Service<u64> for Ok1 {
    type Response = u64;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u64, BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, r: u64) -> Self::Future {
        std::future::ready(Ok(r))
    }
}

#[test]
fn primary_success_path_allocates_nothing() {
    let layer = FallbackLayerBuilder::<Ok1, u64, BoxError>::generic()
        .provider("backup", Ok1)
        .build()
        .unwrap();
    let mut svc = layer.layer(Ok1);
    assert!(call_now(&mut svc, 1));
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

#[test]
fn requests_served_on_many_threads_are_all_counted() {
    let layer = FallbackLayerBuilder::<Ok1, u64, BoxError>::generic()
        .provider("backup", Ok1)
        .build()
        .unwrap();
    let svc = layer.layer(Ok1);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let mut svc = svc.clone();
            s.spawn(move || (0..250).for_each(|_| assert!(call_now(&mut svc, 1))));
        }
    });
    let stats = layer.handle().stats();
    assert_eq!(stats.providers[0].served, 1000);
    assert_eq!((stats.requests, stats.served_by_first), (1000, 1000));
}

/// A request of our own that carries a meter's hook.
#[derive(Clone)]
struct Job {
    hook: Option<AttemptHook>,
}

/// Says yes at once, or refuses every attempt; counts what it was asked.
struct Gate {
    refuse: bool,
    asked: AtomicUsize,
}

impl AttemptBudget for Gate {
    fn before_attempt(&self, _: &str, _: &str) -> AttemptCheck {
        self.asked.fetch_add(1, Ordering::Relaxed);
        AttemptCheck::ready(if self.refuse {
            Err(AttemptRefused::new(AttemptRefusal::BudgetExceeded, "daily"))
        } else {
            Ok(())
        })
    }
}

#[derive(Clone)]
struct Worker(Arc<AtomicUsize>);

impl Service<Job> for Worker {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Job) -> Self::Future {
        self.0.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

fn gated(refuse: bool) -> (Arc<Gate>, Job) {
    let gate = Arc::new(Gate {
        refuse,
        asked: AtomicUsize::new(0),
    });
    let hook = Some(AttemptHook::new(gate.clone()));
    (gate, Job { hook })
}

#[test]
fn a_ready_hook_on_the_primary_allocates_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = FallbackLayerBuilder::<Worker, Job, BoxError>::generic()
        .provider("backup", Worker(calls.clone()))
        .attempt_hook(|job| job.hook.as_ref())
        .build()
        .unwrap();
    let mut svc = layer.layer(Worker(calls.clone()));
    let (gate, job) = gated(false);
    assert!(call_now(&mut svc, job.clone()));
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc, job.clone()));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    assert_eq!(gate.asked.load(Ordering::Relaxed), 1001);
    assert_eq!(calls.load(Ordering::Relaxed), 1001);
}

#[tokio::test(start_paused = true)]
async fn a_generic_request_refused_by_its_budget_calls_nobody() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = FallbackLayerBuilder::<Worker, Job, BoxError>::generic()
        .provider("backup", Worker(calls.clone()))
        .attempt_hook(|job| job.hook.as_ref())
        .build()
        .unwrap();
    let (gate, job) = gated(true);
    let err = layer
        .layer(Worker(calls.clone()))
        .oneshot(job)
        .await
        .unwrap_err();
    let refused = err.downcast_ref::<AttemptRefused>().unwrap();
    assert_eq!(refused.reason(), AttemptRefusal::BudgetExceeded);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(gate.asked.load(Ordering::Relaxed), 1);
    // without the accessor the hook is not looked for
    let layer = FallbackLayerBuilder::<Worker, Job, BoxError>::generic()
        .provider("backup", Worker(calls.clone()))
        .build()
        .unwrap();
    let (gate, job) = gated(true);
    layer
        .layer(Worker(calls.clone()))
        .oneshot(job)
        .await
        .unwrap();
    assert_eq!(gate.asked.load(Ordering::Relaxed), 0);
}

/// An error of another layer that declares itself a refusal (as our layers' errors do).
#[derive(Debug)]
struct Refusal(Declared);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("throttled")
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_boxed_error_falls_back_by_its_declared_verdict() {
    let refusing = BoxCloneSyncService::new(service_fn(|_: String| async {
        Err::<String, BoxError>(Box::new(Refusal(Declared(Verdict::refused()))))
    }));
    let layer = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .provider("us", mirror("us", true))
        .build()
        .unwrap();
    let stats = layer.handle();
    let err = layer
        .layer(refusing)
        .oneshot("/x".into())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "throttled", "a refusal does not fall back");
    // an unknown boxed error is an upstream failure: it falls back, labelled by its verdict
    let served = layer
        .layer(mirror("eu", false))
        .oneshot("/x".into())
        .await
        .unwrap();
    assert_eq!(served, "us:/x");
    let s = stats.stats();
    assert_eq!((s.stopped, s.served_after_failure), (1, 1));
    assert_eq!(s.providers[0].last_error, Some("upstream_transient"));
}

#[tokio::test(start_paused = true)]
async fn the_verdict_can_be_overridden_with_a_closure() {
    let layer = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .provider("us", mirror("us", true))
        .classify(|e: &BoxError| {
            if e.to_string().contains("eu") {
                Verdict::client_fault()
            } else {
                e.verdict()
            }
        })
        .build()
        .unwrap();
    let err = layer
        .layer(mirror("eu", false))
        .oneshot("/x".into())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "eu unreachable");
    // the final error of a boxed fallback is not worth retrying above
    let all = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .provider("us", mirror("us", false))
        .build()
        .unwrap()
        .layer(mirror("eu", false))
        .oneshot("/x".into())
        .await
        .unwrap_err();
    assert!(!all.verdict().is_retryable() && !all.verdict().should_fallback());
}
