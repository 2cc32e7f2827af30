//! Errors in the caller's wire format: the status table, the bodies, the headers.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde_json::json;
use towerguard_llm_core::{ErrorKind, LlmError};

/// The wire format a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// The HTTP status the gateway answers an error of this kind with.
///
/// | kind | status | why |
/// |---|---|---|
/// | InvalidRequest, ContextLengthExceeded, ContentPolicy | 400 | the request is at fault |
/// | ModelNotFound | 404 | as OpenAI and Anthropic answer it |
/// | RateLimited, Throttled | 429 | with Retry-After |
/// | BudgetExceeded | 402 | the tenant's or the gateway's budget is spent |
/// | Overloaded, CircuitOpen, QuotaExceeded, AllProvidersFailed | 503 | no provider can serve now; Retry-After when known |
/// | Server, Connection, Authentication, PermissionDenied | 502 | the provider failed, or refused the gateway's own key (not the client's fault) |
/// | Timeout | 504 | |
/// | Configuration | 500 | the gateway's configuration cannot serve it |
///
/// The gateway's own 401 (unknown or missing client key) and 413 (body too large) do not
/// come from a kind.
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

/// An error answer: `status`, the format's body, and Retry-After (whole seconds, rounded up)
/// when the error has a hint.
pub fn error_response(format: Format, err: &LlmError, status: StatusCode) -> Response {
    let body = error_body(format, err, status).to_string();
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(after) = retry_after(err) {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The gateway's own 401 for an unknown or missing client key.
pub fn unauthorized(format: Format) -> Response {
    let err = LlmError::new(ErrorKind::Authentication).with_message(
        "invalid or missing API key (send `Authorization: Bearer <key>` or `x-api-key`)",
    );
    error_response(format, &err, StatusCode::UNAUTHORIZED)
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
        let resp = error_response(Format::OpenAi, &err, status_for(err.kind()));
        assert_eq!(resp.headers()[RETRY_AFTER], "3");
    }
}
