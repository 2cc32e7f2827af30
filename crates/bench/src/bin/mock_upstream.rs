//! A no-latency OpenAI-compatible upstream for the gateway load test (`scripts/bench-gateway`).
//!
//! `POST /v1/chat/completions` answers at once with a fixed, realistic completion (with
//! `usage`); with `"stream": true` it answers with a fixed server-sent event stream: a role
//! chunk, 20 content chunks, a finish chunk, the usage chunk (empty `choices`, as OpenAI sends
//! it under `stream_options.include_usage`) and `data: [DONE]`. Every body is built once at
//! start, so a request costs the HTTP exchange and one small JSON parse, nothing else.
//!
//! It runs on one thread (tokio's current-thread runtime), so `taskset` pins it to one core,
//! and sets `TCP_NODELAY` on its connections, as the front servers of real upstreams do.
//!
//! ```text
//! cargo run --release -p towerguard-bench --bin mock_upstream -- [--port 0] [--bind 127.0.0.1]
//! ```
//!
//! It prints `mock_upstream listening on http://ADDR` once it accepts connections.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::Deserialize;

/// The model the answers name (priced in the gateway's built-in table).
const MODEL: &str = "gpt-4o-mini";
/// A fixed creation time, so every body is byte-for-byte the same.
const CREATED: u64 = 1_764_590_400;
/// The content the stream sends in 20 chunks and the complete answer in one.
const WORDS: [&str; 20] = [
    "A circuit ",
    "breaker ",
    "stops ",
    "calls ",
    "to a ",
    "failing ",
    "provider ",
    "for a ",
    "while, ",
    "so that ",
    "callers ",
    "fail fast ",
    "instead ",
    "of waiting ",
    "on timeouts, ",
    "and lets ",
    "one probe ",
    "through to ",
    "test ",
    "recovery.",
];
const PROMPT_TOKENS: u32 = 42;
const COMPLETION_TOKENS: u32 = 28;

/// What the mock reads of a request: whether it asks for a stream.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    stream: bool,
}

/// The bodies, built once.
struct Bodies {
    complete: Bytes,
    stream: Vec<Bytes>,
}

fn usage() -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": { "cached_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0 }
    })
}

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-mock0001",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_mock",
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]
    })
}

fn sse(event: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

impl Bodies {
    fn new() -> Self {
        let complete = serde_json::json!({
            "id": "chatcmpl-mock0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": WORDS.concat(), "refusal": null },
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": usage()
        });
        let mut stream = vec![sse(&chunk(
            serde_json::json!({ "role": "assistant", "content": "" }),
            None,
        ))];
        stream.extend(
            WORDS
                .iter()
                .map(|w| sse(&chunk(serde_json::json!({ "content": w }), None))),
        );
        stream.push(sse(&chunk(serde_json::json!({}), Some("stop"))));
        stream.push(sse(&serde_json::json!({
            "id": "chatcmpl-mock0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": usage()
        })));
        stream.push(Bytes::from_static(b"data: [DONE]\n\n"));
        Self {
            complete: Bytes::from(complete.to_string()),
            stream,
        }
    }
}

async fn chat_completions(State(bodies): State<Arc<Bodies>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Request>(&body) else {
        let err = r#"{"error":{"message":"the body is not a chat completion request","type":"invalid_request_error","param":null,"code":null}}"#;
        return (
            StatusCode::BAD_REQUEST,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            err,
        )
            .into_response();
    };
    if req.stream {
        // one frame per event, sent chunked, as a real upstream streams
        let frames = bodies.stream.clone();
        let body = Body::from_stream(futures_util::stream::iter(
            frames.into_iter().map(Ok::<_, std::convert::Infallible>),
        ));
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bodies.complete.clone(),
        )
            .into_response()
    }
}

async fn models() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        format!(
            r#"{{"object":"list","data":[{{"id":"{MODEL}","object":"model","created":{CREATED},"owned_by":"mock"}}]}}"#
        ),
    )
}

fn parse_args() -> Result<SocketAddr, String> {
    let mut bind = "127.0.0.1".to_string();
    let mut port = "0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().ok_or("--port needs a value")?,
            "--bind" => bind = args.next().ok_or("--bind needs a value")?,
            other => {
                return Err(format!(
                    "unknown argument `{other}` (--port P, --bind ADDR)"
                ));
            }
        }
    }
    format!("{bind}:{port}")
        .parse()
        .map_err(|e| format!("`{bind}:{port}` is not an address: {e}"))
}

fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock_upstream: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock_upstream: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .with_state(Arc::new(Bodies::new()));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mock_upstream: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        };
        let local = listener.local_addr().map_or(addr, |a| a);
        println!("mock_upstream listening on http://{local}");
        // as real upstreams' front servers do: small writes (stream events) go out at once
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        match axum::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mock_upstream: {e}");
                ExitCode::from(1)
            }
        }
    })
}
