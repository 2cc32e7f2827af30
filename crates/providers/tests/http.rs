//! The clients against a real HTTP server on loopback that replays provider payloads.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

use tower::ServiceExt;
use towerguard_llm_core::{ErrorKind, FinishReason, LlmError, LlmRequest, Message, Usage};
use towerguard_providers::{Anthropic, ApiKey, Limits, OpenAiCompatible, Preset, RateLimitInfo};

mod common;
use common::{Reply, ok, stub};

fn req() -> LlmRequest {
    LlmRequest::new(
        "gpt-4o-mini",
        vec![Message::system("You are terse."), Message::user("Say hi")],
    )
    .with_max_tokens(50)
    .with_temperature(0.5)
}

fn openai_at(base: &str, key: &str) -> OpenAiCompatible {
    OpenAiCompatible::builder("openai", format!("{base}/v1"))
        .api_key(ApiKey::new(key).unwrap())
        .build()
        .unwrap()
}

const OPENAI_OK: &str = r#"{
  "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1741569952,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "refusal": null},
               "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 2006, "completion_tokens": 3, "total_tokens": 2009,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}},
  "service_tier": "default", "system_fingerprint": "fp_06737a9306"
}"#;

#[tokio::test]
async fn openai_success_and_the_request_sent() {
    let headers = vec![
        ("x-ratelimit-limit-requests", "10000".to_owned()),
        ("x-ratelimit-remaining-requests", "9999".to_owned()),
        ("x-ratelimit-reset-requests", "6ms".to_owned()),
    ];
    let (base, seen) = stub(vec![Reply::Full(200, headers, OPENAI_OK.into())]).await;
    let resp = openai_at(&base, "sk-test-key")
        .oneshot(req())
        .await
        .unwrap();
    assert_eq!(resp.text(), "Hi!");
    assert_eq!(resp.provider(), "openai");
    assert_eq!(resp.model(), "gpt-4o-mini-2024-07-18");
    assert_eq!(*resp.finish_reason(), FinishReason::Stop);
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 86,
            output_tokens: 3,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    );
    let info = resp.extensions.get::<RateLimitInfo>().unwrap();
    assert_eq!(info.requests_remaining, Some(9999));
    let seen = seen.lock().unwrap()[0].clone();
    assert!(
        seen.head.starts_with("POST /v1/chat/completions HTTP/1.1"),
        "{}",
        seen.head
    );
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer sk-test-key")
    );
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "Say hi");
    assert_eq!(body["max_tokens"], 50);
    assert!(
        body.get("stream").is_none(),
        "not a stream: the field is left out"
    );
    assert!(body.get("top_p").is_none());
}

const ANTHROPIC_OK: &str = r#"{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
  "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}],
  "model": "claude-sonnet-4-5-20250929", "stop_reason": "max_tokens", "stop_sequence": null,
  "usage": {"input_tokens": 12, "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 2048, "output_tokens": 6}
}"#;

#[tokio::test]
async fn anthropic_success_and_the_request_sent() {
    let (base, seen) = stub(vec![ok(ANTHROPIC_OK)]).await;
    let claude = Anthropic::builder(ApiKey::new("sk-ant-test").unwrap())
        .base_url(base)
        .build()
        .unwrap();
    let resp = claude.oneshot(req()).await.unwrap();
    assert_eq!(resp.text(), "Hi there");
    assert_eq!(resp.provider(), "anthropic");
    assert_eq!(*resp.finish_reason(), FinishReason::Length);
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 12,
            output_tokens: 6,
            cached_input_tokens: 2048,
            cache_write_tokens: 100,
            reasoning_tokens: 0,
        }
    );
    let seen = seen.lock().unwrap()[0].clone();
    assert!(seen.head.starts_with("POST /v1/messages HTTP/1.1"));
    assert_eq!(seen.header("x-api-key").as_deref(), Some("sk-ant-test"));
    assert_eq!(
        seen.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert!(seen.header("authorization").is_none());
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["max_tokens"], 50);
}

fn openai_err(message: &str, ty: &str, code: &str) -> String {
    format!(r#"{{"error":{{"message":"{message}","type":"{ty}","param":null,"code":{code}}}}}"#)
}

fn anthropic_err(ty: &str, message: &str) -> String {
    format!(
        r#"{{"type":"error","error":{{"type":"{ty}","message":"{message}"}},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}}"#
    )
}

#[tokio::test]
async fn every_error_row_with_its_real_body() {
    let rows: Vec<(u16, String, ErrorKind)> = vec![
        (
            400,
            openai_err(
                "This model's maximum context length is 128000 tokens.",
                "invalid_request_error",
                "\"context_length_exceeded\"",
            ),
            ErrorKind::ContextLengthExceeded,
        ),
        (
            400,
            anthropic_err(
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
            ),
            ErrorKind::ContextLengthExceeded,
        ),
        (
            400,
            openai_err(
                "Your request was rejected as a result of our safety system.",
                "invalid_request_error",
                "\"content_policy_violation\"",
            ),
            ErrorKind::ContentPolicy,
        ),
        (
            400,
            openai_err(
                "Invalid 'messages': empty array.",
                "invalid_request_error",
                "\"empty_array\"",
            ),
            ErrorKind::InvalidRequest,
        ),
        (
            401,
            openai_err(
                "Incorrect API key provided: sk-test-****-key.",
                "invalid_request_error",
                "\"invalid_api_key\"",
            ),
            ErrorKind::Authentication,
        ),
        (
            402,
            anthropic_err("billing_error", "Your credit balance is too low."),
            ErrorKind::QuotaExceeded,
        ),
        (
            403,
            anthropic_err(
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            ErrorKind::PermissionDenied,
        ),
        (
            404,
            openai_err(
                "The model `gpt-9` does not exist or you do not have access to it.",
                "invalid_request_error",
                "\"model_not_found\"",
            ),
            ErrorKind::ModelNotFound,
        ),
        (408, "".into(), ErrorKind::Timeout),
        (
            409,
            openai_err("Lock timeout", "conflict", "null"),
            ErrorKind::Server,
        ),
        (
            413,
            anthropic_err(
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            ErrorKind::InvalidRequest,
        ),
        (
            422,
            r#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#.into(),
            ErrorKind::InvalidRequest,
        ),
        (
            429,
            openai_err(
                "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
                "requests",
                "\"rate_limit_exceeded\"",
            ),
            ErrorKind::RateLimited,
        ),
        (
            429,
            openai_err(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "\"insufficient_quota\"",
            ),
            ErrorKind::QuotaExceeded,
        ),
        (
            500,
            openai_err(
                "The server had an error while processing your request.",
                "server_error",
                "null",
            ),
            ErrorKind::Server,
        ),
        (
            502,
            "<html><body>502 Bad Gateway</body></html>".into(),
            ErrorKind::Server,
        ),
        (
            503,
            openai_err(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                "null",
            ),
            ErrorKind::Overloaded,
        ),
        (504, "upstream request timeout".into(), ErrorKind::Server),
        (
            529,
            anthropic_err("overloaded_error", "Overloaded"),
            ErrorKind::Overloaded,
        ),
    ];
    let replies = rows
        .iter()
        .map(|(s, b, _)| Reply::Full(*s, vec![], b.clone()))
        .collect();
    let (base, _) = stub(replies).await;
    let client = openai_at(&base, "sk-test-key");
    for (status, _, kind) in rows {
        let e = client.clone().oneshot(req()).await.unwrap_err();
        assert_eq!((e.status(), e.kind()), (Some(status), kind), "{e:?}");
        assert_eq!(e.provider(), Some("openai"));
        assert_eq!(e.is_retryable(), kind.is_retryable(), "{status}");
    }
}

#[tokio::test]
async fn retry_after_in_both_forms_and_rate_limit_hints() {
    let date = httpdate_in(Duration::from_secs(30));
    let (base, _) = stub(vec![
        Reply::Full(
            429,
            vec![("retry-after", "7".into())],
            anthropic_err("rate_limit_error", "slow down"),
        ),
        Reply::Full(503, vec![("retry-after", date)], "".into()),
        Reply::Full(
            429,
            vec![
                ("retry-after-ms", "1500".into()),
                ("x-should-retry", "true".into()),
                ("x-ratelimit-limit-tokens", "30000".into()),
                ("x-ratelimit-remaining-tokens", "0".into()),
                ("x-ratelimit-reset-tokens", "1m30s".into()),
            ],
            openai_err("Rate limit reached", "tokens", "\"rate_limit_exceeded\""),
        ),
    ])
    .await;
    let client = openai_at(&base, "k");
    let e = client.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let e = client.clone().oneshot(req()).await.unwrap_err();
    let d = e.retry_after().unwrap();
    assert!(
        d > Duration::from_secs(27) && d <= Duration::from_secs(30),
        "{d:?}"
    );
    let e = client.oneshot(req()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    assert_eq!(e.should_retry_hint(), Some(true));
    let info = e.extensions().get::<RateLimitInfo>().unwrap();
    assert_eq!(
        (info.tokens_remaining, info.tokens_reset),
        (Some(0), Some(Duration::from_secs(90)))
    );
}

fn httpdate_in(d: Duration) -> String {
    // RFC 7231 IMF-fixdate, built by hand to keep the test free of date crates
    let t = SystemTime::now() + d;
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test(start_paused = true)]
async fn a_slow_upstream_hits_the_timeout() {
    let (base, _) = stub(vec![Reply::Hang]).await;
    let client = OpenAiCompatible::builder("slow", format!("{base}/v1"))
        .limits(Limits {
            request_timeout: Duration::from_secs(30),
            ..Limits::default()
        })
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let e = client.oneshot(req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.provider(), Some("slow"));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test]
async fn a_connection_dropped_mid_body() {
    let (base, _) = stub(vec![Reply::CutOff(OPENAI_OK[..100].to_owned())]).await;
    let e = openai_at(&base, "k").oneshot(req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn malformed_json_is_an_error_not_a_panic() {
    let (base, _) = stub(vec![
        ok("{\"choices\": [ {\"message\": "),
        ok("not json at all"),
        ok(r#"{"id":"x","choices":[]}"#),
        ok(r#"{"choices":[{"message":{"content":12}}]}"#),
        ok(r#"{"content": "wrong shape"}"#),
    ])
    .await;
    let client = openai_at(&base, "k");
    for _ in 0..4 {
        let e = client.clone().oneshot(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert!(
            e.detail().unwrap().starts_with("malformed response"),
            "{e:?}"
        );
    }
    let (base, _) = stub(vec![ok(r#"{"content": "wrong shape"}"#)]).await;
    let claude = Anthropic::builder(ApiKey::new("k").unwrap())
        .base_url(base)
        .build()
        .unwrap();
    // `content` must be a list of blocks
    let e = claude.oneshot(req()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.provider()),
        (ErrorKind::Server, Some("anthropic"))
    );
    assert!(
        e.detail().unwrap().starts_with("malformed response"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let big = format!(
        r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#,
        "x".repeat(100_000)
    );
    let (base, _) = stub(vec![ok(&big)]).await;
    let client = OpenAiCompatible::builder("openai", format!("{base}/v1"))
        .limits(Limits {
            max_response_bytes: 10_000,
            ..Limits::default()
        })
        .build()
        .unwrap();
    let e = client.oneshot(req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(!e.is_retryable());
    assert!(e.detail().unwrap().contains("larger than 10000 bytes"));
}

#[tokio::test]
async fn a_refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = openai_at(&format!("http://{addr}"), "k")
        .oneshot(req())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e:?}");
    assert_eq!(e.status(), None);
}

#[tokio::test]
async fn a_key_from_the_environment_is_never_printed() {
    let secret = "sk-proj-Zq8VtL3kWm2Xc9Rb4Nf7Hy1Gd6Js5Ap0";
    let (base, seen) = stub(vec![Reply::Full(
        401,
        vec![],
        openai_err(
            &format!("Incorrect API key provided: {secret}."),
            "invalid_request_error",
            "\"invalid_api_key\"",
        ),
    )])
    .await;
    let env = move |name: &str| match name {
        "OPENAI_API_KEY" => Some(secret.to_owned()),
        "OPENAI_BASE_URL" => Some(format!("{base}/v1")),
        _ => None,
    };
    let client = OpenAiCompatible::preset_from(Preset::OpenAi, &env).unwrap();
    assert!(!format!("{client:?}").contains(secret));
    let e: LlmError = client.oneshot(req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    for shown in [
        format!("{e}"),
        format!("{e:?}"),
        e.client_message().to_owned(),
    ] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("Zq8VtL3k"), "{shown}");
    }
    // it was sent, as a header, and only there
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {secret}"))
    );
    assert!(!seen.body.contains(secret));

    let anthropic_env = |name: &str| (name == "ANTHROPIC_API_KEY").then(|| secret.to_owned());
    let claude = Anthropic::from_env_with(&anthropic_env).unwrap();
    assert!(!format!("{claude:?}").contains(secret));
}

#[test]
fn invalid_configuration_is_rejected_naming_the_field() {
    let e = OpenAiCompatible::builder("x", "ftp://example.com")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "base_url");
    let e = OpenAiCompatible::builder("x", "not a url")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "base_url");
    let e = OpenAiCompatible::preset_from(Preset::Xai, &|_: &str| None).unwrap_err();
    assert_eq!(e.field(), "api_key");
    assert!(e.to_string().contains("XAI_API_KEY or GROK_API_KEY"), "{e}");
    let grok = |n: &str| (n == "GROK_API_KEY").then(|| "xai-123".to_owned());
    assert!(OpenAiCompatible::preset_from(Preset::Xai, &grok).is_ok());
    let ollama = OpenAiCompatible::preset_from(Preset::Ollama, &|n: &str| {
        (n == "OLLAMA_HOST").then(|| "10.1.2.3:11434".to_owned())
    })
    .unwrap();
    assert!(format!("{ollama:?}").contains("http://10.1.2.3:11434/v1/chat/completions"));
    let e = OpenAiCompatible::builder("x", "http://127.0.0.1:1/v1")
        .limits(Limits {
            request_timeout: Duration::ZERO,
            ..Limits::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "request_timeout");
    let e = Anthropic::builder(ApiKey::new("bad\nkey").unwrap())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "api_key");
    assert!(!e.to_string().contains("bad"));
    assert!(ApiKey::new("   ").is_none());
}
