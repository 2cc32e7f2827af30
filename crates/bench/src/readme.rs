//! The README's pipeline, as the benches and the instruction counts measure it.
#![allow(clippy::unwrap_used)]

use tower::{Service, ServiceBuilder};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse, Message};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::RetryLayer;

/// A client key per thread, so per-client state is not shared between threads.
pub fn request(thread: usize) -> LlmRequest {
    LlmRequest::new("gpt-4o-mini", vec![Message::user("Say hello in one word.")])
        .with_max_tokens(64)
        .with_client_key(format!("tenant-{thread}"))
}

/// Retry -> CircuitBreaker -> the client, as the README stacks each provider.
pub fn provider<C>(
    name: &'static str,
    client: C,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static
where
    C: Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
{
    ServiceBuilder::new()
        .layer(RetryLayer::builder().max_retries(2).build().unwrap())
        .layer(CircuitBreakerLayer::named(name))
        .service(client)
}

/// The README's pipeline over three providers that are all `client`; `global` adds the one
/// exact global budget every call must touch.
pub fn ours<C>(
    client: C,
    global: bool,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone + Send
where
    C: Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
{
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
                .provider("openai", provider("openai", client.clone()))
                .provider("anthropic", provider("anthropic", client.clone()))
                .build()
                .unwrap(),
        )
        .service(provider("deepseek", client))
}
