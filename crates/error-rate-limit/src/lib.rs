//! `ErrorRateLimitLayer`: throttle the clients that keep causing errors, with progressive
//! penalties, plus per-key request and token rates.
//!
//! - A key per request: the `LlmRequest` client key by default ([`Keyed`]), a closure
//!   ([`KeyFn`]), or one global key when there is none.
//! - Which outcomes count against a key comes from the shared verdict
//!   ([`towerguard_outcome::Verdict`]): the client's own faults by default, upstream failures
//!   that say the upstream is unhealthy when asked, our own layers' refusals never; a
//!   closure overrides it. An unknown boxed error is never the client's fault.
//! - Errors are counted over a sliding window; past the threshold the key is throttled: its
//!   requests get a [`ThrottledError`] (an `LlmError` of kind `Throttled` with the `llm`
//!   feature) carrying retry-after, and never reach the service. The message is generic.
//! - Progressive penalties: each repeated offence doubles the throttle up to a cap; one
//!   offence is forgiven per decay period.
//! - Requests and tokens per minute per key (GCRA, weighted by tokens).
//! - Delay mode: refused requests wait instead, are asked again after the wait, go in arrival
//!   order per key, and at most `max_waiting` wait.
//! - Bounded state that forgets: a key with nothing left to remember is evicted to make room,
//!   at a bounded cost per request; see [`MemoryStore`].
//! - State lives in a [`LimiterStore`] whose methods answer futures, so a store shared by a
//!   fleet (Redis) can do its round trip without blocking; [`MemoryStore`] answers at once.
//! - A [`LimiterHandle`]: throttled keys, `unthrottle`, counts, `reset`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use tower::{ServiceBuilder, ServiceExt};
//! use towerguard_error_rate_limit::ErrorRateLimitLayer;
//! use towerguard_llm_core::{ErrorKind, LlmRequest, Message};
//! use towerguard_testkit::FakeProvider;
//!
//! let limiter = ErrorRateLimitLayer::builder().requests_per_minute(60).build().unwrap();
//! let svc = ServiceBuilder::new().layer(limiter).service(FakeProvider::new("openai"));
//! let req = || LlmRequest::new("gpt-4o", vec![Message::user("hi")]).with_client_key("acme");
//! // a burst of 6 (a tenth of the minute's allowance) passes, the 7th waits its turn
//! for _ in 0..6 {
//!     svc.clone().oneshot(req()).await.unwrap();
//! }
//! let err = svc.clone().oneshot(req()).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Throttled);
//! assert_eq!(err.client_message(), "too many requests; slow down");
//! # });
//! ```

mod error;
mod future;
mod handle;
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
pub use handle::LimiterHandle;
pub use key::{DefaultKey, GLOBAL_KEY, KeyFn, Keyed, RateKey};
pub use layer::{ErrorRateLimitLayer, ErrorRateLimitLayerBuilder};
pub use service::ErrorRateLimit;
pub use store::{
    Admit, KeyId, LimiterStats, LimiterStore, MemoryStore, Reason, Rules, ThrottledKey,
};
pub use towerguard_outcome::ConfigError;
