//! `RetryLayer`: the only retry loop an LLM pipeline needs.
//!
//! Retries a service's retryable failures with a [`Backoff`] (fixed, linear, exponential,
//! custom; no, full, equal or decorrelated [`Jitter`]), waits out a server's Retry-After hint
//! exactly (up to `max_retry_after`, default 60 s; a longer hint ends the retries at once so a
//! fallback can move on), and keeps retries within a [`RetryBudget`] shared by every clone, so
//! a total outage cannot multiply traffic.
//!
//! Works on any `Service<Req>` with `Req: Clone`. A result is retried iff its [`Verdict`]
//! (from [`towerguard_outcome`]) [`is_retryable`](Verdict::is_retryable): by default the
//! error's own verdict ([`ClassifyError`]), which for `LlmError` is the design's table and for
//! a `BoxError` the verdict declared in its source chain, so our layers' refusals are never
//! retried. Override it with [`retry_if`](RetryLayerBuilder::retry_if),
//! [`classify_with`](RetryLayerBuilder::classify_with) or
//! [`stop_on`](RetryLayerBuilder::stop_on). With the `llm` feature, [`LlmAttempts`] records
//! the number of attempts in the response's or error's extensions (read with [`attempts`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use towerguard_llm_core::ErrorKind;
//! use towerguard_retry_backoff::{attempts, Backoff, LlmAttempts, RetryLayer};
//! use towerguard_testkit::{request, FakeProvider, Outcome};
//!
//! let provider = FakeProvider::scripted("openai", [
//!     Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(2)),
//!     Outcome::fail(ErrorKind::Server),
//! ]);
//! let retry = RetryLayer::builder()
//!     .max_retries(3)
//!     .backoff(Backoff::fixed(Duration::from_millis(100)))
//!     .record_attempts(LlmAttempts)
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new().layer(retry).service(provider.clone());
//! let resp = svc.ready().await.unwrap().call(request("gpt-4o")).await.unwrap();
//! assert_eq!(provider.calls(), 3);
//! assert_eq!(attempts(&resp.extensions), 3);
//! # });
//! ```
//!
//! # Features
//!
//! - `llm` (default): [`LlmAttempts`] and [`attempts`], the attempt count recorded in an
//!   `LlmResponse`'s or `LlmError`'s extensions (adds `towerguard-llm-core` and `http`).
//!
//! Without it (`default-features = false`) the crate works on any `Service<Req>` and does not
//! depend on `towerguard-llm-core`.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod budget;
mod error;
mod future;
mod layer;
#[cfg(all(test, towerguard_loom))]
mod loom_tests;
mod policy;
mod service;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub use error::ConfigError;
pub use future::ResponseFuture;
pub use layer::{DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_AFTER, RetryLayer, RetryLayerBuilder};
#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub use policy::{LlmAttempts, attempts};
pub use policy::{OnGiveUp, OnRetry, RecordAttempts, RetryIf, StopOn};
pub use service::Retry;
pub use towerguard_outcome::{Classify, ClassifyError, ClassifyFn, DefaultClassify, Verdict};
