//! `FallbackLayer`: when one provider fails, send the same request to the next.
//!
//! - Strategies ([`Strategy`]): priority order (default), cheapest first by price hint, round
//!   robin, fail fast; health-aware on top: providers whose Retry-After or open breaker is
//!   still in the future, or whose health check fails, are skipped and tried last (or the
//!   request waits for the first to recover, [`AllDown`]).
//! - Conditions: by default the error's [`Verdict`](towerguard_outcome::Verdict) from
//!   [`ClassifyError`](towerguard_outcome::ClassifyError) (for `LlmError` the design's
//!   table): fall back iff it says `should_fallback`, and skip the provider for its
//!   `retry_after`. Override with `classify`, `fallback_if`, and `chain_when` per-condition
//!   chains (context length exceeded -> the larger-context chain; content policy -> none).
//! - Cost follows the attempt: if the request carries a meter's
//!   [`AttemptHook`](towerguard_outcome::AttemptHook), it is asked before each attempt with
//!   that provider and model. An exhausted budget ends the request without calling the
//!   provider; an unpriced model is that provider's failure.
//! - Per-provider model mapping, a cap on providers per request, each provider at most once.
//! - When all fail: [`AllProvidersFailed`] with every provider's error, in order (with the
//!   `llm` feature an `LlmError` of kind `AllProvidersFailed` whose client message names none).
//! - `on_fallback` callback, a `tracing` info event per switch, statistics that add up
//!   ([`FallbackHandle`], [`FallbackStats`]).
//! - Optional hedging: after a delay, start the next provider too; the first success wins.
//! - Works on any `Service<Req>`; nests (a fallback layer inside another).
//!
//! While the primary answers, the layer adds no allocation and no lock.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use towerguard_llm_core::{ErrorKind, LlmError};
//! use towerguard_provider_fallback::FallbackLayer;
//! use towerguard_testkit::{request, FakeProvider, Outcome};
//!
//! let primary = FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Overloaded));
//! let backup = FakeProvider::always("openai", Outcome::fail(ErrorKind::Server));
//! let layer = FallbackLayer::builder()
//!     .primary("deepseek")
//!     .provider("openai", backup)
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new().layer(layer).service(primary);
//! let err: LlmError = svc.ready().await.unwrap().call(request("m")).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::AllProvidersFailed);
//! let tried: Vec<_> = err.attempts().iter().map(|e| (e.provider(), e.kind())).collect();
//! assert_eq!(tried, [(Some("deepseek"), ErrorKind::Overloaded), (Some("openai"), ErrorKind::Server)]);
//! # });
//! ```
//!
//! # Features
//!
//! - `llm` (default): [`FallbackLayer::builder`] for `LlmRequest` / `LlmError` (model
//!   mapping per provider, the cost meter's attempt hook),
//!   `From<AllProvidersFailed<LlmError>> for LlmError`, and the providers tried before the
//!   one that answered in the response's extensions.
//!
//! Without it (`default-features = false`) the crate works on any `Service<Req>` and does not
//! depend on `towerguard-llm-core`.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempts;
mod error;
mod future;
mod health;
mod layer;
mod plan;
mod service;
mod shared;
mod stats;

pub use error::AllProvidersFailed;
pub use future::ResponseFuture;
pub use health::AllDown;
pub use layer::{FallbackLayer, FallbackLayerBuilder};
pub use plan::Strategy;
pub use service::Fallback;
pub use stats::{FallbackHandle, FallbackStats, ProviderStats};
pub use towerguard_outcome::ConfigError;

/// Most providers one layer can hold (the wrapped primary included).
pub const MAX_PROVIDERS: usize = 16;
