//! Axum glue for services that are not gateways: extractors that decode a request in either
//! wire format, and responses that encode an answer or an error back in it.
//!
//! A handler serving OpenAI's chat completions over a [`Pipeline`](crate::preset::Pipeline)
//! is three lines:
//!
//! ```
//! use axum::extract::State;
//! use tower::ServiceExt;
//! use towerguard::axum::{AnthropicRequest, AnthropicResponse, OpenAiRequest, OpenAiResponse};
//! use towerguard::preset::Pipeline;
//!
//! async fn chat(State(p): State<Pipeline>, OpenAiRequest(req): OpenAiRequest) -> OpenAiResponse {
//!     OpenAiResponse(p.oneshot(req).await)
//! }
//!
//! async fn messages(State(p): State<Pipeline>, AnthropicRequest(req): AnthropicRequest) -> AnthropicResponse {
//!     AnthropicResponse(p.oneshot(req).await)
//! }
//!
//! # fn app(pipeline: Pipeline) -> axum::Router {
//! axum::Router::new()
//!     .route("/v1/chat/completions", axum::routing::post(chat))
//!     .route("/v1/messages", axum::routing::post(messages))
//!     .with_state(pipeline)
//! # }
//! ```
//!
//! - [`OpenAiRequest`] / [`AnthropicRequest`] read the body within axum's
//!   [`DefaultBodyLimit`](::axum::extract::DefaultBodyLimit) (2 MiB unless set) and decode it;
//!   a refused body is a [`RequestRejection`] answering in that format: 400 naming the field
//!   (`messages[0].role: ...`), 413 when the body is too large. The content type is not
//!   checked: the body is JSON whatever it says (`curl -d` sends a form type).
//! - [`OpenAiResponse`] / [`AnthropicResponse`] answer a complete [`LlmResponse`] as JSON and
//!   a streamed one as server-sent events, each written as the client reads it; an
//!   [`LlmError`] with the status of [`status_for`], `Retry-After` (see [`retry_after`]) and
//!   only its [client-safe message](LlmError::client_message), never the operator detail or
//!   a provider's body. An error answer carries its [`ErrorKind`] in the response's
//!   extensions, for a middleware that logs or counts.
//! - A pipeline answers in the shape the request asked for (a stream for `stream: true`);
//!   [`as_requested`] makes sure of it when yours may not.

mod error;
mod request;
mod response;

pub use error::{error_body, error_response, error_response_with_status, retry_after, status_for};
pub use request::{AnthropicRequest, OpenAiRequest, RequestRejection};
pub use response::{AnthropicResponse, OpenAiResponse, as_requested, response};

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::axum::body::{Body, Bytes};
use ::axum::extract::{FromRequest, Request};
use ::axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use ::axum::http::{HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, Response};
use futures_core::Stream;
use serde_json::json;

use crate::llm::wire::{anthropic_sse, openai_sse};
use crate::llm::{
    Chunk, ChunkStream, ErrorKind, LlmError, LlmRequest, LlmResponse, Part, RequestId,
    ToolCallDelta,
};

/// The wire format a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI chat completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

impl Format {
    /// The format's name in logs and metrics (`openai`, `anthropic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
        }
    }

    /// Decodes a request body of this format
    /// ([`LlmRequest::from_openai_json`] / [`LlmRequest::from_anthropic_json`]): an
    /// [`ErrorKind::InvalidRequest`] naming the field when it does not decode.
    pub fn decode(self, body: &[u8]) -> Result<LlmRequest, LlmError> {
        match self {
            Format::OpenAi => LlmRequest::from_openai_json(body),
            Format::Anthropic => LlmRequest::from_anthropic_json(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_status_and_no_detail_leaks() {
        for kind in ErrorKind::ALL {
            let err = LlmError::new(kind).with_detail("upstream said sk-secret-123456789012345678");
            let status = status_for(kind);
            for format in [Format::OpenAi, Format::Anthropic] {
                let body = error_body(format, &err, status).to_string();
                assert!(!body.contains("upstream said"), "{body}");
            }
        }
        assert_eq!(
            status_for(ErrorKind::Throttled),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status_for(ErrorKind::BudgetExceeded),
            StatusCode::PAYMENT_REQUIRED
        );
    }

    #[test]
    fn retry_after_rounds_up_and_reads_attempts() {
        let err = LlmError::all_providers_failed(vec![
            LlmError::new(ErrorKind::RateLimited).with_retry_after(Duration::from_millis(2500)),
            LlmError::new(ErrorKind::Overloaded).with_retry_after(Duration::from_secs(7)),
        ]);
        let resp = error_response(Format::OpenAi, &err);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[RETRY_AFTER], "3");
        assert_eq!(
            resp.extensions().get::<ErrorKind>(),
            Some(&ErrorKind::AllProvidersFailed)
        );
    }
}
