//! Anthropic Messages streams <-> chunks: recorded streams decoded, the chunks collected equal
//! to the complete answer, writer -> decoder round trips, translation to OpenAI's format, error
//! events mid-stream, unknown events skipped, malformed data, and no input making the decoder
//! panic.
//!
//! Where each stream under `tests/fixtures/sse/` came from: Anthropic's "Streaming Messages"
//! documentation (docs.anthropic.com, build-with-claude/streaming), as published:
//!
//! - `anthropic_basic.sse`: "Basic streaming request", the response.
//! - `anthropic_tool_use.sse`: "Streaming request with tool use" (`get_weather`), the response.
//! - `anthropic_thinking.sse`: "Streaming request with extended thinking" (27 * 453), the
//!   response (its `message_start` has no usage and its `message_delta` none either, as
//!   published).
//! - `anthropic_error.sse`: the start of the basic stream followed by the "Error events"
//!   example (`overloaded_error`), as a stream that fails after its first tokens.
//!
//! The web-search excerpt in `server_tools_are_not_tool_calls` is from the same page
//! ("Streaming request with web search tool use"), shortened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;
use towerguard_llm_core::stream::Collector;
use towerguard_llm_core::wire::{Step, anthropic_sse, openai_sse};
use towerguard_llm_core::{
    Chunk, ErrorKind, FinishReason, LlmError, LlmResponse, ToolCallDelta, Usage,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sse/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Splits an event stream into `(event, data)` pairs as the SSE spec says.
fn events(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut event, mut data, mut has_data) = (String::new(), String::new(), false);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if has_data {
                out.push((std::mem::take(&mut event), std::mem::take(&mut data)));
            }
            event.clear();
            has_data = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_owned(),
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    out
}

/// Decodes a stream up to its first error: the chunks, the error if any, whether it ended.
fn decode(text: &str) -> (Vec<Chunk>, Option<LlmError>, bool) {
    let mut d = anthropic_sse::StreamDecoder::default();
    let mut out = Vec::new();
    for (event, data) in events(text) {
        match d.decode(&event, &data, &mut out) {
            Ok(Step::Done) => return (out, None, true),
            Ok(Step::Continue) => {}
            Err(e) => return (out, Some(e), false),
        }
    }
    (out, None, false)
}

fn decode_ok(text: &str) -> Vec<Chunk> {
    let (chunks, err, done) = decode(text);
    assert!(err.is_none(), "{err:?}");
    assert!(done);
    chunks
}

fn decode_openai(text: &str) -> Vec<Chunk> {
    let mut d = openai_sse::StreamDecoder::default();
    let mut out = Vec::new();
    for (event, data) in events(text) {
        d.decode(&event, &data, &mut out).unwrap();
    }
    assert!(d.is_done());
    out
}

fn collect(chunks: &[Chunk]) -> LlmResponse {
    let mut c = Collector::default();
    for chunk in chunks {
        c.push(chunk);
    }
    c.finish(Arc::from("anthropic"), Arc::from("asked"))
}

fn complete(body: &str) -> LlmResponse {
    LlmResponse::from_anthropic_json(
        body.as_bytes(),
        &Arc::from("anthropic"),
        &Arc::from("asked"),
    )
    .unwrap()
}

/// The same answer: id, model, text, reasoning and its signature, tool calls (arguments as
/// JSON), finish reason, usage.
fn assert_same_answer(streamed: &LlmResponse, whole: &LlmResponse) {
    assert_eq!(streamed.id, whole.id);
    assert_eq!(streamed.model, whole.model);
    assert_eq!(streamed.text(), whole.text());
    assert_eq!(streamed.reasoning(), whole.reasoning());
    assert_eq!(signature(streamed), signature(whole));
    assert_eq!(streamed.finish_reason(), whole.finish_reason());
    assert_eq!(streamed.usage, whole.usage);
    let calls = |r: &LlmResponse| -> Vec<(String, String, Value)> {
        r.tool_calls()
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.name.clone(),
                    serde_json::from_str(&c.arguments).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(calls(streamed), calls(whole));
}

fn signature(r: &LlmResponse) -> Option<String> {
    use towerguard_llm_core::{Content, Part};
    match &r.first()?.message.content {
        Content::Parts(parts) => parts.iter().find_map(|p| match p {
            Part::Thinking { signature, .. } => signature.clone(),
            _ => None,
        }),
        Content::Text(_) => None,
    }
}

fn write(chunks: &[Chunk]) -> String {
    let mut w = anthropic_sse::StreamWriter::new("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "m");
    let mut out = Vec::new();
    for c in chunks {
        w.write(c, &mut out);
    }
    w.finish(&mut out);
    String::from_utf8(out).unwrap()
}

fn text(t: &str) -> Chunk {
    Chunk::Text {
        choice: 0,
        text: t.into(),
    }
}

fn usage(input: u64, output: u64) -> Chunk {
    Chunk::Usage(Usage::new(input, output))
}

// ---------------------------------------------------------------------------------------------
// Recorded streams

#[test]
fn the_basic_stream_decodes_with_usage_from_start_and_delta() {
    let chunks = decode_ok(&fixture("anthropic_basic.sse"));
    assert_eq!(
        chunks,
        [
            Chunk::Start {
                id: Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY".into()),
                model: Some("claude-opus-4-1-20250805".into()),
            },
            usage(25, 1),
            text("Hello"),
            text("!"),
            Chunk::Finish {
                choice: 0,
                reason: FinishReason::Stop
            },
            // input kept from message_start, output from the delta (cumulative)
            usage(25, 15),
        ]
    );
    let whole = complete(
        r#"{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":15}}"#,
    );
    assert_same_answer(&collect(&chunks), &whole);
}

#[test]
fn the_tool_use_stream_numbers_its_tool_call_and_assembles_the_input() {
    let chunks = decode_ok(&fixture("anthropic_tool_use.sse"));
    let first_call = chunks
        .iter()
        .find(|c| matches!(c, Chunk::ToolCall(_)))
        .unwrap();
    assert_eq!(
        first_call,
        &Chunk::ToolCall(ToolCallDelta {
            choice: 0,
            index: 0,
            id: Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6".into()),
            name: Some("get_weather".into()),
            arguments: String::new(),
        })
    );
    // the empty `partial_json` makes no chunk
    let pieces = chunks
        .iter()
        .filter(|c| matches!(c, Chunk::ToolCall(d) if d.id.is_none()))
        .count();
    assert_eq!(pieces, 8);
    let answer = collect(&chunks);
    assert_eq!(
        answer.tool_calls()[0].arguments,
        r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#
    );
    assert_eq!(
        answer.text(),
        "Okay, let's check the weather for San Francisco, CA:"
    );
    let whole = complete(
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[{"type":"text","text":"Okay, let's check the weather for San Francisco, CA:"},{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{"location":"San Francisco, CA","unit":"fahrenheit"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":89}}"#,
    );
    assert_same_answer(&answer, &whole);
}

#[test]
fn the_thinking_stream_gives_reasoning_with_its_signature() {
    let chunks = decode_ok(&fixture("anthropic_thinking.sse"));
    assert!(
        chunks.iter().all(|c| !matches!(c, Chunk::Usage(_))),
        "no usage was sent"
    );
    assert!(chunks.contains(&Chunk::Signature {
        choice: 0,
        signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...".into()
    }));
    let answer = collect(&chunks);
    assert!(
        answer
            .reasoning()
            .unwrap()
            .ends_with("10,800 + 1,350 + 81 = 12,231")
    );
    let whole = complete(
        r#"{"id":"msg_01...","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[{"type":"thinking","thinking":"Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."},{"type":"text","text":"27 * 453 = 12,231"}],"stop_reason":"end_turn","stop_sequence":null}"#,
    );
    assert_same_answer(&answer, &whole);
}

#[test]
fn an_overloaded_error_mid_stream_is_overloaded() {
    let (chunks, err, done) = decode(&fixture("anthropic_error.sse"));
    assert!(!done);
    assert_eq!(chunks.last(), Some(&text("Hello")));
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert_eq!(err.status(), None);
    assert!(err.detail().unwrap().contains("Overloaded"), "{err:?}");
    assert!(err.is_retryable());
}

#[test]
fn error_types_mean_what_their_status_means() {
    for (ty, message, kind) in [
        ("api_error", "Internal server error", ErrorKind::Server),
        (
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            ErrorKind::RateLimited,
        ),
        (
            "invalid_request_error",
            "prompt is too long: 215000 tokens > 200000 maximum",
            ErrorKind::ContextLengthExceeded,
        ),
        (
            "invalid_request_error",
            "messages: roles must alternate",
            ErrorKind::InvalidRequest,
        ),
        (
            "billing_error",
            "Your credit balance is too low",
            ErrorKind::QuotaExceeded,
        ),
        (
            "authentication_error",
            "invalid x-api-key",
            ErrorKind::Authentication,
        ),
        ("permission_error", "no access", ErrorKind::PermissionDenied),
        (
            "not_found_error",
            "model: claude-9",
            ErrorKind::ModelNotFound,
        ),
        (
            "request_too_large",
            "Request exceeds the maximum size",
            ErrorKind::InvalidRequest,
        ),
        ("some_future_error", "?", ErrorKind::Server),
    ] {
        let data = format!(
            r#"{{"type":"error","error":{{"type":"{ty}","message":"{message}"}},"request_id":"req_1"}}"#
        );
        let mut d = anthropic_sse::StreamDecoder::default();
        let e = d.decode("error", &data, &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), kind, "{ty}: {message}");
    }
    // an `event: error` whose data is not JSON is still a failure
    let e = anthropic_sse::StreamDecoder::default()
        .decode("error", "<html>502</html>", &mut Vec::new())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
}

#[test]
fn unknown_events_blocks_deltas_and_fields_are_skipped() {
    let mut d = anthropic_sse::StreamDecoder::default();
    let mut out = Vec::new();
    for (event, data) in [
        ("ping", r#"{"type": "ping"}"#),
        (
            "future_event",
            r#"{"type":"future_event","anything":[1,{"x":null}]}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"future_block","payload":{"a":1}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x"}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"kept","new_field":true}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
    ] {
        assert_eq!(
            d.decode(event, data, &mut out).unwrap(),
            Step::Continue,
            "{event}"
        );
    }
    assert_eq!(out, [text("kept")]);
}

#[test]
fn server_tools_are_not_tool_calls() {
    let stream = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01G...","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2679,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}}}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","name":"web_search","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"query"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1 }

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","content":[{"type":"web_search_result","title":"Weather in New York City","url":"https://world-weather.info/forecast/usa/new_york/may-2025/","encrypted_content":"Ev0DCioIAxgCIiQ3NmU4ZmI4OC1k...","page_age":null}]}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"Here's the current weather"}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":10682,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":510,"server_tool_use":{"web_search_requests":1}}}

event: message_stop
data: {"type":"message_stop"}

"#;
    let chunks = decode_ok(stream);
    assert!(chunks.iter().all(|c| !matches!(c, Chunk::ToolCall(_))));
    let answer = collect(&chunks);
    assert_eq!(answer.text(), "Here's the current weather");
    // every count the delta names replaces the one from the start
    assert_eq!(answer.usage, Usage::new(10682, 510));
}

#[test]
fn usage_with_cache_counts_and_the_event_name_when_data_has_no_type() {
    let mut d = anthropic_sse::StreamDecoder::default();
    let mut out = Vec::new();
    d.decode(
        "message_start",
        r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":10,"cache_read_input_tokens":2000,"cache_creation_input_tokens":300,"output_tokens":1}}}"#,
        &mut out,
    )
    .unwrap();
    d.decode(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":64}}"#,
        &mut out,
    )
    .unwrap();
    let expected = Usage {
        input_tokens: 10,
        output_tokens: 64,
        cached_input_tokens: 2000,
        cache_write_tokens: 300,
        reasoning_tokens: 0,
    };
    assert_eq!(out.last(), Some(&Chunk::Usage(expected)));
    assert!(out.contains(&Chunk::Finish {
        choice: 0,
        reason: FinishReason::Length
    }));
    assert_eq!(
        d.decode("message_stop", "{}", &mut out).unwrap(),
        Step::Done
    );
    assert!(d.is_done());
    assert_eq!(d.decode("", "junk", &mut out).unwrap(), Step::Done);
}

#[test]
fn malformed_data_is_a_server_error_and_pushes_nothing() {
    for (event, data) in [
        ("content_block_delta", "not json"),
        ("message_start", "{\"type\":\"message_start\","),
        ("", r#"{"no_type":true}"#),
        ("", "[]"),
        ("message_start", r#"{"type":"message_start"}"#),
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":7}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":"zero","delta":{"type":"text_delta","text":"x"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":5}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","content_block":{"type":"tool_use","id":"t","name":"n"}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","usage":{"output_tokens":-1}}"#,
        ),
        ("message_delta", r#"{"type":7}"#),
    ] {
        let mut d = anthropic_sse::StreamDecoder::default();
        let mut out = Vec::new();
        let e = d.decode(event, data, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{data}");
        assert!(
            e.detail().unwrap().starts_with("malformed stream event"),
            "{data}: {e:?}"
        );
        assert!(out.is_empty(), "{data}");
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

#[test]
fn the_writer_round_trips_the_recorded_streams() {
    for name in ["anthropic_basic.sse", "anthropic_tool_use.sse"] {
        let chunks = decode_ok(&fixture(name));
        let Chunk::Start {
            id: Some(id),
            model: Some(model),
        } = &chunks[0]
        else {
            panic!("{name}")
        };
        let mut w = anthropic_sse::StreamWriter::new(id.clone(), model.clone());
        let mut out = Vec::new();
        for c in &chunks {
            w.write(c, &mut out);
        }
        w.finish(&mut out);
        let sse = String::from_utf8(out).unwrap();
        assert_eq!(decode_ok(&sse), chunks, "{name}:\n{sse}");
    }
    // the thinking stream sent no usage; the writer always writes it (Anthropic's SDKs read
    // it from `message_start`), so compare the answers
    let chunks = decode_ok(&fixture("anthropic_thinking.sse"));
    let again = decode_ok(&write(&chunks));
    assert_eq!(collect(&again).choices, collect(&chunks).choices);
}

#[test]
fn the_writer_frames_blocks_as_the_chunk_kind_changes() {
    let chunks = [
        Chunk::Start {
            id: None,
            model: None,
        },
        usage(9, 1),
        Chunk::Reasoning {
            choice: 0,
            text: "hmm".into(),
        },
        Chunk::Signature {
            choice: 0,
            signature: "sig".into(),
        },
        Chunk::RedactedThinking {
            choice: 0,
            data: "opaque".into(),
        },
        text("Hi"),
        Chunk::ToolCall(ToolCallDelta {
            choice: 0,
            index: 0,
            id: Some("t0".into()),
            name: Some("a".into()),
            arguments: "{}".into(),
        }),
        Chunk::ToolCall(ToolCallDelta {
            choice: 0,
            index: 1,
            id: Some("t1".into()),
            name: Some("b".into()),
            arguments: String::new(),
        }),
        Chunk::ToolCall(ToolCallDelta {
            choice: 0,
            index: 1,
            id: None,
            name: None,
            arguments: "{\"x\":1}".into(),
        }),
        Chunk::Text {
            choice: 1,
            text: "another choice: left out".into(),
        },
        Chunk::Finish {
            choice: 0,
            reason: FinishReason::ToolCalls,
        },
    ];
    let sse = write(&chunks);
    let names: Vec<String> = events(&sse).into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start", // thinking 0
            "content_block_delta",
            "content_block_delta", // signature
            "content_block_stop",
            "content_block_start", // redacted 1
            "content_block_stop",
            "content_block_start", // text 2
            "content_block_delta",
            "content_block_stop",
            "content_block_start", // tool 3
            "content_block_delta",
            "content_block_stop",
            "content_block_start", // tool 4
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ],
        "{sse}"
    );
    for (event, data) in events(&sse) {
        let v: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v["type"], event.as_str(), "the data repeats the event name");
    }
    let back = collect(&decode_ok(&sse));
    let original = collect(&chunks);
    assert_eq!(back.choices[0], original.choices[0]);
    assert_eq!(original.choices.len(), 2);
    assert_eq!(back.usage, Usage::new(9, 1));
    assert_eq!(back.finish_reason(), &FinishReason::ToolCalls);
    assert_eq!(back.choices.len(), 1);
}

#[test]
fn anthropic_chunks_translate_to_openai_events_and_back() {
    for name in [
        "anthropic_basic.sse",
        "anthropic_tool_use.sse",
        "anthropic_thinking.sse",
    ] {
        let chunks = decode_ok(&fixture(name));
        let mut w = openai_sse::StreamWriter::new("chatcmpl-t", "m", 0);
        let mut out = Vec::new();
        for c in &chunks {
            w.write(c, &mut out);
        }
        w.finish(&mut out);
        let sse = String::from_utf8(out).unwrap();
        let (a, b) = (collect(&chunks), collect(&decode_openai(&sse)));
        assert_eq!(a.text(), b.text(), "{name}");
        assert_eq!(a.reasoning(), b.reasoning(), "{name}");
        assert_eq!(a.tool_calls(), b.tool_calls(), "{name}");
        assert_eq!(a.finish_reason(), b.finish_reason(), "{name}");
        assert_eq!(a.usage, b.usage, "{name}");
    }
}

#[test]
fn usage_after_the_finish_writes_the_message_delta_and_finish_writes_one_if_none() {
    // OpenAI order: finish, then the usage chunk
    let sse = write(&[
        text("a"),
        Chunk::Finish {
            choice: 0,
            reason: FinishReason::Length,
        },
        usage(5, 7),
    ]);
    let evs = events(&sse);
    let delta: Value = serde_json::from_str(&evs[evs.len() - 2].1).unwrap();
    assert_eq!(delta["type"], "message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 7);
    assert_eq!(delta["usage"]["input_tokens"], 5);
    assert_eq!(
        sse.matches("message_delta").count(),
        2,
        "event line and type: one event"
    );

    // no finish and no usage: end_turn, zero usage, and an empty message is still well framed
    let sse = write(&[]);
    let names: Vec<String> = events(&sse).into_iter().map(|(e, _)| e).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
    assert!(sse.contains(r#""stop_reason":"end_turn""#));
}

#[test]
fn the_writer_error_event_reads_back_as_its_kind_with_the_client_message_only() {
    for kind in [
        ErrorKind::Overloaded,
        ErrorKind::RateLimited,
        ErrorKind::Server,
        ErrorKind::QuotaExceeded,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::ModelNotFound,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ContentPolicy,
        ErrorKind::InvalidRequest,
    ] {
        let err = LlmError::new(kind).with_detail("operator-only detail");
        let mut w = anthropic_sse::StreamWriter::new("msg", "m");
        let mut out = Vec::new();
        w.write(&text("partial"), &mut out);
        w.error(&err, &mut out);
        w.finish(&mut out);
        let sse = String::from_utf8(out).unwrap();
        assert!(!sse.contains("operator-only"), "{sse}");
        assert!(
            !sse.contains("message_stop"),
            "nothing after the error: {sse}"
        );
        let (chunks, e, done) = decode(&sse);
        assert!(!done);
        assert_eq!(chunks.last(), Some(&text("partial")));
        let e = e.unwrap();
        assert_eq!(e.kind(), kind, "{sse}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn decode_never_panics(
        events in proptest::collection::vec(
            (
                prop_oneof![
                    Just("message_start".to_owned()),
                    Just("content_block_start".to_owned()),
                    Just("content_block_delta".to_owned()),
                    Just("message_delta".to_owned()),
                    Just("error".to_owned()),
                    ".{0,8}",
                ],
                ".{0,80}",
            ),
            0..8,
        )
    ) {
        let mut d = anthropic_sse::StreamDecoder::default();
        let mut out = Vec::new();
        for (event, data) in &events {
            let _ = d.decode(event, data, &mut out);
        }
    }

    #[test]
    fn decode_never_panics_on_json_shaped_data(
        data in proptest::collection::vec(
            r#"\{"type":"(message_start|content_block_start|content_block_delta|message_delta|error)"(,"(index|message|content_block|delta|usage|error|type|text|partial_json|input_tokens)":([0-9]{1,10}|"[a-z_]{0,12}"|null|\{\}|\[\]|-1))*\}"#,
            0..10,
        )
    ) {
        let mut d = anthropic_sse::StreamDecoder::default();
        let mut out = Vec::new();
        for data in &data {
            let _ = d.decode("", data, &mut out);
        }
    }
}
