//! The gateway in front of the real provider clients talking to fake upstream servers that
//! fail in scripted ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use towerguard::config::Config;

fn config(toml: &str) -> Config {
    Config::from_toml_str(toml, |name: &str| match name {
        "PRIMARY_KEY" => Some("sk-primary-secret-0000000000000000".to_owned()),
        "BACKUP_KEY" => Some("sk-ant-backup-secret-000000000000".to_owned()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn two_providers(primary: &str, backup: &str, retries: u32) -> Config {
    config(&format!(
        r#"
[limits]
error_threshold = 100

[providers.primary]
kind = "openai-compatible"
base_url = "{primary}/v1"
api_key_env = "PRIMARY_KEY"
model = "gpt-4o-mini"
retry = {{ max_retries = {retries}, backoff = "10ms", max_backoff = "20ms" }}

[providers.backup]
kind = "anthropic"
base_url = "{backup}"
api_key_env = "BACKUP_KEY"
model = "claude-sonnet-4-5"
retry = {{ max_retries = 0 }}
"#
    ))
}

fn one_provider(primary: &str) -> Config {
    config(&format!(
        r#"
[providers.primary]
kind = "openai-compatible"
base_url = "{primary}/v1"
api_key_env = "PRIMARY_KEY"
model = "gpt-4o-mini"
retry = {{ max_retries = 0 }}
"#
    ))
}

fn server_error() -> Reply {
    Reply::Json(
        500,
        vec![],
        r#"{"error":{"message":"internal upstream detail sk-primary-secret-0000000000000000","type":"server_error"}}"#.into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_serves_in_both_formats_with_headers() {
    let (p, _) = upstream(vec![server_error()]).await;
    let (b, seen) = upstream(vec![Reply::Json(
        200,
        vec![],
        anthropic_message("from backup", "claude-sonnet-4-5"),
    )])
    .await;
    let gw = start_config(&two_providers(&p, &b, 1)).await;

    let r = post(
        &gw.addr,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-towerguard-provider"), Some("backup"));
    assert_eq!(r.header("x-towerguard-fallbacks"), Some("primary=server"));
    assert_eq!(r.header("x-towerguard-attempts"), Some("1"));
    assert!(r.header("x-towerguard-cost-usd").is_some());
    let j = r.json();
    assert_eq!(j["choices"][0]["message"]["content"], "from backup");
    assert_eq!(j["usage"]["prompt_tokens"], 10);

    let r = post(
        &gw.addr,
        "/v1/messages",
        &anthropic_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["content"][0]["text"], "from backup");
    // the backup was asked for its own model
    assert!(seen.lock().unwrap()[0].contains("claude-sonnet-4-5"));

    let s = get(&gw.addr, "/stats").await.json();
    assert_eq!(s["total"]["requests"], 2, "{s}");
    assert_eq!(s["providers"]["backup"]["requests"], 2, "{s}");
    assert_eq!(s["tenants"]["local"]["requests"], 2, "{s}");
    assert_eq!(s["fallback"]["served_after_failure"], 2, "{s}");
    let m = get(&gw.addr, "/metrics").await.body;
    assert!(
        m.contains("towerguard_tokens_total{provider=\"backup\",type=\"input\"} 20"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_and_no_upstream_detail() {
    let limited = Reply::Json(
        429,
        vec![("retry-after", "7".into())],
        r#"{"error":{"message":"Rate limit reached for org-secret123 on tokens","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
    );
    let (p, _) = upstream(vec![limited]).await;
    let gw = start_config(&one_provider(&p)).await;
    for (path, body) in [
        ("/v1/chat/completions", openai_request("gpt-4o-mini", false)),
        ("/v1/messages", anthropic_request("gpt-4o-mini", false)),
        ("/v1/chat/completions", openai_request("gpt-4o-mini", true)),
    ] {
        let r = post(&gw.addr, path, &body).await;
        assert_eq!(r.status, 429, "{path}: {}", r.body);
        assert_eq!(r.header("retry-after"), Some("7"), "{path}");
        assert!(
            !r.body.contains("org-secret123") && !r.body.contains("sk-primary"),
            "{}",
            r.body
        );
        let j = r.json();
        assert_eq!(j["error"]["type"], "rate_limit_error", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_failing_is_503_listing_them() {
    let (p, _) = upstream(vec![server_error()]).await;
    let overloaded = Reply::Json(
        529,
        vec![("retry-after", "3".into())],
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
    );
    let (b, _) = upstream(vec![overloaded]).await;
    let gw = start_config(&two_providers(&p, &b, 0)).await;
    let r = post(
        &gw.addr,
        "/v1/messages",
        &anthropic_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(
        r.header("x-towerguard-fallbacks"),
        Some("primary=server, backup=overloaded")
    );
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    assert!(!r.body.contains("internal upstream detail"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_translate_and_a_cut_stream_ends_with_an_error_event() {
    let ok = Reply::Sse(
        openai_stream(&["Hel", "lo"], "gpt-4o-mini", true),
        Duration::ZERO,
    );
    let cut = Reply::Sse(
        openai_stream(&["par", "tial"], "gpt-4o-mini", false),
        Duration::ZERO,
    );
    let (p, _) = upstream(vec![ok.clone(), ok, cut.clone(), cut]).await;
    let gw = start_config(&one_provider(&p)).await;

    // an OpenAI stream served to an Anthropic client
    let r = post(
        &gw.addr,
        "/v1/messages",
        &anthropic_request("gpt-4o-mini", true),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events(&r.body);
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["delta"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Hello");
    assert_eq!(ev.last().unwrap().0, "message_stop");

    let r = post(
        &gw.addr,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", true),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(events(&r.body).last().unwrap().1, "[DONE]");

    // cut after two chunks: the client gets them, then the format's error event, no [DONE]
    let r = post(
        &gw.addr,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", true),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events(&r.body);
    assert!(
        r.body.contains("par") && r.body.contains("tial"),
        "{}",
        r.body
    );
    let last: serde_json::Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(!r.body.contains("[DONE]"));

    let r = post(
        &gw.addr,
        "/v1/messages",
        &anthropic_request("gpt-4o-mini", true),
    )
    .await;
    let ev = events(&r.body);
    assert_eq!(ev.last().unwrap().0, "error", "{}", r.body);
    assert!(!ev.iter().any(|(n, _)| n == "message_stop"));

    let m = get(&gw.addr, "/metrics").await.body;
    assert!(
        m.contains("towerguard_errors_total{format=\"openai\",kind=\"connection\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_an_in_flight_stream() {
    let words = ["a", "b", "c", "d", "e", "f"];
    let slow = Reply::Sse(
        openai_stream(&words, "gpt-4o-mini", true),
        Duration::from_millis(150),
    );
    let (p, _) = upstream(vec![slow]).await;
    let mut gw = start_config(&one_provider(&p)).await;
    let addr = gw.addr.clone();
    let client = tokio::spawn(async move {
        post(
            &addr,
            "/v1/chat/completions",
            &openai_request("gpt-4o-mini", true),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.shutdown();
    let r = client.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(events(&r.body).last().unwrap().1, "[DONE]", "{}", r.body);
    for w in words {
        assert!(
            r.body.contains(&format!("\"content\":\"{w}\"")),
            "{}",
            r.body
        );
    }
    tokio::time::timeout(Duration::from_secs(5), gw.join)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // and it no longer accepts connections
    assert!(tokio::net::TcpStream::connect(&gw.addr).await.is_err());
}
