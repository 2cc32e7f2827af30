//! Prometheus metrics, per gateway (a recorder of its own, so two gateways in one process,
//! as in tests, keep separate counts).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `towerguard_requests_total` | counter | `format`, `status` |
//! | `towerguard_errors_total` | counter | `format`, `kind` |
//! | `towerguard_request_duration_seconds` | histogram | `format` |
//! | `towerguard_tokens_total` | counter | `provider`, `type` (`input`, `output`) |
//! | `towerguard_cost_usd_total` | gauge (only grows) | `provider` |
//! | `towerguard_breaker_state` | gauge: 0 closed, 1 half open, 2 open | `provider` |
//! | `towerguard_provider_success_rate` | gauge | `provider` |

use std::time::Duration;

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use towerguard_llm_core::{ErrorKind, Usage};

use crate::ops::ProviderHealth;
use towerguard::axum::Format;

const DURATION: &str = "towerguard_request_duration_seconds";

/// The gateway's recorder and the handle that renders it.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        let builder = PrometheusBuilder::new();
        // `set_buckets_for_metric` only fails on an empty bucket list.
        let builder = match builder.set_buckets_for_metric(Matcher::Full(DURATION.into()), &buckets)
        {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    fn with(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// Counts one answered request.
    pub(crate) fn request(&self, format: Format, status: u16, elapsed: Duration) {
        self.with(|| {
            metrics::counter!("towerguard_requests_total", "format" => format.as_str(), "status" => status.to_string())
                .increment(1);
            metrics::histogram!(DURATION, "format" => format.as_str()).record(elapsed.as_secs_f64());
        });
    }

    /// Counts one error by kind (`unauthorized` and `body_too_large` for the gateway's own).
    pub(crate) fn error(&self, format: Format, kind: &'static str) {
        self.with(|| {
            metrics::counter!("towerguard_errors_total", "format" => format.as_str(), "kind" => kind)
                .increment(1);
        });
    }

    /// Counts an error of this kind.
    pub(crate) fn error_kind(&self, format: Format, kind: ErrorKind) {
        self.error(format, kind.as_str());
    }

    /// Counts the tokens and cost of one answer.
    pub(crate) fn usage(&self, provider: &str, usage: &Usage, cost: Option<f64>) {
        let provider = provider.to_owned();
        self.with(|| {
            metrics::counter!("towerguard_tokens_total", "provider" => provider.clone(), "type" => "input")
                .increment(usage.total_input_tokens());
            metrics::counter!("towerguard_tokens_total", "provider" => provider.clone(), "type" => "output")
                .increment(usage.output_tokens);
            if let Some(cost) = cost {
                metrics::gauge!("towerguard_cost_usd_total", "provider" => provider).increment(cost);
            }
        });
    }

    /// The Prometheus text, with the breaker gauges set from `health` first.
    pub(crate) fn render(&self, health: &[ProviderHealth]) -> String {
        self.with(|| {
            for p in health {
                let state = match p.state.as_str() {
                    "closed" | "disabled" | "metrics_only" => 0.0,
                    "half_open" => 1.0,
                    _ => 2.0,
                };
                metrics::gauge!("towerguard_breaker_state", "provider" => p.name.clone()).set(state);
                if let Some(rate) = p.success_rate {
                    metrics::gauge!("towerguard_provider_success_rate", "provider" => p.name.clone())
                        .set(rate);
                }
            }
        });
        self.handle.render()
    }
}
