//! A pipeline from a valid configuration.

use std::sync::Arc;
use std::time::Duration;

use super::errors::{ConfigErrors, FieldError};
use super::validate::error_kind;
use super::{Config, ProviderConfig, ProviderKind, UnknownModels};
use crate::preset::{
    BreakerSettings, BudgetSettings, LimitSettings, Pipeline, PipelineHandle, Preset, Price,
    ProviderSpec, RateSettings, RetrySettings,
};
use crate::providers::{Anthropic, ApiKey, Limits, OpenAiCompatible};
use crate::retry::{Backoff, Jitter};
use crate::testkit::{FakeProvider, FaultPlan, Latency};

/// The pipeline of a configuration already validated.
pub(crate) fn pipeline(config: &Config) -> Result<(Pipeline, PipelineHandle), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut preset = Preset::new()
        .strategy(config.fallback.strategy.strategy())
        .health_aware(config.fallback.health_aware)
        .budgets(budgets(config))
        .limits(limits(config));
    for (name, p) in ordered(config) {
        match provider(name, p) {
            Ok(spec) => preset = preset.provider(spec),
            Err(e) => errors.push(e),
        }
    }
    for (model, p) in &config.prices {
        preset = preset.price(
            model,
            price(p.input, p.output, p.cached_input, p.cache_write),
        );
    }
    for (public, a) in &config.aliases {
        preset = preset.alias(public, a.provider.as_str(), a.model.as_str());
    }
    for t in &config.tenants {
        if let Some(daily) = t.budget.daily_usd {
            preset = preset.tenant_budget(t.name.as_str(), daily);
        }
        let l = &t.limits;
        if l.error_threshold.is_some() || l.rpm.is_some() || l.tpm.is_some() {
            let mut own = limits(config);
            own.error_threshold = l.error_threshold.unwrap_or(own.error_threshold);
            own.rpm = l.rpm.or(own.rpm);
            own.tpm = l.tpm.or(own.tpm);
            preset = preset.tenant_limits(t.name.as_str(), own);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    preset.build().map_err(ConfigErrors::from)
}

/// The providers in `fallback.order`, then the others in file order.
fn ordered(config: &Config) -> Vec<(&str, &ProviderConfig)> {
    let all = &config.providers.0;
    let mut out: Vec<(&str, &ProviderConfig)> = config
        .fallback
        .order
        .iter()
        .filter_map(|n| all.get_key_value(n).map(|(k, v)| (k.as_str(), v)))
        .collect();
    for (name, p) in all {
        if !out.iter().any(|(n, _)| *n == name.as_str()) {
            out.push((name, p));
        }
    }
    out
}

fn budgets(config: &Config) -> BudgetSettings {
    let b = &config.budgets;
    BudgetSettings {
        daily_usd: b.daily_usd,
        monthly_usd: b.monthly_usd,
        max_per_request_usd: b.max_per_request_usd,
        alert_threshold: b.alert_threshold,
        per_tenant_daily_usd: b.per_tenant_daily_usd,
        free_unknown_models: b.unknown_models == UnknownModels::Free,
    }
}

fn limits(config: &Config) -> LimitSettings {
    let l = &config.limits;
    LimitSettings {
        error_threshold: l.error_threshold,
        window: l.window,
        penalty: l.penalty,
        max_penalty: l.max_penalty,
        rpm: l.rpm,
        tpm: l.tpm,
    }
}

/// USD per million tokens to the meter's pico-dollars per token.
fn pico(usd_per_million: f64) -> u64 {
    (usd_per_million * 1e6).round().clamp(0.0, u64::MAX as f64) as u64
}

fn price(input: f64, output: f64, cached: Option<f64>, write: Option<f64>) -> Price {
    Price {
        input: pico(input),
        output: pico(output),
        cached_input: pico(cached.unwrap_or(input)),
        cache_write: pico(write.unwrap_or(input)),
    }
}

/// One provider's spec: its client and the settings of its stack.
fn provider(name: &str, p: &ProviderConfig) -> Result<ProviderSpec, FieldError> {
    let at = |f: &str| format!("providers.{name}.{f}");
    let mut spec = match p.kind {
        ProviderKind::Simulated => ProviderSpec::new(name, simulated(name, p)?),
        ProviderKind::Anthropic => {
            let key =
                key(p).ok_or_else(|| FieldError::new(at("api_key_env"), "the key is missing"))?;
            let mut b = Anthropic::builder(key)
                .name(name)
                .limits(http_limits(p.timeout));
            if let Some(url) = &p.base_url {
                b = b.base_url(url.as_str());
            }
            let client = b
                .build()
                .map_err(|e| FieldError::new(at(e.field()), e.to_string()))?;
            ProviderSpec::new(name, client)
        }
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            let url = p
                .base_url
                .clone()
                .or_else(|| default_url(name, p.kind))
                .ok_or_else(|| FieldError::new(at("base_url"), "is needed"))?;
            let mut b = OpenAiCompatible::builder(name, url).limits(http_limits(p.timeout));
            if let Some(key) = key(p) {
                b = b.api_key(key);
            }
            let client = b
                .build()
                .map_err(|e| FieldError::new(at(e.field()), e.to_string()))?;
            ProviderSpec::new(name, client)
        }
    };
    spec = spec
        .timeout(p.timeout)
        .retry(RetrySettings {
            max_retries: p.retry.max_retries,
            backoff: Backoff::exponential(p.retry.backoff, 2.0, p.retry.max_backoff)
                .with_jitter(Jitter::Full),
            ..RetrySettings::default()
        })
        .breaker(BreakerSettings {
            consecutive_failures: Some(p.breaker.consecutive_failures),
            open_duration: p.breaker.open_duration,
            failure_rate: p.breaker.failure_rate,
            ..BreakerSettings::default()
        })
        .rate_limit(RateSettings {
            rpm: p.rate_limit.rpm,
            tpm: p.rate_limit.tpm,
        });
    if let Some(model) = &p.model {
        spec = spec.model(model.as_str());
    }
    Ok(spec)
}

fn key(p: &ProviderConfig) -> Option<ApiKey> {
    p.api_key.as_ref().and_then(|k| ApiKey::new(k.expose()))
}

/// The HTTP client's own whole-request timeout: never shorter than the attempt timeout, so
/// the attempt timeout is the one that fires.
fn http_limits(attempt: Duration) -> Limits {
    let d = Limits::default();
    Limits {
        request_timeout: d.request_timeout.max(attempt + Duration::from_secs(1)),
        ..d
    }
}

/// The base URL of a well-known provider of that kind or name.
fn default_url(name: &str, kind: ProviderKind) -> Option<String> {
    let url = match (kind, name) {
        (ProviderKind::Openai, _) => "https://api.openai.com/v1",
        (_, "deepseek") => "https://api.deepseek.com/v1",
        (_, "xai" | "grok") => "https://api.x.ai/v1",
        (_, "groq") => "https://api.groq.com/openai/v1",
        (_, "mistral") => "https://api.mistral.ai/v1",
        (_, "ollama") => "http://localhost:11434/v1",
        _ => return None,
    };
    Some(url.to_owned())
}

/// A simulated provider: a fake with the configured seeded faults (always healthy without).
fn simulated(name: &str, p: &ProviderConfig) -> Result<FakeProvider, FieldError> {
    let Some(f) = &p.faults else {
        return Ok(FakeProvider::new(name));
    };
    let mut plan = FaultPlan::seeded(f.seed).hang(f.hang_rate);
    for (kind, rate) in &f.rates {
        let field = format!("providers.{name}.faults.rates.{kind}");
        let kind = error_kind(kind).ok_or_else(|| FieldError::new(&field, "not an error kind"))?;
        plan = plan.fail(kind, *rate);
    }
    if let Some(hint) = f.retry_after {
        plan = plan.retry_after(hint);
    }
    plan = plan.latency(match (f.latency, f.latency_max) {
        (None, None) => Latency::None,
        (Some(d), None) => Latency::Fixed(d),
        (min, Some(max)) => Latency::Uniform {
            min: min.unwrap_or_default(),
            max,
        },
    });
    let faults = plan.build().map_err(|e| {
        FieldError::new(
            format!("providers.{name}.faults.{}", e.field()),
            e.to_string(),
        )
    })?;
    Ok(FakeProvider::chaotic(Arc::<str>::from(name), faults))
}
