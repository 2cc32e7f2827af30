//! towerguard: tower middleware that makes calls to LLM providers survive rate limits,
//! outages, timeouts, overloaded models, runaway cost and abusive clients.
//!
//! This crate is the front door. It re-exports every towerguard crate under a short name, and
//! builds the recommended pipeline from a few settings ([`preset`]) or from a TOML file with
//! environment overrides ([`config`]):
//!
//! ```text
//! aliases -> ErrorRateLimit -> CostMeter -> Fallback over providers
//!     each provider: Retry -> CircuitBreaker -> Timeout (per attempt) -> client
//! ```
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use tower::ServiceExt;
//! use towerguard::config::Config;
//! use towerguard::llm::{LlmRequest, Message};
//!
//! // the built-in configuration: three simulated providers, budgets and limits
//! let config = Config::embedded_default();
//! let (pipeline, handle) = config.pipeline()?;
//! let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("Hello")])
//!     .with_max_tokens(64)
//!     .with_client_key("tenant-1");
//! let answer = pipeline.oneshot(req).await?;
//! println!("{} answered: {}", answer.provider(), answer.text());
//! for p in handle.health() {
//!     println!("{}: {} (last error {:?})", p.name, p.state, p.last_error);
//! }
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! In an axum service that is not the gateway, [`axum`](mod@axum) decodes and answers both
//! wire formats; a handler is three lines:
//!
//! ```
//! use axum::extract::State;
//! use tower::ServiceExt;
//! use towerguard::axum::{OpenAiRequest, OpenAiResponse};
//! use towerguard::preset::Pipeline;
//!
//! async fn chat(State(p): State<Pipeline>, OpenAiRequest(req): OpenAiRequest) -> OpenAiResponse {
//!     OpenAiResponse(p.oneshot(req).await)
//! }
//! # let _: axum::Router = axum::Router::new()
//! #     .route("/v1/chat/completions", axum::routing::post(chat))
//! #     .with_state(towerguard::config::Config::embedded_default().pipeline().unwrap().0);
//! ```
//!
//! # Features
//!
//! Each crate is behind a feature of its short name, all on by default:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `llm` | [`llm`] | `towerguard-llm-core`: requests, responses, the error model |
//! | `outcome` | [`outcome`] | `towerguard-outcome`: verdicts, classification, `ConfigError`, the clock |
//! | `retry` | [`retry`] | `towerguard-retry-backoff` |
//! | `breaker` | [`breaker`] | `towerguard-circuit-breaker` |
//! | `fallback` | [`fallback`] | `towerguard-provider-fallback` |
//! | `cost` | [`cost`] | `towerguard-cost-meter` |
//! | `limit` | [`limit`] | `towerguard-error-rate-limit` |
//! | `providers` | [`providers`] | `towerguard-providers`: HTTP clients |
//! | `testkit` | [`testkit`] | `towerguard-testkit`: fake providers |
//! | `config` | [`config`] | TOML configuration (needs all of the above) |
//! | `axum` | [`axum`](mod@axum) | extractors and responses for axum services, both wire formats |
//!
//! [`preset`] is there when `retry`, `breaker`, `fallback`, `cost` and `limit` are.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub use towerguard_circuit_breaker as breaker;
#[cfg(feature = "cost")]
#[cfg_attr(docsrs, doc(cfg(feature = "cost")))]
pub use towerguard_cost_meter as cost;
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub use towerguard_error_rate_limit as limit;
#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub use towerguard_llm_core as llm;
#[cfg(feature = "outcome")]
#[cfg_attr(docsrs, doc(cfg(feature = "outcome")))]
pub use towerguard_outcome as outcome;
#[cfg(feature = "fallback")]
#[cfg_attr(docsrs, doc(cfg(feature = "fallback")))]
pub use towerguard_provider_fallback as fallback;
#[cfg(feature = "providers")]
#[cfg_attr(docsrs, doc(cfg(feature = "providers")))]
pub use towerguard_providers as providers;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use towerguard_retry_backoff as retry;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use towerguard_testkit as testkit;

#[cfg(all(
    feature = "outcome",
    feature = "retry",
    feature = "breaker",
    feature = "fallback",
    feature = "cost",
    feature = "limit"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "outcome",
        feature = "retry",
        feature = "breaker",
        feature = "fallback",
        feature = "cost",
        feature = "limit"
    )))
)]
pub mod preset;

#[cfg(all(feature = "config", feature = "outcome"))]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;

#[cfg(feature = "axum")]
pub mod axum;
