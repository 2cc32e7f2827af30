//! Real HTTP clients for the bottom of every pipeline, as `Service<LlmRequest>`:
//! [`OpenAiCompatible`] (OpenAI, DeepSeek, xAI, Groq, Mistral, Ollama, and any custom base URL
//! such as vLLM, a LiteLLM proxy or llama.cpp's server) and [`Anthropic`] (Messages API).
//!
//! - hyper-util's pooled client over rustls (webpki roots); plain HTTP for local servers.
//! - Usage with cached tokens, finish reason, model and provider name on every response;
//!   OpenAI and Anthropic rate-limit headers as [`RateLimitInfo`] in the extensions.
//! - Every failure is an `LlmError` through llm-core's classification (status, body shapes,
//!   `x-should-retry`, Retry-After); connection failures, resets and timeouts as their kinds.
//!   One HTTP call per request: the retry layer is the only retry loop.
//! - Connect and whole-request timeouts; response bodies capped ([`Limits`]); malformed or
//!   truncated JSON is an error, never a panic.
//! - Keys from configuration or the usual environment variables, never in logs, errors or
//!   `Debug` ([`ApiKey`]).
//!
//! - Streams: a request with `stream: true` is sent as a stream (OpenAI-compatible servers are
//!   also asked for usage with `stream_options.include_usage`, unless the request sets
//!   `stream_options`) and answered with a streamed [`LlmResponse`] once its first chunk has
//!   arrived (the commit point of [`towerguard_llm_core::stream`]): before it, every failure
//!   is the call's error, so retry and fallback work as for a complete answer; after it, a
//!   failure is the stream's one error item. The body is read as server-sent events only as
//!   the caller reads the stream; [`Limits`] bounds the wait for the first chunk, the gap
//!   between chunks and the size of one event. A stream that stops without its terminator
//!   ends with a [`Connection`](towerguard_llm_core::ErrorKind::Connection) error, never as
//!   a success.
//!
//! [`LlmResponse`]: towerguard_llm_core::LlmResponse
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tower::ServiceExt;
//! use towerguard_llm_core::{LlmRequest, Message};
//! use towerguard_providers::{Anthropic, OpenAiCompatible};
//!
//! let deepseek = OpenAiCompatible::deepseek()?; // DEEPSEEK_API_KEY
//! let claude = Anthropic::from_env()?;         // ANTHROPIC_API_KEY
//! let req = LlmRequest::new("deepseek-chat", vec![Message::user("Hello")]).with_max_tokens(64);
//! let answer = deepseek.oneshot(req).await?;
//! println!("{} ({} tokens)", answer.text(), answer.usage.total_tokens());
//! # let _ = claude; Ok(()) }
//! ```
//!
//! # Features
//!
//! None. TLS is rustls with the ring provider and the webpki roots: no OpenSSL, no system
//! certificate store.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod anthropic;
mod key;
mod limits;
mod openai;
mod ratelimit;
mod sse;
mod transport;

pub use anthropic::{ANTHROPIC_VERSION, Anthropic, AnthropicBuilder};
pub use key::{ApiKey, Env, ProcessEnv};
pub use limits::{ConfigError, Limits};
pub use openai::{OpenAiCompatible, OpenAiCompatibleBuilder, Preset};
pub use ratelimit::{RateLimitInfo, parse_go_duration};
