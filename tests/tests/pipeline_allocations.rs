//! Heap allocations per call through the README's pipeline, unboxed, over a client that
//! answers at once: the layers' own allocations, counted beyond the client's.
#![allow(clippy::unwrap_used)]

use tower::{Service, ServiceBuilder};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse, Message};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::RetryLayer;
use towerguard_testkit::{ReadyClient, call_now};

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

fn pipeline(ledger: Ledger) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError> {
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

fn allocations_per_call(svc: &mut impl Service<LlmRequest>) -> u64 {
    let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("Say hello.")])
        .with_max_tokens(64)
        .with_client_key("tenant-42");
    for _ in 0..10 {
        assert!(call_now(svc, req.clone()));
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            assert!(call_now(svc, req.clone()));
        }
    });
    info.count_total / 100
}

/// What the bare client allocates per call (its answer's list of choices): the layers'
/// own allocations are counted beyond it.
fn client_allocations() -> u64 {
    allocations_per_call(&mut ReadyClient)
}

#[test]
fn the_pipeline_without_budgets_allocates_nothing_per_call() {
    let ledger = Ledger::builder().build().unwrap();
    assert_eq!(
        allocations_per_call(&mut pipeline(ledger)),
        client_allocations()
    );
}

#[test]
fn with_budgets_the_one_allocation_is_the_requests_shared_reservation() {
    // the reservation the fallback raises before each attempt and the meter settles is
    // shared by the two through the request's attempt hook: one Arc per metered request
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(1e6)).daily())
        .budget(Budget::per_client(usd(1e3)).daily())
        .build()
        .unwrap();
    assert_eq!(
        allocations_per_call(&mut pipeline(ledger)),
        client_allocations() + 1
    );
}
