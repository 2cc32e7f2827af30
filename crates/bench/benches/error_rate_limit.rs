//! Per-client limiter overhead for a known key, beside governor's keyed rate limiter on the
//! same work, and one vs two threads (each thread its own key).
//!
//! `cargo bench -p towerguard-bench --bench error_rate_limit`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use tower::{BoxError, Layer, Service, ServiceExt};
use towerguard_bench::{Noop, call_now, hammer, timed_threads};
use towerguard_error_rate_limit::ErrorRateLimitLayer;

#[derive(Clone)]
struct Req {
    client: Arc<str>,
}

fn noop() -> impl Service<Req, Response = (), Error = BoxError> + Clone + Send {
    ServiceExt::<Req>::map_err(Noop, |e: std::convert::Infallible| -> BoxError {
        match e {}
    })
}

fn errors_only() -> impl Service<Req, Response = (), Error = BoxError> + Clone + Send {
    ErrorRateLimitLayer::builder()
        .key_with(|r: &Req| Some(&*r.client))
        .build()
        .unwrap()
        .layer(noop())
}

fn with_rpm() -> impl Service<Req, Response = (), Error = BoxError> + Clone + Send {
    ErrorRateLimitLayer::builder()
        .requests_per_minute(60_000_000_000)
        .key_with(|r: &Req| Some(&*r.client))
        .build()
        .unwrap()
        .layer(noop())
}

fn single(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _g = rt.enter();
    let mut g = c.benchmark_group("error_rate_limit_known_key");
    let req = Req {
        client: Arc::from("tenant-42"),
    };
    let mut bare = noop();
    g.bench_function("bare_noop", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(req.clone()))))
    });
    let mut s = errors_only();
    assert!(call_now(&mut s, req.clone()));
    g.bench_function("towerguard_error_tracking", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(req.clone()))))
    });
    let mut s = with_rpm();
    assert!(call_now(&mut s, req.clone()));
    g.bench_function("towerguard_error_tracking_and_rpm", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(req.clone()))))
    });
    let limiter = RateLimiter::keyed(Quota::per_second(NonZeroU32::MAX));
    let key: Arc<str> = Arc::from("tenant-42");
    assert!(limiter.check_key(&key).is_ok());
    g.bench_function("governor_keyed_check", |b| {
        b.iter(|| assert!(limiter.check_key(black_box(&key)).is_ok()))
    });
    g.finish();
}

fn threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _g = rt.enter();
    let mut g = c.benchmark_group("error_rate_limit_threads");
    let s = with_rpm();
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("towerguard_rpm/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                hammer(&s, threads, iters, |t| Req {
                    client: Arc::from(format!("tenant-{t}")),
                })
            })
        });
    }
    let limiter = Arc::new(RateLimiter::keyed(Quota::per_second(NonZeroU32::MAX)));
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("governor_keyed/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                timed_threads(threads, |t| {
                    let limiter = limiter.clone();
                    let key: Arc<str> = Arc::from(format!("tenant-{t}"));
                    move || {
                        for _ in 0..iters {
                            black_box(limiter.check_key(&key).is_ok());
                        }
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single, threads
}
criterion_main!(benches);
