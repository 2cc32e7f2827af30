//! What the gateway reads from and does to the pipeline: the [`Operations`] trait.
//!
//! The gateway re-implements no layer: health, statistics, the admin actions and the
//! error-rate limiter's count of malformed requests all go through an [`Operations`]
//! implementation, normally the facade's `PipelineHandle` (see [`crate::config`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One provider's health, as `GET /health` shows it and `/metrics` exports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHealth {
    /// The provider's name.
    pub name: String,
    /// Its breaker's state: `closed`, `half_open`, `open`, `forced_open`, `disabled`, ...
    pub state: String,
    /// The kind of its last error, if known.
    pub last_error: Option<String>,
    /// The share of successes among its recent calls (0.0..=1.0), if it had any.
    pub success_rate: Option<f64>,
}

impl ProviderHealth {
    /// Whether the provider takes requests (its breaker is not open).
    pub fn is_up(&self) -> bool {
        !matches!(self.state.as_str(), "open" | "forced_open")
    }
}

/// A model `GET /v1/models` lists: an alias or a provider's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The name a client sends as `model`.
    pub id: String,
    /// Who serves it (the provider, or `towerguard` for an alias).
    pub owned_by: String,
}

/// The pipeline's state and controls, as the gateway needs them.
///
/// Every method is cheap or asynchronous; none blocks a runtime thread.
pub trait Operations: Send + Sync + 'static {
    /// Each provider's health, in fallback order.
    fn health(&self) -> Vec<ProviderHealth>;

    /// The statistics `GET /stats` answers (ledger per provider, model and tenant; fallbacks;
    /// throttled tenants), as JSON.
    fn stats(&self) -> BoxFuture<'_, serde_json::Value>;

    /// Closes the breaker of the provider named `name`; false if there is none.
    fn reset_provider(&self, name: &str) -> bool;

    /// Forces open the breaker of the provider named `name`; false if there is none.
    fn force_open(&self, name: &str) -> bool;

    /// Lifts the throttle of `tenant`; false if it was not tracked.
    fn unthrottle<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, bool>;

    /// Counts a request the gateway refused as malformed against `tenant` in the error-rate
    /// limiter. Answers `Some(retry_after)` when the tenant is throttled (already, or by
    /// this error), so the gateway answers 429 instead of 400.
    fn client_error<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Option<Duration>>;

    /// The models `GET /v1/models` lists.
    fn models(&self) -> Vec<ModelInfo>;
}
