//! The gateway over a pipeline of one's own (any `Service<LlmRequest>`), with its own
//! `Operations`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tower::util::BoxCloneSyncService;
use towerguard_gateway::{
    BoxFuture, Gateway, ModelInfo, Operations, Pipeline, ProviderHealth, Settings,
};
use towerguard_llm_core::stream::{Chunk, ChunkStream};
use towerguard_llm_core::{ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, Usage};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_holds_its_place_until_it_ends() {
    // streams wait for `release`; complete answers come at once
    let (release, released) = tokio::sync::watch::channel(false);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let pipeline = BoxCloneSyncService::new(tower::service_fn(move |req: LlmRequest| {
        seen.fetch_add(1, Ordering::SeqCst);
        let mut released = released.clone();
        async move {
            if !req.options().stream {
                return Ok::<_, LlmError>(LlmResponse::new(
                    "whole",
                    req.model().to_owned(),
                    "stub",
                ));
            }
            let first = futures_util::stream::iter([Ok(Chunk::Text {
                choice: 0,
                text: "first".into(),
            })]);
            let last = futures_util::stream::once(async move {
                let _ = released.wait_for(|go| *go).await;
                Ok(Chunk::Finish {
                    choice: 0,
                    reason: FinishReason::Stop,
                })
            });
            let stream = ChunkStream::new(first.chain(last));
            Ok(LlmResponse::streaming(
                stream,
                req.model().to_owned(),
                "stub",
            ))
        }
    }));
    let settings = Settings {
        concurrency_limit: 1,
        ..Settings::default()
    };
    let gw = start(gateway(pipeline, settings)).await;

    // the stream's head and first event arrive, and it stays open
    let mut sock = tokio::net::TcpStream::connect(&gw.addr).await.unwrap();
    let body = openai_request("m", true);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut sock, head.as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("first") {
        let mut buf = [0u8; 1024];
        let n = tokio::io::AsyncReadExt::read(&mut sock, &mut buf)
            .await
            .unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // a second request waits for the only place: it does not reach the pipeline
    let addr = gw.addr.clone();
    let second = tokio::spawn(async move {
        post(&addr, "/v1/chat/completions", &openai_request("m", false)).await
    });
    let waited = tokio::time::timeout(Duration::from_millis(300), async {
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_err(),
        "a second request was let in beside the open stream"
    );

    // the stream ends: its place goes to the second request
    release.send(true).unwrap();
    let r = second.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("whole"), "{}", r.body);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
