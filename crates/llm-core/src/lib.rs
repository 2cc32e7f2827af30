//! The types every towerguard layer speaks: [`LlmRequest`] (the whole chat API: [`Message`]s
//! of text or [`Part`]s, [`ToolCall`]s, [`ChatOptions`] with tools, output format, reasoning
//! and pass-through fields), [`LlmResponse`] with its [`Choice`]s and [`Usage`], the error
//! model [`LlmError`] / [`ErrorKind`], the classification helpers that turn a provider's HTTP
//! answer into an [`LlmError`], and both wire formats ([`wire`]: OpenAI's chat completions and
//! Anthropic's Messages).
//!
//! This crate is not a layer. Layer crates depend on it behind their `llm` feature and use
//! [`ErrorKind`]'s default policy (retry? count for the breaker? fall back?) unless the user
//! overrides it.
//!
//! ```
//! use http::HeaderMap;
//! use towerguard_llm_core::{classify_http_error, ErrorKind, LlmRequest, Message};
//!
//! let req = LlmRequest::new("claude-sonnet-4-5", vec![Message::user("Hi")]).with_max_tokens(64);
//! assert_eq!(req.params().max_tokens, Some(64));
//!
//! // What an Anthropic 529 means to every layer:
//! let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
//! let err = classify_http_error(529, &HeaderMap::new(), body).with_provider("anthropic");
//! assert_eq!(err.kind(), ErrorKind::Overloaded);
//! assert!(err.is_retryable() && err.counts_for_breaker() && err.should_fallback());
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

mod classify;
mod error;
mod message;
mod options;
mod redact;
mod request;
mod response;
pub mod stream;
pub mod wire;

pub use classify::{
    ProviderErrorBody, classify_http_error, classify_http_error_at, parse_error_body,
    parse_retry_after, parse_retry_after_at,
};
pub use error::{ErrorKind, LlmError, MAX_DETAIL_LEN};
pub use message::{CacheControl, Content, MediaSource, Message, Part, Role, ToolCall};
pub use options::{ChatOptions, ResponseFormat, Thinking, Tool, ToolChoice};
pub use redact::{REDACTED, redact_secrets};
pub use request::{ClientKey, LlmRequest, RequestId, SamplingParams};
pub use response::{Choice, FinishReason, LlmResponse, Usage};
pub use stream::{Chunk, ChunkStream, Ended, StreamEnd, ToolCallDelta};
/// The shared outcome vocabulary ([`Verdict`](towerguard_outcome::Verdict), the clock, ...).
pub use towerguard_outcome as outcome;

/// The providers a fallback tried before the one that answered, in order, each with the
/// label of its error (the error kind's name for an [`LlmError`]). The fallback layer puts
/// it in the extensions of an `LlmResponse` served after a failure (never on a first-choice
/// answer, which stays allocation-free).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tried(pub Vec<(std::sync::Arc<str>, &'static str)>);

/// The number of attempts a layer made for a request, stored in the extensions of the
/// response or error it returns (the retry layer sets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempts(pub u32);
