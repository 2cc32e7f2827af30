//! Anthropic Messages JSON <-> the model (`towerguard_llm_core::wire::anthropic`).
//!
//! The fixtures under `tests/fixtures/anthropic/` are the request and answer bodies of
//! Anthropic's API reference and guides (platform.claude.com / docs.anthropic.com); each test
//! says which page its body comes from. They were transcribed from those pages' examples:
//! long base64 payloads are cut to a few valid bytes, and where a guide shows only part of an
//! answer the fields every answer has (`type`, `stop_sequence`, `usage`) were completed, as
//! the test says.

#![allow(clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use towerguard_llm_core::wire::anthropic;
use towerguard_llm_core::{
    CacheControl, Content, ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, MediaSource,
    Message, Part, ResponseFormat, Role, SamplingParams, Thinking, Tool, ToolCall, ToolChoice,
    Usage,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// Decodes a recorded request, encodes it back and checks the two bodies are equal as JSON.
fn request_round_trip(name: &str) -> LlmRequest {
    let body = fixture(name);
    let req = anthropic::decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let again = anthropic::encode_request(&req, 4096).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(json_of(&again), json_of(&body), "{name} did not round-trip");
    req
}

fn provider() -> Arc<str> {
    Arc::from("anthropic")
}

fn asked() -> Arc<str> {
    Arc::from("claude-asked")
}

fn decode_answer(body: &[u8]) -> Result<LlmResponse, LlmError> {
    anthropic::decode_response(body, &provider(), &asked())
}

/// Decodes a recorded answer, encodes it back and checks the two bodies are equal as JSON.
fn response_round_trip(name: &str) -> LlmResponse {
    let body = fixture(name);
    let resp = decode_answer(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let again = anthropic::encode_response(&resp).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(json_of(&again), json_of(&body), "{name} did not round-trip");
    resp
}

fn encode(req: &LlmRequest) -> Value {
    json_of(&anthropic::encode_request(req, 1024).expect("encodes"))
}

#[track_caller]
fn assert_invalid(result: Result<impl std::fmt::Debug, LlmError>, field: &str) {
    let err = result.expect_err("should be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err:?}");
    assert!(
        err.client_message().contains(&format!("`{field}`")),
        "message should name `{field}`: {}",
        err.client_message()
    );
}

#[track_caller]
fn assert_malformed(result: Result<LlmResponse, LlmError>) -> LlmError {
    let err = result.expect_err("should be malformed");
    assert_eq!(err.kind(), ErrorKind::Server, "{err:?}");
    assert!(
        err.detail().unwrap_or("").contains("malformed response"),
        "{err:?}"
    );
    err
}

fn req_with(messages: Vec<Message>) -> LlmRequest {
    LlmRequest::new("claude-sonnet-4-5", messages)
}

// ---------------------------------------------------------------------------------------------
// Requests: recorded bodies
// ---------------------------------------------------------------------------------------------

/// API reference, "Messages > Create a Message", the request example.
#[test]
fn basic_request() {
    let req = request_round_trip("request_basic.json");
    assert_eq!(req.model(), "claude-sonnet-4-5-20250929");
    assert_eq!(req.params().max_tokens, Some(1024));
    assert_eq!(req.messages(), &[Message::user("Hello, world")]);
    assert!(req.options().extra_body.is_empty());
}

/// Tool use guide ("How to implement tool use"), the get_weather conversation: the
/// assistant's text and `tool_use` turn, then the user turn with its `tool_result`.
#[test]
fn tool_use_conversation() {
    let req = request_round_trip("request_tool_use.json");
    let tools = &req.options().tools;
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "get_weather");
    assert_eq!(
        tools[0].description.as_deref(),
        Some("Get the current weather in a given location")
    );
    assert_eq!(tools[0].parameters["required"], json!(["location"]));

    let m = req.messages();
    assert_eq!(m.len(), 3);
    assert_eq!(
        m[0],
        Message::user("What is the weather like in San Francisco?")
    );
    assert_eq!(m[1].role, Role::Assistant);
    assert!(
        m[1].text()
            .starts_with("<thinking>I need to use get_weather")
    );
    assert_eq!(m[1].tool_calls.len(), 1);
    let call = &m[1].tool_calls[0];
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call.name, "get_weather");
    // The input object is kept as JSON text.
    assert_eq!(
        serde_json::from_str::<Value>(&call.arguments).expect("JSON arguments"),
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    // The tool_result block is its own tool message (no user message is left over).
    assert_eq!(
        m[2],
        Message::tool_result("toolu_01A09q90qw90lq917835lq9", "15 degrees")
    );
}

/// Tool use guide, "Parallel tool use" (four calls answered in one user turn) with the
/// "Handling errors" `is_error` result and the "tool results with images" content blocks;
/// `tool_choice` from "Forcing tool use" with `disable_parallel_tool_use`.
#[test]
fn parallel_tool_results_error_and_image() {
    let req = request_round_trip("request_parallel_tools.json");
    let o = req.options();
    assert_eq!(o.tool_choice, Some(ToolChoice::Required));
    assert_eq!(o.parallel_tool_calls, Some(true));
    let m = req.messages();
    // user, assistant, four tool messages, then the turn's text as a user message.
    assert_eq!(m.len(), 7);
    assert_eq!(m[1].tool_calls.len(), 4);
    assert_eq!(
        m[2..6].iter().map(|t| t.role).collect::<Vec<_>>(),
        vec![Role::Tool; 4]
    );
    assert_eq!(m[2].tool_call_id.as_deref(), Some("toolu_01"));
    assert!(!m[2].tool_error);
    assert!(m[3].tool_error, "is_error: true is the tool's failure");
    assert!(m[3].text().starts_with("ConnectionError"));
    let Content::Parts(parts) = &m[4].content else {
        panic!("blocks stay blocks: {:?}", m[4].content)
    };
    assert_eq!(parts.len(), 2);
    assert!(matches!(
        &parts[1],
        Part::Image { source: MediaSource::Base64 { media_type, .. }, .. } if media_type == "image/png"
    ));
    assert_eq!(m[6].role, Role::User);
    assert_eq!(m[6].text(), "Thanks. Is it warmer on the west coast?");
}

/// Vision guide, "Multiple images" example: an image by URL and one inline (base64 cut to a
/// 1x1 PNG).
#[test]
fn images_by_url_and_base64() {
    let req = request_round_trip("request_vision.json");
    let Content::Parts(parts) = &req.messages()[0].content else {
        panic!("parts")
    };
    assert_eq!(parts.len(), 5);
    assert_eq!(
        parts[1],
        Part::image_url(
            "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
        )
    );
    assert!(matches!(
        &parts[3],
        Part::Image { source: MediaSource::Base64 { media_type, data }, detail: None, .. }
            if media_type == "image/png" && data.starts_with("iVBOR")
    ));
}

/// PDF support guide (URL and base64 PDFs, the latter cached), Citations guide (a plain-text
/// document with a title; its `context` and `citations` are refused, see
/// `document_citations_are_refused`) and Files API guide (a `file` source).
#[test]
fn documents_of_every_source() {
    let req = request_round_trip("request_documents.json");
    let Content::Parts(parts) = &req.messages()[0].content else {
        panic!("parts")
    };
    assert!(
        matches!(&parts[0], Part::File { source: MediaSource::Url(u), filename: None, .. } if u.ends_with(".pdf"))
    );
    assert!(matches!(
        &parts[1],
        Part::File { source: MediaSource::Base64 { media_type, .. }, cache_control: Some(CacheControl { ttl: None }), .. }
            if media_type == "application/pdf"
    ));
    // A text source is kept as base64 text/plain bytes, which OpenAI's `file` can carry too.
    let Part::File {
        source: MediaSource::Base64 { media_type, data },
        filename,
        ..
    } = &parts[2]
    else {
        panic!("{:?}", parts[2])
    };
    assert_eq!(media_type, "text/plain");
    assert_eq!(data, "VGhlIGdyYXNzIGlzIGdyZWVuLiBUaGUgc2t5IGlzIGJsdWUu");
    assert_eq!(filename.as_deref(), Some("My Document"));
    assert!(
        matches!(&parts[3], Part::File { source: MediaSource::FileId(id), .. } if id == "file_011CNha8iCJcU1wXNR6q4V8w")
    );
    assert_eq!(
        anthropic::beta_headers(&req),
        Some(anthropic::FILES_API_BETA)
    );
}

/// Prompt caching guide: the "Pride and Prejudice" system blocks with a cache breakpoint, a
/// cached tool definition (1-hour TTL, from "1-hour cache duration") and a cached last user
/// block.
#[test]
fn prompt_cache_controls() {
    let req = request_round_trip("request_prompt_caching.json");
    let m = req.messages();
    assert_eq!(m[0].role, Role::System);
    let Content::Parts(system) = &m[0].content else {
        panic!("system blocks stay blocks")
    };
    assert_eq!(system.len(), 2);
    assert!(matches!(
        &system[0],
        Part::Text {
            cache_control: None,
            ..
        }
    ));
    assert!(matches!(
        &system[1],
        Part::Text {
            cache_control: Some(CacheControl { ttl: None }),
            ..
        }
    ));
    assert_eq!(
        req.options().tools[0].cache_control,
        Some(CacheControl {
            ttl: Some("1h".into())
        })
    );
    assert_eq!(
        m[2],
        Message::assistant("The major themes are love, class, reputation and pride.")
    );
    assert!(matches!(
        &m[3].content,
        Content::Parts(p) if matches!(&p[0], Part::Text { cache_control: Some(_), .. })
    ));
}

/// Extended thinking guide, "Extended thinking with tool use" (thinking with its signature
/// before the tool call) and "Thinking redaction" (a `redacted_thinking` block), with the
/// guide's `thinking` budget.
#[test]
fn thinking_and_redacted_thinking() {
    let req = request_round_trip("request_extended_thinking.json");
    assert_eq!(
        req.options().thinking,
        Some(Thinking::Enabled {
            budget_tokens: 10000
        })
    );
    assert_eq!(req.params().max_tokens, Some(16000));
    let a = &req.messages()[1];
    let Content::Parts(parts) = &a.content else {
        panic!("parts")
    };
    assert!(
        matches!(&parts[0], Part::Thinking { signature: Some(s), .. } if s.starts_with("BDaL4V"))
    );
    assert!(matches!(&parts[1], Part::RedactedThinking { data } if data.starts_with("EmwK")));
    assert!(matches!(&parts[2], Part::Text { .. }));
    assert_eq!(a.tool_calls[0].id, "toolu_01CswdEQBMshySk6Y9DFKrfq");
    assert_eq!(a.tool_calls[0].arguments, r#"{"location":"Paris"}"#);
}

/// API reference, "Create a Message" body parameters: `system` as a string, `metadata.user_id`,
/// `stop_sequences`, `stream`, `temperature`, `top_p`, `top_k`, `service_tier` and `container`
/// (not in the model: kept as extra body fields), a `strict` tool (Structured outputs guide,
/// "Strict tool use"), `tool_choice` `tool` with `disable_parallel_tool_use`, thinking off.
#[test]
fn every_body_parameter() {
    let req = request_round_trip("request_all_params.json");
    let p = req.params();
    assert_eq!(p.max_tokens, Some(256));
    assert_eq!(p.temperature, Some(0.7));
    assert_eq!(p.top_p, Some(0.9));
    assert_eq!(p.top_k, Some(40));
    assert_eq!(
        p.stop.as_deref(),
        Some(&["\n\nHuman:".to_owned(), "END".to_owned()][..])
    );
    let o = req.options();
    assert!(o.stream);
    assert_eq!(
        o.user.as_deref(),
        Some("13803d75-b4b5-4c3e-b2a2-6f21399b021b")
    );
    assert_eq!(o.metadata, None, "user_id was the only metadata key");
    assert_eq!(
        o.tool_choice,
        Some(ToolChoice::Function("get_weather".into()))
    );
    assert_eq!(o.parallel_tool_calls, Some(false));
    assert_eq!(o.thinking, Some(Thinking::Disabled));
    assert_eq!(o.tools[0].strict, Some(true));
    assert_eq!(o.extra_body.get("service_tier"), Some(&json!("auto")));
    assert_eq!(
        o.extra_body.get("container"),
        Some(&json!("container_011CNha8iCJcU1wXNR6q4V8w"))
    );
    assert_eq!(o.extra_body.len(), 2);
    let m = req.messages();
    assert_eq!(
        m[0],
        Message::system("You are a helpful weather assistant.")
    );
    assert_eq!(m[2], Message::assistant("Hi! How can I help?"));
    assert_eq!(
        m[3],
        Message::user_parts(vec![Part::text("Weather in Berlin?")])
    );
    assert_eq!(
        anthropic::beta_headers(&req),
        Some(anthropic::STRUCTURED_OUTPUTS_BETA)
    );
}

/// Structured outputs guide, "JSON outputs" example (`output_format` with a JSON Schema).
#[test]
fn structured_output_format() {
    let req = request_round_trip("request_structured_outputs.json");
    let Some(ResponseFormat::JsonSchema {
        name,
        schema,
        strict,
        description,
    }) = &req.options().response_format
    else {
        panic!("{:?}", req.options().response_format)
    };
    assert_eq!(name, anthropic::OUTPUT_FORMAT_NAME);
    assert_eq!(*strict, Some(true));
    assert_eq!(*description, None);
    assert_eq!(schema["required"][3], "demo_requested");
    assert_eq!(
        anthropic::beta_headers(&req),
        Some(anthropic::STRUCTURED_OUTPUTS_BETA)
    );
}

// ---------------------------------------------------------------------------------------------
// Requests: decode details and round trips that cannot be exact
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_fields_go_to_extra_body_and_back() {
    let body = br#"{"model":"m","max_tokens":5,"messages":[],"mcp_servers":[{"type":"url","url":"https://x","name":"x"}],"context_management":{"edits":[]}}"#;
    let req = anthropic::decode_request(body).expect("decodes");
    assert_eq!(req.options().extra_body.len(), 2);
    assert_eq!(
        json_of(&anthropic::encode_request(&req, 1).expect("encodes")),
        json_of(body)
    );
}

#[test]
fn extra_body_never_overrides_a_field_the_model_sets() {
    let mut req = req_with(vec![Message::user("hi")]).with_max_tokens(10);
    req.options_mut()
        .extra_body
        .insert("max_tokens".into(), json!(99_999));
    req.options_mut()
        .extra_body
        .insert("service_tier".into(), json!("standard_only"));
    let body = encode(&req);
    assert_eq!(body["max_tokens"], 10);
    assert_eq!(body["service_tier"], "standard_only");
}

#[test]
fn metadata_keeps_other_keys_beside_user_id() {
    let body =
        br#"{"model":"m","max_tokens":5,"messages":[],"metadata":{"user_id":"u1","team":"t"}}"#;
    let req = anthropic::decode_request(body).expect("decodes");
    assert_eq!(req.options().user.as_deref(), Some("u1"));
    assert_eq!(
        req.options().metadata.as_ref().map(|m| m["team"].clone()),
        Some(json!("t"))
    );
    assert_eq!(
        json_of(&anthropic::encode_request(&req, 1).expect("encodes")),
        json_of(body)
    );
}

/// A `tool_result` may carry `cache_control` itself; the model keeps breakpoints on content
/// blocks, so it moves onto the result's last block: the same cache prefix, written back
/// inside the content. Not an exact round trip for that reason.
#[test]
fn tool_result_cache_control_moves_onto_its_content() {
    let body = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"15 degrees","cache_control":{"type":"ephemeral"}}]}]}"#;
    let req = anthropic::decode_request(body).expect("decodes");
    let m = &req.messages()[0];
    assert_eq!(m.role, Role::Tool);
    assert_eq!(
        m.content,
        Content::Parts(vec![Part::Text {
            text: "15 degrees".into(),
            cache_control: Some(CacheControl::default())
        }])
    );
    let again = encode(&req);
    assert_eq!(
        again["messages"][0]["content"][0]["content"],
        json!([{"type": "text", "text": "15 degrees", "cache_control": {"type": "ephemeral"}}])
    );
}

/// What the model cannot tell apart is written in one spelling: `is_error: false` and
/// `stream: false` are the defaults and are left out; an integral float such as
/// `"temperature": 1` comes back as `1.0` (equal as a number, not as a `serde_json::Value`).
#[test]
fn defaults_are_not_written_back() {
    let body = br#"{"model":"m","max_tokens":5,"stream":false,"temperature":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok","is_error":false}]}]}"#;
    let req = anthropic::decode_request(body).expect("decodes");
    let again = encode(&req);
    assert!(again.get("stream").is_none());
    assert!(again["messages"][0]["content"][0].get("is_error").is_none());
    assert_eq!(again["temperature"].as_f64(), Some(1.0));
}

#[test]
fn request_decode_errors_name_the_field() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "body"),
        (b"[1,2]", "body"),
        (br#"{"messages":[]}"#, "model"),
        (br#"{"model":"m"}"#, "messages"),
        (br#"{"model":7,"messages":[]}"#, "model"),
        (br#"{"model":"m","messages":[],"temperature":"hot"}"#, "temperature"),
        (br#"{"model":"m","messages":[],"max_tokens":-1}"#, "max_tokens"),
        (br#"{"model":"m","messages":[1]}"#, "messages[0]"),
        (br#"{"model":"m","messages":[{"content":"x"}]}"#, "messages[0].role"),
        (br#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#, "messages[0].role"),
        (br#"{"model":"m","messages":[{"role":"user"}]}"#, "messages[0].content"),
        (br#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "messages[0].content"),
        (br#"{"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]}"#, "messages[0].name"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"video"}]}]}"#, "messages[0].content[0]"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#, "messages[0].content[0]"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]}"#, "messages[0].content[1]"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]}"#, "messages[0].content[0].source.type"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#, "messages[0].content[0]"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"thinking","thinking":"x"}]}]}]}"#, "messages[0].content[0].content[0]"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}"#, "messages[0].content[0]"),
        (br#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t"}]}]}"#, "messages[0].content[0]"),
        (br#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":[1]}]}]}"#, "messages[0].content[0].input"),
        (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"forever"}}]}]}"#, "messages[0].content[0]"),
        (br#"{"model":"m","messages":[],"system":5}"#, "system"),
        (br#"{"model":"m","messages":[],"system":[{"type":"image","source":{"type":"url","url":"u"}}]}"#, "system[0]"),
        (br#"{"model":"m","messages":[],"tool_choice":{"type":"tool"}}"#, "tool_choice.name"),
        (br#"{"model":"m","messages":[],"tool_choice":{"type":"sometimes"}}"#, "tool_choice"),
        (br#"{"model":"m","messages":[],"thinking":{"type":"enabled"}}"#, "thinking"),
        (br#"{"model":"m","messages":[],"output_format":{"type":"json_object"}}"#, "output_format"),
        (br#"{"model":"m","messages":[],"metadata":{"user_id":5}}"#, "metadata.user_id"),
        (br#"{"model":"m","messages":[],"tools":[{"name":"f"}]}"#, "tools[0]"),
        (br#"{"model":"m","messages":[],"tools":[{"name":"f","input_schema":{},"input_examples":[{}]}]}"#, "tools[0].input_examples"),
        (br#"{"model":"m","messages":[],"stop_sequences":"END"}"#, "stop_sequences"),
    ];
    for (body, field) in cases {
        let r = anthropic::decode_request(body);
        assert!(r.is_err(), "{} should fail", String::from_utf8_lossy(body));
        assert_invalid(r, field);
    }
}

/// Tool use guide, "Web search tool": a server tool has its own `type`; the model carries
/// function tools only.
#[test]
fn built_in_tools_are_refused_naming_their_type() {
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"How do I update a web app to TypeScript 5.5?"}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]}"#;
    let err = anthropic::decode_request(body).expect_err("refused");
    assert!(err.client_message().contains("`tools[0].type`"));
    assert!(err.client_message().contains("web_search_20250305"));
    // An explicit custom type is a function tool.
    let body = br#"{"model":"m","messages":[],"tools":[{"type":"custom","name":"f","input_schema":{"type":"object"}}]}"#;
    assert_eq!(
        anthropic::decode_request(body)
            .expect("custom")
            .options()
            .tools[0]
            .name,
        "f"
    );
}

/// Citations guide, the plain-text document example: `context` and `citations` have no place
/// in the model, so they are refused rather than dropped.
#[test]
fn document_citations_are_refused() {
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"The grass is green. The sky is blue."},"title":"My Document","context":"This is a trustworthy document.","citations":{"enabled":true}},{"type":"text","text":"What color is the grass and sky?"}]}]}"#;
    let err = anthropic::decode_request(body).expect_err("refused");
    assert!(
        err.client_message()
            .contains("`messages[0].content[0].citations`")
            || err
                .client_message()
                .contains("`messages[0].content[0].context`"),
        "{}",
        err.client_message()
    );
    // A `citations: null` (as SDKs write replayed answers) is no citation at all.
    let body = br#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"text","text":"hi","citations":null}]}]}"#;
    assert!(anthropic::decode_request(body).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Requests: encoding the model
// ---------------------------------------------------------------------------------------------

#[test]
fn system_and_developer_messages_are_hoisted() {
    // One plain instruction is a string.
    let body = encode(&req_with(vec![
        Message::developer("Be terse."),
        Message::user("hi"),
    ]));
    assert_eq!(body["system"], "Be terse.");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
    // Several, wherever they stand, become blocks in order.
    let body = encode(&req_with(vec![
        Message::system("A"),
        Message::user("hi"),
        Message::developer(vec![Part::Text {
            text: "B".into(),
            cache_control: Some(CacheControl::default()),
        }]),
    ]));
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
}

#[test]
fn tool_messages_and_the_next_user_message_share_one_turn() {
    let req = req_with(vec![
        Message::user("Weather in Paris and Rome?"),
        Message::assistant_tool_calls(vec![
            ToolCall::new("c1", "get_weather", r#"{"city":"Paris"}"#),
            ToolCall::new("c2", "get_weather", ""),
        ]),
        Message::tool_result("c1", "21C"),
        Message::tool_result("c2", "timeout").with_tool_error(true),
        Message::user("And tomorrow?"),
        Message::user("In Celsius."),
    ]);
    let body = encode(&req);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "21C"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "timeout", "is_error": true},
                {"type": "text", "text": "And tomorrow?"}
            ]},
            {"role": "user", "content": "In Celsius."}
        ])
    );
}

#[test]
fn assistant_content_comes_before_its_tool_calls_and_unsigned_thinking_is_left_out() {
    let mut a = Message::assistant(vec![
        Part::Thinking {
            thinking: "from an OpenAI-compatible server".into(),
            signature: None,
        },
        Part::Thinking {
            thinking: "signed".into(),
            signature: Some("sig".into()),
        },
        Part::text("Let me look."),
        Part::Refusal {
            refusal: "I won't do the second part.".into(),
        },
    ]);
    a.tool_calls = vec![ToolCall::new("c1", "f", "{}")];
    let body = encode(&req_with(vec![Message::user("q"), a]));
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "signed", "signature": "sig"},
            {"type": "text", "text": "Let me look."},
            {"type": "text", "text": "I won't do the second part."},
            {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
        ])
    );
}

#[test]
fn hints_are_left_out() {
    let mut params = SamplingParams {
        seed: Some(7),
        n: Some(1),
        logprobs: Some(false),
        presence_penalty: Some(0.0),
        ..SamplingParams::default()
    };
    params.max_completion_tokens = Some(300);
    params.max_tokens = Some(100);
    let mut req = req_with(vec![
        Message::user(vec![Part::Image {
            source: MediaSource::Url("https://example.com/cat.png".into()),
            detail: Some("high".into()),
            cache_control: None,
        }])
        .with_name("alice"),
    ])
    .with_params(params);
    let o = req.options_mut();
    o.prompt_cache_key = Some("k".into());
    o.safety_identifier = Some("s".into());
    let body = encode(&req);
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
            ]}]
        })
    );
}

#[test]
fn max_tokens_falls_back_to_the_default() {
    let body = encode(&req_with(vec![Message::user("hi")]));
    assert_eq!(body["max_tokens"], 1024);
}

#[test]
fn tool_choice_and_parallel_tool_calls() {
    let cases = [
        (Some(ToolChoice::Auto), None, Some(json!({"type": "auto"}))),
        (
            Some(ToolChoice::Required),
            Some(false),
            Some(json!({"type": "any", "disable_parallel_tool_use": true})),
        ),
        (
            Some(ToolChoice::None),
            Some(false),
            Some(json!({"type": "none"})),
        ),
        (
            Some(ToolChoice::Function("f".into())),
            Some(true),
            Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": false})),
        ),
        (
            None,
            Some(false),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        ),
        (None, Some(true), None),
        (None, None, None),
    ];
    for (choice, parallel, expected) in cases {
        let mut req = req_with(vec![Message::user("hi")]);
        req.options_mut().tool_choice = choice.clone();
        req.options_mut().parallel_tool_calls = parallel;
        assert_eq!(
            encode(&req).get("tool_choice").cloned(),
            expected,
            "{choice:?} {parallel:?}"
        );
    }
}

#[test]
fn tools_are_written_with_an_object_schema() {
    let mut no_params = Tool::function("ping", "Ping", Value::Null);
    no_params.strict = Some(true);
    let req = req_with(vec![Message::user("hi")]).with_tool(no_params);
    assert_eq!(
        encode(&req)["tools"],
        json!([{"name": "ping", "description": "Ping", "input_schema": {"type": "object", "properties": {}}, "strict": true}])
    );
    assert_eq!(
        anthropic::beta_headers(&req),
        Some(anthropic::STRUCTURED_OUTPUTS_BETA)
    );
}

#[test]
fn reasoning_effort_maps_to_a_thinking_budget() {
    for (effort, budget) in [
        ("minimal", Some(1024)),
        ("low", Some(1024)),
        ("medium", Some(2048)),
        ("high", Some(4096)),
        ("xhigh", Some(8192)),
        ("none", None),
    ] {
        let mut req = req_with(vec![Message::user("hi")]).with_max_tokens(16_000);
        req.options_mut().reasoning_effort = Some(effort.into());
        let body = encode(&req);
        assert_eq!(
            body.get("thinking").cloned(),
            budget.map(|b| json!({"type": "enabled", "budget_tokens": b})),
            "{effort}"
        );
    }
    // An explicit thinking setting wins over the effort.
    let mut req = req_with(vec![Message::user("hi")]);
    req.options_mut().reasoning_effort = Some("high".into());
    req.options_mut().thinking = Some(Thinking::Disabled);
    assert_eq!(encode(&req)["thinking"], json!({"type": "disabled"}));
}

#[test]
fn json_schema_output_with_description() {
    let mut req = req_with(vec![Message::user("hi")]);
    req.options_mut().response_format = Some(ResponseFormat::JsonSchema {
        name: "person".into(),
        description: Some("A person".into()),
        schema: json!({"type": "object"}),
        strict: Some(true),
    });
    assert_eq!(
        encode(&req)["output_format"],
        json!({"type": "json_schema", "schema": {"type": "object", "description": "A person"}})
    );
    req.options_mut().response_format = Some(ResponseFormat::Text);
    assert!(encode(&req).get("output_format").is_none());
    assert_eq!(anthropic::beta_headers(&req), None);
}

#[test]
fn a_conversation_read_as_openai_shapes_translates() {
    // The model as an OpenAI-format client builds it: system, image by data, tool round trip.
    let req = req_with(vec![
        Message::system("You see images."),
        Message::user_parts(vec![
            Part::text("What is this, and what's the weather there?"),
            Part::image_base64("image/jpeg", "/9j/4AAQ"),
        ]),
        Message::assistant_tool_calls(vec![ToolCall::new(
            "call_1",
            "get_weather",
            r#"{"city":"Paris"}"#,
        )]),
        Message::tool_result("call_1", r#"{"celsius":21}"#),
    ]);
    let bytes = anthropic::encode_request(&req, 512).expect("encodes");
    let back = anthropic::decode_request(&bytes).expect("decodes");
    assert_eq!(back.messages(), req.messages());
}

// ---------------------------------------------------------------------------------------------
// Requests: refusals (one test each)
// ---------------------------------------------------------------------------------------------

#[test]
fn refuses_n_above_one() {
    let req = req_with(vec![Message::user("hi")]).with_params(SamplingParams {
        n: Some(2),
        ..Default::default()
    });
    assert_invalid(anthropic::encode_request(&req, 1), "n");
}

#[test]
fn refuses_logprobs() {
    let req = req_with(vec![Message::user("hi")]).with_params(SamplingParams {
        logprobs: Some(true),
        ..Default::default()
    });
    assert_invalid(anthropic::encode_request(&req, 1), "logprobs");
}

#[test]
fn refuses_top_logprobs() {
    let req = req_with(vec![Message::user("hi")]).with_params(SamplingParams {
        top_logprobs: Some(3),
        ..Default::default()
    });
    assert_invalid(anthropic::encode_request(&req, 1), "top_logprobs");
}

#[test]
fn refuses_presence_penalty() {
    let req = req_with(vec![Message::user("hi")]).with_params(SamplingParams {
        presence_penalty: Some(0.5),
        ..Default::default()
    });
    assert_invalid(anthropic::encode_request(&req, 1), "presence_penalty");
}

#[test]
fn refuses_frequency_penalty() {
    let req = req_with(vec![Message::user("hi")]).with_params(SamplingParams {
        frequency_penalty: Some(-0.5),
        ..Default::default()
    });
    assert_invalid(anthropic::encode_request(&req, 1), "frequency_penalty");
}

#[test]
fn refuses_audio_parts() {
    let req = req_with(vec![
        Message::user("first"),
        Message::user_parts(vec![
            Part::text("listen"),
            Part::Audio {
                data: "UklGR".into(),
                format: "wav".into(),
            },
        ]),
    ]);
    assert_invalid(anthropic::encode_request(&req, 1), "messages[1].content[1]");
}

#[test]
fn refuses_json_object_mode() {
    let mut req = req_with(vec![Message::user("hi")]);
    req.options_mut().response_format = Some(ResponseFormat::JsonObject);
    assert_invalid(anthropic::encode_request(&req, 1), "response_format");
}

#[test]
fn refuses_tool_arguments_that_are_not_a_json_object() {
    for bad in ["{\"city\": ", "[1, 2]", "\"Paris\""] {
        let req = req_with(vec![
            Message::user("hi"),
            Message::assistant_tool_calls(vec![
                ToolCall::new("a", "f", "{}"),
                ToolCall::new("b", "f", bad),
            ]),
        ]);
        assert_invalid(
            anthropic::encode_request(&req, 1),
            "messages[1].tool_calls[1].arguments",
        );
    }
}

#[test]
fn refuses_a_tool_message_without_its_call_id() {
    let mut m = Message::tool_result("x", "ok");
    m.tool_call_id = None;
    let req = req_with(vec![Message::user("hi"), m]);
    assert_invalid(
        anthropic::encode_request(&req, 1),
        "messages[1].tool_call_id",
    );
}

#[test]
fn refuses_tool_calls_outside_an_assistant_turn() {
    let mut m = Message::user("hi");
    m.tool_calls = vec![ToolCall::new("a", "f", "{}")];
    assert_invalid(
        anthropic::encode_request(&req_with(vec![m]), 1),
        "messages[0].tool_calls",
    );
}

#[test]
fn refuses_non_text_system_blocks() {
    let req = req_with(vec![
        Message::system(vec![Part::image_url("https://x/y.png")]),
        Message::user("hi"),
    ]);
    assert_invalid(anthropic::encode_request(&req, 1), "messages[0].content[0]");
}

#[test]
fn refuses_tool_results_holding_thinking() {
    let req = req_with(vec![Message::tool_result(
        "a",
        vec![Part::RedactedThinking { data: "x".into() }],
    )]);
    assert_invalid(anthropic::encode_request(&req, 1), "messages[0].content[0]");
}

#[test]
fn refuses_an_unknown_reasoning_effort_and_a_budget_above_max_tokens() {
    let mut req = req_with(vec![Message::user("hi")]).with_max_tokens(8000);
    req.options_mut().reasoning_effort = Some("extreme".into());
    assert_invalid(anthropic::encode_request(&req, 1), "reasoning_effort");
    let mut req = req_with(vec![Message::user("hi")]).with_max_tokens(2048);
    req.options_mut().reasoning_effort = Some("medium".into());
    assert_invalid(anthropic::encode_request(&req, 1), "reasoning_effort");
}

#[test]
fn refuses_a_text_document_that_is_not_utf8_base64() {
    let req = req_with(vec![Message::user_parts(vec![Part::File {
        source: MediaSource::Base64 {
            media_type: "text/plain".into(),
            data: "!!!".into(),
        },
        filename: None,
        cache_control: None,
    }])]);
    assert_invalid(
        anthropic::encode_request(&req, 1),
        "messages[0].content[0].source.data",
    );
}

#[test]
fn refuses_a_temperature_that_is_not_finite() {
    let req = req_with(vec![Message::user("hi")]).with_temperature(f32::NAN);
    assert_invalid(anthropic::encode_request(&req, 1), "temperature");
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// API reference, "Messages > Create a Message", the response example (with its usage of
/// cache reads and writes and the usage fields the model does not name).
#[test]
fn basic_answer() {
    let resp = response_round_trip("response_basic.json");
    assert_eq!(resp.id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));
    assert_eq!(resp.model(), "claude-sonnet-4-5-20250929");
    assert_eq!(resp.provider(), "anthropic");
    assert_eq!(resp.text(), "Hi! My name is Claude.");
    assert_eq!(resp.finish_reason(), &FinishReason::Stop);
    assert_eq!(resp.created, None);
    // Anthropic's input_tokens excludes the cache: the parts are disjoint as they come.
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 2095,
            output_tokens: 503,
            cached_input_tokens: 2051,
            cache_write_tokens: 2051,
            reasoning_tokens: 0,
        }
    );
    assert_eq!(resp.usage.total_input_tokens(), 2095 + 2051 + 2051);
    assert_eq!(resp.extra["usage"]["service_tier"], "standard");
    assert_eq!(resp.choices.len(), 1);
}

/// Tool use guide, the get_weather answer (the guide shows id, model, stop_reason, role and
/// content; `type`, `stop_sequence` and `usage` were completed as every answer has them).
#[test]
fn tool_use_answer() {
    let resp = response_round_trip("response_tool_use.json");
    assert_eq!(resp.finish_reason(), &FinishReason::ToolCalls);
    assert_eq!(
        resp.text(),
        "I'll check the current weather in San Francisco for you."
    );
    assert_eq!(
        resp.tool_calls(),
        &[ToolCall::new(
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            r#"{"location":"San Francisco, CA","unit":"celsius"}"#
        )]
    );
}

/// Extended thinking guide, the response example (thinking with its signature, a
/// `redacted_thinking` block from "Thinking redaction", then text), stopped at `max_tokens`,
/// with the `container: null` recent answers carry.
#[test]
fn thinking_answer() {
    let resp = response_round_trip("response_thinking.json");
    assert_eq!(
        resp.reasoning(),
        Some("Let me analyze this step by step...")
    );
    assert_eq!(resp.finish_reason(), &FinishReason::Length);
    assert_eq!(resp.text(), "Based on my analysis...");
    let Content::Parts(parts) = &resp.first().expect("a choice").message.content else {
        panic!("parts")
    };
    assert!(
        matches!(&parts[0], Part::Thinking { signature: Some(s), .. } if s.starts_with("WaUj"))
    );
    assert!(matches!(&parts[1], Part::RedactedThinking { .. }));
    assert_eq!(resp.extra.get("container"), Some(&Value::Null));
}

/// API reference, `stop_reason` / `stop_sequence`: an answer cut by one of the stop sequences.
#[test]
fn stop_sequence_answer() {
    let resp = response_round_trip("response_stop_sequence.json");
    let c = resp.first().expect("a choice");
    assert_eq!(c.finish_reason, FinishReason::StopSequence);
    assert_eq!(c.stop_sequence.as_deref(), Some("END"));
}

/// Handling stop reasons guide, `pause_turn` (a server-tool loop paused; empty content).
#[test]
fn pause_turn_answer() {
    let resp = response_round_trip("response_pause_turn.json");
    assert_eq!(
        resp.finish_reason(),
        &FinishReason::Other("pause_turn".into())
    );
    assert_eq!(resp.text(), "");
    assert_eq!(resp.usage.cached_input_tokens, 1024);
}

/// Handling stop reasons guide, `refusal`.
#[test]
fn refusal_answer() {
    let resp = response_round_trip("response_refusal.json");
    assert_eq!(resp.finish_reason(), &FinishReason::ContentFilter);
}

#[test]
fn answer_without_model_uses_the_asked_one() {
    let body = br#"{"type":"message","role":"assistant","content":[{"type":"text","text":"x"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let resp = decode_answer(body).expect("decodes");
    assert_eq!(resp.model(), "claude-asked");
    assert_eq!(resp.id, None);
    // The id written for it is stable.
    let a = json_of(&anthropic::encode_response(&resp).expect("encodes"));
    let b = json_of(&anthropic::encode_response(&resp).expect("encodes"));
    assert_eq!(a["id"], b["id"]);
    assert!(a["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
}

#[test]
fn encode_response_of_an_openai_shaped_answer() {
    let mut message = Message::assistant(vec![
        Part::Thinking {
            thinking: "hmm".into(),
            signature: None,
        },
        Part::text("Calling."),
    ]);
    message.tool_calls = vec![ToolCall::new("call_9", "f", "")];
    let mut first = towerguard_llm_core::Choice::text(0, "");
    first.message = message;
    first.finish_reason = FinishReason::ToolCalls;
    let second = towerguard_llm_core::Choice::text(1, "ignored");
    let mut resp =
        LlmResponse::with_choices(vec![first, second], "gpt-4o", "openai").with_usage(Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 3,
            cache_write_tokens: 0,
            reasoning_tokens: 2,
        });
    resp.id = Some("chatcmpl-1".into());
    resp.created = Some(1_700_000_000);
    resp.extra
        .insert("system_fingerprint".into(), json!("fp_1"));
    let body = json_of(&anthropic::encode_response(&resp).expect("encodes"));
    assert_eq!(
        body,
        json!({
            "id": "chatcmpl-1",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "call_9", "name": "f", "input": {}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3},
            "system_fingerprint": "fp_1"
        })
    );
}

#[test]
fn encode_response_refuses_what_an_answer_cannot_hold() {
    let empty = LlmResponse::with_choices(Vec::new(), "m", "p");
    assert_eq!(
        anthropic::encode_response(&empty)
            .expect_err("no choice")
            .kind(),
        ErrorKind::Server
    );
    let mut resp = LlmResponse::new("x", "m", "p");
    resp.choices[0].message.tool_calls = vec![ToolCall::new("a", "f", "not json")];
    assert_eq!(
        anthropic::encode_response(&resp)
            .expect_err("bad args")
            .kind(),
        ErrorKind::Server
    );
    let mut resp = LlmResponse::new("x", "m", "p");
    resp.choices[0].message.content = Content::Parts(vec![Part::image_url("https://x")]);
    assert_eq!(
        anthropic::encode_response(&resp).expect_err("media").kind(),
        ErrorKind::Server
    );
}

/// Errors guide, the error shape (`overloaded_error`), sent with a 200 by a misbehaving
/// proxy: an error, never an empty success.
#[test]
fn error_object_is_malformed() {
    let err = assert_malformed(decode_answer(&fixture("error_overloaded.json")));
    assert!(
        err.detail().unwrap_or("").contains("overloaded_error"),
        "{err:?}"
    );
}

#[test]
fn invalid_answers_are_malformed() {
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        b"<html>502 Bad Gateway</html>",
        b"[]",
        b"null",
        b"{}",
        br#"{"type":"message"}"#,
        br#"{"type":"message","role":"assistant","stop_reason":"end_turn"}"#,
        br#"{"type":"message","role":"assistant","content":{},"stop_reason":"end_turn"}"#,
        br#"{"type":"message","role":"assistant","content":[]}"#,
        br#"{"type":"message","role":"user","content":[],"stop_reason":"end_turn"}"#,
        br#"{"type":"completion","role":"assistant","content":[],"stop_reason":"end_turn"}"#,
        br#"{"type":7,"role":"assistant","content":[],"stop_reason":"end_turn"}"#,
        br#"{"role":"assistant","content":[],"stop_reason":"end_turn"}"#,
        br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#,
        br#"{"type":"message","role":"assistant","content":[{"type":"text"}],"stop_reason":"end_turn"}"#,
        br#"{"type":"message","role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}],"stop_reason":"end_turn"}"#,
        br#"{"type":"message","role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}],"stop_reason":"tool_use"}"#,
        br#"{"type":"message","role":"assistant","content":[],"stop_reason":5}"#,
        br#"{"type":"message","role":"assistant","content":[],"stop_reason":"end_turn","usage":{"input_tokens":"many","output_tokens":1}}"#,
        br#"{"type":"message","role":"assistant","content":[],"stop_reason":"end_turn","usage":{"input_tokens":-1,"output_tokens":1}}"#,
        br#"{"type":"message","role":"assistant","content":[],"stop_reason":"end_turn","id":5}"#,
    ];
    for body in cases {
        let r = decode_answer(body);
        assert!(r.is_err(), "{} should fail", String::from_utf8_lossy(body));
        assert_malformed(r);
    }
}

// ---------------------------------------------------------------------------------------------
// Never a panic
// ---------------------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_owned()),
        Just("role".to_owned()),
        Just("content".to_owned()),
        Just("text".to_owned()),
        Just("messages".to_owned()),
        Just("model".to_owned()),
        Just("system".to_owned()),
        Just("source".to_owned()),
        Just("input".to_owned()),
        Just("usage".to_owned()),
        Just("tools".to_owned()),
        Just("tool_choice".to_owned()),
        Just("cache_control".to_owned()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("message"),
            Just("error"),
            Just("text"),
            Just("image"),
            Just("document"),
            Just("tool_use"),
            Just("tool_result"),
            Just("thinking"),
            Just("redacted_thinking"),
            Just("base64"),
            Just("url"),
            Just("file"),
            Just("ephemeral"),
            Just("end_turn"),
            Just("tool"),
            Just("any"),
            Just("enabled"),
            Just("json_schema"),
            Just("custom"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn decoders_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = anthropic::decode_request(&bytes);
        let _ = decode_answer(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_json(value in arb_json()) {
        let bytes = serde_json::to_vec(&value).expect("writes");
        if let Ok(req) = anthropic::decode_request(&bytes) {
            let _ = anthropic::encode_request(&req, 1024);
        }
        if let Ok(resp) = decode_answer(&bytes) {
            let _ = anthropic::encode_response(&resp);
        }
    }

    #[test]
    fn decoders_never_panic_on_near_valid_bodies(
        messages in proptest::collection::vec(arb_json(), 0..4),
        content in proptest::collection::vec(arb_json(), 0..4),
        usage in arb_json(),
    ) {
        let req = json!({"model": "m", "max_tokens": 10, "messages": messages});
        if let Ok(r) = anthropic::decode_request(&serde_json::to_vec(&req).expect("writes")) {
            let _ = anthropic::encode_request(&r, 1024);
        }
        let resp = json!({"type": "message", "role": "assistant", "content": content, "stop_reason": "end_turn", "usage": usage});
        if let Ok(r) = decode_answer(&serde_json::to_vec(&resp).expect("writes")) {
            let _ = anthropic::encode_response(&r);
        }
    }
}

/// A user turn's tool results come before its other blocks, whatever their order on the wire
/// (Anthropic wants them first); the other blocks stay one user message.
#[test]
fn tool_results_are_read_before_the_rest_of_their_turn() {
    let body = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"here you go"},{"type":"tool_result","tool_use_id":"a","content":"1"},{"type":"image","source":{"type":"url","url":"https://x/y.png"}},{"type":"tool_result","tool_use_id":"b","content":"2"}]}]}"#;
    let req = anthropic::decode_request(body).expect("decodes");
    let roles: Vec<Role> = req.messages().iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::Tool, Role::Tool, Role::User]);
    assert_eq!(req.messages()[0].tool_call_id.as_deref(), Some("a"));
    assert_eq!(req.messages()[1].tool_call_id.as_deref(), Some("b"));
    assert_eq!(
        req.messages()[2],
        Message::user_parts(vec![
            Part::text("here you go"),
            Part::image_url("https://x/y.png")
        ])
    );
    let again = encode(&req);
    let types: Vec<&str> = again["messages"][0]["content"]
        .as_array()
        .map(|b| b.iter().filter_map(|x| x["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(types, ["tool_result", "tool_result", "text", "image"]);
}
