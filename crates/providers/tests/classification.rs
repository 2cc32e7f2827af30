//! The clients against a loopback server that records what it was sent and answers with
//! recorded provider bodies: the `User-Agent`, the client's own key scrubbed from every error,
//! unknown models, and the Retry-After hints real servers and proxies send.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, MAX_DETAIL_LEN, Message};
use towerguard_providers::{Anthropic, ApiKey, OpenAiCompatible, RateLimitInfo};

/// One answer: status, extra headers, body.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
    Answer {
        status,
        headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        body: body.to_owned(),
    }
}

/// The request heads the server saw, in order, as `(lowercase name, value)` pairs.
type Heads = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A server on 127.0.0.1 answering the n-th connection with the n-th answer (one request per
/// connection, then `connection: close`). Returns the base URL and the recorded heads.
async fn server(answers: Vec<Answer>) -> (String, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let heads: Heads = Arc::default();
    let log = heads.clone();
    tokio::spawn(async move {
        for a in answers {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let end = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end;
                }
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head: Vec<(String, String)> = String::from_utf8_lossy(&buf[..end])
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            let len: usize = head
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut have = buf.len() - end - 4;
            while have < len {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                have += n;
            }
            log.lock().unwrap().push(head);
            let mut out = format!(
                "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                a.status,
                a.body.len()
            );
            for (k, v) in &a.headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&a.body);
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (base, heads)
}

fn header<'a>(head: &'a [(String, String)], name: &str) -> Option<&'a str> {
    head.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn req(model: &str) -> LlmRequest {
    LlmRequest::new(model, vec![Message::user("Say hi")]).with_max_tokens(16)
}

fn openai(base: &str, key: &str) -> OpenAiCompatible {
    OpenAiCompatible::builder("openai", format!("{base}/v1"))
        .api_key(ApiKey::new(key).unwrap())
        .build()
        .unwrap()
}

fn anthropic(base: &str, key: &str) -> Anthropic {
    Anthropic::builder(ApiKey::new(key).unwrap())
        .base_url(base)
        .build()
        .unwrap()
}

/// OpenAI API reference, chat completion object (trimmed).
const OPENAI_OK: &str = r#"{"id":"chatcmpl-abc123","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
/// Anthropic API reference, Messages response (trimmed).
const ANTHROPIC_OK: &str = r#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":3}}"#;

#[tokio::test]
async fn every_request_names_towerguard_and_its_version() {
    let want = format!("towerguard/{}", env!("CARGO_PKG_VERSION"));
    let (base, heads) = server(vec![
        answer(200, &[], OPENAI_OK),
        answer(200, &[], ANTHROPIC_OK),
        // an error answer: the request had the header too
        answer(500, &[], ""),
    ])
    .await;
    let gpt = openai(&base, "sk-test");
    assert_eq!(
        gpt.clone()
            .oneshot(req("gpt-4o-mini"))
            .await
            .unwrap()
            .text(),
        "Hi!"
    );
    let claude = anthropic(&base, "sk-ant-test");
    assert_eq!(
        claude
            .oneshot(req("claude-sonnet-4-5"))
            .await
            .unwrap()
            .text(),
        "Hi!"
    );
    assert_eq!(
        gpt.oneshot(req("gpt-4o-mini")).await.unwrap_err().kind(),
        ErrorKind::Server
    );
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 3);
    for head in heads.iter() {
        assert_eq!(header(head, "user-agent"), Some(want.as_str()));
        assert_eq!(head.iter().filter(|(k, _)| k == "user-agent").count(), 1);
    }
}

/// Every way an error of `e` can be shown.
fn shown(e: &LlmError) -> Vec<String> {
    vec![
        format!("{e:?}"),
        format!("{e:#?}"),
        e.to_string(),
        e.detail().unwrap_or_default().to_owned(),
        e.client_message().to_owned(),
    ]
}

/// Three error answers echoing `key`: OpenAI's 401, a plain-text page with the key crossing
/// the 200-byte cut, and a 401 with the key crossing the 512-byte detail cut.
fn echoing(key: &str) -> Vec<Answer> {
    // OpenAI API reference, error codes: 401 `invalid_api_key` (it echoes the key given).
    let openai_401 = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    // A proxy's plain-text error page echoing the header (written for this test).
    let lead = 200 - 6 - "Authorization: Bearer ".len();
    let page = format!(
        "{}Authorization: Bearer {key} rejected",
        "-".repeat(lead - 1) + " "
    );
    let at = page.find(key).unwrap();
    assert!(at < 200 && at + key.len() > 200);
    // The 401 body, lengthened for this test so the key crosses the 512-byte detail cut.
    let long = format!(
        r#"{{"error":{{"message":"{}Incorrect API key provided: {key}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#,
        "word ".repeat((MAX_DETAIL_LEN - 40) / 5)
    );
    vec![
        answer(401, &[], &openai_401),
        answer(502, &[("content-type", "text/plain")], &page),
        answer(401, &[], &long),
    ]
}

#[tokio::test]
async fn a_key_of_any_format_is_scrubbed_from_echoing_error_bodies() {
    // Keys without a known prefix; the last two too plain for the generic redaction, so only
    // the client's exact replacement removes them.
    let keys = [
        "abc123XYZ-secret-without-prefix",
        "opensesame-gateway",
        "letmein",
    ];
    let mut answers: Vec<Answer> = keys[..2].iter().flat_map(|k| echoing(k)).collect();
    // Anthropic API reference, errors: 401 `authentication_error`, the echo added for this
    // test.
    answers.push(answer(
        401,
        &[],
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key: letmein"}}"#,
    ));
    let (base, _) = server(answers).await;
    for key in &keys[..2] {
        let client = openai(&base, key);
        for want in [
            ErrorKind::Authentication,
            ErrorKind::Server,
            ErrorKind::Authentication,
        ] {
            let e = client
                .clone()
                .oneshot(req("gpt-4o-mini"))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), want);
            assert!(e.detail().unwrap().contains("[REDAC"), "{e:?}");
            for text in shown(&e) {
                // not the key, nor its first 6 characters (a cut-off prefix)
                assert!(!text.contains(&key[..6]), "{key}: {text}");
            }
        }
        assert!(!format!("{client:?}").contains(&key[..6]));
    }

    let claude = anthropic(&base, keys[2]);
    let e = claude
        .clone()
        .oneshot(req("claude-sonnet-4-5"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert_eq!(e.detail(), Some("invalid x-api-key: [REDACTED]"));
    for text in shown(&e) {
        assert!(!text.contains(keys[2]), "{text}");
    }
    assert!(!format!("{claude:?}").contains(keys[2]));
}

#[tokio::test]
async fn a_key_quoted_in_a_malformed_success_is_scrubbed_too() {
    // A 200 whose body a parser rejects while quoting it (written for this test).
    let key = "plainkey";
    let body = r#"{"model":"plainkey","choices":"plainkey"}"#;
    let (base, _) = server(vec![answer(200, &[], body)]).await;
    let e = openai(&base, key)
        .oneshot(req("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(
        e.detail().unwrap().starts_with("malformed response"),
        "{e:?}"
    );
    for text in shown(&e) {
        assert!(!text.contains(key), "{text}");
    }
}

#[tokio::test]
async fn a_connection_error_names_no_key() {
    // Nothing listens on a port just freed: the error detail is built from hyper's chain.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let key = "abc123XYZ-secret-without-prefix";
    let e = openai(&base, key)
        .oneshot(req("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    for text in shown(&e) {
        assert!(!text.contains(&key[..6]), "{text}");
    }
}

#[tokio::test]
async fn unknown_models_fall_back_whatever_the_server() {
    let (base, _) = server(vec![
        // LiteLLM proxy answer to a model not in its list: a 400.
        answer(
            400,
            &[],
            r#"{"error":{"message":"Invalid model name passed in model=foo. Call `/v1/models` to view available models for your key.","type":"invalid_request_error","param":null,"code":"400"}}"#,
        ),
        // OpenAI API reference, error codes: `model_not_found`, here as a proxy's 400.
        answer(
            400,
            &[],
            r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
        ),
        // Ollama's OpenAI-compatible endpoint, a model not pulled: a 404.
        answer(
            404,
            &[],
            r#"{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#,
        ),
        // Anthropic API reference, errors: `not_found_error`.
        answer(
            404,
            &[],
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
        ),
    ])
    .await;
    let gpt = openai(&base, "sk-1234");
    for model in ["foo", "gpt-9", "llama9"] {
        let e = gpt.clone().oneshot(req(model)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ModelNotFound, "{model}: {e:?}");
        assert!(e.should_fallback() && !e.is_retryable(), "{model}");
    }
    let e = anthropic(&base, "sk-ant-test")
        .oneshot(req("claude-9"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ModelNotFound);
    assert_eq!(e.provider(), Some("anthropic"));
}

#[tokio::test]
async fn a_429s_hint_from_every_header_real_servers_send() {
    let s = Duration::from_secs;
    let (base, _) = server(vec![
        // OpenAI API reference, rate limits: headers of a 429 without retry-after; the tokens
        // are exhausted, so their reset is the wait.
        answer(
            429,
            &[
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "499"),
                ("x-ratelimit-reset-requests", "12ms"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-xyz on tokens per min (TPM): Limit 30000, Used 30000, Requested 120.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        // Both allowances left: which refused is unknown, so the soonest reset.
        answer(
            429,
            &[
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "3"),
                ("x-ratelimit-reset-requests", "1h2m3.5s"),
                ("x-ratelimit-remaining-tokens", "100"),
                ("x-ratelimit-reset-tokens", "0.5s"),
            ],
            "",
        ),
        // An explicit retry-after wins over the resets.
        answer(
            429,
            &[
                ("retry-after", "20"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            "",
        ),
        // LiteLLM proxy: the provider's retry-after forwarded under `llm_provider-`.
        answer(
            429,
            &[
                ("llm_provider-retry-after", "2.5"),
                ("x-litellm-attempted-fallbacks", "0"),
            ],
            r#"{"error":{"message":"litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached","type":"throttling_error","param":null,"code":"429"}}"#,
        ),
        // Garbage resets are ignored: no hint, still rate limited.
        answer(
            429,
            &[
                ("retry-after", "soon"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "later"),
            ],
            "",
        ),
        // Not a 429: the resets are facts, not a request to wait.
        answer(
            503,
            &[
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "20s"),
            ],
            "",
        ),
    ])
    .await;
    let client = openai(&base, "sk-1234");
    let next = async || {
        client
            .clone()
            .oneshot(req("gpt-4o-mini"))
            .await
            .unwrap_err()
    };
    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(s(360)));
    assert_eq!(e.verdict().retry_after(), Some(s(360)));
    let info = e.extensions().get::<RateLimitInfo>().unwrap();
    assert_eq!(info.requests_reset, Some(Duration::from_millis(12)));
    assert_eq!(next().await.retry_after(), Some(Duration::from_millis(500)));
    assert_eq!(next().await.retry_after(), Some(s(20)));
    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_millis(2500)));
    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), None);
    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.retry_after(), None);
}
