//! The gateway over a pipeline of one's own (any `Service<LlmRequest>`), with its own
//! `Operations`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tower::util::BoxCloneSyncService;
use towerguard_gateway::{
    BoxFuture, Gateway, ModelInfo, Operations, Pipeline, ProviderHealth, Settings,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Usage};

struct NoOps;

impl Operations for NoOps {
    fn health(&self) -> Vec<ProviderHealth> {
        vec![ProviderHealth {
            name: "stub".into(),
            state: "open".into(),
            last_error: Some("server".into()),
            success_rate: Some(0.0),
        }]
    }
    fn stats(&self) -> BoxFuture<'_, serde_json::Value> {
        Box::pin(async { serde_json::json!({}) })
    }
    fn reset_provider(&self, _: &str) -> bool {
        false
    }
    fn force_open(&self, _: &str) -> bool {
        false
    }
    fn unthrottle<'a>(&'a self, _: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
    fn client_error<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async { None })
    }
    fn models(&self) -> Vec<ModelInfo> {
        vec![]
    }
}

fn gateway(pipeline: Pipeline, settings: Settings) -> Gateway {
    Gateway::new(pipeline, Arc::new(NoOps), settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_answer_reaches_a_stream_client_as_a_short_stream() {
    let pipeline = BoxCloneSyncService::new(tower::service_fn(|req: LlmRequest| async move {
        Ok::<_, LlmError>(
            LlmResponse::new("whole answer", req.model().to_owned(), "stub")
                .with_usage(Usage::new(3, 2)),
        )
    }));
    let gw = start(gateway(pipeline, Settings::default())).await;
    let r = post(&gw.addr, "/v1/messages", &anthropic_request("m", true)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events(&r.body);
    assert_eq!(ev.first().unwrap().0, "message_start");
    assert!(r.body.contains("whole answer"), "{}", r.body);
    assert_eq!(ev.last().unwrap().0, "message_stop");
    let r = post(&gw.addr, "/v1/chat/completions", &openai_request("m", true)).await;
    assert!(
        r.body.contains("whole answer") && r.body.contains("\"prompt_tokens\":3"),
        "{}",
        r.body
    );
    assert_eq!(events(&r.body).last().unwrap().1, "[DONE]");
    // health says down when every breaker is open
    assert_eq!(get(&gw.addr, "/health").await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_answers_504_in_the_callers_format() {
    let pipeline = BoxCloneSyncService::new(tower::service_fn(|_req: LlmRequest| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Err::<LlmResponse, _>(LlmError::new(ErrorKind::Server))
    }));
    let settings = Settings {
        request_timeout: Duration::from_millis(200),
        ..Settings::default()
    };
    let gw = start(gateway(pipeline, settings)).await;
    let r = post(&gw.addr, "/v1/messages", &anthropic_request("m", false)).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "timeout_error");
    let r = post(
        &gw.addr,
        "/v1/chat/completions",
        &openai_request("m", false),
    )
    .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["type"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_statuses() {
    for (kind, status) in [
        (ErrorKind::BudgetExceeded, 402),
        (ErrorKind::ModelNotFound, 404),
        (ErrorKind::Timeout, 504),
        (ErrorKind::CircuitOpen, 503),
        (ErrorKind::Authentication, 502),
        (ErrorKind::ContextLengthExceeded, 400),
    ] {
        let pipeline =
            BoxCloneSyncService::new(tower::service_fn(move |_req: LlmRequest| async move {
                Err::<LlmResponse, _>(LlmError::new(kind).with_detail("secret upstream body"))
            }));
        let gw = start(gateway(pipeline, Settings::default())).await;
        for (path, body) in [
            ("/v1/messages", anthropic_request("m", false)),
            ("/v1/chat/completions", openai_request("m", true)),
        ] {
            let r = post(&gw.addr, path, &body).await;
            assert_eq!(r.status, status, "{kind:?} {path}: {}", r.body);
            assert!(!r.body.contains("secret upstream body"));
            assert!(r.json()["error"]["message"].is_string());
        }
    }
}
