//! towerguard's gateway: an HTTP server that any OpenAI or Anthropic client can point at,
//! over the recommended pipeline (error-rate limiter, cost meter, fallback across providers,
//! each behind retry, a circuit breaker and a per-attempt timeout).
//!
//! It is a thin axum shell over the facade's axum glue ([`towerguard::axum`]): that decodes
//! either wire format into an [`LlmRequest`](towerguard_llm_core::LlmRequest) and encodes
//! the answer or error back in the caller's format; the gateway maps the caller's key to a
//! tenant, calls the [`Pipeline`], and adds its headers, metrics and spans. Health,
//! statistics, metrics and admin routes read and act through [`Operations`] (the facade's
//! `PipelineHandle`); nothing here re-implements a layer.
//!
//! Routes: `POST /v1/chat/completions` (OpenAI, complete and `stream: true`),
//! `POST /v1/messages` (Anthropic, complete and streamed), `GET /v1/models`, `GET /health`,
//! `GET /stats`, `GET /metrics` (Prometheus), and with an admin token
//! `POST /admin/providers/{name}/reset|open`, `POST /admin/tenants/{name}/unthrottle`.
//! Errors answer in the caller's format with the status of [`status_for`] and Retry-After.
//!
//! Tracing: a `gen_ai.request` span per request with a `gen_ai.attempt` child per attempt
//! (OpenTelemetry's generative-AI field names). With the `otlp` cargo feature (off by
//! default), the spans are exported over OTLP when `server.otlp_endpoint` is set, and the
//! caller's `traceparent` becomes the request span's parent (see `telemetry`).
//!
//! The binary `towerguard` loads `--config <file>` (or the embedded default) and serves; see
//! the crate's README.
//!
//! Install and run the binary:
//!
//! ```sh
//! cargo install towerguard-gateway
//! towerguard --port 8080    # the embedded default: simulated providers, no API key needed
//! ```
//!
//! # Features
//!
//! None.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod error;
mod handle;
mod metrics;
mod ops;
mod server;
mod settings;
#[cfg(feature = "otlp")]
pub mod telemetry;

pub use handle::PipelineOps;
pub use ops::{BoxFuture, ModelInfo, Operations, ProviderHealth};
pub use server::{
    ATTEMPTS, COST, FALLBACKS, Gateway, LOCAL_TENANT, PROVIDER, Pipeline, REQUEST_ID, TENANT,
    shutdown_signal,
};
pub use settings::{Secret, Settings, Tenant, key_sha256};
pub use towerguard::axum::{
    Format, error_body, error_response, error_response_with_status, retry_after, status_for,
};
