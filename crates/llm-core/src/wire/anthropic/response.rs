//! Answers: Anthropic's Messages response JSON read into an `LlmResponse` and written back.

use super::*;

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Reads an Anthropic Messages answer served by `provider`; `asked_model` names the model when
/// the answer does not. The answer is one [`Choice`] (see the [module](super) docs).
///
/// # Errors
///
/// A [`Server`](crate::ErrorKind::Server) error ("malformed response") when the body is not
/// JSON, is an error object (`{"type":"error",...}`), is not `type: "message"`, has no
/// `content` array or `stop_reason`, has a field of the wrong type, or holds a block type this
/// crate does not know.
pub fn decode_response(
    body: &[u8],
    provider: &Arc<str>,
    asked_model: &Arc<str>,
) -> Result<LlmResponse, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format_args!("not JSON ({e})")))?;
    let Value::Object(mut map) = value else {
        return Err(malformed("not a JSON object"));
    };
    match map.remove("type") {
        Some(Value::String(t)) if t == "message" => {}
        Some(Value::String(t)) if t == "error" => {
            let error = map.get("error");
            let field = |k: &str| {
                error
                    .and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            };
            return Err(malformed(format_args!(
                "an error object ({}: {})",
                field("type"),
                field("message")
            )));
        }
        Some(other) => {
            return Err(malformed(format_args!(
                "`type` is {other}, not \"message\""
            )));
        }
        None => {
            return Err(malformed(
                "`type` is missing (an Anthropic message has type \"message\")",
            ));
        }
    }
    let wire: WireResponse = serde_json::from_value(Value::Object(map))
        .map_err(|e| malformed(format_args!("not an Anthropic message ({e})")))?;
    if wire.role != "assistant" {
        return Err(malformed(format_args!(
            "`role` is {:?}, not \"assistant\"",
            wire.role
        )));
    }
    let stop_reason = wire
        .stop_reason
        .ok_or_else(|| malformed("`stop_reason` is missing"))?;

    let mut parts = Vec::with_capacity(wire.content.len());
    let mut calls = Vec::new();
    for (j, raw) in wire.content.into_iter().enumerate() {
        let block: Block = serde_json::from_value(raw)
            .map_err(|e| malformed(format_args!("content[{j}] is not a known block ({e})")))?;
        match block {
            Block::Text { text, .. } => parts.push(Part::text(text)),
            Block::Thinking {
                thinking,
                signature,
                ..
            } => parts.push(Part::Thinking {
                thinking,
                signature,
            }),
            Block::RedactedThinking { data, .. } => parts.push(Part::RedactedThinking { data }),
            Block::ToolUse {
                id, name, input, ..
            } => {
                if !input.is_object() {
                    return Err(malformed(format_args!(
                        "content[{j}].input is not an object"
                    )));
                }
                calls.push(ToolCall::new(id, name, input.to_string()));
            }
            Block::Image { .. } | Block::Document { .. } | Block::ToolResult { .. } => {
                return Err(malformed(format_args!(
                    "content[{j}] is a block an answer does not hold"
                )));
            }
        }
    }
    let mut message = Message::assistant(Content::Parts(parts));
    message.tool_calls = calls;
    let choice = Choice {
        index: 0,
        message,
        finish_reason: FinishReason::from_provider(&stop_reason),
        stop_sequence: wire.stop_sequence,
        logprobs: None,
    };

    let mut extra = wire.extra;
    let usage = match wire.usage {
        None => Usage::default(),
        Some(u) => {
            if !u.extra.is_empty() {
                extra.insert("usage".into(), Value::Object(u.extra));
            }
            Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cached_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
                cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
                reasoning_tokens: 0,
            }
        }
    };
    let model = match wire.model {
        Some(m) => Arc::from(m),
        None => Arc::clone(asked_model),
    };
    let mut resp =
        LlmResponse::with_choices(vec![choice], model, Arc::clone(provider)).with_usage(usage);
    resp.id = wire.id;
    resp.extra = extra;
    Ok(resp)
}

/// Writes the first choice of `resp` as an Anthropic Messages answer: `id` (the response's,
/// else `msg_` and a hash of the answer, the same for the same answer), `type: "message"`,
/// `role: "assistant"`, `model`, `content` (text, thinking, redacted thinking, then one
/// `tool_use` block per call; a refusal as text; thinking without a signature gets an empty
/// one), `stop_reason`, `stop_sequence`, `usage` (with both cache counts, and the unknown usage
/// fields kept in `extra["usage"]`), then the fields of [`LlmResponse::extra`] the answer does
/// not set. `created` and the other choices are not written: Anthropic has no such fields.
///
/// # Errors
///
/// A [`Server`](crate::ErrorKind::Server) error when there is no choice, the choice holds an
/// image, audio or file part, or a tool call's arguments are not a JSON object.
pub fn encode_response(resp: &LlmResponse) -> Result<Vec<u8>, LlmError> {
    let choice = resp
        .first()
        .ok_or_else(|| malformed("no choice to write"))?;
    let m = &choice.message;
    let mut blocks = Vec::new();
    match &m.content {
        Content::Text(t) if t.is_empty() => {}
        Content::Text(t) => blocks.push(text_block(t.clone(), &None)),
        Content::Parts(parts) => {
            for (j, p) in parts.iter().enumerate() {
                blocks.push(match p {
                    Part::Text { text, .. } => text_block(text.clone(), &None),
                    Part::Refusal { refusal } => text_block(refusal.clone(), &None),
                    Part::Thinking {
                        thinking,
                        signature,
                    } => Block::Thinking {
                        thinking: thinking.clone(),
                        signature: Some(signature.clone().unwrap_or_default()),
                        extra: Map::new(),
                    },
                    Part::RedactedThinking { data } => Block::RedactedThinking {
                        data: data.clone(),
                        extra: Map::new(),
                    },
                    Part::Image { .. } | Part::Audio { .. } | Part::File { .. } => {
                        return Err(malformed(format_args!(
                            "choices[0].message.content[{j}] is media, which an Anthropic answer cannot hold"
                        )));
                    }
                });
            }
        }
    }
    for (j, call) in m.tool_calls.iter().enumerate() {
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.name.clone(),
            input: arguments_object(&call.arguments).map_err(|why| {
                malformed(format_args!(
                    "choices[0].message.tool_calls[{j}].arguments {why}"
                ))
            })?,
            cache_control: None,
            extra: Map::new(),
        });
    }
    let content = serde_json::to_value(&blocks).map_err(malformed)?;

    let id = match &resp.id {
        Some(id) => id.clone(),
        None => format!(
            "msg_{:016x}",
            fnv1a(content.to_string().as_bytes(), resp.model())
        ),
    };
    let mut usage = Map::new();
    usage.insert("input_tokens".into(), resp.usage.input_tokens.into());
    usage.insert("output_tokens".into(), resp.usage.output_tokens.into());
    usage.insert(
        "cache_creation_input_tokens".into(),
        resp.usage.cache_write_tokens.into(),
    );
    usage.insert(
        "cache_read_input_tokens".into(),
        resp.usage.cached_input_tokens.into(),
    );
    if let Some(Value::Object(more)) = resp.extra.get("usage") {
        for (k, v) in more {
            usage.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    let mut body = Map::new();
    body.insert("id".into(), Value::String(id));
    body.insert("type".into(), Value::String("message".into()));
    body.insert("role".into(), Value::String("assistant".into()));
    body.insert("model".into(), Value::String(resp.model().to_owned()));
    body.insert("content".into(), content);
    body.insert(
        "stop_reason".into(),
        Value::String(choice.finish_reason.as_anthropic_str().to_owned()),
    );
    body.insert(
        "stop_sequence".into(),
        choice
            .stop_sequence
            .clone()
            .map_or(Value::Null, Value::String),
    );
    body.insert("usage".into(), Value::Object(usage));
    for (k, v) in &resp.extra {
        body.entry(k.clone()).or_insert_with(|| v.clone());
    }
    serde_json::to_vec(&Value::Object(body)).map_err(malformed)
}

/// FNV-1a over the bytes and the model name: a stable id for an answer that has none.
fn fnv1a(bytes: &[u8], model: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes.iter().chain(model.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
