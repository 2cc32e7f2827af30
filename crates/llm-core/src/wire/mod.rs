//! Both wire formats, in one place: [`LlmRequest`] and [`LlmResponse`] from and to OpenAI's
//! chat-completions JSON ([`openai`]) and Anthropic's Messages JSON ([`anthropic`]).
//!
//! A provider client encodes requests and decodes responses; a gateway or an axum service
//! decodes requests and encodes responses. Translating between the formats goes through the
//! one model, so a conversation read as OpenAI JSON can be sent to Anthropic and back.
//!
//! What a format cannot express is handled by one rule: a field that would change the answer
//! (`n > 1`, `logprobs`, a non-zero penalty, audio input for Anthropic; a tool result with an
//! image for OpenAI, ...) is refused with [`ErrorKind::InvalidRequest`](crate::ErrorKind)
//! naming the field; a hint that only steers caching or bookkeeping (`cache_control` for
//! OpenAI, `prompt_cache_key`, `seed` or a participant `name` for Anthropic) is left out.
//! Thinking blocks are sent back to Anthropic unchanged and left out of OpenAI-format
//! requests, whose servers do not accept reasoning as input.
//!
//! Streams: [`openai_sse`] and [`anthropic_sse`] read one server-sent event at a time into
//! [`Chunk`](crate::Chunk)s (a `StreamDecoder` each, saying when the format's terminator came
//! with [`Step`]) and write chunks back as either format's events (a `StreamWriter` each), so
//! a gateway can serve a stream from one provider in the other's format.
//!
//! Decoding errors: a request that is not valid (`messages[2].tool_call_id` missing) is
//! `InvalidRequest` whose client message names the field; a response that is not a valid
//! completion (`{}`, an error-shaped body sent with 200) is a `Server` error, never an empty
//! success.

use std::sync::Arc;

use crate::{LlmError, LlmRequest, LlmResponse};

pub mod anthropic;
pub mod anthropic_sse;
pub mod openai;
pub mod openai_sse;

/// What a stream decoder says after one event: read on, or the format's terminator arrived
/// (OpenAI `data: [DONE]`, Anthropic `message_stop`) and the stream is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// More events belong to the stream.
    Continue,
    /// The terminator arrived: the stream ended as it should.
    Done,
}

impl LlmRequest {
    /// Reads an OpenAI chat-completions request body (see [`openai::decode_request`]).
    pub fn from_openai_json(body: &[u8]) -> Result<Self, LlmError> {
        openai::decode_request(body)
    }

    /// Writes this request as an OpenAI chat-completions body (see [`openai::encode_request`]).
    pub fn to_openai_json(&self) -> Result<Vec<u8>, LlmError> {
        openai::encode_request(self)
    }

    /// Reads an Anthropic Messages request body (see [`anthropic::decode_request`]).
    pub fn from_anthropic_json(body: &[u8]) -> Result<Self, LlmError> {
        anthropic::decode_request(body)
    }

    /// Writes this request as an Anthropic Messages body; `default_max_tokens` fills the
    /// field Anthropic requires when the request sets none (see [`anthropic::encode_request`]).
    pub fn to_anthropic_json(&self, default_max_tokens: u32) -> Result<Vec<u8>, LlmError> {
        anthropic::encode_request(self, default_max_tokens)
    }
}

impl LlmResponse {
    /// Reads an OpenAI chat-completions answer served by `provider` for a request of
    /// `asked_model` (used when the answer names no model).
    pub fn from_openai_json(
        body: &[u8],
        provider: &Arc<str>,
        asked_model: &Arc<str>,
    ) -> Result<Self, LlmError> {
        openai::decode_response(body, provider, asked_model)
    }

    /// Writes this response as an OpenAI chat-completions answer.
    pub fn to_openai_json(&self) -> Result<Vec<u8>, LlmError> {
        openai::encode_response(self)
    }

    /// Reads an Anthropic Messages answer served by `provider` for a request of
    /// `asked_model` (used when the answer names no model).
    pub fn from_anthropic_json(
        body: &[u8],
        provider: &Arc<str>,
        asked_model: &Arc<str>,
    ) -> Result<Self, LlmError> {
        anthropic::decode_response(body, provider, asked_model)
    }

    /// Writes this response as an Anthropic Messages answer (its first choice).
    pub fn to_anthropic_json(&self) -> Result<Vec<u8>, LlmError> {
        anthropic::encode_response(self)
    }
}

/// An `InvalidRequest` error whose client message names `field` (a JSON path such as
/// `messages[2].tool_call_id`).
pub(crate) fn invalid(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> LlmError {
    LlmError::new(crate::ErrorKind::InvalidRequest)
        .with_message(format!("invalid request: `{field}` {reason}"))
}

/// A `Server` error for an answer that is not a valid completion.
pub(crate) fn malformed(what: impl std::fmt::Display) -> LlmError {
    LlmError::new(crate::ErrorKind::Server).with_detail(format!("malformed response: {what}"))
}

/// A `Server` error for a stream event that cannot be read (not JSON, a field of the wrong
/// type): its detail starts with "malformed stream event".
pub(crate) fn malformed_event(what: impl std::fmt::Display) -> LlmError {
    LlmError::new(crate::ErrorKind::Server).with_detail(format!("malformed stream event: {what}"))
}

/// The error an error event in a stream means: its body (`data`) classified as if it had come
/// with `status`, the HTTP status the same error has outside a stream (Anthropic's
/// `overloaded_error` is a 529, ...). The error carries no status: the stream's was 200.
pub(crate) fn error_event(status: u16, data: &str) -> LlmError {
    let classified = crate::classify_http_error_at(
        status,
        &http::HeaderMap::new(),
        data.as_bytes(),
        std::time::SystemTime::UNIX_EPOCH,
    );
    let message = classified.detail().unwrap_or("no message");
    LlmError::new(classified.kind()).with_detail(format!("error event in the stream: {message}"))
}
