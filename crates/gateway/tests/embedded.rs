//! The gateway on its embedded default (simulated providers), over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use towerguard::config::Config;
use towerguard_gateway::config::gateway_from_config;
use towerguard_gateway::{Gateway, Secret, Settings, Tenant, key_sha256};

fn embedded(adjust: impl FnOnce(&mut Settings)) -> Gateway {
    let gateway = gateway_from_config(&Config::embedded_default()).unwrap();
    let mut settings = gateway.settings().clone();
    adjust(&mut settings);
    gateway.with_settings(settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_formats_complete_and_streamed() {
    let gw = start(embedded(|_| {})).await;
    let a = &gw.addr;

    let r = send(
        a,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "my-id-1")],
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("my-id-1"));
    assert!(r.header("x-towerguard-provider").is_some());
    assert!(r.header("x-towerguard-attempts").is_some());
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert!(
        j["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("fake answer")
    );

    let r = post(a, "/v1/messages", &anthropic_request("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));
    let j = r.json();
    assert_eq!(j["type"], "message");
    assert_eq!(j["content"][0]["type"], "text");

    let r = post(
        a,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", true),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r.body);
    assert_eq!(ev.last().unwrap().1, "[DONE]");
    let text: String = ev
        .iter()
        .filter(|(_, d)| d.starts_with('{'))
        .filter_map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(text.contains("fake answer"), "{text}");

    let r = post(a, "/v1/messages", &anthropic_request("gpt-4o-mini", true)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<String> = events(&r.body).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(names.iter().any(|n| n == "content_block_delta"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_stats_and_metrics() {
    let gw = start(embedded(|_| {})).await;
    let a = &gw.addr;
    for _ in 0..3 {
        let r = post(
            a,
            "/v1/chat/completions",
            &openai_request("gpt-4o-mini", false),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let m = get(a, "/v1/models").await.json();
    assert_eq!(m["object"], "list");
    assert!(
        m["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "gpt-4o-mini")
    );

    let h = get(a, "/health").await;
    assert_eq!(h.status, 200);
    let h = h.json();
    assert_eq!(h["providers"].as_array().unwrap().len(), 3);
    assert!(h["providers"][0]["state"].is_string());

    let s = get(a, "/stats").await.json();
    assert_eq!(s["total"]["requests"], 3, "{s}");
    assert_eq!(s["tenants"]["local"]["requests"], 3, "{s}");
    assert_eq!(s["fallback"]["requests"], 3, "{s}");

    let text = get(a, "/metrics").await.body;
    assert!(
        text.contains("towerguard_requests_total{format=\"openai\",status=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("towerguard_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("towerguard_breaker_state"), "{text}");
    assert!(text.contains("towerguard_tokens_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_naming_the_field_then_throttled() {
    let gw = start(embedded(|s| {
        s.admin_token = Some(Secret::new("admin-secret"))
    }))
    .await;
    let a = &gw.addr;
    let bad = r#"{"model":"gpt-4o-mini","messages":"oops"}"#;

    let r = post(a, "/v1/chat/completions", bad).await;
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["error"]["type"], "invalid_request_error");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`messages`"),
        "{j}"
    );

    let r = post(a, "/v1/messages", "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "error");

    let mut throttled = None;
    for _ in 0..20 {
        let r = post(a, "/v1/chat/completions", bad).await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 400);
    }
    let r = throttled.expect("a client sending garbage is throttled");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");

    // a good request from the same tenant is refused too, until unthrottled
    let r = post(
        a,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    let s = get(a, "/stats").await.json();
    assert!(
        s["throttled"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tenant"] == "local"),
        "{s}"
    );

    let r = post(a, "/admin/tenants/local/unthrottle", "").await;
    assert_eq!(r.status, 401);
    let r = send(
        a,
        "POST",
        "/admin/tenants/local/unthrottle",
        &[("authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = send(
        a,
        "POST",
        "/admin/tenants/local/unthrottle",
        &[("x-admin-token", "admin-secret")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        a,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes() {
    // absent without a token
    let gw = start(embedded(|_| {})).await;
    let r = send(
        &gw.addr,
        "POST",
        "/admin/providers/sim-flaky/open",
        &[("x-admin-token", "x")],
        "",
    )
    .await;
    assert_eq!(r.status, 404);

    let gw = start(embedded(|s| s.admin_token = Some(Secret::new("t0ken")))).await;
    let a = &gw.addr;
    let name = get(a, "/health").await.json()["providers"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(a, &format!("/admin/providers/{name}/open"), "").await;
    assert_eq!(r.status, 401);
    let auth = [("authorization", "Bearer t0ken")];
    let r = send(
        a,
        "POST",
        &format!("/admin/providers/{name}/open"),
        &auth,
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = get(a, "/health").await.json();
    assert_eq!(h["providers"][0]["state"], "forced_open", "{h}");
    // the others serve
    let r = post(
        a,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.header("x-towerguard-provider"), Some(name.as_str()));
    let r = send(
        a,
        "POST",
        &format!("/admin/providers/{name}/reset"),
        &auth,
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(a, "/health").await.json()["providers"][0]["state"],
        "closed"
    );
    let r = send(a, "POST", "/admin/providers/nope/reset", &auth, "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_map_to_tenants() {
    let gw = start(embedded(|s| {
        s.keys_required = true;
        s.tenants = vec![Tenant {
            name: "acme".into(),
            key_sha256: key_sha256("sk-acme-123"),
        }];
    }))
    .await;
    let a = &gw.addr;
    let body = openai_request("gpt-4o-mini", false);

    let r = post(a, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = send(
        a,
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk-wrong")],
        &anthropic_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    assert!(!r.body.contains("sk-wrong"));

    let r = send(
        a,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-acme-123")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-towerguard-tenant"), Some("acme"));
    let r = send(
        a,
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk-acme-123")],
        &anthropic_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = get(a, "/stats").await.json();
    assert_eq!(s["tenants"]["acme"]["requests"], 2, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_optional_by_default_and_body_limit() {
    let gw = start(embedded(|s| s.max_body_bytes = 200)).await;
    let a = &gw.addr;
    let r = send(
        a,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer anything")],
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tenant = r.header("x-towerguard-tenant").unwrap();
    assert!(
        tenant.starts_with("key-") && !tenant.contains("anything"),
        "{tenant}"
    );

    let big = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(500)
    );
    let r = post(a, "/v1/messages", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    let r = post(a, "/v1/chat/completions", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}
