//! Streams against a loopback SSE server: both formats decoded with usage, tool-call and
//! thinking streams, the commit point (failures before the first chunk are the call's error,
//! after it one error item), cut and stalled streams, malformed and oversized events, the
//! request sent, and a dropped stream closing its connection.
//!
//! The streams replayed are llm-core's recorded fixtures (`tests/fixtures/sse/`, whose tests
//! say where each came from) and short ones written here in the same shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tower::ServiceExt;
use towerguard_llm_core::{
    Chunk, ChunkStream, ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, Message,
    REDACTED, Usage,
};
use towerguard_providers::{Anthropic, ApiKey, Limits, OpenAiCompatible};

mod common;
use common::{Part, Reply, sse, sse_text, stub, stub_counting_closes};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../llm-core/tests/fixtures/sse/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn streamed(model: &str) -> LlmRequest {
    let mut req = LlmRequest::new(model, vec![Message::user("Hello")]).with_max_tokens(64);
    req.options_mut().stream = true;
    req
}

const KEY: &str = "sk-stream-test-0123456789";

fn openai_at(base: &str, limits: Limits) -> OpenAiCompatible {
    OpenAiCompatible::builder("openai", format!("{base}/v1"))
        .api_key(ApiKey::new(KEY).unwrap())
        .limits(limits)
        .build()
        .unwrap()
}

fn anthropic_at(base: &str, limits: Limits) -> Anthropic {
    Anthropic::builder(ApiKey::new("sk-ant-stream-test").unwrap())
        .base_url(base)
        .limits(limits)
        .build()
        .unwrap()
}

/// Every item of a stream, in order.
async fn items(stream: &mut ChunkStream) -> Vec<Result<Chunk, LlmError>> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item);
    }
    out
}

fn take_stream(resp: &mut LlmResponse) -> ChunkStream {
    resp.stream.take().expect("a streamed answer")
}

const OPENAI_CHUNK: &str = r#"data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}

"#;

// ---------------------------------------------------------------------------------------------
// Decoded streams

#[tokio::test]
async fn an_openai_stream_is_decoded_with_its_usage_and_the_request_asks_for_a_stream() {
    let (base, seen) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("openai_include_usage.sse")),
    )])
    .await;
    let resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt-4o-mini"))
        .await
        .unwrap();
    assert!(resp.is_stream());
    assert_eq!(resp.provider(), "openai");
    assert_eq!(resp.model(), "gpt-4o-mini-2024-07-18", "the stream's model");
    assert_eq!(resp.id.as_deref(), Some("chatcmpl-usage"));
    let done = resp.into_complete().await.unwrap();
    assert_eq!(done.text(), "Hello!");
    assert_eq!(*done.finish_reason(), FinishReason::Stop);
    assert_eq!(
        done.usage,
        Usage {
            input_tokens: 86,
            output_tokens: 3,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    );

    let seen = seen.lock().unwrap()[0].clone();
    let body = seen.json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(seen.header("accept").as_deref(), Some("text/event-stream"));
    assert!(
        seen.header("user-agent")
            .unwrap()
            .starts_with("towerguard/")
    );
}

#[tokio::test]
async fn the_callers_own_stream_options_are_sent_as_they_are() {
    let (base, seen) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("openai_basic.sse")),
    )])
    .await;
    let mut req = streamed("gpt-4o-mini");
    req.options_mut().extra_body.insert(
        "stream_options".into(),
        serde_json::json!({"include_usage": false}),
    );
    let resp = openai_at(&base, Limits::default())
        .oneshot(req)
        .await
        .unwrap();
    let done = resp.into_complete().await.unwrap();
    assert_eq!(done.text(), "Hello");
    let body = seen.lock().unwrap()[0].json();
    assert_eq!(
        body["stream_options"],
        serde_json::json!({"include_usage": false})
    );
}

#[tokio::test]
async fn an_anthropic_stream_is_decoded_with_input_and_output_usage() {
    let (base, seen) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("anthropic_basic.sse")),
    )])
    .await;
    let resp = anthropic_at(&base, Limits::default())
        .oneshot(streamed("claude-opus-4-1"))
        .await
        .unwrap();
    assert_eq!(resp.model(), "claude-opus-4-1-20250805");
    assert_eq!(resp.provider(), "anthropic");
    let done = resp.into_complete().await.unwrap();
    assert_eq!(done.text(), "Hello!");
    assert_eq!(done.usage, Usage::new(25, 15));
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.json()["stream"], true);
    assert!(seen.json().get("stream_options").is_none());
    assert_eq!(seen.header("accept").as_deref(), Some("text/event-stream"));
}

#[tokio::test]
async fn tool_call_and_thinking_streams() {
    let (base, _) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("openai_tool_call.sse")),
    )])
    .await;
    let done = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt-4.1"))
        .await
        .unwrap()
        .into_complete()
        .await
        .unwrap();
    let call = &done.tool_calls()[0];
    assert_eq!(call.id, "call_DdmO9pD3xa9XTPNJ32zg2hcA");
    assert_eq!(call.name, "get_weather");
    assert_eq!(call.arguments, r#"{"location":"Paris, France"}"#);
    assert_eq!(*done.finish_reason(), FinishReason::ToolCalls);

    let (base, _) = stub(vec![
        Reply::Stream(200, sse_text(&fixture("anthropic_thinking.sse"))),
        Reply::Stream(200, sse_text(&fixture("anthropic_tool_use.sse"))),
    ])
    .await;
    let claude = anthropic_at(&base, Limits::default());
    let done = claude
        .clone()
        .oneshot(streamed("claude-opus-4-1"))
        .await
        .unwrap()
        .into_complete()
        .await
        .unwrap();
    assert!(done.reasoning().unwrap().starts_with("Let me solve this"));
    assert_eq!(done.text(), "27 * 453 = 12,231");
    let done = claude
        .oneshot(streamed("claude-opus-4-1"))
        .await
        .unwrap()
        .into_complete()
        .await
        .unwrap();
    assert_eq!(done.tool_calls()[0].name, "get_weather");
    assert_eq!(done.usage, Usage::new(472, 89));
}

#[tokio::test]
async fn a_deepseek_stream_reads_reasoning_and_usage_split_across_reads() {
    // every byte its own write: events and UTF-8 cross the reads
    let text = fixture("openai_deepseek_reasoning.sse");
    let parts = text
        .as_bytes()
        .chunks(7)
        .map(|c| Part::Send(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let (base, _) = stub(vec![Reply::Stream(200, parts)]).await;
    let done = openai_at(&base, Limits::default())
        .oneshot(streamed("deepseek-reasoner"))
        .await
        .unwrap()
        .into_complete()
        .await
        .unwrap();
    assert_eq!(done.text(), "9.8 is greater.");
    assert_eq!(
        done.reasoning(),
        Some("9.11 and 9.8: compare the tenths: 8 > 1.")
    );
    assert_eq!(done.usage.reasoning_tokens, 32);
}

#[tokio::test]
async fn multibyte_text_split_inside_a_character_is_read_whole() {
    let event = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"h\u{e9}llo \u{1f44d}\"}}]}\n\ndata: [DONE]\n\n";
    let bytes = event.as_bytes();
    let cut = event.find('\u{1f44d}').unwrap() + 2; // inside the emoji's four bytes
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![
            Part::Bytes(bytes[..cut].to_vec()),
            Part::Bytes(bytes[cut..cut + 1].to_vec()),
            Part::Bytes(bytes[cut + 1..].to_vec()),
        ],
    )])
    .await;
    let done = openai_at(&base, Limits::default())
        .oneshot(streamed("m"))
        .await
        .unwrap()
        .into_complete()
        .await
        .unwrap();
    assert_eq!(done.text(), "h\u{e9}llo \u{1f44d}");
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_an_error_item_not_a_hang() {
    let mut bad = b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"\"}}]}\n\n");
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![
            Part::Send(OPENAI_CHUNK.into()),
            Part::Bytes(bad),
            Part::Stall,
        ],
    )])
    .await;
    let mut resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let got = items(&mut take_stream(&mut resp)).await;
    let e = got.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.detail().unwrap().contains("not UTF-8"), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Before the first chunk: the call's error

#[tokio::test]
async fn an_error_status_before_the_stream_is_the_calls_error_classified() {
    let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let (base, _) = stub(vec![Reply::Full(
        529,
        vec![("retry-after", "3".to_owned())],
        body.into(),
    )])
    .await;
    let e = anthropic_at(&base, Limits::default())
        .oneshot(streamed("claude"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.status(), Some(529));
    assert_eq!(e.provider(), Some("anthropic"));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn an_error_event_as_the_first_event_is_the_calls_error() {
    let (base, _) = stub(vec![sse(&[
        "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
    ])])
    .await;
    let e = anthropic_at(&base, Limits::default())
        .oneshot(streamed("claude"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.provider(), Some("anthropic"));
    assert!(e.is_retryable());

    let (base, _) = stub(vec![sse(&[
        "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n",
    ])])
    .await;
    let e = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.provider(), Some("openai"));
}

#[tokio::test]
async fn a_stream_that_ends_before_its_first_chunk_is_the_calls_error() {
    // the body ends cleanly, no event at all
    let (base, _) = stub(vec![sse(&[])]).await;
    let e = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.provider(), Some("openai"));
    // the terminator and nothing else: not an answer either
    let (base, _) = stub(vec![sse(&["data: [DONE]\n\n"])]).await;
    let e = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    // a malformed first event
    let (base, _) = stub(vec![sse(&["data: {not json\n\n"])]).await;
    let e = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(
        e.detail().unwrap().starts_with("malformed stream event"),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_first_chunk_in_time_is_a_timeout_of_the_call() {
    let limits = Limits {
        first_chunk_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    // no answer at all
    let (base, _) = stub(vec![Reply::Hang]).await;
    let start = tokio::time::Instant::now();
    let e = openai_at(&base, limits)
        .oneshot(streamed("gpt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.provider(), Some("openai"));
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // the head, a ping comment-like event that makes no chunk, then nothing
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![
            Part::Send("event: ping\ndata: {\"type\": \"ping\"}\n\n".into()),
            Part::Stall,
        ],
    )])
    .await;
    let start = tokio::time::Instant::now();
    let e = anthropic_at(&base, limits)
        .oneshot(streamed("claude"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_not_bound_by_the_request_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![
            Part::Send(OPENAI_CHUNK.into()),
            Part::Pause(Duration::from_secs(5)),
            Part::Send(OPENAI_CHUNK.into()),
            Part::Send("data: [DONE]\n\n".into()),
        ],
    )])
    .await;
    let done = openai_at(&base, limits)
        .oneshot(streamed("gpt"))
        .await
        .unwrap()
        .into_complete()
        .await
        .unwrap();
    assert_eq!(done.text(), "HiHi");
}

// ---------------------------------------------------------------------------------------------
// After the first chunk: one error item, then the end

#[tokio::test]
async fn an_error_event_after_chunks_is_one_error_item_after_them() {
    let (base, _) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("anthropic_error.sse")),
    )])
    .await;
    let mut resp = anthropic_at(&base, Limits::default())
        .oneshot(streamed("claude"))
        .await
        .unwrap();
    let got = items(&mut take_stream(&mut resp)).await;
    let (last, chunks) = got.split_last().unwrap();
    assert!(chunks.iter().all(Result::is_ok));
    assert!(
        chunks
            .iter()
            .any(|c| matches!(c, Ok(Chunk::Text { text, .. }) if text == "Hello"))
    );
    let e = last.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.provider(), Some("anthropic"));
}

#[tokio::test]
async fn a_body_that_ends_without_the_terminator_ends_with_a_connection_error() {
    // the body ends cleanly but `[DONE]` never came
    let (base, _) = stub(vec![sse(&[OPENAI_CHUNK, OPENAI_CHUNK])]).await;
    let mut resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let got = items(&mut take_stream(&mut resp)).await;
    assert_eq!(got.len(), 4, "start, text, text, error: {got:?}");
    let e = got[3].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.provider(), Some("openai"));
    assert!(
        e.detail().unwrap().contains("ended before its end"),
        "{e:?}"
    );

    // the connection is cut mid-body
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![Part::Send(OPENAI_CHUNK.into()), Part::Cut],
    )])
    .await;
    let resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let e = resp.into_complete().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.provider(), Some("openai"));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_ends_with_a_timeout_item() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(7),
        ..Limits::default()
    };
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![
            Part::Send(OPENAI_CHUNK.into()),
            // within the idle timeout: fine
            Part::Pause(Duration::from_secs(6)),
            Part::Send(OPENAI_CHUNK.into()),
            Part::Stall,
        ],
    )])
    .await;
    let mut resp = openai_at(&base, limits)
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let mut stream = take_stream(&mut resp);
    let start = tokio::time::Instant::now();
    let got = items(&mut stream).await;
    assert_eq!(got.len(), 4, "{got:?}");
    let e = got[3].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.provider(), Some("openai"));
    assert_eq!(start.elapsed(), Duration::from_secs(6 + 7));
    assert!(stream.next().await.is_none(), "nothing after the error");
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_is_not_timed_out() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let (base, _) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("openai_basic.sse")),
    )])
    .await;
    let mut resp = openai_at(&base, limits)
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let mut stream = take_stream(&mut resp);
    let mut n = 0;
    while let Some(item) = stream.next().await {
        item.unwrap();
        n += 1;
        // the caller takes far longer than the idle timeout between reads
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn a_malformed_event_after_chunks_is_an_error_item() {
    let (base, _) = stub(vec![sse(&[
        OPENAI_CHUNK,
        "data: {\"choices\":[{\"delta\":{\"content\":42}}]}\n\n",
        OPENAI_CHUNK,
        "data: [DONE]\n\n",
    ])])
    .await;
    let mut resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let got = items(&mut take_stream(&mut resp)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let e = got[2].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.detail().unwrap().starts_with("malformed stream event"));
}

#[tokio::test]
async fn an_oversized_line_is_an_error_item_not_unbounded_memory() {
    let limits = Limits {
        max_event_bytes: 4096,
        ..Limits::default()
    };
    let huge = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}",
        "x".repeat(10_000)
    );
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![
            Part::Send(OPENAI_CHUNK.into()),
            Part::Send(huge),
            Part::Stall,
        ],
    )])
    .await;
    let mut resp = openai_at(&base, limits)
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let got = items(&mut take_stream(&mut resp)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let e = got[2].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(
        e.detail().unwrap().contains("larger than 4096 bytes"),
        "{e:?}"
    );

    // many small lines of one event count together
    let many = "data: x\n".repeat(1000);
    let (base, _) = stub(vec![Reply::Stream(
        200,
        vec![Part::Send(many), Part::Stall],
    )])
    .await;
    let e = openai_at(&base, limits)
        .oneshot(streamed("gpt"))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Server,
        "before the first chunk: the call's error"
    );
}

#[tokio::test]
async fn an_error_event_quoting_the_key_never_shows_it() {
    let event = format!(
        "data: {{\"error\":{{\"message\":\"Incorrect API key provided: {KEY}\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}}\n\n"
    );
    let (base, _) = stub(vec![sse(&[OPENAI_CHUNK, &event])]).await;
    let mut resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let got = items(&mut take_stream(&mut resp)).await;
    let e = got.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    let shown = format!("{e:?} {e}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(e.detail().unwrap().contains(REDACTED), "{e:?}");
}

#[tokio::test]
async fn a_dropped_stream_closes_its_connection() {
    let (base, _, closes) = stub_counting_closes(vec![Reply::Stream(
        200,
        vec![Part::Send(OPENAI_CHUNK.into()), Part::Stall],
    )])
    .await;
    let mut resp = openai_at(&base, Limits::default())
        .oneshot(streamed("gpt"))
        .await
        .unwrap();
    let mut stream = take_stream(&mut resp);
    assert!(matches!(stream.next().await, Some(Ok(Chunk::Start { .. }))));
    drop(stream);
    drop(resp);
    tokio::time::timeout(Duration::from_secs(10), async {
        while closes.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the server saw the connection close");
}

#[tokio::test]
async fn the_stream_watchers_see_a_complete_end_with_the_last_usage() {
    use std::sync::{Arc, Mutex};
    let (base, _) = stub(vec![Reply::Stream(
        200,
        sse_text(&fixture("anthropic_basic.sse")),
    )])
    .await;
    let mut resp = anthropic_at(&base, Limits::default())
        .oneshot(streamed("claude"))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let log = seen.clone();
    let mut stream = take_stream(&mut resp);
    stream.on_end(move |end| {
        *log.lock().unwrap() = Some((
            matches!(end.how, towerguard_llm_core::Ended::Complete),
            end.usage,
            end.chunks,
        ));
    });
    let got = items(&mut stream).await;
    assert!(got.iter().all(Result::is_ok));
    assert_eq!(
        *seen.lock().unwrap(),
        Some((true, Some(Usage::new(25, 15)), got.len() as u64))
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn stream_limits_are_checked_at_build() {
    for (limits, field) in [
        (
            Limits {
                first_chunk_timeout: Duration::ZERO,
                ..Limits::default()
            },
            "first_chunk_timeout",
        ),
        (
            Limits {
                idle_timeout: Duration::ZERO,
                ..Limits::default()
            },
            "idle_timeout",
        ),
        (
            Limits {
                max_event_bytes: 0,
                ..Limits::default()
            },
            "max_event_bytes",
        ),
    ] {
        let e = OpenAiCompatible::builder("x", "http://127.0.0.1:1/v1")
            .limits(limits)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), field);
        let e = Anthropic::builder(ApiKey::new("k").unwrap())
            .limits(limits)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), field);
    }
    let d = Limits::default();
    assert_eq!(d.first_chunk_timeout, Duration::from_secs(60));
    assert_eq!(d.idle_timeout, Duration::from_secs(60));
    assert_eq!(d.max_event_bytes, 1024 * 1024);
}

#[tokio::test]
async fn a_complete_request_is_not_streamed() {
    let body = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
    let (base, seen) = stub(vec![common::ok(body)]).await;
    let resp = openai_at(&base, Limits::default())
        .oneshot(LlmRequest::new("m", vec![Message::user("Hello")]))
        .await
        .unwrap();
    assert!(!resp.is_stream());
    let seen = seen.lock().unwrap()[0].clone();
    assert!(seen.json().get("stream_options").is_none());
    assert_eq!(seen.header("accept").as_deref(), Some("application/json"));
}
