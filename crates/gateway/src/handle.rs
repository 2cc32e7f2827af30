//! [`PipelineOps`]: [`Operations`] over the facade's `PipelineHandle`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use towerguard::cost::{Spend, usd};
use towerguard::preset::PipelineHandle;

use crate::ops::{BoxFuture, ModelInfo, Operations, ProviderHealth};

/// [`Operations`] over a preset's [`PipelineHandle`].
///
/// Requests the gateway refuses as malformed never reach the pipeline; they are counted in
/// the pipeline's own error-rate limiter
/// ([`record_client_error`](PipelineHandle::record_client_error)), so a tenant sending
/// garbage is throttled like one whose requests fail by their own fault, with the same
/// rules, in one place.
#[derive(Clone, Debug)]
pub struct PipelineOps {
    handle: PipelineHandle,
}

impl PipelineOps {
    /// Operations over `handle`.
    pub fn new(handle: PipelineHandle) -> Self {
        Self { handle }
    }

    /// The pipeline's handle.
    pub fn handle(&self) -> &PipelineHandle {
        &self.handle
    }
}

fn spend_json(s: &Spend) -> Value {
    json!({
        "requests": s.requests,
        "input_tokens": s.tokens.input,
        "output_tokens": s.tokens.output,
        "cached_input_tokens": s.tokens.cached_input,
        "cache_write_tokens": s.tokens.cache_write,
        "cost_usd": nanos_usd(s.cost),
        "unmetered": s.unmetered,
        "unpriced": s.unpriced,
    })
}

fn nanos_usd(n: u64) -> f64 {
    n as f64 / usd(1.0) as f64
}

fn named(rows: &[(Arc<str>, Spend)]) -> Value {
    Value::Object(
        rows.iter()
            .map(|(k, s)| (k.to_string(), spend_json(s)))
            .collect(),
    )
}

impl Operations for PipelineOps {
    fn health(&self) -> Vec<ProviderHealth> {
        self.handle
            .health()
            .into_iter()
            .map(|p| ProviderHealth {
                name: p.name.to_string(),
                state: p.state.as_str().to_owned(),
                last_error: p.last_error.map(|k| k.as_str().to_owned()),
                success_rate: p.success_rate,
            })
            .collect()
    }

    fn stats(&self) -> BoxFuture<'_, Value> {
        Box::pin(async move {
            let s = self.handle.stats().await;
            let throttled: Vec<Value> = s
                .throttled
                .iter()
                .map(|t| json!({"tenant": t.key, "remaining_secs": t.remaining.as_secs_f64(), "offences": t.offences}))
                .collect();
            let fallback = s.fallback.as_ref().map(|f| {
                json!({
                    "requests": f.requests,
                    "served_by_first": f.served_by_first,
                    "served_after_failure": f.served_after_failure,
                    "served_after_skip": f.served_after_skip,
                    "failed": f.failed,
                    "exhausted": f.exhausted,
                    "stopped": f.stopped,
                    "refused": f.refused,
                    "fallbacks": f.fallbacks,
                    "hedges": f.hedges,
                    "providers": f.providers.iter().map(|p| json!({
                        "name": &*p.name, "served": p.served, "failed": p.failed,
                        "last_error": p.last_error, "down": p.down,
                    })).collect::<Vec<_>>(),
                })
            });
            json!({
                "total": spend_json(&s.ledger.total),
                "providers": named(&s.ledger.providers),
                "models": named(&s.ledger.models),
                "tenants": named(&s.ledger.clients),
                "rows": s.rows.iter().map(|r| json!({
                    "provider": &*r.provider, "model": &*r.model, "spend": spend_json(&r.spend),
                })).collect::<Vec<_>>(),
                "fallback": fallback,
                "throttled": throttled,
                "limiter": {
                    "keys": s.limiter.keys,
                    "throttled": s.limiter.throttled,
                    "rejected": s.limiter.rejected,
                    "errors": s.limiter.errors,
                    "offences": s.limiter.offences,
                },
                "budget_alerts": s.alerts.iter().map(|a| json!({
                    "budget": a.budget, "spent_usd": nanos_usd(a.spent), "limit_usd": nanos_usd(a.limit),
                })).collect::<Vec<_>>(),
            })
        })
    }

    fn reset_provider(&self, name: &str) -> bool {
        self.handle.reset_provider(name)
    }

    fn force_open(&self, name: &str) -> bool {
        self.handle.force_open(name)
    }

    fn unthrottle<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(self.handle.unthrottle(tenant))
    }

    fn client_error<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(self.handle.record_client_error(tenant))
    }

    fn models(&self) -> Vec<ModelInfo> {
        let mut out: Vec<ModelInfo> = self
            .handle
            .aliases()
            .iter()
            .map(|(alias, provider, _)| ModelInfo {
                id: alias.to_string(),
                owned_by: provider.to_string(),
            })
            .collect();
        for p in self.handle.health() {
            if let Some(model) = p.model
                && !out.iter().any(|m| m.id == *model)
            {
                out.push(ModelInfo {
                    id: model.to_string(),
                    owned_by: p.name.to_string(),
                });
            }
        }
        out
    }
}
