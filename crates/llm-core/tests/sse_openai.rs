//! OpenAI chat-completions streams <-> chunks: recorded streams decoded, the chunks collected
//! equal to the complete answer, writer -> decoder round trips, translation to Anthropic's
//! format, error events, malformed and unknown input, and no input making the decoder panic.
//!
//! Where each stream under `tests/fixtures/sse/` came from:
//!
//! - `openai_basic.sse`: the OpenAI API reference, "The chat completion chunk object" example
//!   (`gpt-4o-mini`, `"Hello"`), with the reference's `....` left out and `data: [DONE]` added
//!   as the streaming guide describes.
//! - `openai_tool_call.sse`: the deltas of the OpenAI function-calling guide's "Streaming"
//!   section (`get_weather` for Paris, France), each wrapped in a chunk object of the
//!   reference's shape, then the `tool_calls` finish and `[DONE]`.
//! - `openai_deepseek_reasoning.sse`: composed in the shape DeepSeek's API sends for
//!   `deepseek-reasoner` (reasoning guide: `reasoning_content` deltas before `content`, usage
//!   with `completion_tokens_details.reasoning_tokens` and DeepSeek's cache counters in the
//!   last chunk); not recorded from a server.
//! - `openai_include_usage.sse`: composed from the API reference's `stream_options.include_usage`
//!   description (every chunk `"usage": null`, then a last chunk with empty `choices` and the
//!   usage, cached tokens included in `prompt_tokens`).

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

/// Splits an event stream into `(event, data)` pairs as the SSE spec says (one space after the
/// colon dropped, `data:` lines joined with `\n`, comments skipped).
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

/// Decodes a whole stream: its chunks, and whether its terminator came.
fn decode_openai(text: &str) -> (Vec<Chunk>, bool) {
    let mut d = openai_sse::StreamDecoder::default();
    let mut out = Vec::new();
    let mut done = false;
    for (event, data) in events(text) {
        done = d.decode(&event, &data, &mut out).unwrap() == Step::Done;
    }
    (out, done)
}

fn decode_anthropic(text: &str) -> (Vec<Chunk>, bool) {
    let mut d = anthropic_sse::StreamDecoder::default();
    let mut out = Vec::new();
    let mut done = false;
    for (event, data) in events(text) {
        done = d.decode(&event, &data, &mut out).unwrap() == Step::Done;
    }
    (out, done)
}

fn collect(chunks: &[Chunk]) -> LlmResponse {
    let mut c = Collector::default();
    for chunk in chunks {
        c.push(chunk);
    }
    c.finish(Arc::from("openai"), Arc::from("asked"))
}

fn complete(body: &str) -> LlmResponse {
    LlmResponse::from_openai_json(body.as_bytes(), &Arc::from("openai"), &Arc::from("asked"))
        .unwrap()
}

fn write_openai(chunks: &[Chunk], id: &str, model: &str, created: u64) -> String {
    let mut w = openai_sse::StreamWriter::new(id, model, created);
    let mut out = Vec::new();
    for c in chunks {
        w.write(c, &mut out);
    }
    w.finish(&mut out);
    String::from_utf8(out).unwrap()
}

fn write_anthropic(chunks: &[Chunk]) -> String {
    let mut w = anthropic_sse::StreamWriter::new("msg_x", "claude-x");
    let mut out = Vec::new();
    for c in chunks {
        w.write(c, &mut out);
    }
    w.finish(&mut out);
    String::from_utf8(out).unwrap()
}

fn text(choice: u32, t: &str) -> Chunk {
    Chunk::Text {
        choice,
        text: t.into(),
    }
}

fn start(id: &str, model: &str) -> Chunk {
    Chunk::Start {
        id: Some(id.into()),
        model: Some(model.into()),
    }
}

fn call(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Chunk {
    Chunk::ToolCall(ToolCallDelta {
        choice: 0,
        index,
        id: id.map(Into::into),
        name: name.map(Into::into),
        arguments: args.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Recorded streams

#[test]
fn the_api_reference_stream_decodes() {
    let (chunks, done) = decode_openai(&fixture("openai_basic.sse"));
    assert!(done);
    assert_eq!(
        chunks,
        [
            start("chatcmpl-123", "gpt-4o-mini"),
            text(0, "Hello"),
            Chunk::Finish {
                choice: 0,
                reason: FinishReason::Stop
            },
        ]
    );
    // The complete answer of the same exchange, as the reference's non-streaming example
    // writes it.
    let whole = complete(
        r#"{"id":"chatcmpl-123","object":"chat.completion","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":"stop"}]}"#,
    );
    let streamed = collect(&chunks);
    assert_eq!(streamed.choices, whole.choices);
    assert_eq!(streamed.id, whole.id);
    assert_eq!(streamed.model, whole.model);
    assert_eq!(streamed.usage, whole.usage);
}

#[test]
fn a_tool_call_stream_decodes_piece_by_piece() {
    let (chunks, done) = decode_openai(&fixture("openai_tool_call.sse"));
    assert!(done);
    assert_eq!(chunks[0], start("chatcmpl-tool", "gpt-4.1"));
    assert_eq!(
        chunks[1],
        call(
            0,
            Some("call_DdmO9pD3xa9XTPNJ32zg2hcA"),
            Some("get_weather"),
            ""
        )
    );
    assert_eq!(chunks[2], call(0, None, None, "{\""));
    assert_eq!(
        chunks.last(),
        Some(&Chunk::Finish {
            choice: 0,
            reason: FinishReason::ToolCalls
        })
    );
    let whole = complete(
        r#"{"id":"chatcmpl-tool","object":"chat.completion","created":1727000000,"model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris, France\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
    );
    let streamed = collect(&chunks);
    assert_eq!(streamed.choices, whole.choices);
    assert_eq!(
        streamed.tool_calls()[0].arguments,
        r#"{"location":"Paris, France"}"#
    );
}

#[test]
fn a_deepseek_reasoning_stream_decodes_reasoning_then_text_and_usage() {
    let (chunks, done) = decode_openai(&fixture("openai_deepseek_reasoning.sse"));
    assert!(done);
    let kinds: Vec<&str> = chunks
        .iter()
        .map(|c| match c {
            Chunk::Start { .. } => "start",
            Chunk::Reasoning { .. } => "reasoning",
            Chunk::Text { .. } => "text",
            Chunk::Finish { .. } => "finish",
            Chunk::Usage(_) => "usage",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start",
            "reasoning",
            "reasoning",
            "text",
            "text",
            "finish",
            "usage"
        ]
    );
    assert_eq!(
        chunks.last(),
        Some(&Chunk::Usage(Usage {
            input_tokens: 16,
            output_tokens: 40,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 32,
        }))
    );
    let whole = complete(
        r#"{"id":"0f4b1c8e-7c1a-4f0e-9d7e-3a2b5c6d7e8f","object":"chat.completion","created":1738000000,"model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"9.8 is greater.","reasoning_content":"9.11 and 9.8: compare the tenths: 8 > 1."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":16,"completion_tokens":40,"total_tokens":56,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":32},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":16}}"#,
    );
    let streamed = collect(&chunks);
    assert_eq!(streamed.choices, whole.choices);
    assert_eq!(streamed.usage, whole.usage);
    assert_eq!(
        streamed.reasoning(),
        Some("9.11 and 9.8: compare the tenths: 8 > 1.")
    );
}

#[test]
fn the_include_usage_chunk_gives_usage_with_cached_tokens_split_out() {
    let (chunks, done) = decode_openai(&fixture("openai_include_usage.sse"));
    assert!(done);
    assert_eq!(
        chunks.last(),
        Some(&Chunk::Usage(Usage {
            input_tokens: 2006 - 1920,
            output_tokens: 3,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }))
    );
    // `"usage": null` on the other chunks reports nothing
    assert_eq!(
        chunks
            .iter()
            .filter(|c| matches!(c, Chunk::Usage(_)))
            .count(),
        1
    );
    let whole = complete(
        r#"{"id":"chatcmpl-usage","object":"chat.completion","created":1730000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":2006,"completion_tokens":3,"total_tokens":2009,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}"#,
    );
    let streamed = collect(&chunks);
    assert_eq!(streamed.usage, whole.usage);
    assert_eq!(streamed.text(), whole.text());
}

#[test]
fn several_choices_and_refusals_keep_their_choice() {
    let mut d = openai_sse::StreamDecoder::default();
    let mut out = Vec::new();
    let data = r#"{"id":"c","model":"m","choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"refusal":"I can't"}}]}"#;
    d.decode("", data, &mut out).unwrap();
    assert_eq!(
        out,
        [
            start("c", "m"),
            text(1, "b"),
            Chunk::Refusal {
                choice: 0,
                text: "I can't".into()
            }
        ]
    );
    let answer = collect(&out);
    assert_eq!(answer.refusal(), Some("I can't"));
    assert_eq!(answer.choices[1].message.text(), "b");
}

// ---------------------------------------------------------------------------------------------
// Writing

#[test]
fn the_writer_round_trips_every_recorded_stream() {
    for name in [
        "openai_basic.sse",
        "openai_tool_call.sse",
        "openai_deepseek_reasoning.sse",
        "openai_include_usage.sse",
    ] {
        let (chunks, _) = decode_openai(&fixture(name));
        let Chunk::Start {
            id: Some(id),
            model: Some(model),
        } = &chunks[0]
        else {
            panic!("{name}: no start")
        };
        let sse = write_openai(&chunks, id, model, 1);
        let (again, done) = decode_openai(&sse);
        assert!(done, "{name}");
        assert_eq!(again, chunks, "{name}:\n{sse}");
    }
}

#[test]
fn the_writer_writes_chunk_objects_and_done() {
    let sse = write_openai(
        &[
            start("x", "y"),
            text(0, "Hi"),
            Chunk::Usage(Usage::new(3, 1)),
        ],
        "chatcmpl-9",
        "gpt-4o",
        7,
    );
    let evs = events(&sse);
    assert_eq!(evs.len(), 4, "{sse}");
    let first: Value = serde_json::from_str(&evs[0].1).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["id"], "chatcmpl-9");
    assert_eq!(first["model"], "gpt-4o");
    assert_eq!(first["created"], 7);
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let usage: Value = serde_json::from_str(&evs[2].1).unwrap();
    assert_eq!(usage["choices"], Value::Array(vec![]));
    assert_eq!(usage["usage"]["total_tokens"], 4);
    assert_eq!(evs[3].1, "[DONE]");
    assert!(sse.ends_with("data: [DONE]\n\n"));
}

#[test]
fn openai_chunks_translate_to_anthropic_events_and_back() {
    for name in [
        "openai_basic.sse",
        "openai_tool_call.sse",
        "openai_deepseek_reasoning.sse",
        "openai_include_usage.sse",
    ] {
        let (chunks, _) = decode_openai(&fixture(name));
        let sse = write_anthropic(&chunks);
        let (again, done) = decode_anthropic(&sse);
        assert!(done, "{name}");
        let (a, b) = (collect(&chunks), collect(&again));
        assert_eq!(a.choices, b.choices, "{name}:\n{sse}");
        // Anthropic has no count of reasoning tokens: the rest of the usage survives.
        let mut usage = a.usage;
        usage.reasoning_tokens = 0;
        assert_eq!(usage, b.usage, "{name}");
    }
}

#[test]
fn the_writer_leaves_out_what_openai_cannot_carry_and_stops_after_the_end() {
    let mut w = openai_sse::StreamWriter::new("c", "m", 0);
    let mut out = Vec::new();
    w.write(&start("c", "m"), &mut out);
    let opened = out.len();
    w.write(
        &Chunk::Signature {
            choice: 0,
            signature: "sig".into(),
        },
        &mut out,
    );
    w.write(
        &Chunk::RedactedThinking {
            choice: 0,
            data: "opaque".into(),
        },
        &mut out,
    );
    w.write(&start("c", "m"), &mut out);
    assert_eq!(out.len(), opened);
    w.finish(&mut out);
    w.finish(&mut out);
    w.write(&text(0, "late"), &mut out);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("}\n\ndata: [DONE]\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

fn decode_one(event: &str, data: &str) -> Result<(Step, Vec<Chunk>), LlmError> {
    let mut d = openai_sse::StreamDecoder::default();
    let mut out = Vec::new();
    let step = d.decode(event, data, &mut out)?;
    Ok((step, out))
}

#[test]
fn error_objects_are_classified_by_code_and_type() {
    let cases = [
        (
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
            ErrorKind::Server,
        ),
        (
            r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
            ErrorKind::RateLimited,
        ),
        (
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            ErrorKind::QuotaExceeded,
        ),
        (
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ErrorKind::ContextLengthExceeded,
        ),
        // OpenRouter's mid-stream errors carry the HTTP status as a number
        (
            r#"{"error":{"code":502,"message":"Provider returned error"}}"#,
            ErrorKind::Server,
        ),
        (
            r#"{"error":{"code":429,"message":"Rate limit exceeded"}}"#,
            ErrorKind::RateLimited,
        ),
        (
            r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#,
            ErrorKind::Overloaded,
        ),
        (r#"{"error":"something broke"}"#, ErrorKind::Server),
    ];
    for (data, kind) in cases {
        let e = decode_one("", data).unwrap_err();
        assert_eq!(e.kind(), kind, "{data}");
        assert_eq!(e.status(), None, "the stream's status was 200: {data}");
        assert!(
            e.detail().unwrap().starts_with("error event in the stream"),
            "{e:?}"
        );
    }
    // an `event: error` with a body that is not JSON is still an error
    let e = decode_one("error", "upstream gone").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
}

#[test]
fn an_error_event_after_chunks_pushes_nothing() {
    let mut d = openai_sse::StreamDecoder::default();
    let mut out = Vec::new();
    d.decode(
        "",
        r#"{"id":"c","choices":[{"delta":{"content":"Hi"}}]}"#,
        &mut out,
    )
    .unwrap();
    let n = out.len();
    let e = d
        .decode(
            "",
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(out.len(), n);
}

#[test]
fn the_writer_error_event_reads_back_as_its_kind_with_the_client_message_only() {
    for kind in [
        ErrorKind::RateLimited,
        ErrorKind::Overloaded,
        ErrorKind::Server,
        ErrorKind::Timeout,
        ErrorKind::QuotaExceeded,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::ModelNotFound,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ContentPolicy,
        ErrorKind::InvalidRequest,
    ] {
        let err = LlmError::new(kind).with_detail("operator-only: upstream said sk-secret-123");
        let mut w = openai_sse::StreamWriter::new("c", "m", 0);
        let mut out = Vec::new();
        w.write(&text(0, "partial"), &mut out);
        w.error(&err, &mut out);
        w.finish(&mut out); // nothing after an error
        let sse = String::from_utf8(out).unwrap();
        assert!(!sse.contains("operator-only"), "{sse}");
        assert!(!sse.contains("[DONE]"), "{sse}");
        assert!(sse.contains(err.client_message()), "{sse}");
        let evs = events(&sse);
        let (event, data) = evs.last().unwrap();
        let back = decode_one(event, data).unwrap_err();
        assert_eq!(back.kind(), kind, "{sse}");
    }
}

#[test]
fn malformed_data_is_a_server_error() {
    for data in [
        "not json",
        "{\"choices\":",
        r#"{"choices":"many"}"#,
        r#"{"choices":[{"delta":{"content":5}}]}"#,
        r#"{"choices":[{"index":-1,"delta":{}}]}"#,
        r#"{"id":7,"choices":[]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":{"a":1}}}]}}]}"#,
        r#"{"usage":{"prompt_tokens":"ten"}}"#,
        "[1,2]",
    ] {
        let mut d = openai_sse::StreamDecoder::default();
        let mut out = Vec::new();
        let e = d.decode("", data, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{data}");
        assert!(
            e.detail().unwrap().starts_with("malformed stream event"),
            "{data}: {e:?}"
        );
        assert!(out.is_empty(), "{data}");
    }
}

#[test]
fn unknown_fields_are_skipped_and_nothing_follows_done() {
    let (step, out) = decode_one(
        "",
        r#"{"id":"c","object":"chat.completion.chunk","new_thing":{"x":[1]},"choices":[{"index":0,"delta":{"role":"assistant","content":"a","audio":{"id":"x"},"annotations":[]},"logprobs":{"content":[]},"native_finish_reason":"eos","finish_reason":null}],"usage":null}"#,
    )
    .unwrap();
    assert_eq!(step, Step::Continue);
    assert_eq!(
        out,
        [
            Chunk::Start {
                id: Some("c".into()),
                model: None
            },
            text(0, "a")
        ]
    );

    let mut d = openai_sse::StreamDecoder::default();
    let mut out = Vec::new();
    assert_eq!(d.decode("", " [DONE] ", &mut out).unwrap(), Step::Done);
    assert!(d.is_done());
    assert_eq!(d.decode("", "garbage", &mut out).unwrap(), Step::Done);
    assert!(out.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Properties

fn small_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 {}\":,\\\\\n]{1,12}"
}

fn chunk() -> impl Strategy<Value = Chunk> {
    prop_oneof![
        (0u32..2, small_text()).prop_map(|(choice, text)| Chunk::Text { choice, text }),
        (0u32..2, small_text()).prop_map(|(choice, text)| Chunk::Reasoning { choice, text }),
        (0u32..2, small_text()).prop_map(|(choice, text)| Chunk::Refusal { choice, text }),
        (0u32..3, proptest::option::of("[a-z_]{1,8}"), small_text()).prop_map(
            |(index, id, arguments)| Chunk::ToolCall(ToolCallDelta {
                choice: 0,
                index,
                name: id.clone(),
                id,
                arguments,
            })
        ),
        (
            0u32..2,
            prop_oneof![Just("stop"), Just("length"), Just("tool_calls")]
        )
            .prop_map(|(choice, r)| Chunk::Finish {
                choice,
                reason: FinishReason::from_provider(r)
            }),
        (0u64..1000, 0u64..1000, 0u64..1000, 0u64..100).prop_map(|(i, o, c, r)| Chunk::Usage(
            Usage {
                input_tokens: i,
                output_tokens: o,
                cached_input_tokens: c,
                cache_write_tokens: 0,
                reasoning_tokens: r,
            }
        )),
    ]
}

proptest! {
    #[test]
    fn decode_never_panics(
        events in proptest::collection::vec(
            (prop_oneof![Just(String::new()), Just("error".to_owned()), ".{0,8}"], ".{0,80}"),
            0..8,
        )
    ) {
        let mut d = openai_sse::StreamDecoder::default();
        let mut out = Vec::new();
        for (event, data) in &events {
            let _ = d.decode(event, data, &mut out);
        }
    }

    #[test]
    fn decode_never_panics_on_json_shaped_data(
        data in r#"\{("(id|model|choices|delta|index|content|tool_calls|usage|error|code|function|arguments|finish_reason)"|[\[\]{}:,0-9-]|null|true|"x"){0,30}\}"#
    ) {
        let mut d = openai_sse::StreamDecoder::default();
        let mut out = Vec::new();
        let _ = d.decode("", &data, &mut out);
    }

    #[test]
    fn any_chunks_round_trip_through_the_writer(chunks in proptest::collection::vec(chunk(), 0..12)) {
        let mut all = vec![start("chatcmpl-p", "m")];
        all.extend(chunks);
        let sse = write_openai(&all, "chatcmpl-p", "m", 3);
        let (again, done) = decode_openai(&sse);
        prop_assert!(done);
        prop_assert_eq!(again, all);
    }
}
