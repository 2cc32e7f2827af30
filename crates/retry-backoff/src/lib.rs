//! `RetryLayer`: the only retry loop an LLM pipeline needs.
//!
//! Retries a service's retryable failures with a [`Backoff`] (fixed, linear, exponential,
//! custom; no, full, equal or decorrelated [`Jitter`]), waits out a server's Retry-After hint
//! exactly (up to `max_retry_after`, default 60 s; a longer hint ends the retries at once so a
//! fallback can move on), and keeps retries within a [`RetryBudget`] shared by every clone, so
//! a total outage cannot multiply traffic.
//!
//! Works on any `Service<Req>` with `Req: Clone`. What is retried comes from a [`Classify`]
//! implementation: by default [`DefaultClassifier`], which asks the error ([`RetryHint`]);
//! with the default `llm` feature that is `LlmError`'s policy from the design table, and the
//! number of attempts is recorded in the response's or error's extensions ([`attempts`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use towerguard_llm_core::ErrorKind;
//! use towerguard_retry_backoff::{attempts, Backoff, RetryLayer};
//! use towerguard_testkit::{request, FakeProvider, Outcome};
//!
//! let provider = FakeProvider::scripted("openai", [
//!     Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(2)),
//!     Outcome::fail(ErrorKind::Server),
//! ]);
//! let retry = RetryLayer::builder()
//!     .max_retries(3)
//!     .backoff(Backoff::fixed(Duration::from_millis(100)))
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new().layer(retry).service(provider.clone());
//! let resp = svc.ready().await.unwrap().call(request("gpt-4o")).await.unwrap();
//! assert_eq!(provider.calls(), 3);
//! assert_eq!(attempts(&resp.extensions), 3);
//! # });
//! ```

mod backoff;
mod budget;
mod classify;
mod future;
mod layer;
mod service;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub use classify::{
    Classify, ClassifyFn, Decision, DefaultClassifier, RetryHint, RetryIf, RetryOutcome, StopOn,
};
pub use future::ResponseFuture;
pub use layer::{
    ConfigError, DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_AFTER, OnGiveUp, OnRetry, RetryLayer,
    RetryLayerBuilder,
};
pub use service::Retry;

/// The number of attempts recorded in a response's or error's extensions by the retry layer
/// with the `llm` feature: 1 when nothing was recorded (a first-try success records nothing,
/// so the success path does not allocate).
#[cfg(feature = "llm")]
pub fn attempts(extensions: &http::Extensions) -> u32 {
    extensions
        .get::<towerguard_llm_core::Attempts>()
        .map_or(1, |a| a.0)
}
