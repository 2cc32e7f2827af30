//! The README pipeline of ec93398 (before #13), on a ready client, 1 and 2 threads.
#![allow(clippy::unwrap_used, missing_docs)]
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Service, ServiceBuilder};
use towerguard_bench::hammer;
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse, Message, Usage};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::RetryLayer;
use towerguard_testkit::call_now;

#[derive(Clone, Copy)]
struct ReadyClient;
impl Service<LlmRequest> for ReadyClient {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Ready<Result<LlmResponse, LlmError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let model = req.model_arc().clone();
        ready(Ok(
            LlmResponse::new(String::new(), model.clone(), model).with_usage(Usage::new(20, 10))
        ))
    }
}
fn request(thread: usize) -> LlmRequest {
    LlmRequest::new("gpt-4o-mini", vec![Message::user("Say hello in one word.")])
        .with_max_tokens(64)
        .with_client_key(format!("tenant-{thread}"))
}
fn provider(
    name: &'static str,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    ServiceBuilder::new()
        .layer(RetryLayer::builder().max_retries(2).build().unwrap())
        .layer(CircuitBreakerLayer::named(name))
        .service(ReadyClient)
}
fn ours(
    global: bool,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone + Send {
    let mut ledger = Ledger::builder().budget(Budget::per_client(usd(1e6)).daily());
    if global {
        ledger = ledger.budget(Budget::global(usd(1e9)).daily());
    }
    let ledger = ledger.build().unwrap();
    ServiceBuilder::new()
        .layer(
            ErrorRateLimitLayer::builder()
                .requests_per_minute(60_000_000_000)
                .build()
                .unwrap(),
        )
        .layer(CostMeterLayer::new(ledger))
        .layer(
            FallbackLayer::builder()
                .primary("deepseek")
                .provider("openai", provider("openai"))
                .provider("anthropic", provider("anthropic"))
                .build()
                .unwrap(),
        )
        .service(provider("deepseek"))
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
    let mut g = c.benchmark_group("then");
    g.bench_function("bare_client", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(req.clone()))))
    });
    g.bench_function("readme_pipeline", |b| {
        b.iter(|| assert!(call_now(&mut pipeline, black_box(req.clone()))))
    });
    g.finish();
}
fn threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("then_threads");
    let per_client = ours(false);
    let global = ours(true);
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("per_client_budget/{threads}_threads"), |b| {
            b.iter_custom(|iters| hammer(&per_client, threads, iters, request))
        });
        g.bench_function(format!("global_budget/{threads}_threads"), |b| {
            b.iter_custom(|iters| hammer(&global, threads, iters, request))
        });
    }
    g.finish();
}
criterion_group! { name = benches; config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)); targets = single, threads }
criterion_main!(benches);
