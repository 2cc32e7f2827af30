//! Fault-injecting fake LLM providers for tests, benchmarks and demos.
//!
//! A [`FakeProvider`] is a `Service<LlmRequest>` that plays a script of [`Outcome`]s (success
//! with a given usage, any [`ErrorKind`](towerguard_llm_core::ErrorKind) with or without
//! Retry-After, a latency, a hang) or draws them from seeded random [`Faults`], and counts the
//! calls it received. Latencies use tokio's clock, so tests with a paused clock run instantly.
//!
//! A request that asks for a stream (`options().stream`) gets its success as a streamed
//! answer, billed like the complete one; [`Outcome::stream`] scripts the exact chunks, and
//! [`Outcome::chunk_latency`], [`cut_after`](Outcome::cut_after),
//! [`stall_after`](Outcome::stall_after), [`error_after`](Outcome::error_after) and
//! [`garbage_after`](Outcome::garbage_after) how the stream goes (after 0 chunks: the call
//! itself fails, as before the commit point). [`FaultPlan`] draws the same stream faults at
//! random, and [`FakeProvider::streams_started`] with its `streams_completed`,
//! `streams_failed` and `streams_dropped` account for every stream.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{Service, ServiceExt};
//! use towerguard_llm_core::{ErrorKind, Usage};
//! use towerguard_testkit::{FakeProvider, FaultPlan, Outcome, request};
//!
//! // A script: a rate limit with a hint, then a slow success.
//! let mut openai = FakeProvider::scripted("openai", [
//!     Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(2)),
//!     Outcome::ok_with_usage(Usage::new(50, 10)).after(Duration::from_millis(800)),
//! ]);
//! let err = openai.ready().await.unwrap().call(request("gpt-4o")).await.unwrap_err();
//! assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
//! let ok = openai.ready().await.unwrap().call(request("gpt-4o")).await.unwrap();
//! assert_eq!(ok.usage, Usage::new(50, 10));
//!
//! // Seeded chaos: 30 % server errors.
//! let faults = FaultPlan::seeded(42).fail(ErrorKind::Server, 0.3).build().unwrap();
//! let mut flaky = FakeProvider::chaotic("deepseek", faults);
//! for _ in 0..100 {
//!     let _ = flaky.ready().await.unwrap().call(request("deepseek-chat")).await;
//! }
//! assert_eq!(flaky.calls(), 100);
//! assert!((15..=45).contains(&flaky.failures()));
//!
//! // A stream cut after 3 chunks ends with a Connection error item.
//! let mut cut = FakeProvider::always("anthropic", Outcome::ok().cut_after(3));
//! let mut req = request("claude-sonnet-4-5");
//! req.options_mut().stream = true;
//! let resp = cut.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(resp.into_complete().await.unwrap_err().kind(), ErrorKind::Connection);
//! assert_eq!((cut.streams_started(), cut.streams_failed()), (1, 1));
//! # });
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

mod faults;
mod outcome;
mod provider;
mod ready;
mod stream;

pub use faults::{ConfigError, FaultPlan, Faults, Latency};
pub use outcome::{Outcome, typical_status};
pub use provider::{DEFAULT_OUTPUT_TOKENS, FakeFuture, FakeProvider, FakeProviderBuilder};
pub use ready::ReadyClient;

use towerguard_llm_core::{LlmRequest, Message};

/// A small request for `model` with one user message, for tests.
pub fn request(model: &str) -> LlmRequest {
    LlmRequest::new(model, vec![Message::user("Say hello in one word.")]).with_max_tokens(64)
}

/// Drives one request through a service whose future answers at once, without a runtime:
/// polls it ready, calls it and polls the future once. Returns whether it answered `Ok` on
/// that first poll. For allocation tests and benchmarks of a layer's own cost.
pub fn call_now<S, Req>(svc: &mut S, req: Req) -> bool
where
    S: tower_service::Service<Req>,
{
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = std::pin::pin!(svc.call(req));
    matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_)))
}
