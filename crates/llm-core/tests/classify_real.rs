//! Classification of answers seen from real servers and proxies: unknown models behind a 400,
//! the Retry-After spellings proxies send, and redaction before every cut.
//!
//! Each body or header says where it was recorded from.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use towerguard_llm_core::{
    ErrorKind, LlmError, MAX_DETAIL_LEN, classify_http_error, classify_http_error_at,
    parse_retry_after_at,
};

fn classify(status: u16, body: &str) -> LlmError {
    classify_http_error(status, &HeaderMap::new(), body.as_bytes())
}

/// LiteLLM proxy answer to `model=foo` not in its model list (a 400, not a 404).
const LITELLM_INVALID_MODEL: &str = r#"{"error":{"message":"Invalid model name passed in model=foo. Call `/v1/models` to view available models for your key.","type":"invalid_request_error","param":null,"code":"400"}}"#;
/// OpenAI API reference, error codes: an unknown or inaccessible model (OpenAI sends a 404).
const OPENAI_MODEL_NOT_FOUND: &str = r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
/// Ollama's native API, a model not pulled (Ollama sends a 404).
const OLLAMA_NATIVE: &str = r#"{"error":"model \"llama9\" not found, try pulling it first"}"#;
/// Ollama's OpenAI-compatible endpoint `/v1/chat/completions`, the same model.
const OLLAMA_OPENAI_COMPAT: &str = r#"{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#;
/// Anthropic API reference, errors: `not_found_error` for an unknown model (a 404).
const ANTHROPIC_NOT_FOUND: &str = r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;

#[test]
fn unknown_model_bodies_are_model_not_found_at_400_and_404() {
    for (name, body) in [
        ("litellm", LITELLM_INVALID_MODEL),
        ("openai", OPENAI_MODEL_NOT_FOUND),
        ("ollama", OLLAMA_NATIVE),
        ("ollama-openai", OLLAMA_OPENAI_COMPAT),
        ("anthropic", ANTHROPIC_NOT_FOUND),
    ] {
        for status in [400, 404] {
            let e = classify(status, body);
            assert_eq!(e.kind(), ErrorKind::ModelNotFound, "{name} {status}");
            assert!(e.should_fallback(), "{name} {status}");
            assert!(
                !e.is_retryable() && !e.counts_for_breaker(),
                "{name} {status}"
            );
            assert_eq!(e.status(), Some(status));
            assert_eq!(e.client_message(), "the requested model does not exist");
        }
    }
}

#[test]
fn other_400s_keep_their_kinds() {
    // OpenAI API reference, error codes: context length, by code and by message.
    let e = classify(
        400,
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    );
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    let e = classify(
        400,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.","type":"invalid_request_error","param":null,"code":null}}"#,
    );
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    // Anthropic API reference, errors: a prompt too long.
    let e = classify(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
    );
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    // Azure OpenAI, content filter.
    let e = classify(
        400,
        r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#,
    );
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
    // 400s that mention a model, or something that "does not exist", but are the request's
    // fault. The first is OpenAI's answer to `max_tokens` sent to a reasoning model; the other
    // two are written for this test in OpenAI's body shape (not recorded).
    for body in [
        r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#,
        r#"{"error":{"message":"Invalid 'messages[2].tool_call_id': tool call 'call_9' does not exist.","type":"invalid_request_error","param":"messages[2].tool_call_id","code":null}}"#,
        r#"{"error":{"message":"'tools' is not supported by the model gpt-3.5-turbo-instruct: function not found","type":"invalid_request_error","param":null,"code":null}}"#,
    ] {
        assert_eq!(
            classify(400, body).kind(),
            ErrorKind::InvalidRequest,
            "{body}"
        );
    }
}

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn hint(pairs: &[(&'static str, &str)]) -> Option<Duration> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    parse_retry_after_at(&h, at())
}

#[test]
fn every_retry_after_spelling_proxies_send() {
    let ms = Duration::from_millis;
    // OpenAI and Azure OpenAI: milliseconds, fractions too.
    assert_eq!(hint(&[("retry-after-ms", "250")]), Some(ms(250)));
    assert_eq!(
        hint(&[("retry-after-ms", "1.5")]),
        Some(Duration::from_micros(1500))
    );
    // RFC 9110 seconds, fractions as some servers send them.
    assert_eq!(hint(&[("retry-after", "20")]), Some(ms(20_000)));
    assert_eq!(hint(&[("retry-after", "0.5")]), Some(ms(500)));
    // RFC 9110 HTTP date, future and past.
    let future = httpdate::fmt_http_date(at() + Duration::from_secs(42));
    assert_eq!(
        hint(&[("retry-after", &future)]),
        Some(Duration::from_secs(42))
    );
    let past = httpdate::fmt_http_date(at() - Duration::from_secs(42));
    assert_eq!(hint(&[("retry-after", &past)]), Some(Duration::ZERO));
    // LiteLLM proxy: the provider's headers forwarded under `llm_provider-`.
    assert_eq!(
        hint(&[("llm_provider-retry-after", "12")]),
        Some(Duration::from_secs(12))
    );
    assert_eq!(
        hint(&[("llm_provider-retry-after", "2.25")]),
        Some(ms(2250))
    );
    assert_eq!(
        hint(&[("llm_provider-retry-after", &future)]),
        Some(Duration::from_secs(42))
    );
    assert_eq!(
        hint(&[("llm_provider-retry-after-ms", "800")]),
        Some(ms(800))
    );
    assert_eq!(
        hint(&[
            ("llm_provider-retry-after-ms", "800"),
            ("llm_provider-retry-after", "12")
        ]),
        Some(ms(800))
    );
}

#[test]
fn the_server_we_talk_to_speaks_first() {
    let ms = Duration::from_millis;
    assert_eq!(
        hint(&[("retry-after-ms", "250"), ("retry-after", "9")]),
        Some(ms(250))
    );
    // a LiteLLM proxy's own retry-after before the provider's forwarded one
    assert_eq!(
        hint(&[("retry-after", "3"), ("llm_provider-retry-after", "12")]),
        Some(ms(3000))
    );
    assert_eq!(
        hint(&[("llm_provider-retry-after-ms", "100"), ("retry-after", "3")]),
        Some(ms(3000))
    );
    // a garbage value is skipped for the next spelling
    assert_eq!(
        hint(&[("retry-after", "soon"), ("llm_provider-retry-after", "12")]),
        Some(ms(12_000))
    );
    assert_eq!(
        hint(&[("retry-after-ms", "-1"), ("retry-after", "2")]),
        Some(ms(2000))
    );
}

#[test]
fn garbage_is_ignored_never_a_panic() {
    for bad in [
        "",
        " ",
        "-5",
        "NaN",
        "inf",
        "1e3",
        "0x10",
        "5s",
        "1,5",
        "1.2.3",
        "tomorrow",
        "99999999999999999999999999999",
        "Mon, 32 Foo 2023 99:99:99 GMT",
    ] {
        for name in [
            "retry-after-ms",
            "retry-after",
            "llm_provider-retry-after",
            "llm_provider-retry-after-ms",
        ] {
            assert_eq!(hint(&[(name, bad)]), None, "{name}: {bad:?}");
        }
    }
    // rate-limit resets are not a request to wait: not read here (the provider clients use
    // them for a 429 only)
    assert_eq!(hint(&[("x-ratelimit-reset-requests", "6m0s")]), None);
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("20s"));
    assert_eq!(
        classify_http_error_at(429, &h, b"", at()).retry_after(),
        None
    );
}

#[test]
fn a_raw_body_is_redacted_before_its_cut() {
    // A bearer token without a known prefix whose first 23 characters sit before the 200-byte
    // cut of a body that is not JSON (a proxy's error page echoing the header): cut first,
    // 23 characters are too few to look like a secret and were kept.
    let token = "Qm9xR2tLcDd3WnY1TjhqYjRzQ2FGaFk";
    // (Written for this test: the shape of an HTML error page, not a recorded one.)
    let head = format!("<html>{}Bearer ", "x ".repeat(82));
    let head = head.as_str();
    let body = format!("{head}{token}</html>");
    assert_eq!(body.find(token), Some(177));
    let e = classify(502, &body);
    assert_eq!(e.kind(), ErrorKind::Server);
    let detail = e.detail().unwrap();
    assert!(!detail.contains(&token[..8]), "{detail}");
    assert!(detail.starts_with(&head[..150]), "{detail}");
    assert!(detail.ends_with('…'), "{detail}");
    assert!(!format!("{e:?}").contains(&token[..8]));
}

#[test]
fn a_message_is_redacted_before_its_cut() {
    // OpenAI's 401 `invalid_api_key` body shape (API reference, error codes), its message
    // lengthened for this test so the key (no known prefix) crosses MAX_DETAIL_LEN.
    let key = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6";
    let filler = "word ".repeat((MAX_DETAIL_LEN - 40) / 5);
    let message = format!("{filler}Incorrect API key provided: {key}. See docs.");
    let cut_at = message.find(key).unwrap();
    assert!(cut_at < MAX_DETAIL_LEN && cut_at + key.len() > MAX_DETAIL_LEN);
    let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
    let e = classify(401, &body.to_string());
    assert_eq!(e.kind(), ErrorKind::Authentication);
    let detail = e.detail().unwrap();
    assert!(!detail.contains(&key[..4]), "{detail}");
    assert!(detail.contains("Incorrect API key provided: "));
    assert!(detail.len() <= MAX_DETAIL_LEN + '…'.len_utf8());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Wherever a secret-looking token sits relative to the cut, no 8 characters of it survive,
    /// and the detail stays bounded; arbitrary text never panics.
    #[test]
    fn no_cut_keeps_a_piece_of_a_token(
        lead in 0usize..(MAX_DETAIL_LEN + 40),
        token in "[a-z]{6}[0-9][A-Za-z0-9]{25,40}",
        noise in "\\PC{0,80}",
    ) {
        let text = format!("{}{token} {noise}", "w ".repeat(lead / 2));
        let err = LlmError::new(ErrorKind::Server).with_detail(&text);
        let detail = err.detail().unwrap_or_default();
        proptest::prop_assert!(!detail.contains(&token[..8]), "{}", detail);
        proptest::prop_assert!(detail.len() <= MAX_DETAIL_LEN + '…'.len_utf8());
        let raw = classify(502, &text);
        let detail = raw.detail().unwrap_or_default();
        proptest::prop_assert!(!detail.contains(&token[..8]), "{}", detail);
    }
}
