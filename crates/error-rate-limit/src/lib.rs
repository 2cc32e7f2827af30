//! `ErrorRateLimitLayer`: throttle the clients that keep causing errors, with progressive
//! penalties, plus per-key request and token rates. It works on any `Service<Req>`.
//!
//! A request's key is its `LlmRequest` client key ([`Keyed`]) or a closure's ([`KeyFn`]).
//! What counts against a key is the shared [`Verdict`](towerguard_outcome::Verdict): the
//! client's own faults, upstream failures only when asked, our own refusals never; a closure
//! overrides it. Past the threshold of errors in a sliding window the key gets a
//! [`ThrottledError`] (retry-after, generic message) without reaching the service; each
//! repeated offence doubles the penalty. Optional per-key RPM/TPM, and a delay mode. State
//! lives in a [`LimiterStore`] answering futures; [`MemoryStore`] answers at once, is
//! bounded, and forgets keys with nothing left to remember.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{BoxError, Layer, ServiceExt, service_fn};
//! use towerguard_error_rate_limit::{ErrorRateLimitLayer, ThrottledError};
//!
//! // a login backend: a wrong password is the client's fault (an io `InvalidInput`)
//! let backend = service_fn(|(_ip, ok): (&'static str, bool)| async move {
//!     match ok {
//!         true => Ok("welcome"),
//!         false => Err(BoxError::from(std::io::Error::from(std::io::ErrorKind::InvalidInput))),
//!     }
//! });
//! let limiter = ErrorRateLimitLayer::builder()
//!     .threshold(3)
//!     .penalty(Duration::from_secs(60), Duration::from_secs(3600))
//!     .key_with(|(ip, _): &(&'static str, bool)| Some(*ip))
//!     .build()?;
//! let svc = limiter.layer(backend);
//! for _ in 0..3 {
//!     svc.clone().oneshot(("203.0.113.9", false)).await.unwrap_err();
//! }
//! // throttled: even the right password waits out the penalty, without reaching the backend
//! let err = svc.clone().oneshot(("203.0.113.9", true)).await.unwrap_err();
//! let throttled = err.downcast_ref::<ThrottledError>().unwrap();
//! assert_eq!(throttled.retry_after(), Duration::from_secs(60));
//! assert_eq!(svc.oneshot(("198.51.100.7", true)).await.unwrap(), "welcome");
//! # Ok::<_, BoxError>(()) }).unwrap();
//! ```
//!
//! # Features
//!
//! - `llm` (default): [`Keyed`] for `LlmRequest` (its client key and token weight),
//!   `From<ThrottledError> for LlmError`, and a streamed answer judged when its stream ends.
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
mod key;
mod key_state;
mod key_table;
mod layer;
mod penalty;
mod rate;
mod service;
mod store;
mod waiters;

pub use error::ThrottledError;
pub use future::ResponseFuture;
pub use key::{DefaultKey, GLOBAL_KEY, KeyFn, Keyed, RateKey};
pub use layer::{ErrorRateLimitLayer, ErrorRateLimitLayerBuilder};
pub use service::ErrorRateLimit;
pub use store::{
    Admit, KeyId, LimiterHandle, LimiterStats, LimiterStore, MemoryStore, Reason, Rules,
    ThrottledKey,
};
pub use towerguard_outcome::ConfigError;
