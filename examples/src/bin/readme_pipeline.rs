//! The README's pipeline with real providers, exactly as the README prints it (a test in
//! `examples/tests/readme.rs` checks the two stay the same), so its code is known to compile.
//!
//! It builds the pipeline from the environment's API keys (`DEEPSEEK_API_KEY`,
//! `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`) and sends nothing: without the keys it says which
//! one is missing.
//!
//! `cargo run -p towerguard-examples --bin readme_pipeline`

use std::error::Error;

use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_providers::{Anthropic, OpenAiCompatible};
use towerguard_retry_backoff::{LlmAttempts, RetryLayer};

fn main() -> Result<(), Box<dyn Error>> {
    // README-BEGIN
    type Provider = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

    fn stack(
        client: impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
        name: &str,
    ) -> Result<Provider, Box<dyn Error>> {
        Ok(BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(
                    RetryLayer::builder()
                        .max_retries(2)
                        .record_attempts(LlmAttempts)
                        .build()?,
                )
                .layer(CircuitBreakerLayer::named(name))
                .service(client),
        ))
    }

    let ledger = Ledger::builder()
        .budget(Budget::global(usd(50.0)).daily())
        .budget(Budget::per_client(usd(5.0)).daily())
        .build()?;
    let client = ServiceBuilder::new()
        .layer(
            ErrorRateLimitLayer::builder()
                .requests_per_minute(600)
                .build()?,
        )
        .layer(CostMeterLayer::new(ledger.clone()))
        .layer(
            FallbackLayer::builder()
                .primary("deepseek")
                .provider("openai", stack(OpenAiCompatible::openai()?, "openai")?)
                .model_for("openai", "gpt-4o-mini")
                .provider("anthropic", stack(Anthropic::from_env()?, "anthropic")?)
                .model_for("anthropic", "claude-sonnet-4-5")
                .build()?,
        )
        .service(stack(OpenAiCompatible::deepseek()?, "deepseek")?);
    // README-END
    let _ = client;
    println!(
        "pipeline built: error rate limit -> cost meter -> fallback over deepseek, openai, anthropic"
    );
    Ok(())
}
