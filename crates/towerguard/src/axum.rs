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

/// The HTTP status an error of this kind is answered with.
///
/// | kind | status | why |
/// |---|---|---|
/// | InvalidRequest, ContextLengthExceeded, ContentPolicy | 400 | the request is at fault |
/// | ModelNotFound | 404 | as OpenAI and Anthropic answer it |
/// | RateLimited, Throttled | 429 | with Retry-After |
/// | BudgetExceeded | 402 | the tenant's or the service's budget is spent |
/// | Overloaded, CircuitOpen, QuotaExceeded, AllProvidersFailed | 503 | no provider can serve now; Retry-After when known |
/// | Server, Connection, Authentication, PermissionDenied | 502 | the provider failed, or refused the service's own key (not the client's fault) |
/// | Timeout | 504 | |
/// | Configuration | 500 | the service's configuration cannot serve it |
///
/// A refusal that does not come from a kind (401 for an unknown client key, 413 for a body
/// too large) is answered with [`error_response_with_status`].
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::ModelNotFound => StatusCode::NOT_FOUND,
        ErrorKind::RateLimited | ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::Overloaded
        | ErrorKind::CircuitOpen
        | ErrorKind::QuotaExceeded
        | ErrorKind::AllProvidersFailed => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Configuration => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The Retry-After a client is told: the error's own hint, else (for a fallback that ran
/// out of providers) the shortest hint among the providers' errors.
pub fn retry_after(err: &LlmError) -> Option<Duration> {
    err.retry_after().or_else(|| {
        err.attempts()
            .iter()
            .filter_map(LlmError::retry_after)
            .min()
    })
}

/// OpenAI's `type` and `code` for a kind.
fn openai_names(kind: ErrorKind, status: StatusCode) -> (&'static str, Option<&'static str>) {
    if status == StatusCode::UNAUTHORIZED {
        return ("authentication_error", Some("invalid_api_key"));
    }
    match kind {
        ErrorKind::RateLimited | ErrorKind::Throttled => {
            ("rate_limit_error", Some("rate_limit_exceeded"))
        }
        ErrorKind::QuotaExceeded | ErrorKind::BudgetExceeded => {
            ("insufficient_quota", Some("insufficient_quota"))
        }
        ErrorKind::ModelNotFound => ("invalid_request_error", Some("model_not_found")),
        ErrorKind::ContextLengthExceeded => {
            ("invalid_request_error", Some("context_length_exceeded"))
        }
        ErrorKind::ContentPolicy => ("invalid_request_error", Some("content_policy_violation")),
        ErrorKind::InvalidRequest => ("invalid_request_error", None),
        ErrorKind::Timeout => ("timeout", Some("timeout")),
        ErrorKind::Overloaded => ("server_error", Some("overloaded")),
        _ => ("server_error", Some(kind.as_str())),
    }
}

/// Anthropic's error `type` for a kind.
fn anthropic_type(kind: ErrorKind, status: StatusCode) -> &'static str {
    if status == StatusCode::UNAUTHORIZED {
        return "authentication_error";
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return "request_too_large";
    }
    match kind {
        ErrorKind::Overloaded | ErrorKind::CircuitOpen | ErrorKind::AllProvidersFailed => {
            "overloaded_error"
        }
        ErrorKind::RateLimited | ErrorKind::Throttled => "rate_limit_error",
        ErrorKind::QuotaExceeded | ErrorKind::BudgetExceeded => "billing_error",
        ErrorKind::ModelNotFound => "not_found_error",
        ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy => {
            "invalid_request_error"
        }
        ErrorKind::Timeout => "timeout_error",
        _ => "api_error",
    }
}

/// The JSON error body of `format` for `err` answered with `status`: only the client-safe
/// message, never the operator detail or a provider's body.
///
/// OpenAI: `{"error": {"message", "type", "param": null, "code"}}`; Anthropic:
/// `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(format: Format, err: &LlmError, status: StatusCode) -> serde_json::Value {
    let message = err.client_message();
    match format {
        Format::OpenAi => {
            let (kind, code) = openai_names(err.kind(), status);
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Format::Anthropic => json!({
            "type": "error",
            "error": {"type": anthropic_type(err.kind(), status), "message": message},
        }),
    }
}

/// An error answer with the status of [`status_for`]: the format's body and Retry-After
/// (whole seconds, rounded up) when the error has a hint.
pub fn error_response(format: Format, err: &LlmError) -> Response {
    error_response_with_status(format, err, status_for(err.kind()))
}

/// An error answer with this `status` (a 401 or 413 of your own): the format's body for it
/// and Retry-After (whole seconds, rounded up) when the error has a hint. The error's
/// [`ErrorKind`] is in the response's extensions.
pub fn error_response_with_status(format: Format, err: &LlmError, status: StatusCode) -> Response {
    let body = error_body(format, err, status).to_string();
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(after) = retry_after(err) {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp.extensions_mut().insert(err.kind());
    resp
}

/// A request body that was refused: answers in its format (400 naming the field for a body
/// that does not decode or could not be read, 413 for one larger than the body limit).
#[derive(Debug)]
pub struct RequestRejection {
    format: Format,
    status: StatusCode,
    error: LlmError,
}

impl RequestRejection {
    /// The format the body was meant to be in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The status it answers with (400 or 413).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the body was larger than the limit (413).
    pub fn is_too_large(&self) -> bool {
        self.status == StatusCode::PAYLOAD_TOO_LARGE
    }

    /// Why (an [`ErrorKind::InvalidRequest`] whose client message names the field).
    pub fn error(&self) -> &LlmError {
        &self.error
    }

    /// The error, owned.
    pub fn into_error(self) -> LlmError {
        self.error
    }
}

impl std::fmt::Display for RequestRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} request refused ({}): {}",
            self.format.as_str(),
            self.status.as_u16(),
            self.error.client_message()
        )
    }
}

impl std::error::Error for RequestRejection {}

impl IntoResponse for RequestRejection {
    fn into_response(self) -> Response {
        error_response_with_status(self.format, &self.error, self.status)
    }
}

/// Reads and decodes the body of `req` in `format`, within axum's body limit.
async fn extract<S: Send + Sync>(
    format: Format,
    req: Request,
    state: &S,
) -> Result<LlmRequest, RequestRejection> {
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
        let (status, message) = if too_large {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the limit",
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        };
        RequestRejection {
            format,
            status,
            error: LlmError::new(ErrorKind::InvalidRequest).with_message(message),
        }
    })?;
    format.decode(&bytes).map_err(|error| RequestRejection {
        format,
        status: StatusCode::BAD_REQUEST,
        error,
    })
}

/// An OpenAI chat-completions request body, decoded
/// ([`LlmRequest::from_openai_json`]); refused with a [`RequestRejection`] in OpenAI's
/// format.
#[derive(Debug, Clone)]
pub struct OpenAiRequest(pub LlmRequest);

/// An Anthropic Messages request body, decoded ([`LlmRequest::from_anthropic_json`]);
/// refused with a [`RequestRejection`] in Anthropic's format.
#[derive(Debug, Clone)]
pub struct AnthropicRequest(pub LlmRequest);

impl<S: Send + Sync> FromRequest<S> for OpenAiRequest {
    type Rejection = RequestRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        extract(Format::OpenAi, req, state).await.map(Self)
    }
}

impl<S: Send + Sync> FromRequest<S> for AnthropicRequest {
    type Rejection = RequestRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        extract(Format::Anthropic, req, state).await.map(Self)
    }
}

/// An answer in OpenAI's format: a complete [`LlmResponse`] as a chat completion, a
/// streamed one as chat-completion chunks (server-sent events ending in `data: [DONE]`), an
/// [`LlmError`] as OpenAI's error body with the status of [`status_for`] and Retry-After.
#[derive(Debug)]
pub struct OpenAiResponse(pub Result<LlmResponse, LlmError>);

/// An answer in Anthropic's format: a complete [`LlmResponse`] as a message, a streamed one
/// as Messages stream events, an [`LlmError`] as Anthropic's error body with the status of
/// [`status_for`] and Retry-After.
#[derive(Debug)]
pub struct AnthropicResponse(pub Result<LlmResponse, LlmError>);

impl IntoResponse for OpenAiResponse {
    fn into_response(self) -> Response {
        response(Format::OpenAi, self.0)
    }
}

impl IntoResponse for AnthropicResponse {
    fn into_response(self) -> Response {
        response(Format::Anthropic, self.0)
    }
}

/// The answer to `result` in `format` (what [`OpenAiResponse`] and [`AnthropicResponse`]
/// answer): a streamed response as server-sent events, a complete one as JSON, an error with
/// [`error_response`].
///
/// A response without an id gets a fresh one (`chatcmpl-...`, `msg_...`), and an OpenAI
/// answer without a `created` time the current one. An answer that cannot be encoded is a
/// 502.
pub fn response(format: Format, result: Result<LlmResponse, LlmError>) -> Response {
    match result {
        Ok(resp) if resp.is_stream() => stream_response(format, resp),
        Ok(resp) => complete_response(format, resp),
        Err(err) => error_response(format, &err),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fresh_id(format: Format) -> String {
    match format {
        Format::OpenAi => format!("chatcmpl-{}", RequestId::generate()),
        Format::Anthropic => format!("msg_{}", RequestId::generate()),
    }
}

fn complete_response(format: Format, mut resp: LlmResponse) -> Response {
    if resp.id.is_none() {
        resp.id = Some(fresh_id(format));
    }
    let encoded = match format {
        Format::OpenAi => {
            if resp.created.is_none() {
                resp.created = Some(now_secs());
            }
            resp.to_openai_json()
        }
        Format::Anthropic => resp.to_anthropic_json(),
    };
    match encoded {
        Ok(body) => {
            let mut out = (StatusCode::OK, body).into_response();
            out.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            out
        }
        Err(err) => error_response_with_status(format, &err, StatusCode::BAD_GATEWAY),
    }
}

/// The format's SSE writer.
#[derive(Debug)]
enum Writer {
    OpenAi(openai_sse::StreamWriter),
    Anthropic(anthropic_sse::StreamWriter),
}

impl Writer {
    fn write(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        match self {
            Writer::OpenAi(w) => w.write(chunk, out),
            Writer::Anthropic(w) => w.write(chunk, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Writer::OpenAi(w) => w.finish(out),
            Writer::Anthropic(w) => w.finish(out),
        }
    }

    fn error(&mut self, err: &LlmError, out: &mut Vec<u8>) {
        match self {
            Writer::OpenAi(w) => w.error(err, out),
            Writer::Anthropic(w) => w.error(err, out),
        }
    }
}

/// The events of a stream, written as the client reads: one chunk is pulled from the
/// answer only when the body is polled.
struct SseBody {
    chunks: ChunkStream,
    writer: Writer,
    done: bool,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut this.chunks).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.writer.write(&chunk, &mut out);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    this.writer.error(&err, &mut out);
                    this.done = true;
                    return Poll::Ready(Some(Ok(Bytes::from(out))));
                }
                Poll::Ready(None) => {
                    this.writer.finish(&mut out);
                    this.done = true;
                    return Poll::Ready(Some(Ok(Bytes::from(out))));
                }
            }
        }
    }
}

fn stream_response(format: Format, mut resp: LlmResponse) -> Response {
    let chunks = match resp.stream.take() {
        Some(s) => s,
        None => ChunkStream::from_items(chunks_of(&mut resp)),
    };
    let id = resp.id.take().unwrap_or_else(|| fresh_id(format));
    let model = resp.model().to_owned();
    let writer = match format {
        Format::OpenAi => Writer::OpenAi(openai_sse::StreamWriter::new(
            id,
            model,
            resp.created.unwrap_or_else(now_secs),
        )),
        Format::Anthropic => Writer::Anthropic(anthropic_sse::StreamWriter::new(id, model)),
    };
    let body = SseBody {
        chunks,
        writer,
        done: false,
    };
    let mut out = Response::new(Body::from_stream(body));
    let headers = out.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out
}

/// `resp` in the shape the request asked for: for a client that asked to stream
/// (`stream`), a complete answer becomes a short stream of its chunks; for one that did not,
/// a streamed answer is read to its end (its error item, if it fails, is the error). An
/// answer already in that shape is returned as it is.
pub async fn as_requested(mut resp: LlmResponse, stream: bool) -> Result<LlmResponse, LlmError> {
    if stream && !resp.is_stream() {
        let chunks = chunks_of(&mut resp);
        resp.stream = Some(ChunkStream::from_items(chunks));
        Ok(resp)
    } else if !stream && resp.is_stream() {
        resp.into_complete().await
    } else {
        Ok(resp)
    }
}

/// The chunks of a complete answer, for a client that asked for a stream (its choices are
/// taken out of `resp`).
fn chunks_of(resp: &mut LlmResponse) -> Vec<Result<Chunk, LlmError>> {
    let mut out = vec![Ok(Chunk::Start {
        id: resp.id.clone(),
        model: Some(resp.model().to_owned()),
    })];
    for c in std::mem::take(&mut resp.choices) {
        let choice = c.index;
        for part in c.message.content.parts().iter() {
            match part {
                Part::Thinking {
                    thinking,
                    signature,
                } => {
                    out.push(Ok(Chunk::Reasoning {
                        choice,
                        text: thinking.clone(),
                    }));
                    if let Some(signature) = signature {
                        out.push(Ok(Chunk::Signature {
                            choice,
                            signature: signature.clone(),
                        }));
                    }
                }
                Part::RedactedThinking { data } => out.push(Ok(Chunk::RedactedThinking {
                    choice,
                    data: data.clone(),
                })),
                Part::Text { text, .. } if !text.is_empty() => out.push(Ok(Chunk::Text {
                    choice,
                    text: text.clone(),
                })),
                Part::Refusal { refusal } => out.push(Ok(Chunk::Refusal {
                    choice,
                    text: refusal.clone(),
                })),
                _ => {}
            }
        }
        for (index, call) in c.message.tool_calls.iter().enumerate() {
            out.push(Ok(Chunk::ToolCall(ToolCallDelta {
                choice,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                id: Some(call.id.clone()),
                name: Some(call.name.clone()),
                arguments: call.arguments.clone(),
            })));
        }
        out.push(Ok(Chunk::Finish {
            choice,
            reason: c.finish_reason,
        }));
    }
    out.push(Ok(Chunk::Usage(resp.usage)));
    out
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
