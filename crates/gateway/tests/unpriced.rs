//! A model without a price, over loopback: the gateway answers it as its own
//! configuration fault, and the operator's log says which model. A test binary of its own:
//! the log is captured by a thread-local subscriber, which other tests logging on other
//! threads at the same time could race (`tracing` caches each call site's interest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use towerguard::config::Config;
use towerguard_llm_core::ErrorKind;

fn config(toml: &str) -> Config {
    Config::from_toml_str(toml, |name: &str| match name {
        "PRIMARY_KEY" => Some("sk-primary-secret-0000000000000000".to_owned()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// What a `tracing` subscriber wrote, for asserting on the operator's log.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A model without a price, while unknown models are refused, is the operator's
/// configuration fault: asked for by name (a provider that serves any model) or through an
/// alias, it is answered 500 in the caller's format with a server-side error type (never a
/// 4xx client fault) and the generic message, no provider is called, and the operator's log
/// names the model. It does not count against the tenant: more of them than the error
/// threshold, and the same tenant's request for a priced model is still served.
// current-thread: the server's tasks run on this thread, under the capturing subscriber
#[tokio::test]
async fn an_unpriced_model_is_a_server_error_that_does_not_throttle_the_tenant() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (p, seen) = upstream(vec![Reply::Json(
        200,
        vec![],
        openai_completion("priced answer", "gpt-4o-mini"),
    )])
    .await;
    let gw = start_config(&config(&format!(
        r#"
[budgets]
unknown_models = "reject"

[limits]
error_threshold = 2

[providers.primary]
kind = "openai-compatible"
base_url = "{p}/v1"
api_key_env = "PRIMARY_KEY"
retry = {{ max_retries = 0 }}

[aliases]
on-prem = {{ provider = "primary", model = "my-unpriced-local-model" }}
"#
    )))
    .await;

    let generic = ErrorKind::Configuration.default_message();
    for i in 0..3 {
        // the last one streamed: refused before any stream starts, the same answer
        let r = post(
            &gw.addr,
            "/v1/chat/completions",
            &openai_request("no-such-priced-model", i == 2),
        )
        .await;
        assert_eq!(r.status, 500, "{}", r.body);
        let j = r.json();
        assert_eq!(j["error"]["type"], "server_error", "{j}");
        assert_eq!(j["error"]["code"], "configuration", "{j}");
        assert_eq!(j["error"]["message"], generic, "{j}");

        let r = post(
            &gw.addr,
            "/v1/messages",
            &anthropic_request("on-prem", false),
        )
        .await;
        assert_eq!(r.status, 500, "{}", r.body);
        let j = r.json();
        assert_eq!(j["type"], "error", "{j}");
        assert_eq!(j["error"]["type"], "api_error", "{j}");
        assert_eq!(j["error"]["message"], generic, "{j}");
        assert!(
            !r.body.contains("sk-primary") && !r.body.contains("no price"),
            "{}",
            r.body
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "the meter refuses before any provider is called"
    );

    // the operator's log names the model (the alias resolved), the client's answer did not
    let text = log.text();
    assert!(
        text.contains("no price is known for model `no-such-priced-model`"),
        "{text}"
    );
    assert!(
        text.contains("no price is known for model `my-unpriced-local-model`"),
        "{text}"
    );
    assert!(!text.contains("sk-primary-secret"), "{text}");

    // six errors against a threshold of two, yet the tenant is not throttled
    let r = post(
        &gw.addr,
        "/v1/chat/completions",
        &openai_request("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "priced answer"
    );
    let s = get(&gw.addr, "/stats").await.json();
    assert_eq!(s["throttled"], serde_json::json!([]), "{s}");
    assert_eq!(s["limiter"]["errors"], 0, "{s}");
    assert_eq!(s["tenants"]["local"]["requests"], 1, "{s}");
    let m = get(&gw.addr, "/metrics").await.body;
    assert!(
        m.contains("towerguard_requests_total{format=\"openai\",status=\"500\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("towerguard_errors_total{format=\"anthropic\",kind=\"configuration\"} 3"),
        "{m}"
    );
}
