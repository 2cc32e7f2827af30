//! Success-path overhead of retry layers over a bare no-op service, in one run:
//! towerguard's RetryLayer (budget on, and off), tower's retry with its TpsBudget, and
//! tower-resilience's retry.
//!
//! `cargo bench -p towerguard-bench --bench retry`
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use towerguard_bench::{Noop, call_now, hammer};
use towerguard_llm_core::{LlmRequest, Message};
use towerguard_retry_backoff::RetryLayer;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry_success_path");

    let mut bare = Noop;
    g.bench_function("bare_noop", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(1u64))))
    });

    let mut ours = RetryLayer::builder()
        .max_retries(3)
        .build()
        .unwrap()
        .layer(Noop);
    g.bench_function("towerguard_budget_on", |b| {
        b.iter(|| assert!(call_now(&mut ours, black_box(1u64))))
    });

    let mut ours_nb = RetryLayer::builder()
        .max_retries(3)
        .no_budget()
        .build()
        .unwrap()
        .layer(Noop);
    g.bench_function("towerguard_budget_off", |b| {
        b.iter(|| assert!(call_now(&mut ours_nb, black_box(1u64))))
    });

    let mut tower_retry = towerguard_bench::peers::tower_retry().layer(Noop);
    g.bench_function("tower_retry_tps_budget", |b| {
        b.iter(|| assert!(call_now(&mut tower_retry, black_box(1u64))))
    });

    let mut resilience = tower_resilience_retry::RetryLayer::<u64, (), Infallible>::builder()
        .max_attempts(4)
        .exponential_backoff(Duration::from_millis(500))
        .build()
        .layer(Noop);
    g.bench_function("tower_resilience_retry", |b| {
        b.iter(|| assert!(call_now(&mut resilience, black_box(1u64))))
    });

    // The same, with a real LlmRequest (its clone is part of what a retry layer must do).
    let req =
        LlmRequest::new("gpt-4o-mini", vec![Message::user("Hello there")]).with_max_tokens(64);
    let mut bare = Noop;
    g.bench_function("bare_noop_llm_request", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(req.clone()))))
    });
    let mut ours = RetryLayer::new().layer(Noop);
    g.bench_function("towerguard_budget_on_llm_request", |b| {
        b.iter(|| assert!(call_now(&mut ours, black_box(req.clone()))))
    });
    g.finish();
}

/// One vs two threads sharing one retry service (budget on), each thread with its own clone.
fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry_threads");
    let s = RetryLayer::builder()
        .max_retries(2)
        .build()
        .unwrap()
        .layer(Noop);
    for threads in [1usize, 2] {
        g.throughput(criterion::Throughput::Elements(threads as u64));
        g.bench_function(format!("towerguard_budget_on/{threads}_threads"), |b| {
            b.iter_custom(|iters| hammer(&s, threads, iters, |_| 1u64))
        });
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
