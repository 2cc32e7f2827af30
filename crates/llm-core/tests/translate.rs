//! OpenAI <-> Anthropic: a multi-turn tool conversation with an image, read in one format,
//! written in the other and read back, loses nothing either can express.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use towerguard_llm_core::{Content, LlmRequest, MediaSource, Part, Role, ToolChoice};

/// Written as the OpenAI API reference's function-calling and vision guides write them.
fn openai_conversation() -> Value {
    json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": [
                {"type": "text", "text": "Is it as sunny in Paris as in these pictures?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/beach.jpg"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_uv_index", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"celsius\":21,\"sky\":\"clear\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "{\"uv\":6}"},
            {"role": "assistant", "content": "Yes: 21 degrees, clear sky, UV index 6."},
            {"role": "user", "content": "And tomorrow?"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather",
              "description": "The current weather in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_uv_index",
              "description": "The UV index in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}}
        ],
        "tool_choice": "required",
        "max_tokens": 400,
        "temperature": 0.2
    })
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Content written as an array of text blocks only, as the one string it says: both formats
/// accept either form, so a translation may pick the other one.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let x = match (k.as_str(), x) {
                        ("content", Value::Array(blocks))
                            if !blocks.is_empty()
                                && blocks.iter().all(|b| {
                                    b["type"] == "text"
                                        && b.as_object().is_some_and(|o| o.len() == 2)
                                }) =>
                        {
                            Value::String(
                                blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
                            )
                        }
                        _ => normalised(x),
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalised).collect()),
        other => other.clone(),
    }
}

#[test]
fn openai_to_anthropic_and_back() {
    let original = openai_conversation();
    let req = LlmRequest::from_openai_json(original.to_string().as_bytes()).unwrap();
    let anthropic = json(&req.to_anthropic_json(4096).unwrap());

    // What Anthropic needs: the system prompt on top, tool results in one user turn.
    assert_eq!(anthropic["system"], "You are a weather bot.");
    let turns = anthropic["messages"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert_eq!(turns[0]["content"][1]["source"]["type"], "url");
    assert_eq!(turns[0]["content"][2]["source"]["type"], "base64");
    assert_eq!(turns[0]["content"][2]["source"]["media_type"], "image/png");
    assert_eq!(turns[1]["content"][0]["text"], "Let me check.");
    assert_eq!(turns[1]["content"][1]["type"], "tool_use");
    assert_eq!(turns[1]["content"][2]["input"], json!({"city": "Paris"}));
    assert_eq!(turns[2]["content"][0]["type"], "tool_result");
    assert_eq!(turns[2]["content"][0]["tool_use_id"], "call_1");
    assert_eq!(turns[2]["content"][1]["tool_use_id"], "call_2");
    assert_eq!(anthropic["tool_choice"]["type"], "any");
    assert_eq!(anthropic["tools"][1]["input_schema"]["required"][0], "city");
    assert_eq!(anthropic["max_tokens"], 400);

    // Read back, the conversation is the same model, and writes the same OpenAI body.
    let back = LlmRequest::from_anthropic_json(anthropic.to_string().as_bytes()).unwrap();
    assert_eq!(back.messages().len(), req.messages().len());
    for (a, b) in req.messages().iter().zip(back.messages()) {
        assert_eq!(a.role, b.role);
        assert_eq!(a.text(), b.text());
        assert_eq!(a.tool_calls.len(), b.tool_calls.len());
        for (x, y) in a.tool_calls.iter().zip(&b.tool_calls) {
            assert_eq!((&x.id, &x.name), (&y.id, &y.name));
            assert_eq!(
                serde_json::from_str::<Value>(&x.arguments).unwrap(),
                serde_json::from_str::<Value>(&y.arguments).unwrap()
            );
        }
        assert_eq!(a.tool_call_id, b.tool_call_id);
    }
    assert_eq!(back.options().tool_choice, Some(ToolChoice::Required));
    assert_eq!(back.options().tools, req.options().tools);
    let images: Vec<&MediaSource> = match &back.messages()[1].content {
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Part::Image { source, .. } => Some(source),
                _ => None,
            })
            .collect(),
        Content::Text(_) => vec![],
    };
    assert_eq!(
        images,
        [
            &MediaSource::Url("https://example.com/beach.jpg".into()),
            &MediaSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            }
        ]
    );
    assert_eq!(
        normalised(&json(&back.to_openai_json().unwrap())),
        normalised(&original)
    );
}

#[test]
fn anthropic_to_openai_and_back() {
    // As the Anthropic API reference's tool-use guide writes a finished tool round.
    let original = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a weather bot.",
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                             "data": "/9j/4AAQSkZJRg=="}},
                {"type": "text", "text": "Is it this sunny in Paris?"}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check the weather."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                 "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "21 degrees, clear"},
                {"type": "text", "text": "Answer in French."}
            ]}
        ],
        "tools": [{"name": "get_weather", "description": "The current weather in a city",
                   "input_schema": {"type": "object",
                                    "properties": {"city": {"type": "string"}},
                                    "required": ["city"]}}],
        "tool_choice": {"type": "tool", "name": "get_weather"}
    });
    let req = LlmRequest::from_anthropic_json(original.to_string().as_bytes()).unwrap();
    let roles: Vec<Role> = req.messages().iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    let openai = normalised(&json(&req.to_openai_json().unwrap()));
    let messages = openai["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[1]["content"][0]["image_url"]["url"],
        "data:image/jpeg;base64,/9j/4AAQSkZJRg=="
    );
    assert_eq!(messages[2]["content"], "I'll check the weather.");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "toolu_01");
    assert_eq!(messages[4]["role"], "user");
    assert_eq!(
        openai["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    let back = LlmRequest::from_openai_json(openai.to_string().as_bytes()).unwrap();
    let again = normalised(&json(&back.to_anthropic_json(4096).unwrap()));
    assert_eq!(again["system"], original["system"]);
    assert_eq!(again["tools"], original["tools"]);
    assert_eq!(again["tool_choice"], original["tool_choice"]);
    assert_eq!(again["max_tokens"], original["max_tokens"]);
    let turns = again["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[1], normalised(&original["messages"][1]));
    assert_eq!(turns[2]["content"][0]["tool_use_id"], "toolu_01");
    assert_eq!(turns[2]["content"][1]["text"], "Answer in French.");
}
