//! `CircuitBreakerLayer`: stop calling a provider that is down, probe it carefully, and let
//! the rest of the pipeline (retry, fallback) move on at once.
//!
//! - States closed, open, half-open, plus forced-open, disabled and metrics-only ([`State`]).
//! - Trip on consecutive failures (default 5) and/or a failure or slow-call rate over a true
//!   sliding window: the last N calls, or a duration in buckets. A call older than the
//!   window no longer counts.
//! - What counts: a result whose [`Verdict`] [counts for the breaker](Verdict::counts_for_breaker)
//!   is a failure (its Retry-After may lengthen the open time); a refusal by another of our
//!   layers is ignored; anything else is a success. Override with
//!   [`classify_with`](CircuitBreakerLayerBuilder::classify_with).
//! - Open: calls are rejected at once with a [`CircuitOpenError`] (an `LlmError` of kind
//!   `CircuitOpen` with the `llm` feature) carrying the time left open; the open time can grow
//!   with repeated trips and follows a provider's longer Retry-After.
//! - Half-open: at most N probes at once; enough successes close, one failure re-opens.
//! - A [`CircuitBreakerHandle`] reads state and counts and can reset, force open or disable.
//! - A closed-state success writes only memory of its own thread's shard, so threads do not
//!   slow each other down. Transitions happen once: only the winner sets the open time.
//!
//! Works on any `Service<Req>` whose error is `From<CircuitOpenError>`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use towerguard_circuit_breaker::{CircuitBreakerLayer, State};
//! use towerguard_llm_core::ErrorKind;
//! use towerguard_testkit::{request, FakeProvider, Outcome};
//!
//! let breaker = CircuitBreakerLayer::builder()
//!     .name("deepseek")
//!     .consecutive_failures(2)
//!     .open_duration(Duration::from_secs(30))
//!     .build()
//!     .unwrap();
//! let handle = breaker.handle();
//! let provider = FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Server));
//! let mut svc = ServiceBuilder::new().layer(breaker).service(provider.clone());
//! for _ in 0..2 {
//!     let _ = svc.ready().await.unwrap().call(request("deepseek-chat")).await;
//! }
//! assert_eq!(handle.state(), State::Open);
//! let err = svc.ready().await.unwrap().call(request("deepseek-chat")).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::CircuitOpen);
//! assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
//! assert_eq!(provider.calls(), 2, "the open breaker did not call the provider");
//! # });
//! ```
//!
//! # Features
//!
//! - `llm` (default): `From<CircuitOpenError> for LlmError`, and a streamed `LlmResponse`
//!   judged when its stream ends.
//!
//! Without it (`default-features = false`) the crate works on any `Service<Req>` and does not
//! depend on `towerguard-llm-core`.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod future;
mod handle;
mod layer;
mod service;
mod shard;
mod state;
mod stats;
mod sync;
mod window;

pub use error::CircuitOpenError;
pub use future::ResponseFuture;
pub use handle::CircuitBreakerHandle;
pub use layer::{
    CircuitBreakerLayer, CircuitBreakerLayerBuilder, MAX_COUNT_WINDOW, MAX_HALF_OPEN_PERMITS,
    MAX_TIME_BUCKETS,
};
pub use service::CircuitBreaker;
pub use state::State;
pub use stats::Stats;
pub use towerguard_outcome::{
    Classify, ClassifyError, ClassifyFn, Clock, ConfigError, DefaultClassify, Verdict,
};
pub use window::WindowCounts;

#[cfg(all(test, towerguard_loom))]
mod loom_tests;
