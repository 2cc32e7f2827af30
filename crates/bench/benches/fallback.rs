//! Fallback in one run: overhead when the primary succeeds, and the cost of one fallback step
//! (primary fails, backup answers), for towerguard's FallbackLayer and tower-resilience's
//! service fallback, over services that answer at once.
//!
//! `cargo bench -p towerguard-bench --bench fallback`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{BoxError, Layer, Service};
use towerguard_bench::{call_now, hammer};
use towerguard_provider_fallback::FallbackLayerBuilder;

/// Answers at once: `Ok(n)`, or an error when built failing.
#[derive(Clone, Copy)]
struct Answer {
    fail: bool,
}

impl Service<u64> for Answer {
    type Response = u64;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u64, BoxError>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, n: u64) -> Self::Future {
        std::future::ready(if self.fail {
            Err(BoxError::from("down"))
        } else {
            Ok(n)
        })
    }
}

const UP: Answer = Answer { fail: false };
const DOWN: Answer = Answer { fail: true };

fn ours(primary: Answer) -> impl Service<u64, Response = u64, Error = BoxError> + Clone + Send {
    FallbackLayerBuilder::<Answer, u64, BoxError>::generic()
        .primary("primary")
        .provider("backup", UP)
        .build()
        .unwrap()
        .layer(primary)
}

fn theirs(primary: Answer) -> impl Service<u64, Response = u64> {
    tower_resilience_fallback::FallbackLayer::<u64, u64, BoxError>::tower_service(UP).layer(primary)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fallback");
    let mut bare = UP;
    g.bench_function("bare_primary", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(1u64))))
    });
    let mut s = ours(UP);
    g.bench_function("towerguard_primary_succeeds", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    let mut s = theirs(UP);
    g.bench_function("tower_resilience_primary_succeeds", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    let mut s = ours(DOWN);
    g.bench_function("towerguard_one_fallback_step", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    let mut s = theirs(DOWN);
    g.bench_function("tower_resilience_one_fallback_step", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    g.finish();
}

/// One vs two threads sharing one fallback service whose primary answers.
fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("fallback_threads");
    let s = ours(UP);
    for threads in [1usize, 2] {
        g.throughput(criterion::Throughput::Elements(threads as u64));
        g.bench_function(
            format!("towerguard_primary_succeeds/{threads}_threads"),
            |b| b.iter_custom(|iters| hammer(&s, threads, iters, |_| 1u64)),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench, threads
}
criterion_main!(benches);
