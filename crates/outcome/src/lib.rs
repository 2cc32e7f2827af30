//! The outcome vocabulary shared by towerguard's layers, with no LLM types in it.
//!
//! - [`Verdict`]: what one outcome means. A success, the client's fault, an upstream failure
//!   (retryable? counts for the breaker? worth a fallback? Retry-After?) or a refusal by one
//!   of our own layers. Each layer reads the part it needs.
//! - [`ClassifyError`]: the one trait an error implements to say its verdict, with defaults
//!   for `std::io::Error` and [`BoxError`] defined once here (our own refusals are never
//!   retried; an unknown error is never the client's fault). `towerguard-llm-core`
//!   implements it for `LlmError` from the design's table.
//! - [`Classify`]: how a layer asks for a result's verdict; [`DefaultClassify`] asks the
//!   error, [`ClassifyFn`] overrides with a closure.
//! - [`ConfigError`]: configuration rejected when a layer is built, naming the field.
//! - [`Clock`]: one clock abstraction; [`TokioClock`] follows tokio's paused clock in tests.
//! - [`AttemptHook`]: how a cost meter above a fallback raises a request's reservation before
//!   each attempt.
//! - [`ShardedCounter`] and [`Lanes`]: what every call writes (a count, the reference count
//!   of the state its future holds) kept once per group of threads, so layers shared by many
//!   threads do not fight over one cache line.
//!
//! ```
//! use towerguard_outcome::{BoxError, ClassifyError, Classify, DefaultClassify, Verdict};
//!
//! // an unknown boxed error is an upstream failure worth retrying, never the client's fault
//! let err: BoxError = "connection dropped".into();
//! let verdict = DefaultClassify.classify(&Err::<(), _>(err));
//! assert!(verdict.is_retryable() && !verdict.is_client_fault());
//!
//! // an io error that says the input was bad is the client's fault
//! let bad = std::io::Error::from(std::io::ErrorKind::InvalidInput);
//! assert_eq!(bad.verdict(), Verdict::client_fault());
//! ```
//!
//! # Features
//!
//! None: no optional parts and no LLM types; the one dependency is tokio (`time`), for the
//! clock.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempt;
mod classify;
mod clock;
mod config;
mod shard;
mod verdict;

pub use attempt::{AttemptBudget, AttemptCheck, AttemptHook, AttemptRefusal, AttemptRefused};
pub use classify::{
    BoxError, Classify, ClassifyError, ClassifyFn, Declared, DefaultClassify, declared_verdict,
};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use config::ConfigError;
pub use shard::{Lane, Lanes, Padded, ShardedCounter, shard_count, this_thread_shard};
pub use verdict::{Failure, Refusal, Verdict};
