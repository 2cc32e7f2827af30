//! `ErrorRateLimitLayer`: throttle the clients that keep causing errors, with progressive
//! penalties, plus per-key request and token rates.
//!
//! - A key per request: the `LlmRequest` client key by default ([`Keyed`]), a closure
//!   ([`KeyFn`]), or one global key when there is none.
//! - Errors each key causes are counted over a sliding window (which errors: the client's own
//!   faults by default, upstream failures when asked, or a predicate). Past the threshold the
//!   key is throttled: its requests get a [`ThrottledError`] (an `LlmError` of kind
//!   `Throttled` with the `llm` feature) carrying retry-after, and never reach the service.
//! - Progressive penalties: each repeated offence doubles the throttle time up to a cap;
//!   good behaviour decays the offence count. Optionally delay instead of reject, with a bound
//!   on how many requests may wait.
//! - Requests and tokens per minute per key (GCRA on one atomic, weighted by tokens).
//! - The rejection message is generic: nothing of the upstream or of other clients.
//! - Memory is bounded under a flood of distinct keys: a cap on keys, idle ones evicted, and
//!   past that new keys share one overflow entry. A known key is found without any lock;
//!   only adding and evicting keys lock one of 32 shards.
//! - A [`LimiterHandle`]: throttled keys with their remaining time, `unthrottle`, counts; a
//!   [`LimiterStore`] trait with the in-memory [`MemoryStore`] default.
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

mod classify;
mod error;
mod service;
mod store;

pub use classify::{
    Count, CountErrors, CountFn, DefaultKey, ErrorClass, KeyFn, Keyed, RateKey, SetUpstream,
};
pub use error::ThrottledError;
pub use service::{
    ConfigError, ErrorRateLimit, ErrorRateLimitLayer, ErrorRateLimitLayerBuilder, GLOBAL_KEY,
    LimiterHandle, ResponseFuture,
};
pub use store::{
    Admit, KeyId, LimiterStats, LimiterStore, MemoryStore, Reason, Rules, ThrottledKey,
};
