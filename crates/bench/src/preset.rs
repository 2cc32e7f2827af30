//! The facade's preset pipeline, as the suite and the instruction counts measure it: every
//! layer the preset has (per-client limits with an RPM, the cost meter with a global daily
//! and a per-client daily budget, retry, breaker, the per-attempt timeout) over a client.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::Service;
use towerguard::preset::{BudgetSettings, LimitSettings, Pipeline, Preset, ProviderSpec};
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse};

/// The budgets: a global daily budget and a per-client daily budget, both far from reached.
fn budgets() -> BudgetSettings {
    BudgetSettings {
        daily_usd: Some(1e9),
        per_tenant_daily_usd: Some(1e6),
        ..BudgetSettings::default()
    }
}

/// The per-client limits: the default error limits, and an RPM no benchmark reaches.
fn limits() -> LimitSettings {
    LimitSettings {
        rpm: Some(60_000_000_000),
        ..LimitSettings::default()
    }
}

/// One provider `name` served by `client`, with the default retry and breaker and a 30 s
/// per-attempt timeout.
fn spec<C>(name: &'static str, client: C) -> ProviderSpec
where
    C: Service<LlmRequest, Response = LlmResponse, Error = LlmError>
        + Clone
        + Send
        + Sync
        + 'static,
    C::Future: Send + 'static,
{
    ProviderSpec::new(name, client).timeout(Duration::from_secs(30))
}

/// The preset over one provider, `client`. With a single provider the preset builds no
/// fallback layer (there is nothing to fall back to): limits -> cost meter -> retry ->
/// breaker -> timeout -> client.
pub fn one_provider<C>(client: C) -> Pipeline
where
    C: Service<LlmRequest, Response = LlmResponse, Error = LlmError>
        + Clone
        + Send
        + Sync
        + 'static,
    C::Future: Send + 'static,
{
    built(Preset::new().provider(spec("openai", client)))
}

/// The preset over two providers, both `client`, so the fallback layer is in the pipeline
/// too (the primary answers, so the second is never called).
pub fn two_providers<C>(client: C) -> Pipeline
where
    C: Service<LlmRequest, Response = LlmResponse, Error = LlmError>
        + Clone
        + Send
        + Sync
        + 'static,
    C::Future: Send + 'static,
{
    built(
        Preset::new()
            .provider(spec("openai", client.clone()))
            .provider(spec("anthropic", client)),
    )
}

/// `preset` with the benchmarks' budgets and limits, built.
fn built(preset: Preset) -> Pipeline {
    preset
        .budgets(budgets())
        .limits(limits())
        .build()
        .unwrap()
        .0
}
