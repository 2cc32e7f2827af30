//! Answers: OpenAI's chat-completions response JSON read into an `LlmResponse` and written back.

use super::*;

// ---------------------------------------------------------------------------------------------
// Answers: reading.

/// Reads an OpenAI chat-completions answer served by `provider` for a request of
/// `asked_model` (the model it names, when it names none). See the
/// [module documentation](super) for the mapping.
///
/// # Errors
///
/// [`ErrorKind::Server`](crate::ErrorKind) for a body that is not a valid completion: not
/// JSON, an error object, a stream chunk, no `choices` or an empty array, a choice without a
/// `message`, or a field of the wrong type.
pub fn decode_response(
    body: &[u8],
    provider: &Arc<str>,
    asked_model: &Arc<str>,
) -> Result<LlmResponse, LlmError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format_args!("the body is not JSON ({e})")))?;
    let mut o = Obj::new(value, String::new(), Side::Response)?;

    if let Some(error) = o.map.get("error").filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .unwrap_or("");
        return Err(malformed(format_args!(
            "the body is an error object, not a completion: {message}"
        )));
    }
    if let Some(object) = o.take_written("object") {
        match object.as_str() {
            Some("chat.completion") => {}
            Some(other) => {
                return Err(malformed(format_args!(
                    "`object` is `{other}`, not `chat.completion`"
                )));
            }
            None => return Err(o.err("object", "must be a string")),
        }
    }

    let raw_choices: Vec<Value> = match o.take_written("choices") {
        None => return Err(malformed("`choices` is missing")),
        Some(v) => o.parse("choices", v, "an array of choices")?,
    };
    if raw_choices.is_empty() {
        return Err(malformed("`choices` is empty"));
    }
    let choices = raw_choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| decode_choice(c, i))
        .collect::<Result<Vec<_>, _>>()?;

    let id = match o.take_written("id") {
        None => None,
        Some(v) => Some(o.parse::<String>("id", v, "a string")?),
    };
    let created = match o.take_written("created") {
        None => None,
        Some(v) => Some(o.parse::<u64>("created", v, "a whole number of seconds")?),
    };
    let model: Arc<str> = match o.take_written("model") {
        None => Arc::clone(asked_model),
        Some(v) => o.parse::<String>("model", v, "a string")?.into(),
    };
    let mut usage = Usage::default();
    let mut usage_rest = None;
    if let Some(v) = o.take_written("usage") {
        let (u, rest) = decode_usage(v)?;
        usage = u;
        usage_rest = (!rest.is_empty()).then_some(rest);
    }

    let mut resp =
        LlmResponse::with_choices(choices, model, Arc::clone(provider)).with_usage(usage);
    resp.id = id;
    resp.created = created;
    resp.extra = o.map;
    if let Some(rest) = usage_rest {
        resp.extra.insert("usage".into(), Value::Object(rest));
    }
    Ok(resp)
}

fn decode_choice(value: Value, i: usize) -> Result<Choice, LlmError> {
    let mut o = Obj::new(value, format!("choices[{i}]"), Side::Response)?;
    let index = match o.take_written("index") {
        None => u32::try_from(i).unwrap_or(u32::MAX),
        Some(v) => o.parse("index", v, "a whole number")?,
    };
    let message = match o.take_written("message") {
        None => return Err(o.err("message", "is missing")),
        Some(v) => decode_response_message(v, o.at("message"))?,
    };
    let finish_reason = match o.take_written("finish_reason") {
        None => FinishReason::Stop,
        Some(v) => {
            FinishReason::from_provider(&o.parse::<String>("finish_reason", v, "a string")?)
        }
    };
    let logprobs = o.take_written("logprobs");
    Ok(Choice {
        index,
        message,
        finish_reason,
        stop_sequence: None,
        logprobs,
    })
}

fn decode_response_message(value: Value, path: String) -> Result<Message, LlmError> {
    let mut o = Obj::new(value, path, Side::Response)?;
    let role = match o.take_written("role") {
        None => Role::Assistant,
        Some(v) => match o.parse::<String>("role", v, "a string")?.as_str() {
            "assistant" => Role::Assistant,
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "tool" => Role::Tool,
            other => return Err(o.err("role", format_args!("`{other}` is not a role"))),
        },
    };
    let text = match o.take_written("content") {
        None => None,
        Some(Value::String(s)) => Some(s),
        // Some servers send text parts; their text is the answer.
        Some(Value::Array(parts)) => {
            let mut all = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => all.push_str(t),
                    _ => {
                        return Err(o.err(&format!("content[{j}]"), "is not a text part"));
                    }
                }
            }
            Some(all)
        }
        Some(other) => {
            return Err(o.err(
                "content",
                format_args!("must be a string or null, not {}", json_kind(&other)),
            ));
        }
    };
    let refusal = o.string("refusal")?;
    let reasoning = o.string("reasoning_content")?;
    let mut msg = Message::new(role, Content::default());
    msg.content = match (reasoning, text, refusal) {
        (None, Some(t), None) => Content::Text(t),
        (reasoning, text, refusal) => {
            let mut parts = Vec::new();
            if let Some(thinking) = reasoning {
                parts.push(Part::Thinking {
                    thinking,
                    signature: None,
                });
            }
            if let Some(t) = text {
                parts.push(Part::text(t));
            }
            if let Some(refusal) = refusal {
                parts.push(Part::Refusal { refusal });
            }
            Content::Parts(parts)
        }
    };
    if let Some(calls) = o.get::<Vec<Value>>("tool_calls", "an array of tool calls")? {
        let base = o.at("tool_calls");
        msg.tool_calls = calls
            .into_iter()
            .enumerate()
            .map(|(j, c)| decode_response_tool_call(c, format!("{base}[{j}]")))
            .collect::<Result<_, _>>()?;
    }
    msg.extra = o.map;
    Ok(msg)
}

fn decode_response_tool_call(value: Value, path: String) -> Result<ToolCall, LlmError> {
    let mut o = Obj::new(value, path, Side::Response)?;
    let id: String = o.require("id", "a string")?;
    if let Some(kind) = o.string("type")?
        && kind != "function"
    {
        return Err(o.err("type", format_args!("`{kind}` is not a function call")));
    }
    let Some(function) = o.take_written("function") else {
        return Err(o.err("function", "is missing"));
    };
    let mut f = Obj::new(function, o.at("function"), Side::Response)?;
    let name: String = f.require("name", "a string")?;
    let arguments = match f.take_written("arguments") {
        None => String::new(),
        Some(Value::String(s)) => s,
        // Some servers send the arguments as an object: kept as its JSON text.
        Some(v) => v.to_string(),
    };
    Ok(ToolCall::new(id, name, arguments))
}

/// Usage, and the fields of the usage object the model does not name (each details object
/// kept, even empty, so it is written back).
fn decode_usage(value: Value) -> Result<(Usage, Map<String, Value>), LlmError> {
    let mut o = Obj::new(value, "usage".to_owned(), Side::Response)?;
    let prompt: u64 = o.get("prompt_tokens", "a whole number")?.unwrap_or(0);
    let completion: u64 = o.get("completion_tokens", "a whole number")?.unwrap_or(0);
    o.map.remove("total_tokens");
    let cached = details(&mut o, "prompt_tokens_details", "cached_tokens")?;
    let reasoning = details(&mut o, "completion_tokens_details", "reasoning_tokens")?;
    let usage = Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: completion,
        cached_input_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: reasoning,
    };
    Ok((usage, o.map))
}

/// Reads `usage.<object>.<key>`, leaving the rest of the object (possibly empty) in `o`.
fn details(o: &mut Obj, object: &str, key: &str) -> Result<u64, LlmError> {
    let Some(v) = o.take_written(object) else {
        return Ok(0);
    };
    let mut d = Obj::new(v, o.at(object), Side::Response)?;
    let n = match d.take_written(key) {
        None => 0,
        Some(v) => d.parse(key, v, "a whole number")?,
    };
    o.map.insert(object.to_owned(), Value::Object(d.map));
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Answers: writing.

/// Writes a response as an OpenAI chat-completions answer: `object` `"chat.completion"`, `id`
/// (the response's, or `chatcmpl-` and a hash of its model and choices when it has none),
/// `created` (0 when unknown), `model`, every choice and `usage` with `total_tokens`
/// (`prompt_tokens` counts every prompt token, cached or not). Thinking is written as
/// `reasoning_content`, refusals as `refusal`; redacted thinking, which only Anthropic reads
/// back, is left out.
///
/// # Errors
///
/// [`ErrorKind::Server`](crate::ErrorKind) for a choice whose message holds an image, audio
/// or a file, which an OpenAI answer cannot carry.
pub fn encode_response(resp: &LlmResponse) -> Result<Vec<u8>, LlmError> {
    let mut body = Map::new();
    let id = resp.id.clone().unwrap_or_else(|| stable_id(resp));
    body.insert("id".into(), Value::from(id));
    body.insert("object".into(), Value::from("chat.completion"));
    body.insert("created".into(), Value::from(resp.created.unwrap_or(0)));
    body.insert("model".into(), Value::from(resp.model()));
    let choices = resp
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| encode_choice(c, i))
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("choices".into(), Value::Array(choices));
    let usage_rest = match resp.extra.get("usage") {
        Some(Value::Object(rest)) => Some(rest),
        _ => None,
    };
    body.insert("usage".into(), encode_usage(&resp.usage, usage_rest));
    merge_extra(&mut body, &resp.extra);
    to_bytes(&Value::Object(body)).map_err(|e| malformed(format_args!("cannot be written: {e}")))
}

/// `chatcmpl-` and an FNV-1a hash of the model and the choices' text: the same answer gets
/// the same id.
fn stable_id(resp: &LlmResponse) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    eat(resp.model().as_bytes());
    for c in &resp.choices {
        eat(c.message.text().as_bytes());
        for call in &c.message.tool_calls {
            eat(call.id.as_bytes());
            eat(call.name.as_bytes());
            eat(call.arguments.as_bytes());
        }
    }
    format!("chatcmpl-{hash:016x}")
}

fn encode_choice(c: &Choice, i: usize) -> Result<Value, LlmError> {
    let path = format!("choices[{i}].message");
    let m = &c.message;
    let mut msg = Map::new();
    msg.insert("role".into(), Value::from(m.role.as_str()));

    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut refusal: Option<String> = None;
    match &m.content {
        Content::Text(t) => text = Some(t.clone()),
        Content::Parts(parts) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    Part::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(t),
                    Part::Thinking { thinking, .. } => {
                        reasoning.get_or_insert_with(String::new).push_str(thinking);
                    }
                    Part::Refusal { refusal: r } => {
                        refusal.get_or_insert_with(String::new).push_str(r);
                    }
                    Part::RedactedThinking { .. } => {}
                    other => {
                        return Err(malformed(format_args!(
                            "`{path}.content[{j}]` is {}, which an OpenAI answer cannot carry",
                            part_name(other)
                        )));
                    }
                }
            }
        }
    }
    msg.insert("content".into(), text.map_or(Value::Null, Value::from));
    put(&mut msg, "refusal", refusal.map(Value::from));
    put(&mut msg, "reasoning_content", reasoning.map(Value::from));
    if !m.tool_calls.is_empty() {
        let calls = m.tool_calls.iter().map(encode_tool_call).collect();
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    merge_extra(&mut msg, &m.extra);

    let mut out = Map::new();
    out.insert("index".into(), Value::from(c.index));
    out.insert("message".into(), Value::Object(msg));
    out.insert("logprobs".into(), c.logprobs.clone().unwrap_or(Value::Null));
    out.insert(
        "finish_reason".into(),
        Value::from(c.finish_reason.as_openai_str()),
    );
    Ok(Value::Object(out))
}

fn encode_usage(u: &Usage, rest: Option<&Map<String, Value>>) -> Value {
    let mut out = Map::new();
    out.insert("prompt_tokens".into(), Value::from(u.total_input_tokens()));
    out.insert("completion_tokens".into(), Value::from(u.output_tokens));
    out.insert("total_tokens".into(), Value::from(u.total_tokens()));
    let detail = |object: &str, key: &str, n: u64| -> Option<Value> {
        let kept = rest.and_then(|r| r.get(object));
        if n == 0 && kept.is_none() {
            return None;
        }
        let mut d = match kept {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        d.insert(key.to_owned(), Value::from(n));
        Some(Value::Object(d))
    };
    put(
        &mut out,
        "prompt_tokens_details",
        detail(
            "prompt_tokens_details",
            "cached_tokens",
            u.cached_input_tokens,
        ),
    );
    put(
        &mut out,
        "completion_tokens_details",
        detail(
            "completion_tokens_details",
            "reasoning_tokens",
            u.reasoning_tokens,
        ),
    );
    if let Some(rest) = rest {
        merge_extra(&mut out, rest);
    }
    Value::Object(out)
}
