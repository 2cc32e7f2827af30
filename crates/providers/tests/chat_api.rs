//! The whole chat API through both clients, against a loopback server replaying the bodies of
//! the providers' API references: tool calls and results, images, several choices, reasoning
//! and cache usage, pass-through fields and headers, and answers that are not completions.
#![allow(clippy::unwrap_used)]

use http::{HeaderName, HeaderValue};
use serde_json::json;
use tower::ServiceExt;
use towerguard_llm_core::{
    ErrorKind, FinishReason, LlmRequest, Message, Part, Tool, ToolCall, ToolChoice,
};
use towerguard_providers::{Anthropic, ApiKey, OpenAiCompatible};

mod common;
use common::{ok, stub};

fn weather_tool() -> Tool {
    Tool::function(
        "get_weather",
        "The current weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

/// A user turn with an image, the assistant's tool call, and the tool's result.
fn tool_conversation(model: &str) -> LlmRequest {
    let mut req = LlmRequest::new(
        model,
        vec![
            Message::system("You are a weather bot."),
            Message::user_parts(vec![
                Part::text("Is it as sunny in Paris as in this picture?"),
                Part::image_base64("image/png", "iVBORw0KGgo="),
            ]),
            Message::assistant_tool_calls(vec![ToolCall::new(
                "call_1",
                "get_weather",
                r#"{"city":"Paris"}"#,
            )]),
            Message::tool_result("call_1", r#"{"celsius":21,"sky":"clear"}"#),
        ],
    )
    .with_tool(weather_tool())
    .with_max_tokens(300);
    req.options_mut().tool_choice = Some(ToolChoice::Auto);
    req
}

fn openai_at(base: &str) -> OpenAiCompatible {
    OpenAiCompatible::builder("openai", format!("{base}/v1"))
        .api_key(ApiKey::new("sk-test-key").unwrap())
        .header(
            HeaderName::from_static("openai-organization"),
            HeaderValue::from_static("org-42"),
        )
        .build()
        .unwrap()
}

fn anthropic_at(base: &str) -> Anthropic {
    Anthropic::builder(ApiKey::new("sk-ant-test").unwrap())
        .base_url(base)
        .header(
            HeaderName::from_static("anthropic-beta"),
            HeaderValue::from_static("token-efficient-tools-2025-02-19"),
        )
        .build()
        .unwrap()
}

/// OpenAI API reference, "Create chat completion", function-calling example answer (with
/// `n: 2` and the reasoning-token details of a reasoning model).
const OPENAI_TOOL_CALLS: &str = r#"{
  "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916,
  "model": "o4-mini-2025-04-16",
  "choices": [
    {"index": 0, "message": {"role": "assistant", "content": null, "refusal": null,
      "tool_calls": [{"id": "call_abc123", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\n\"city\": \"Paris\"\n}"}}]},
     "logprobs": null, "finish_reason": "tool_calls"},
    {"index": 1, "message": {"role": "assistant", "content": "It is 21 degrees and clear.",
      "refusal": null}, "logprobs": null, "finish_reason": "stop"}
  ],
  "usage": {"prompt_tokens": 2082, "completion_tokens": 817, "total_tokens": 2899,
    "prompt_tokens_details": {"cached_tokens": 2048, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 768, "audio_tokens": 0,
      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "system_fingerprint": "fp_44709d6fcb"
}"#;

#[tokio::test]
async fn openai_sends_a_tool_conversation_and_reads_every_choice() {
    let (base, seen) = stub(vec![ok(OPENAI_TOOL_CALLS)]).await;
    let mut req = tool_conversation("o4-mini");
    req.params_mut().n = Some(2);
    req.options_mut()
        .extra_body
        .insert("service_tier".into(), json!("flex"));
    req.options_mut().extra_headers.insert(
        HeaderName::from_static("openai-project"),
        HeaderValue::from_static("proj-7"),
    );
    // a caller cannot replace the client's credentials through extra headers
    req.options_mut().extra_headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer stolen"),
    );
    let resp = openai_at(&base).oneshot(req).await.unwrap();

    let sent = seen.lock().unwrap()[0].clone();
    let body = sent.json();
    assert_eq!(
        sent.header("openai-organization").as_deref(),
        Some("org-42")
    );
    assert_eq!(sent.header("openai-project").as_deref(), Some("proj-7"));
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some("Bearer sk-test-key")
    );
    assert_eq!(sent.head.matches("authorization").count(), 1);
    assert_eq!(body["n"], 2);
    assert_eq!(body["service_tier"], "flex");
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tool_choice"], "auto");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1]["content"][1]["type"], "image_url");
    assert_eq!(
        messages[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_1");

    assert_eq!(resp.choices.len(), 2);
    assert_eq!(*resp.finish_reason(), FinishReason::ToolCalls);
    assert_eq!(resp.tool_calls()[0].name, "get_weather");
    assert_eq!(resp.tool_calls()[0].arguments, "{\n\"city\": \"Paris\"\n}");
    assert_eq!(
        resp.choices[1].message.text(),
        "It is 21 degrees and clear."
    );
    assert_eq!(resp.usage.input_tokens, 2082 - 2048);
    assert_eq!(resp.usage.cached_input_tokens, 2048);
    assert_eq!(resp.usage.output_tokens, 817);
    assert_eq!(resp.usage.reasoning_tokens, 768);
    assert_eq!(resp.extra["system_fingerprint"], "fp_44709d6fcb");
}

/// Anthropic API reference, extended thinking with tool use: a thinking block, text and a
/// `tool_use` block, with cache usage.
const ANTHROPIC_TOOL_USE: &str = r#"{
  "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "thinking", "thinking": "The user wants the weather in Paris.",
     "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL"},
    {"type": "text", "text": "I'll check the current weather in Paris."},
    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
     "input": {"city": "Paris"}}
  ],
  "stop_reason": "tool_use", "stop_sequence": null,
  "usage": {"input_tokens": 472, "output_tokens": 91,
            "cache_creation_input_tokens": 1024, "cache_read_input_tokens": 2048}
}"#;

#[tokio::test]
async fn anthropic_translates_a_tool_conversation_and_keeps_thinking() {
    let (base, seen) = stub(vec![ok(ANTHROPIC_TOOL_USE)]).await;
    let resp = anthropic_at(&base)
        .oneshot(tool_conversation("claude-sonnet-4-5"))
        .await
        .unwrap();

    let sent = seen.lock().unwrap()[0].clone();
    let body = sent.json();
    assert_eq!(
        sent.header("anthropic-beta").as_deref(),
        Some("token-efficient-tools-2025-02-19")
    );
    assert_eq!(sent.header("x-api-key").as_deref(), Some("sk-ant-test"));
    assert_eq!(body["system"], "You are a weather bot.");
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["required"][0], "city");
    assert_eq!(body["tool_choice"]["type"], "auto");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "user, assistant, user with the tool result"
    );
    assert_eq!(messages[0]["content"][1]["type"], "image");
    assert_eq!(
        messages[0]["content"][1]["source"]["media_type"],
        "image/png"
    );
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[1]["content"][0]["input"]["city"], "Paris");
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");

    assert_eq!(*resp.finish_reason(), FinishReason::ToolCalls);
    assert_eq!(
        resp.reasoning(),
        Some("The user wants the weather in Paris.")
    );
    assert_eq!(resp.text(), "I'll check the current weather in Paris.");
    let call = &resp.tool_calls()[0];
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(resp.usage.input_tokens, 472);
    assert_eq!(resp.usage.cached_input_tokens, 2048);
    assert_eq!(resp.usage.cache_write_tokens, 1024);
    assert_eq!(resp.usage.output_tokens, 91);

    // The assistant turn goes back unchanged: the thinking block with its signature first.
    let mut next = tool_conversation("claude-sonnet-4-5").messages().to_vec();
    next.truncate(2);
    next.push(resp.choices[0].message.clone());
    next.push(Message::tool_result(&call.id, r#"{"celsius":21}"#));
    let (base, seen) = stub(vec![ok(ANTHROPIC_TOOL_USE)]).await;
    anthropic_at(&base)
        .oneshot(LlmRequest::new("claude-sonnet-4-5", next).with_max_tokens(300))
        .await
        .unwrap();
    let body = seen.lock().unwrap()[0].json();
    let turn = &body["messages"][1]["content"];
    assert_eq!(turn[0]["type"], "thinking");
    assert_eq!(
        turn[0]["signature"],
        "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL"
    );
    assert_eq!(turn[1]["type"], "text");
    assert_eq!(turn[2]["type"], "tool_use");
}

#[tokio::test]
async fn anthropic_refuses_what_it_cannot_express_without_calling() {
    let (base, seen) = stub(vec![ok(ANTHROPIC_TOOL_USE)]).await;
    let mut req = tool_conversation("claude-sonnet-4-5");
    req.params_mut().n = Some(3);
    let err = anthropic_at(&base).oneshot(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.to_string().contains('n'), "{err}");
    assert_eq!(err.provider(), Some("anthropic"));
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_200_that_is_not_a_completion_is_an_error() {
    let bodies = [
        "{}",
        r#"{"choices": []}"#,
        r#"{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}"#,
        "<html>bad gateway</html>",
    ];
    for body in bodies {
        let (base, _) = stub(vec![ok(body)]).await;
        let err = openai_at(&base)
            .oneshot(LlmRequest::new("gpt-4o-mini", vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Server, "openai, body {body}");
        assert_eq!(err.provider(), Some("openai"));
    }
    let bodies = [
        "{}",
        r#"{"type": "message", "role": "assistant"}"#,
        r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        "not json",
    ];
    for body in bodies {
        let (base, _) = stub(vec![ok(body)]).await;
        let err = anthropic_at(&base)
            .oneshot(LlmRequest::new(
                "claude-sonnet-4-5",
                vec![Message::user("hi")],
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Server | ErrorKind::Overloaded),
            "anthropic, body {body}: {err}"
        );
        assert_eq!(err.provider(), Some("anthropic"));
    }
}
