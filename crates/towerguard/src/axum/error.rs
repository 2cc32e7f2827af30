//! Errors answered in the caller's format: the status of each kind, Retry-After, the body.

use super::*;

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
