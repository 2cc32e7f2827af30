//! `towerguard::axum`: a router of three-line handlers over a pipeline, driven with tower's
//! `oneshot`: both formats complete and streamed, malformed and oversized bodies, an error
//! status with Retry-After, and a stream written as the client reads it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use tower::ServiceExt;
use towerguard::axum::{
    AnthropicRequest, AnthropicResponse, Format, OpenAiRequest, OpenAiResponse, as_requested,
    error_response,
};
use towerguard::llm::{Chunk, ChunkStream, ErrorKind, FinishReason, LlmError, LlmResponse};
use towerguard::preset::Pipeline;
use towerguard::testkit::{FakeProvider, Outcome};

async fn chat(State(p): State<Pipeline>, OpenAiRequest(req): OpenAiRequest) -> OpenAiResponse {
    OpenAiResponse(p.oneshot(req).await)
}

async fn messages(
    State(p): State<Pipeline>,
    AnthropicRequest(req): AnthropicRequest,
) -> AnthropicResponse {
    AnthropicResponse(p.oneshot(req).await)
}

fn app(pipeline: Pipeline) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .layer(DefaultBodyLimit::max(4096))
        .with_state(pipeline)
}

fn healthy() -> Router {
    app(Pipeline::new(FakeProvider::new("fake")))
}

async fn call(router: &Router, path: &str, body: String) -> Response {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    router.clone().oneshot(req).await.unwrap()
}

async fn text(resp: Response) -> String {
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn openai_body(stream: bool) -> String {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

fn anthropic_body(stream: bool) -> String {
    json!({"model": "claude-3-5-haiku", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
    .to_string()
}

/// The `data:` payloads of an SSE body.
fn data_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

#[tokio::test]
async fn openai_complete_and_streamed() {
    let app = healthy();
    let resp = call(&app, "/v1/chat/completions", openai_body(false)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["object"], "chat.completion");
    assert!(j["id"].as_str().unwrap().starts_with("chatcmpl-"), "{j}");
    assert!(j["created"].as_u64().unwrap() > 0, "{j}");
    assert!(
        !j["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    let resp = call(&app, "/v1/chat/completions", openai_body(true)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let body = text(resp).await;
    let data = data_lines(&body);
    assert_eq!(data.last().copied(), Some("[DONE]"), "{body}");
    let first: Value = serde_json::from_str(data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    let content: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!content.is_empty(), "{body}");
}

#[tokio::test]
async fn anthropic_complete_and_streamed() {
    let app = healthy();
    let resp = call(&app, "/v1/messages", anthropic_body(false)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["type"], "message");
    assert!(j["id"].as_str().unwrap().starts_with("msg_"), "{j}");
    assert_eq!(j["content"][0]["type"], "text");

    let resp = call(&app, "/v1/messages", anthropic_body(true)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = text(resp).await;
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first().copied(), Some("message_start"), "{body}");
    assert_eq!(events.last().copied(), Some("message_stop"), "{body}");
    assert!(events.contains(&"content_block_delta"), "{body}");
}

#[tokio::test]
async fn a_malformed_body_is_400_naming_the_field_in_its_format() {
    let app = healthy();
    let bad = r#"{"model":"gpt-4o-mini","messages":"oops"}"#.to_owned();
    let resp = call(&app, "/v1/chat/completions", bad.clone()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["error"]["type"], "invalid_request_error");
    let message = j["error"]["message"].as_str().unwrap();
    assert!(message.contains("messages"), "{message}");

    let resp = call(&app, "/v1/messages", bad).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["type"], "error");
    assert_eq!(j["error"]["type"], "invalid_request_error");
    assert!(
        j["error"]["message"].as_str().unwrap().contains("messages"),
        "{j}"
    );

    let resp = call(&app, "/v1/messages", "{not json".to_owned()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_its_format() {
    let app = healthy();
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(5000)}]})
        .to_string();
    let resp = call(&app, "/v1/messages", big.clone()).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["error"]["type"], "request_too_large");
    let resp = call(&app, "/v1/chat/completions", big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn an_error_has_its_status_retry_after_and_no_detail() {
    let err = LlmError::new(ErrorKind::RateLimited)
        .with_retry_after(Duration::from_millis(1500))
        .with_detail("upstream body with sk-secret-0123456789abcdef");
    let app = app(Pipeline::new(FakeProvider::always(
        "limited",
        Outcome::error(err),
    )));
    for (path, body) in [
        ("/v1/chat/completions", openai_body(false)),
        ("/v1/messages", anthropic_body(true)),
    ] {
        let resp = call(&app, path, body).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(resp.headers()["retry-after"], "2", "{path}");
        assert_eq!(
            resp.extensions().get::<ErrorKind>(),
            Some(&ErrorKind::RateLimited)
        );
        let body = text(resp).await;
        assert!(body.contains("rate_limit_error"), "{body}");
        assert!(!body.contains("sk-secret"), "{body}");
    }

    let overloaded = LlmError::new(ErrorKind::Overloaded);
    let resp = error_response(Format::Anthropic, &overloaded);
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_none());
    let j: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(j["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn a_stream_is_written_as_the_client_reads_and_a_failure_ends_it_in_format() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Chunk, LlmError>>();
    let chunks = ChunkStream::new(tokio_stream_of(rx));
    let resp = OpenAiResponse(Ok(LlmResponse::streaming(chunks, "gpt-4o-mini", "fake")));
    let resp = axum::response::IntoResponse::into_response(resp);
    let mut body = resp.into_body().into_data_stream();

    tx.send(Ok(Chunk::Text {
        choice: 0,
        text: "Hel".into(),
    }))
    .unwrap();
    let first = next(&mut body).await.unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(first.contains("Hel"), "{first}");

    // nothing more is written until the answer sends more
    let pending = tokio::time::timeout(Duration::from_millis(50), next(&mut body)).await;
    assert!(pending.is_err(), "the body ran ahead of the answer");

    tx.send(Err(
        LlmError::new(ErrorKind::Server).with_detail("secret detail")
    ))
    .unwrap();
    let mut rest = String::new();
    while let Some(bytes) = next(&mut body).await {
        rest.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    assert!(rest.contains("error"), "{rest}");
    assert!(!rest.contains("secret detail"), "{rest}");
}

#[tokio::test]
async fn as_requested_shapes_the_answer() {
    let complete = LlmResponse::new("hello", "gpt-4o-mini", "fake");
    let streamed = as_requested(complete, true).await.unwrap();
    assert!(streamed.is_stream());
    let resp = axum::response::IntoResponse::into_response(AnthropicResponse(Ok(streamed)));
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = text(resp).await;
    assert!(
        body.contains("hello") && body.contains("message_stop"),
        "{body}"
    );

    let chunks = ChunkStream::from_items(vec![
        Ok(Chunk::Text {
            choice: 0,
            text: "hi there".into(),
        }),
        Ok(Chunk::Finish {
            choice: 0,
            reason: FinishReason::Stop,
        }),
    ]);
    let streamed = LlmResponse::streaming(chunks, "gpt-4o-mini", "fake");
    let complete = as_requested(streamed, false).await.unwrap();
    assert!(!complete.is_stream());
    assert_eq!(complete.text(), "hi there");
}

async fn next(body: &mut axum::body::BodyDataStream) -> Option<axum::body::Bytes> {
    use futures_core::Stream;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx))
        .await
        .map(|r| r.unwrap())
}

/// A stream of what the channel receives.
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Rx<T>(tokio::sync::mpsc::UnboundedReceiver<T>);
    impl<T> futures_core::Stream for Rx<T> {
        type Item = T;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            self.get_mut().0.poll_recv(cx)
        }
    }
    Rx(rx)
}
