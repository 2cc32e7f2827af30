//! The README's pipeline over a ready no-op client, beside tower-resilience's four-layer stack
//! on the same client, in one run: time per call, heap allocations per call, and one vs two
//! threads sharing one pipeline.
//!
//! Ours: ErrorRateLimit (per client key, RPM checked) -> CostMeter (global daily budget and a
//! per-client daily budget, a client key on every request) -> Fallback over three providers,
//! each Retry -> CircuitBreaker -> the client. Theirs: retry -> circuit breaker -> rate limiter
//! -> time limiter -> the client.
//!
//! `cargo bench -p towerguard-bench --bench pipeline`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::{BoxError, Service};
use towerguard_bench::{call_now, hammer};
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse};
use towerguard_testkit::ReadyClient;

use towerguard_bench::readme::{self as common, request};

fn ours(
    global: bool,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone + Send {
    common::ours(ReadyClient, global)
}

/// tower-resilience's retry -> circuit breaker -> rate limiter -> time limiter on the client.
fn theirs() -> impl Service<LlmRequest, Response = LlmResponse, Error = BoxError> + Clone + Send {
    towerguard_bench::peers::resilience_stack(ReadyClient)
}

/// Heap allocations per call, averaged over many calls after a warm-up.
fn allocations_per_call<S: Service<LlmRequest>>(svc: &mut S, req: &LlmRequest) -> f64 {
    for _ in 0..100 {
        call_now(svc, req.clone());
    }
    const N: u64 = 10_000;
    let info = allocation_counter::measure(|| {
        for _ in 0..N {
            assert!(call_now(svc, req.clone()));
        }
    });
    info.count_total as f64 / N as f64
}

fn single(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let req = request(0);
    let mut bare = ReadyClient;
    let mut pipeline = ours(true);
    let mut per_client = ours(false);
    let mut peers = theirs();
    for (name, allocs) in [
        ("bare client", allocations_per_call(&mut bare, &req)),
        (
            "towerguard pipeline",
            allocations_per_call(&mut pipeline, &req),
        ),
        (
            "towerguard pipeline, per-client budget only",
            allocations_per_call(&mut per_client, &req),
        ),
        (
            "tower-resilience stack",
            allocations_per_call(&mut peers, &req),
        ),
    ] {
        println!("allocations per call: {name}: {allocs:.2}");
    }

    let mut g = c.benchmark_group("pipeline");
    g.bench_function("bare_client", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(req.clone()))))
    });
    g.bench_function("towerguard_readme_pipeline", |b| {
        b.iter(|| assert!(call_now(&mut pipeline, black_box(req.clone()))))
    });
    g.bench_function("towerguard_readme_pipeline_per_client_budget", |b| {
        b.iter(|| assert!(call_now(&mut per_client, black_box(req.clone()))))
    });
    g.bench_function("tower_resilience_four_layer_stack", |b| {
        b.iter(|| assert!(call_now(&mut peers, black_box(req.clone()))))
    });
    g.finish();
}

fn threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("pipeline_threads");
    let per_client = ours(false);
    let global = ours(true);
    let peers = theirs();
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(
            format!("towerguard_per_client_budget/{threads}_threads"),
            |b| b.iter_custom(|iters| hammer(&per_client, threads, iters, request)),
        );
        g.bench_function(format!("towerguard_global_budget/{threads}_threads"), |b| {
            b.iter_custom(|iters| hammer(&global, threads, iters, request))
        });
        g.bench_function(format!("tower_resilience_stack/{threads}_threads"), |b| {
            b.iter_custom(|iters| hammer(&peers, threads, iters, request))
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
