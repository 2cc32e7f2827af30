//! OpenAI chat-completions JSON <-> the model: recorded bodies read and written back, every
//! feature read, what OpenAI cannot express refused by name, hints left out, and no input
//! making a decoder panic.
//!
//! Where each fixture under `tests/fixtures/openai/` came from:
//!
//! - `request_default.json`, `request_image_input.json`, `request_functions.json`,
//!   `request_logprobs.json` and the `response_*` files of the same names: the OpenAI API
//!   reference, Create chat completion, examples "Default", "Image input", "Functions" and
//!   "Logprobs" (request bodies from the curl examples, answers as shown), taken from
//!   `openapi.yaml` of github.com/openai/openai-openapi.
//! - `request_structured_outputs.json`: the OpenAI Structured Outputs guide's chat-completions
//!   example (`math_reasoning`).
//! - `request_pdf_file.json`: a body the OpenAI API Prompts Playground sent with a PDF file
//!   part, as posted on the OpenAI developer forum ("Base64 file not going through api").
//! - `request_deepseek_thinking.json`, `response_deepseek_reasoning.json`: the DeepSeek API
//!   reference's chat-completion example (thinking mode, `reasoning_content` in the answer).
//! - `request_tool_conversation.json`: the second turn of the OpenAI function-calling guide's
//!   `get_weather` example (the assistant's tool call and the tool result sent back).
//! - `request_audio_input.json`: the OpenAI audio guide's shape of an `input_audio` part (the
//!   base64 data replaced by a tiny WAV header).
//! - `request_every_field.json`, `response_reasoning_cached.json`: composed for these tests
//!   from the API reference's field definitions, to hold every remaining feature in one body
//!   (not recorded from a server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use towerguard_llm_core::wire::openai::{
    decode_request, decode_response, encode_request, encode_response,
};
use towerguard_llm_core::{
    CacheControl, ChatOptions, Choice, Content, ErrorKind, FinishReason, LlmError, LlmRequest,
    LlmResponse, MediaSource, Message, Part, ResponseFormat, Role, SamplingParams, Thinking, Tool,
    ToolCall, ToolChoice, Usage,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/openai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

fn provider() -> Arc<str> {
    Arc::from("openai")
}

fn asked() -> Arc<str> {
    Arc::from("asked-model")
}

fn decode_resp(bytes: &[u8]) -> Result<LlmResponse, LlmError> {
    decode_response(bytes, &provider(), &asked())
}

fn request_round_trip(name: &str) -> (Value, Value) {
    let body = fixture(name);
    let req = decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let out = encode_request(&req).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    (json_of(&body), json_of(&out))
}

fn response_round_trip(name: &str) -> (Value, Value) {
    let body = fixture(name);
    let resp = decode_resp(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let out = encode_response(&resp).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    (json_of(&body), json_of(&out))
}

#[track_caller]
fn assert_invalid(err: &LlmError, field: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err:?}");
    assert!(
        err.client_message().contains(&format!("`{field}`")),
        "expected the message to name `{field}`: {}",
        err.client_message()
    );
}

#[track_caller]
fn assert_malformed(result: Result<LlmResponse, LlmError>) -> LlmError {
    match result {
        Ok(resp) => panic!("expected an error, got {resp:?}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Server, "{e:?}");
            assert!(e.detail().is_some_and(|d| d.contains("malformed")), "{e:?}");
            e
        }
    }
}

fn req_with(messages: Vec<Message>) -> LlmRequest {
    LlmRequest::new("gpt-4.1", messages)
}

fn encode_err(req: &LlmRequest) -> LlmError {
    match encode_request(req) {
        Ok(body) => panic!("expected a refusal, got {}", String::from_utf8_lossy(&body)),
        Err(e) => e,
    }
}

fn encoded(req: &LlmRequest) -> Value {
    json_of(&encode_request(req).expect("encodes"))
}

// ---------------------------------------------------------------------------------------------
// Requests: recorded bodies written back unchanged.

#[test]
fn reference_request_bodies_round_trip_exactly() {
    // OpenAI API reference, Create chat completion: "Default", "Image input", "Functions",
    // "Logprobs"; the Structured Outputs guide; the function-calling guide's second turn; the
    // audio guide's input_audio shape; the Playground's PDF body; the composed body.
    for name in [
        "request_default.json",
        "request_image_input.json",
        "request_functions.json",
        "request_logprobs.json",
        "request_structured_outputs.json",
        "request_tool_conversation.json",
        "request_audio_input.json",
        "request_pdf_file.json",
        "request_every_field.json",
    ] {
        let (sent, written) = request_round_trip(name);
        assert_eq!(sent, written, "{name}");
    }
}

#[test]
fn deepseek_request_round_trips_but_for_its_nulls() {
    // DeepSeek API reference example. Its top-level `null`s ("stop": null, "tools": null, ...)
    // are read as absent fields and not written back; everything else is the same, including
    // `stream: false` and the budget-less `thinking`, which stay among the extras.
    let (mut sent, written) = request_round_trip("request_deepseek_thinking.json");
    sent.as_object_mut()
        .expect("object")
        .retain(|_, v| !v.is_null());
    assert_eq!(sent, written);
}

#[test]
fn request_forms_the_model_does_not_keep() {
    // Where exact equality cannot hold: the model keeps one stop list (a string is written as
    // a list of one), an f32 (a whole number is written as an integer), and an assistant's
    // content next to a `refusal` field as parts.
    let body = br#"{"model":"m","messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":"partly","refusal":"no more"}],
        "stop":"END","temperature":1.0}"#;
    let out = encoded(&decode_request(body).unwrap());
    assert_eq!(out["stop"], json!(["END"]));
    assert_eq!(out["temperature"], json!(1));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type":"text","text":"partly"},{"type":"refusal","refusal":"no more"}])
    );
}

// ---------------------------------------------------------------------------------------------
// Requests: every feature read.

#[test]
fn every_field_is_read() {
    let req = decode_request(&fixture("request_every_field.json")).unwrap();
    assert_eq!(req.model(), "o4-mini");
    let m = req.messages();
    assert_eq!(
        m.iter().map(|m| m.role).collect::<Vec<_>>(),
        [
            Role::Developer,
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::Assistant,
            Role::User
        ]
    );
    assert_eq!(m[0].content, Content::Text("Answer in French.".into()));
    assert_eq!(m[1].content, Content::Parts(vec![Part::text("Be brief.")]));

    // User parts: text, image by URL with detail, image as a data: URL, file by id; name.
    assert_eq!(m[2].name.as_deref(), Some("alice"));
    let Content::Parts(parts) = &m[2].content else {
        panic!("parts")
    };
    assert_eq!(
        parts[1],
        Part::Image {
            source: MediaSource::Url("https://example.com/a.png".into()),
            detail: Some("high".into()),
            cache_control: None
        }
    );
    assert_eq!(
        parts[2],
        Part::Image {
            source: MediaSource::Base64 {
                media_type: "image/jpeg".into(),
                data: "/9j/4AAQSkZJRg==".into()
            },
            detail: Some("low".into()),
            cache_control: None
        }
    );
    assert_eq!(
        parts[3],
        Part::File {
            source: MediaSource::FileId("file-abc123def4567890".into()),
            filename: None,
            cache_control: None
        }
    );

    // Assistant tool calls, arguments as text; tool results, one reporting an error.
    assert_eq!(m[3].text(), "Let me look at the files.");
    assert_eq!(
        m[3].tool_calls,
        [
            ToolCall::new("call_a", "read_report", r#"{"id":"file-abc"}"#),
            ToolCall::new("call_b", "read_report", r#"{"id":"file-def"}"#)
        ]
    );
    assert_eq!(m[4].tool_call_id.as_deref(), Some("call_a"));
    assert!(!m[4].tool_error);
    assert_eq!(m[5].tool_call_id.as_deref(), Some("call_b"));
    assert!(m[5].tool_error);
    assert_eq!(m[5].content, Content::Text("file-def was deleted".into()));

    // An assistant refusal.
    assert_eq!(
        m[6].content.refusal(),
        Some("I can't compare people's faces.")
    );

    let o = req.options();
    assert_eq!(o.tools.len(), 2);
    assert_eq!(o.tools[0].name, "read_report");
    assert_eq!(
        o.tools[0].description.as_deref(),
        Some("Reads a report by id")
    );
    assert_eq!(o.tools[0].parameters["required"], json!(["id"]));
    assert_eq!(o.tools[1].parameters, Value::Null, "no parameters");
    assert_eq!(
        o.tool_choice,
        Some(ToolChoice::Function("read_report".into()))
    );
    assert_eq!(o.parallel_tool_calls, Some(false));
    assert_eq!(o.response_format, Some(ResponseFormat::JsonObject));
    assert_eq!(o.reasoning_effort.as_deref(), Some("low"));
    assert_eq!(o.user.as_deref(), Some("user-1234"));
    assert_eq!(o.safety_identifier.as_deref(), Some("hash-5678"));
    assert_eq!(o.metadata.as_ref().unwrap()["run"], json!("nightly"));
    assert_eq!(o.prompt_cache_key.as_deref(), Some("tenant-42"));
    assert!(!o.stream);
    // Unknown fields pass through.
    let mut extra: Vec<&str> = o.extra_body.keys().map(String::as_str).collect();
    extra.sort_unstable();
    assert_eq!(
        extra,
        [
            "logit_bias",
            "prompt_cache_retention",
            "service_tier",
            "store",
            "verbosity"
        ]
    );

    let p = req.params();
    assert_eq!(p.max_completion_tokens, Some(4000));
    assert_eq!(p.max_tokens, None);
    assert_eq!(p.n, Some(2));
    assert_eq!(p.seed, Some(42));
    assert_eq!(
        p.stop.as_deref(),
        Some(&["\n\n".to_owned(), "END".to_owned()][..])
    );
    assert_eq!(p.temperature, Some(0.7));
    assert_eq!(p.top_p, Some(0.9));
    assert_eq!(p.presence_penalty, Some(0.5));
    assert_eq!(p.frequency_penalty, Some(-0.25));
}

#[test]
fn reference_examples_are_read() {
    let req = decode_request(&fixture("request_image_input.json")).unwrap();
    assert_eq!(req.params().max_tokens, Some(300));
    assert!(matches!(
        &req.messages()[0].content.parts()[1],
        Part::Image { source: MediaSource::Url(u), .. } if u.starts_with("https://upload.wikimedia.org/")
    ));

    let req = decode_request(&fixture("request_functions.json")).unwrap();
    assert_eq!(req.options().tools[0].name, "get_current_weather");
    assert_eq!(req.options().tool_choice, Some(ToolChoice::Auto));

    let req = decode_request(&fixture("request_logprobs.json")).unwrap();
    assert_eq!(req.params().logprobs, Some(true));
    assert_eq!(req.params().top_logprobs, Some(2));

    let req = decode_request(&fixture("request_structured_outputs.json")).unwrap();
    let Some(ResponseFormat::JsonSchema {
        name,
        schema,
        strict,
        description,
    }) = &req.options().response_format
    else {
        panic!("json_schema")
    };
    assert_eq!(name, "math_reasoning");
    assert_eq!(*strict, Some(true));
    assert_eq!(*description, None);
    assert_eq!(schema["required"], json!(["steps", "final_answer"]));

    let req = decode_request(&fixture("request_tool_conversation.json")).unwrap();
    let m = req.messages();
    assert_eq!(m[1].content, Content::default(), "content null: no parts");
    assert_eq!(m[1].tool_calls[0].id, "call_12345xyz");
    assert_eq!(m[2].role, Role::Tool);
    assert_eq!(m[2].text(), "10");
    assert_eq!(req.options().tools[0].strict, Some(true));

    let req = decode_request(&fixture("request_audio_input.json")).unwrap();
    assert!(matches!(
        &req.messages()[0].content.parts()[1],
        Part::Audio { format, .. } if format == "wav"
    ));
    assert_eq!(req.options().extra_body["modalities"], json!(["text"]));

    // stream: true is the model's; stream_options (streaming is a later issue) an extra.
    let req = decode_request(&fixture("request_pdf_file.json")).unwrap();
    assert!(req.options().stream);
    assert_eq!(
        req.options().extra_body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(req.options().response_format, Some(ResponseFormat::Text));
    assert_eq!(req.params().max_completion_tokens, Some(2048));
    assert!(matches!(
        &req.messages()[0].content.parts()[1],
        Part::File {
            source: MediaSource::Base64 { media_type, .. },
            filename: Some(f),
            ..
        } if media_type == "application/pdf" && f == "competion-sidebar.pdf"
    ));

    // DeepSeek: reasoning effort read; `thinking` without a budget is not the model's shape.
    let req = decode_request(&fixture("request_deepseek_thinking.json")).unwrap();
    assert_eq!(req.options().reasoning_effort.as_deref(), Some("high"));
    assert_eq!(req.options().thinking, None);
    assert_eq!(
        req.options().extra_body["thinking"],
        json!({"type": "enabled"})
    );
    assert_eq!(req.options().tool_choice, Some(ToolChoice::None));
    assert_eq!(req.params().logprobs, Some(false));
}

#[test]
fn thinking_budget_top_k_reasoning_and_cache_control_are_read() {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "long document", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ]},
            {"role": "assistant", "content": "42", "reasoning_content": "6 times 7"},
            {"role": "user", "content": "why?"}
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "top_k": 40,
        "stream": true
    });
    let req = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        req.options().thinking,
        Some(Thinking::Enabled {
            budget_tokens: 2048
        })
    );
    assert_eq!(req.params().top_k, Some(40));
    assert!(req.options().stream);
    assert_eq!(
        req.messages()[0].content,
        Content::Parts(vec![Part::Text {
            text: "long document".into(),
            cache_control: Some(CacheControl {
                ttl: Some("1h".into())
            })
        }])
    );
    assert_eq!(
        req.messages()[1].content,
        Content::Parts(vec![
            Part::Thinking {
                thinking: "6 times 7".into(),
                signature: None
            },
            Part::text("42")
        ])
    );
    // Written back: thinking and top_k kept, the reasoning and the cache hint left out.
    let out = encoded(&req);
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(out["top_k"], json!(40));
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"type": "text", "text": "long document"}])
    );
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": [{"type": "text", "text": "42"}]})
    );
}

#[test]
fn unknown_message_fields_pass_through() {
    let body = br#"{"model":"gpt-4o-audio-preview","messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":null,"audio":{"id":"audio_abc123"}}]}"#;
    let req = decode_request(body).unwrap();
    assert_eq!(
        req.messages()[1].extra["audio"],
        json!({"id": "audio_abc123"})
    );
    assert_eq!(encoded(&req), json_of(body));
}

// ---------------------------------------------------------------------------------------------
// Requests: what is not a valid body, named.

#[test]
fn invalid_request_bodies_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("not json", "body"),
        ("[]", "body"),
        (r#"{"messages":[]}"#, "model"),
        (r#"{"model":"m"}"#, "messages"),
        (r#"{"model":"m","messages":{}}"#, "messages"),
        (r#"{"model":"m","messages":[7]}"#, "messages[0]"),
        (
            r#"{"model":"m","messages":[{"content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"tool","content":"r"}]}"#,
            "messages[1].tool_call_id",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"a","tool_call_id":"c"}]}"#,
            "messages[0].tool_call_id",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}]}"#,
            "messages[0].content[1].image_url",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"uri":"x"}}]}]}"#,
            "messages[0].content[0].image_url",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"video","video":"x"}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","extra":1}]}]}"#,
            "messages[0].content[0].extra",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{}}]}]}"#,
            "messages[0].content[0].file",
        ),
        (
            r#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"a","tool_calls":[]}]}"#,
            "messages[0].tool_calls",
        ),
        (
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{}}}]}]}"#,
            "messages[0].tool_calls[0].function",
        ),
        (
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{}}]}]}"#,
            "messages[0].tool_calls[0].type",
        ),
        (
            r#"{"model":"m","messages":[],"temperature":"hot"}"#,
            "temperature",
        ),
        (
            r#"{"model":"m","messages":[],"temperature":1e300}"#,
            "temperature",
        ),
        (
            r#"{"model":"m","messages":[],"max_tokens":-1}"#,
            "max_tokens",
        ),
        (r#"{"model":"m","messages":[],"stop":[1]}"#, "stop"),
        (r#"{"model":"m","messages":[],"stream":"yes"}"#, "stream"),
        (
            r#"{"model":"m","messages":[],"tool_choice":"any"}"#,
            "tool_choice",
        ),
        (
            r#"{"model":"m","messages":[],"tool_choice":{"type":"allowed_tools","function":{"name":"f"}}}"#,
            "tool_choice.type",
        ),
        (
            r#"{"model":"m","messages":[],"tools":[{"type":"web_search"}]}"#,
            "tools[0].type",
        ),
        (
            r#"{"model":"m","messages":[],"tools":[{"type":"function"}]}"#,
            "tools[0].function",
        ),
        (
            r#"{"model":"m","messages":[],"response_format":{"type":"xml"}}"#,
            "response_format.type",
        ),
        (
            r#"{"model":"m","messages":[],"response_format":{"type":"json_schema"}}"#,
            "response_format.json_schema",
        ),
    ];
    for (body, field) in cases {
        match decode_request(body.as_bytes()) {
            Ok(req) => panic!("{body} was read: {req:?}"),
            Err(e) => assert_invalid(&e, field),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: writing a model OpenAI cannot fully express.

#[test]
fn refuses_an_image_in_a_tool_result() {
    let req = req_with(vec![Message::tool_result(
        "call_1",
        vec![Part::image_url("https://example.com/chart.png")],
    )]);
    assert_invalid(&encode_err(&req), "messages[0].content[0]");
}

#[test]
fn refuses_media_outside_user_messages() {
    let req = req_with(vec![Message::system(vec![Part::image_base64(
        "image/png",
        "iVBOR",
    )])]);
    assert_invalid(&encode_err(&req), "messages[0].content[0]");
    let audio = Part::Audio {
        data: "UklGR".into(),
        format: "wav".into(),
    };
    let req = req_with(vec![Message::user("hi"), Message::assistant(vec![audio])]);
    assert_invalid(&encode_err(&req), "messages[1].content[0]");
}

#[test]
fn refuses_a_refusal_outside_an_assistant_message() {
    let req = req_with(vec![Message::user(vec![Part::Refusal {
        refusal: "no".into(),
    }])]);
    assert_invalid(&encode_err(&req), "messages[0].content[0]");
}

#[test]
fn refuses_a_file_by_url() {
    let req = req_with(vec![Message::user_parts(vec![Part::File {
        source: MediaSource::Url("https://example.com/report.pdf".into()),
        filename: Some("report.pdf".into()),
        cache_control: None,
    }])]);
    assert_invalid(&encode_err(&req), "messages[0].content[0].file");
}

#[test]
fn refuses_an_image_by_file_id_or_without_media_type() {
    let by_id = Part::Image {
        source: MediaSource::FileId("file_011".into()),
        detail: None,
        cache_control: None,
    };
    let req = req_with(vec![Message::user_parts(vec![Part::text("look"), by_id])]);
    assert_invalid(&encode_err(&req), "messages[0].content[1].image_url");
    let req = req_with(vec![Message::user_parts(vec![Part::image_base64(
        "", "iVBOR",
    )])]);
    assert_invalid(&encode_err(&req), "messages[0].content[0].image_url");
}

#[test]
fn refuses_tool_fields_on_the_wrong_messages() {
    let mut user = Message::user("hi");
    user.tool_calls.push(ToolCall::new("c", "f", "{}"));
    assert_invalid(&encode_err(&req_with(vec![user])), "messages[0].tool_calls");

    let no_id = Message::new(Role::Tool, "result");
    assert_invalid(
        &encode_err(&req_with(vec![Message::user("hi"), no_id])),
        "messages[1].tool_call_id",
    );

    let mut user = Message::user("hi");
    user.tool_call_id = Some("c".into());
    assert_invalid(
        &encode_err(&req_with(vec![user])),
        "messages[0].tool_call_id",
    );
}

#[test]
fn refuses_a_sampling_value_that_is_not_a_number() {
    let params = SamplingParams {
        temperature: Some(f32::NAN),
        ..SamplingParams::default()
    };
    let req = req_with(vec![Message::user("hi")]).with_params(params);
    assert_invalid(&encode_err(&req), "temperature");
    let params = SamplingParams {
        frequency_penalty: Some(f32::INFINITY),
        ..SamplingParams::default()
    };
    let req = req_with(vec![Message::user("hi")]).with_params(params);
    assert_invalid(&encode_err(&req), "frequency_penalty");
}

#[test]
fn leaves_out_cache_control_and_thinking() {
    let cached = CacheControl { ttl: None };
    let mut tool = Tool::function("f", "does f", json!({"type": "object"}));
    tool.cache_control = Some(cached.clone());
    let assistant = Message::assistant(vec![
        Part::Thinking {
            thinking: "hmm".into(),
            signature: Some("sig".into()),
        },
        Part::RedactedThinking {
            data: "EqQB".into(),
        },
        Part::text("done"),
    ]);
    let thinking_only = {
        let mut m = Message::assistant(vec![Part::Thinking {
            thinking: "calling".into(),
            signature: Some("sig".into()),
        }]);
        m.tool_calls.push(ToolCall::new("c1", "f", "{}"));
        m
    };
    let req = req_with(vec![
        Message::user_parts(vec![Part::Text {
            text: "big prompt".into(),
            cache_control: Some(cached),
        }]),
        assistant,
        thinking_only,
        Message::tool_result("c1", "ok"),
    ])
    .with_tool(tool);
    let out = encoded(&req);
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "big prompt"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}
        ])
    );
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}}}])
    );
}

#[test]
fn a_failed_tool_result_is_prefixed() {
    let req = req_with(vec![
        Message::tool_result("c1", "timeout").with_tool_error(true),
        Message::tool_result("c2", vec![Part::text("no such file")]).with_tool_error(true),
        Message::tool_result("c3", Content::Parts(vec![])).with_tool_error(true),
    ]);
    let out = encoded(&req);
    assert_eq!(out["messages"][0]["content"], json!("Error: timeout"));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "Error: no such file"}])
    );
    assert_eq!(
        out["messages"][2]["content"],
        json!([{"type": "text", "text": "Error: "}])
    );
    // Read back, the flag and the text are what they were.
    let back = decode_request(&encode_request(&req).unwrap()).unwrap();
    assert_eq!(back.messages(), req.messages());
}

#[test]
fn inline_media_is_written_as_data_urls_and_options_as_openai_spells_them() {
    let mut options = ChatOptions::default();
    options.tool_choice = Some(ToolChoice::Required);
    options.response_format = Some(ResponseFormat::JsonSchema {
        name: "answer".into(),
        description: Some("The answer".into()),
        schema: json!({"type": "object"}),
        strict: None,
    });
    options.thinking = Some(Thinking::Disabled);
    // An extra never overrides a field the model sets.
    options.extra_body.insert("model".into(), json!("other"));
    options.extra_body.insert("temperature".into(), json!(2));
    options
        .extra_body
        .insert("service_tier".into(), json!("flex"));
    let params = SamplingParams {
        temperature: Some(0.3),
        max_tokens: Some(100),
        stop: Some(vec!["x".to_owned()].into()),
        ..SamplingParams::default()
    };
    let req = req_with(vec![Message::user_parts(vec![
        Part::image_base64("image/png", "iVBOR"),
        Part::File {
            source: MediaSource::Base64 {
                media_type: "application/pdf".into(),
                data: "JVBER".into(),
            },
            filename: Some("a.pdf".into()),
            cache_control: None,
        },
    ])])
    .with_params(params)
    .with_options(options);
    let out = encoded(&req);
    assert_eq!(
        out,
        json!({
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}}
            ]}],
            "max_tokens": 100,
            "temperature": 0.3,
            "stop": ["x"],
            "tool_choice": "required",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "description": "The answer", "schema": {"type": "object"}
            }},
            "thinking": {"type": "disabled"},
            "service_tier": "flex"
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Answers: recorded bodies written back unchanged.

#[test]
fn reference_answers_round_trip_exactly() {
    // OpenAI API reference, Create chat completion: "Default", "Image input", "Functions",
    // "Logprobs"; DeepSeek API reference (reasoning_content); the composed multi-choice answer.
    for name in [
        "response_default.json",
        "response_image_input.json",
        "response_functions.json",
        "response_logprobs.json",
        "response_deepseek_reasoning.json",
        "response_reasoning_cached.json",
    ] {
        let (got, written) = response_round_trip(name);
        assert_eq!(got, written, "{name}");
    }
}

#[test]
fn reference_answers_are_read() {
    // OpenAI API reference, "Default".
    let resp = decode_resp(&fixture("response_default.json")).unwrap();
    assert_eq!(
        resp.id.as_deref(),
        Some("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT")
    );
    assert_eq!(resp.created, Some(1_741_569_952));
    assert_eq!(resp.model(), "gpt-5.4");
    assert_eq!(resp.provider(), "openai");
    assert_eq!(resp.text(), "Hello! How can I assist you today?");
    assert_eq!(resp.finish_reason(), &FinishReason::Stop);
    assert_eq!(resp.usage, Usage::new(19, 10));
    assert_eq!(resp.extra["service_tier"], json!("default"));
    assert_eq!(resp.choices[0].message.extra["annotations"], json!([]));
    assert_eq!(resp.refusal(), None);

    // "Functions": a tool call, arguments kept as the model wrote them.
    let resp = decode_resp(&fixture("response_functions.json")).unwrap();
    assert_eq!(resp.finish_reason(), &FinishReason::ToolCalls);
    assert_eq!(
        resp.tool_calls(),
        [ToolCall::new(
            "call_abc123",
            "get_current_weather",
            "{\n\"location\": \"Boston, MA\"\n}"
        )]
    );
    assert!(resp.first().unwrap().message.content.is_empty());

    // "Logprobs": the object as sent.
    let resp = decode_resp(&fixture("response_logprobs.json")).unwrap();
    let logprobs = resp.first().unwrap().logprobs.as_ref().unwrap();
    assert_eq!(logprobs["content"][0]["token"], json!("Hello"));

    // DeepSeek: reasoning_content is a thinking block; reasoning tokens counted in the output.
    let resp = decode_resp(&fixture("response_deepseek_reasoning.json")).unwrap();
    assert_eq!(
        resp.reasoning(),
        Some(
            "We are asked: \"You are a helpful assistant\" and the user says \"Hi\". So I need to respond as a helpful assistant. I'll just greet the user and offer assistance."
        )
    );
    assert_eq!(resp.text(), "Hello! How can I help you today?");
    assert_eq!(resp.usage.output_tokens, 48);
    assert_eq!(resp.usage.reasoning_tokens, 38);
    assert_eq!(resp.usage.input_tokens, 10);
    assert_eq!(resp.extra["usage"]["prompt_cache_miss_tokens"], json!(10));
}

#[test]
fn every_choice_and_the_usage_parts_are_read() {
    let resp = decode_resp(&fixture("response_reasoning_cached.json")).unwrap();
    assert_eq!(resp.choices.len(), 3);
    assert_eq!(resp.choices[1].index, 1);
    assert_eq!(resp.choices[1].finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        resp.choices[1].message.tool_calls,
        [ToolCall::new("call_x", "read_report", "{\"id\":")],
        "invalid JSON arguments kept as text"
    );
    assert_eq!(
        resp.choices[2].message.content.refusal(),
        Some("I can't help with that.")
    );
    assert_eq!(resp.choices[2].finish_reason, FinishReason::Length);
    // prompt_tokens (2006) includes the 1920 cached ones: the parts are disjoint.
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 86,
            output_tokens: 300,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            reasoning_tokens: 192,
        }
    );
    assert_eq!(resp.usage.total_tokens(), 2306);
    assert_eq!(resp.extra["system_fingerprint"], Value::Null);
}

#[test]
fn answer_without_model_names_the_asked_one() {
    let resp = decode_resp(br#"{"choices":[{"message":{"content":"hi"}}]}"#).unwrap();
    assert_eq!(resp.model(), "asked-model");
    assert_eq!(resp.text(), "hi");
    assert_eq!(resp.usage, Usage::default());
}

// ---------------------------------------------------------------------------------------------
// Answers: what is not a completion is an error, never an empty success.

#[test]
fn not_a_completion_is_an_error() {
    for body in [
        &b""[..],
        b"<html>502 Bad Gateway</html>",
        b"null",
        b"[]",
        b"\"ok\"",
        b"{}",
        br#"{"choices":[]}"#,
        br#"{"choices":null}"#,
        br#"{"choices":{}}"#,
        br#"{"choices":[7]}"#,
        br#"{"choices":[{}]}"#,
        br#"{"choices":[{"message":"hi"}]}"#,
        br#"{"choices":[{"message":{"content":7}}]}"#,
        br#"{"choices":[{"message":{"content":"x","tool_calls":{}}}]}"#,
        br#"{"choices":[{"message":{"tool_calls":[{"type":"function","function":{"name":"f"}}]}}]}"#,
        br#"{"choices":[{"message":{"content":"x"},"finish_reason":7}]}"#,
        br#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-1}}"#,
        br#"{"choices":[{"message":{"content":"x"}}],"usage":"many"}"#,
        br#"{"choices":[{"message":{"content":"x"}}],"created":"today"}"#,
        br#"{"choices":[{"message":{"content":"x"}}],"model":5}"#,
        br#"{"object":"chat.completion.chunk","choices":[{"delta":{"content":"x"}}]}"#,
        // Anthropic's shape sent to the OpenAI reader.
        br#"{"type":"message","role":"assistant","content":[{"type":"text","text":"hi"}]}"#,
    ] {
        assert_malformed(decode_resp(body));
    }
}

#[test]
fn an_error_object_sent_with_200_is_an_error() {
    let body = br#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#;
    let err = assert_malformed(decode_resp(body));
    assert!(err.detail().unwrap().contains("error object"));
    // Even beside choices.
    let body =
        br#"{"choices":[{"message":{"content":"x"}}],"error":{"message":"upstream failed"}}"#;
    assert_malformed(decode_resp(body));
}

// ---------------------------------------------------------------------------------------------
// Answers: writing.

#[test]
fn an_answer_from_elsewhere_is_written_as_openai_expects() {
    let mut msg = Message::assistant(vec![
        Part::Thinking {
            thinking: "Let me think.".into(),
            signature: Some("sig".into()),
        },
        Part::RedactedThinking {
            data: "EqQB".into(),
        },
        Part::text("Paris"),
        Part::text(" it is."),
    ]);
    msg.tool_calls
        .push(ToolCall::new("toolu_1", "lookup", r#"{"q":"Paris"}"#));
    let choice = Choice {
        index: 0,
        message: msg,
        finish_reason: FinishReason::StopSequence,
        stop_sequence: Some("###".into()),
        logprobs: None,
    };
    let resp = LlmResponse::with_choices(vec![choice], "claude-sonnet-4-5", "anthropic")
        .with_usage(Usage {
            input_tokens: 100,
            output_tokens: 20,
            cached_input_tokens: 1000,
            cache_write_tokens: 50,
            reasoning_tokens: 0,
        });
    let out = json_of(&encode_response(&resp).unwrap());
    let id = out["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("chatcmpl-"), "{id}");
    assert_eq!(
        json_of(&encode_response(&resp).unwrap())["id"],
        json!(id),
        "stable"
    );
    assert_eq!(
        out,
        json!({
            "id": id,
            "object": "chat.completion",
            "created": 0,
            "model": "claude-sonnet-4-5",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Paris it is.",
                    "reasoning_content": "Let me think.",
                    "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "lookup", "arguments": "{\"q\":\"Paris\"}"}}]
                },
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 1150,
                "completion_tokens": 20,
                "total_tokens": 1170,
                "prompt_tokens_details": {"cached_tokens": 1000}
            }
        })
    );
}

#[test]
fn an_answer_with_media_cannot_be_written() {
    let resp = LlmResponse::with_choices(
        vec![Choice {
            index: 0,
            message: Message::assistant(vec![Part::image_url("https://x/y.png")]),
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            logprobs: None,
        }],
        "m",
        "p",
    );
    let err = encode_response(&resp).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(
        err.detail()
            .unwrap()
            .contains("choices[0].message.content[0]")
    );
}

// ---------------------------------------------------------------------------------------------
// No input makes a decoder panic.

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("user".to_owned()),
            Just("assistant".to_owned()),
            Just("tool".to_owned()),
            Just("text".to_owned()),
            Just("image_url".to_owned()),
            Just("data:image/png;base64,AAAA".to_owned()),
            Just("Error: ".to_owned()),
            any::<String>(),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("model".to_owned()),
            Just("messages".to_owned()),
            Just("role".to_owned()),
            Just("content".to_owned()),
            Just("type".to_owned()),
            Just("text".to_owned()),
            Just("image_url".to_owned()),
            Just("url".to_owned()),
            Just("file".to_owned()),
            Just("tool_calls".to_owned()),
            Just("tool_call_id".to_owned()),
            Just("function".to_owned()),
            Just("arguments".to_owned()),
            Just("choices".to_owned()),
            Just("message".to_owned()),
            Just("usage".to_owned()),
            Just("prompt_tokens_details".to_owned()),
            Just("stop".to_owned()),
            Just("thinking".to_owned()),
            Just("error".to_owned()),
            any::<String>(),
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A recorded body with one of its values, at any depth, replaced.
fn mutated_fixture() -> impl Strategy<Value = Vec<u8>> {
    let names = prop_oneof![
        Just("request_every_field.json"),
        Just("request_tool_conversation.json"),
        Just("response_reasoning_cached.json"),
        Just("response_logprobs.json"),
    ];
    (names, any::<prop::sample::Index>(), arb_json()).prop_map(|(name, at, value)| {
        let mut doc = json_of(&fixture(name));
        let mut slots = Vec::new();
        collect_paths(&doc, &mut Vec::new(), &mut slots);
        if !slots.is_empty() {
            let path = &slots[at.index(slots.len())];
            if let Some(slot) = doc.pointer_mut(path) {
                *slot = value;
            }
        }
        doc.to_string().into_bytes()
    })
}

fn collect_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<String>) {
    out.push(at.iter().map(|k| format!("/{k}")).collect());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i.to_string());
                collect_paths(item, at, out);
                at.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                at.push(k.replace('~', "~0").replace('/', "~1"));
                collect_paths(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_request(&bytes);
        let _ = decode_resp(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_json(value in arb_json()) {
        let bytes = value.to_string().into_bytes();
        if let Ok(req) = decode_request(&bytes) {
            let _ = encode_request(&req);
        }
        if let Ok(resp) = decode_resp(&bytes) {
            prop_assert!(!resp.choices.is_empty());
            let _ = encode_response(&resp);
        }
    }

    #[test]
    fn decoders_never_panic_on_damaged_recordings(bytes in mutated_fixture()) {
        if let Ok(req) = decode_request(&bytes) {
            let _ = encode_request(&req);
        }
        if let Ok(resp) = decode_resp(&bytes) {
            prop_assert!(!resp.choices.is_empty());
            let _ = encode_response(&resp);
        }
    }
}
