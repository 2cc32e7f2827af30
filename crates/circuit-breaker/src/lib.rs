//! `CircuitBreakerLayer`: stop calling a provider that is down, probe it carefully, and let
//! the rest of the pipeline (retry, fallback) move on at once.
//!
//! - States closed, open, half-open, plus forced-open, disabled and metrics-only ([`State`]).
//! - Trip on consecutive failures (default 5) and/or a failure or slow-call rate over a true
//!   sliding window: the last N calls, or a duration in buckets. Each costs O(1) per call
//!   whatever the window holds, and a call older than the window no longer counts.
//! - Open: calls are rejected at once with a [`CircuitOpenError`] (an `LlmError` of kind
//!   `CircuitOpen` with the `llm` feature) carrying the time left open; the open time can grow
//!   with repeated trips and follows a provider's longer Retry-After.
//! - Half-open: at most N probes at once; enough successes close, one failure re-opens.
//! - A [`CircuitBreakerHandle`] reads state and counts and can reset, force open or disable.
//! - Lock-free: the closed-state success path reads the shared state and writes only
//!   per-thread memory.
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

mod classify;
mod core;
mod error;
mod future;
mod layer;
mod service;
mod shard;
mod sync;
mod window;

pub use crate::core::{Outcome, State, Stats};
pub use classify::{Classify, ClassifyFn, DefaultClassifier, FailureHint, failure_after};
pub use error::CircuitOpenError;
pub use future::ResponseFuture;
pub use layer::{
    CircuitBreakerHandle, CircuitBreakerLayer, CircuitBreakerLayerBuilder, ConfigError,
};
pub use service::CircuitBreaker;
pub use window::WindowCounts;

#[cfg(all(test, towerguard_loom))]
mod loom_tests;
