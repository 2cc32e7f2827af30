//! One test per row of the status table in shared/anchors.md, with real provider bodies.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use towerguard_llm_core::{ErrorKind, LlmError, classify_http_error, classify_http_error_at};

fn classify(status: u16, body: &str) -> LlmError {
    classify_http_error(status, &HeaderMap::new(), body.as_bytes())
}

fn openai(message: &str, ty: &str, code: Option<&str>) -> String {
    let code = code.map_or("null".to_owned(), |c| format!("\"{c}\""));
    format!(r#"{{"error":{{"message":"{message}","type":"{ty}","param":null,"code":{code}}}}}"#)
}

fn anthropic(ty: &str, message: &str) -> String {
    format!(
        r#"{{"type":"error","error":{{"type":"{ty}","message":"{message}"}},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}}"#
    )
}

#[test]
fn row_400_invalid_request() {
    let e = classify(
        400,
        &openai(
            "Invalid value for 'temperature'",
            "invalid_request_error",
            None,
        ),
    );
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(!e.is_retryable() && !e.counts_for_breaker() && !e.should_fallback());
    assert_eq!(e.status(), Some(400));
    let e = classify(
        400,
        &anthropic("invalid_request_error", "messages: field required"),
    );
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

#[test]
fn row_400_context_length_by_code_and_by_message() {
    let e = classify(
        400,
        &openai(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
    );
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    assert!(!e.is_retryable() && e.should_fallback());
    let e = classify(
        400,
        &anthropic(
            "invalid_request_error",
            "prompt is too long: 215000 tokens > 200000 maximum",
        ),
    );
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
}

#[test]
fn row_400_content_policy_by_code_and_by_message() {
    let e = classify(
        400,
        &openai(
            "Your request was rejected as a result of our safety system.",
            "invalid_request_error",
            Some("content_policy_violation"),
        ),
    );
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
    assert!(!e.is_retryable() && !e.should_fallback());
    // Azure OpenAI's shape: code "content_filter"
    let e = classify(
        400,
        &openai(
            "The response was filtered due to the prompt triggering content management policy.",
            "invalid_request_error",
            Some("content_filter"),
        ),
    );
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
    // message only
    let e = classify(
        400,
        &openai(
            "Output blocked by content filtering policy",
            "invalid_request_error",
            None,
        ),
    );
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
}

#[test]
fn row_401_403_auth_never_retried() {
    let e = classify(
        401,
        &openai(
            "Incorrect API key provided: sk-proj-AbCdEf1234567890. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
    );
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert!(!e.is_retryable() && !e.counts_for_breaker() && e.should_fallback());
    // the echoed key never survives
    let shown = format!("{e} {e:?} {}", e.client_message());
    assert!(!shown.contains("AbCdEf1234567890"), "{shown}");
    let e = classify(401, &anthropic("authentication_error", "invalid x-api-key"));
    assert_eq!(e.kind(), ErrorKind::Authentication);
    let e = classify(
        403,
        &anthropic(
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
    );
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(!e.is_retryable());
}

#[test]
fn row_402_billing() {
    let e = classify(
        402,
        &anthropic("billing_error", "Your account has a billing issue."),
    );
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(!e.is_retryable() && !e.counts_for_breaker() && e.should_fallback());
}

#[test]
fn row_404_model_not_found() {
    let e = classify(
        404,
        &openai(
            "The model `gpt-5-mega` does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
    );
    assert_eq!(e.kind(), ErrorKind::ModelNotFound);
    assert!(!e.is_retryable() && e.should_fallback());
    // Ollama's shape: {"error": "..."}
    let e = classify(
        404,
        r#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
    );
    assert_eq!(e.kind(), ErrorKind::ModelNotFound);
    assert_eq!(
        e.detail(),
        Some("model \"llama9\" not found, try pulling it first")
    );
}

#[test]
fn row_408_timeout_retried() {
    let e = classify(408, "");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.is_retryable() && e.counts_for_breaker());
}

#[test]
fn row_409_conflict_retried() {
    let e = classify(409, &openai("Lock timeout", "conflict", None));
    assert!(e.is_retryable(), "SDKs retry 409");
}

#[test]
fn row_413_422_never_retried() {
    let e = classify(
        413,
        &anthropic(
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
    );
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(!e.is_retryable());
    let e = classify(
        422,
        r#"{"detail":[{"loc":["body","model"],"msg":"field required"}]}"#,
    );
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(!e.is_retryable());
}

#[test]
fn row_429_rate_limit_vs_quota() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("20"));
    let body = openai(
        "Rate limit reached for gpt-4o in organization org-xyz on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000.",
        "tokens",
        Some("rate_limit_exceeded"),
    );
    let e = classify_http_error(429, &headers, body.as_bytes());
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable() && e.counts_for_breaker() && e.should_fallback());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(20)));

    let e = classify(
        429,
        &openai(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
        ),
    );
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(!e.is_retryable() && !e.counts_for_breaker() && e.should_fallback());

    let e = classify(
        429,
        &anthropic(
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
    );
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let e = classify(
        429,
        &anthropic(
            "rate_limit_error",
            "You have reached your specified API usage limits (spend limit).",
        ),
    );
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
}

#[test]
fn row_5xx_server_errors_retried() {
    for status in [500, 502, 503, 504] {
        let e = classify(status, "<html><body>Bad Gateway</body></html>");
        assert_eq!(e.kind(), ErrorKind::Server, "{status}");
        assert!(e.is_retryable() && e.counts_for_breaker() && e.should_fallback());
        assert_eq!(e.detail(), Some("<html><body>Bad Gateway</body></html>"));
    }
    let e = classify(500, &anthropic("api_error", "Internal server error"));
    assert_eq!(e.kind(), ErrorKind::Server);
    let e = classify(
        503,
        &openai(
            "The engine is currently overloaded, please try again later",
            "server_error",
            None,
        ),
    );
    assert_eq!(e.kind(), ErrorKind::Overloaded);
}

#[test]
fn row_529_overloaded() {
    let e = classify(529, &anthropic("overloaded_error", "Overloaded"));
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert!(e.is_retryable() && e.counts_for_breaker() && e.should_fallback());
}

#[test]
fn row_no_status_transport_errors() {
    let refused = LlmError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ));
    assert_eq!(refused.kind(), ErrorKind::Connection);
    assert!(refused.is_retryable() && refused.status().is_none());
    let reset = LlmError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert_eq!(reset.kind(), ErrorKind::Connection);
    let timed_out = LlmError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    assert_eq!(timed_out.kind(), ErrorKind::Timeout);
    assert!(timed_out.is_retryable());
}

#[test]
fn x_should_retry_overrides_the_status() {
    let mut headers = HeaderMap::new();
    headers.insert("x-should-retry", HeaderValue::from_static("false"));
    let e = classify_http_error(500, &headers, b"");
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(!e.is_retryable());
    headers.insert("x-should-retry", HeaderValue::from_static("true"));
    let e = classify_http_error(400, &headers, b"");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.is_retryable());
}

#[test]
fn retry_after_forms() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let with = |pairs: &[(&'static str, &'static str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        classify_http_error_at(429, &h, b"", now).retry_after()
    };
    assert_eq!(with(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
    assert_eq!(
        with(&[("retry-after", "1.5")]),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        with(&[("retry-after-ms", "250"), ("retry-after", "9")]),
        Some(Duration::from_millis(250))
    );
    // a bad retry-after-ms falls back to retry-after
    assert_eq!(
        with(&[("retry-after-ms", "soon"), ("retry-after", "9")]),
        Some(Duration::from_secs(9))
    );
    let future = httpdate::fmt_http_date(now + Duration::from_secs(42));
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_str(&future).unwrap());
    assert_eq!(
        classify_http_error_at(503, &h, b"", now).retry_after(),
        Some(Duration::from_secs(42))
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(42));
    h.insert("retry-after", HeaderValue::from_str(&past).unwrap());
    assert_eq!(
        classify_http_error_at(503, &h, b"", now).retry_after(),
        Some(Duration::ZERO)
    );
    assert_eq!(with(&[("retry-after", "-5")]), None);
    assert_eq!(with(&[("retry-after", "NaN")]), None);
    assert_eq!(with(&[("retry-after", "inf")]), None);
    assert_eq!(with(&[("retry-after", "99999999999999999999999999")]), None);
    assert_eq!(with(&[]), None);
}

#[test]
fn every_kind_has_the_table_policy() {
    use ErrorKind::*;
    // (kind, retry, breaker, fallback) exactly as design section 3
    let table = [
        (RateLimited, true, true, true),
        (Overloaded, true, true, true),
        (Server, true, true, true),
        (Timeout, true, true, true),
        (Connection, true, true, true),
        (QuotaExceeded, false, false, true),
        (Authentication, false, false, true),
        (PermissionDenied, false, false, true),
        (ModelNotFound, false, false, true),
        (ContextLengthExceeded, false, false, true),
        (ContentPolicy, false, false, false),
        (InvalidRequest, false, false, false),
        (CircuitOpen, false, false, true),
        (BudgetExceeded, false, false, false),
        (Throttled, false, false, false),
        (AllProvidersFailed, false, false, false),
        (Configuration, false, false, true),
    ];
    assert_eq!(table.len(), ErrorKind::ALL.len());
    for (kind, retry, breaker, fallback) in table {
        assert_eq!(kind.is_retryable(), retry, "{kind} retry");
        assert_eq!(kind.counts_for_breaker(), breaker, "{kind} breaker");
        assert_eq!(kind.should_fallback(), fallback, "{kind} fallback");
        assert!(!kind.default_message().is_empty());
        // the shared verdict says the same, directly and through a BoxError
        let v = LlmError::new(kind).verdict();
        assert_eq!(v.is_retryable(), retry, "{kind} verdict retry");
        assert_eq!(v.counts_for_breaker(), breaker, "{kind} verdict breaker");
        assert_eq!(v.should_fallback(), fallback, "{kind} verdict fallback");
        assert_eq!(
            v.is_client_fault(),
            kind.is_client_fault(),
            "{kind} client fault"
        );
        assert_eq!(v.is_refusal(), kind.is_refusal(), "{kind} refusal");
        let boxed: towerguard_outcome::BoxError = Box::new(LlmError::new(kind));
        assert_eq!(
            towerguard_outcome::ClassifyError::verdict(&boxed),
            v,
            "{kind} boxed"
        );
    }
    // our own refusals and the operator's misconfiguration are never the client's fault
    for kind in [
        CircuitOpen,
        BudgetExceeded,
        Throttled,
        Configuration,
        AllProvidersFailed,
    ] {
        assert!(!LlmError::new(kind).verdict().is_client_fault(), "{kind}");
    }
    // x-should-retry and Retry-After reach the verdict
    let hinted = LlmError::new(RateLimited)
        .with_retry_after(Duration::from_secs(3))
        .with_should_retry(false);
    assert!(!hinted.verdict().is_retryable());
    assert_eq!(hinted.verdict().retry_after(), Some(Duration::from_secs(3)));
}

#[test]
fn all_providers_failed_lists_every_error_and_leaks_nothing_to_clients() {
    let err = LlmError::all_providers_failed(vec![
        classify(500, "").with_provider("openai"),
        classify(529, &anthropic("overloaded_error", "Overloaded")).with_provider("anthropic"),
    ]);
    assert_eq!(err.kind(), ErrorKind::AllProvidersFailed);
    assert_eq!(err.attempts().len(), 2);
    assert_eq!(err.attempts()[1].provider(), Some("anthropic"));
    assert!(!err.client_message().contains("openai"));
    assert!(!err.client_message().contains("anthropic"));
    let shown = err.to_string();
    assert!(
        shown.contains("openai: server") && shown.contains("anthropic: overloaded"),
        "{shown}"
    );
}
