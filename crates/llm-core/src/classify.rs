//! Turning a provider's HTTP answer into an [`LlmError`], and reading Retry-After.
//!
//! Every HTTP provider client calls [`classify_http_error`] with the status, headers and body of
//! a failed call, so the whole workspace agrees on what each answer means.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;

use crate::error::{ErrorKind, LlmError};
use crate::redact::{WORD_LIMIT, redact_and_cut};

/// How much of a body that is not JSON is kept as operator detail.
const RAW_DETAIL_LEN: usize = 200;

/// Reads a Retry-After hint from response headers, relative to the system clock.
///
/// See [`parse_retry_after_at`] for the rules.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after_at(headers, SystemTime::now())
}

/// Reads a Retry-After hint from response headers, relative to `now`.
///
/// The first of these that holds a readable value wins:
///
/// 1. `retry-after-ms`: milliseconds, fractions allowed (OpenAI, Azure OpenAI);
/// 2. `retry-after`: seconds (fractions allowed), else an HTTP date (a date in the past means
///    zero);
/// 3. `llm_provider-retry-after-ms`, then `llm_provider-retry-after` (same forms): a LiteLLM
///    proxy forwards the provider's own headers under the `llm_provider-` prefix. The proxy's
///    own answer (1 and 2) comes first, since it is the server we talk to.
///
/// Negative, non-finite, overflowing or unparsable values are ignored (the next header is
/// tried), never a panic.
///
/// Rate-limit reset headers (OpenAI `x-ratelimit-reset-*`, Anthropic
/// `anthropic-ratelimit-*-reset`) are not read here: they are not a request to wait, only a
/// fact about the allowance. The provider clients of `towerguard-providers` use them as the
/// hint of a 429 that carries none of the headers above (`RateLimitInfo::retry_hint` there
/// says which one is taken).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use towerguard_llm_core::parse_retry_after_at;
///
/// let mut h = HeaderMap::new();
/// h.insert("llm_provider-retry-after", "12".parse().unwrap());
/// assert_eq!(parse_retry_after_at(&h, SystemTime::now()), Some(Duration::from_secs(12)));
/// h.insert("retry-after", "7".parse().unwrap());
/// assert_eq!(parse_retry_after_at(&h, SystemTime::now()), Some(Duration::from_secs(7)));
/// h.insert("retry-after-ms", "1500".parse().unwrap());
/// assert_eq!(parse_retry_after_at(&h, SystemTime::now()), Some(Duration::from_millis(1500)));
/// ```
pub fn parse_retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    const FORMS: [(&str, &str); 2] = [
        ("retry-after-ms", "retry-after"),
        ("llm_provider-retry-after-ms", "llm_provider-retry-after"),
    ];
    FORMS.iter().find_map(|(ms, secs)| {
        header_str(headers, ms)
            .and_then(parse_millis)
            .or_else(|| header_str(headers, secs).and_then(|v| parse_seconds_or_date(v, now)))
    })
}

/// A number of milliseconds, fractions allowed.
fn parse_millis(value: &str) -> Option<Duration> {
    let ms = parse_non_negative(value)?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// A number of seconds (fractions allowed), else an HTTP date (a past date is zero).
fn parse_seconds_or_date(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(secs) = parse_non_negative(value) {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn parse_non_negative(s: &str) -> Option<f64> {
    // Only plain decimal numbers: f64's parser also takes "inf" and "NaN".
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The parts of a provider's error body that classification looks at.
///
/// Understands OpenAI `{"error":{"message","type","param","code"}}`, Anthropic
/// `{"type":"error","error":{"type","message"}}`, Ollama `{"error":"..."}`, a bare
/// `{"message","type","code"}` object, FastAPI's `{"detail":"..."}` and a one-element array of
/// any of these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderErrorBody {
    /// `error.type` (OpenAI `invalid_request_error`, Anthropic `overloaded_error`, ...).
    pub error_type: Option<String>,
    /// `error.code` as a string (OpenAI `context_length_exceeded`, `insufficient_quota`, ...).
    pub code: Option<String>,
    /// The provider's human-readable message. Not safe for clients as is: it may echo a key.
    pub message: Option<String>,
    /// Whether the body was JSON at all.
    pub is_json: bool,
}

/// Parses a provider's error body. Never fails: what cannot be read is left `None`.
pub fn parse_error_body(body: &[u8]) -> ProviderErrorBody {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return ProviderErrorBody::default();
    };
    if let Value::Array(items) = value {
        value = items.into_iter().next().unwrap_or(Value::Null);
    }
    let mut out = ProviderErrorBody {
        is_json: true,
        ..ProviderErrorBody::default()
    };
    let obj = match value.get("error") {
        Some(inner @ Value::Object(_)) => inner,
        Some(Value::String(s)) => {
            out.message = Some(s.clone());
            return out;
        }
        _ => &value,
    };
    out.error_type = obj
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| *t != "error")
        .map(str::to_owned);
    out.code = match obj.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    out.message = obj
        .get("message")
        .or_else(|| obj.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    out
}

/// Classifies a failed HTTP answer, reading Retry-After against the system clock.
///
/// See [`classify_http_error_at`].
pub fn classify_http_error(status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
    classify_http_error_at(status, headers, body, SystemTime::now())
}

/// Classifies a failed HTTP answer into an [`LlmError`] (without a provider name: the caller
/// adds it with [`LlmError::with_provider`]).
///
/// - The status picks the kind (the table in `shared/anchors.md`); the body refines it:
///   429 with `insufficient_quota` or a spend/billing message is [`ErrorKind::QuotaExceeded`];
///   400 is [`ErrorKind::ContextLengthExceeded`], [`ErrorKind::ContentPolicy`] or
///   [`ErrorKind::ModelNotFound`] (OpenAI `model_not_found`, Anthropic `not_found_error`, a
///   LiteLLM proxy's "Invalid model name", Ollama's "model ... not found") by code, type, then
///   message; 503 or any 5xx whose body says overloaded is [`ErrorKind::Overloaded`].
/// - `x-should-retry: true|false` is recorded and overrides the kind in
///   [`LlmError::is_retryable`].
/// - Retry-After ([`parse_retry_after_at`]) becomes the error's `retry_after`.
/// - The provider's message, redacted, becomes the operator detail (for a body that is not
///   JSON, its first 200 bytes, redacted before the cut); the client message is the kind's
///   generic one. A caller that knows its own key replaces it in `body` first (the provider
///   clients do), since a key of any format need not look like one.
///
/// ```
/// use http::HeaderMap;
/// use towerguard_llm_core::{classify_http_error, ErrorKind};
///
/// let body = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
/// let err = classify_http_error(429, &HeaderMap::new(), body);
/// assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
/// assert!(!err.is_retryable());
/// ```
pub fn classify_http_error_at(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> LlmError {
    let parsed = parse_error_body(body);
    let kind = kind_for(status, &parsed);
    let mut err = LlmError::new(kind).with_status(status);
    if let Some(d) = parse_retry_after_at(headers, now) {
        err = err.with_retry_after(d);
    }
    match header_str(headers, "x-should-retry") {
        Some(v) if v.eq_ignore_ascii_case("true") => err = err.with_should_retry(true),
        Some(v) if v.eq_ignore_ascii_case("false") => err = err.with_should_retry(false),
        _ => {}
    }
    if let Some(msg) = &parsed.message {
        err = err.with_detail(msg);
    } else if !parsed.is_json && !body.is_empty() {
        err = err.with_detail(raw_detail(body));
    }
    err
}

/// The first [`RAW_DETAIL_LEN`] bytes of a body that is not JSON, redacted before the cut.
///
/// The window read reaches to the end of the word crossing the cut (at most
/// [`WORD_LIMIT`] bytes further), so a secret there is judged (and removed) whole; it is then
/// cut at [`RAW_DETAIL_LEN`].
fn raw_detail(body: &[u8]) -> String {
    let mut end = body.len().min(RAW_DETAIL_LEN);
    let window = &body[end..body.len().min(end + WORD_LIMIT)];
    end += window
        .iter()
        .position(|b| !is_token_byte(*b))
        .unwrap_or(window.len());
    let text = String::from_utf8_lossy(&body[..end]);
    let mut out = redact_and_cut(&text, RAW_DETAIL_LEN);
    if end < body.len() && !out.ends_with('…') {
        out.push('…');
    }
    out
}

/// A byte that may continue a key or token (what [`redact_secrets`](crate::redact_secrets)
/// treats as one word), or part of a multi-byte character.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'_' | b'*' | b'.' | b'+' | b'/' | b'=')
        || b >= 0x80
}

/// The kind for a status and parsed body.
fn kind_for(status: u16, body: &ProviderErrorBody) -> ErrorKind {
    let ty = body.error_type.as_deref().unwrap_or("");
    let code = body.code.as_deref().unwrap_or("");
    let msg = body
        .message
        .as_deref()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match status {
        400 => classify_400(ty, code, &msg),
        401 => ErrorKind::Authentication,
        402 => ErrorKind::QuotaExceeded,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::ModelNotFound,
        408 => ErrorKind::Timeout,
        // 409 is a lock timeout on the provider's side: transient, the SDKs retry it.
        409 => ErrorKind::Server,
        413 | 422 => ErrorKind::InvalidRequest,
        429 if is_quota(ty, code, &msg) => ErrorKind::QuotaExceeded,
        429 => ErrorKind::RateLimited,
        529 => ErrorKind::Overloaded,
        500..=599 if ty == "overloaded_error" || msg.contains("overloaded") => {
            ErrorKind::Overloaded
        }
        500..=599 => ErrorKind::Server,
        _ if (400..500).contains(&status) => ErrorKind::InvalidRequest,
        // 1xx, 2xx or 3xx handed to us as a failure: the upstream misbehaved.
        _ => ErrorKind::Server,
    }
}

/// A 400, told apart by code, then type, then message: context length, content policy,
/// unknown model, quota; anything else is the request's fault.
fn classify_400(ty: &str, code: &str, msg: &str) -> ErrorKind {
    match code {
        "context_length_exceeded" | "string_above_max_length" => {
            return ErrorKind::ContextLengthExceeded;
        }
        "content_policy_violation" | "content_filter" => return ErrorKind::ContentPolicy,
        "insufficient_quota" => return ErrorKind::QuotaExceeded,
        // OpenAI's code, which proxies forward with a 400 instead of OpenAI's 404.
        "model_not_found" => return ErrorKind::ModelNotFound,
        _ => {}
    }
    match ty {
        "billing_error" => return ErrorKind::QuotaExceeded,
        // Anthropic's 404 type `{"type":"not_found_error","message":"model: claude-9"}`,
        // forwarded by a proxy as a 400.
        "not_found_error" => return ErrorKind::ModelNotFound,
        _ => {}
    }
    const CONTEXT: &[&str] = &[
        "prompt is too long",
        "maximum context length",
        "context length",
        "context window",
        "too many tokens",
    ];
    const POLICY: &[&str] = &[
        "content filtering",
        "content management policy",
        "content policy",
        "safety system",
    ];
    if CONTEXT.iter().any(|p| msg.contains(p)) {
        ErrorKind::ContextLengthExceeded
    } else if POLICY.iter().any(|p| msg.contains(p)) {
        ErrorKind::ContentPolicy
    } else if is_unknown_model(msg) {
        ErrorKind::ModelNotFound
    } else if msg.contains("credit balance") {
        ErrorKind::QuotaExceeded
    } else {
        ErrorKind::InvalidRequest
    }
}

/// Whether a (lowercased) 400 message says the model does not exist:
/// LiteLLM's proxy "Invalid model name passed in model=foo", OpenAI's and Groq's "The model
/// `gpt-9` does not exist or you do not have access to it.", vLLM's "The model `foo` does not
/// exist.", Ollama's "model \"llama9\" not found, try pulling it first".
///
/// Only messages that start by naming the model are read this way, so "tool call `x` does not
/// exist" or a message merely mentioning a model stays [`ErrorKind::InvalidRequest`].
fn is_unknown_model(msg: &str) -> bool {
    if msg.contains("invalid model name") || msg.contains("model_not_found") {
        return true;
    }
    let names_the_model = msg.starts_with("the model ") || msg.starts_with("model ");
    names_the_model && (msg.contains("does not exist") || msg.contains("not found"))
}

fn is_quota(ty: &str, code: &str, msg: &str) -> bool {
    code == "insufficient_quota"
        || ty == "insufficient_quota"
        || ty == "billing_error"
        || msg.contains("exceeded your current quota")
        || msg.contains("spend limit")
        || msg.contains("billing")
        || msg.contains("credit balance")
}
