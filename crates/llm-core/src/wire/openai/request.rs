//! Requests: OpenAI's chat-completions request JSON read into an `LlmRequest` and written back.

use super::*;

// ---------------------------------------------------------------------------------------------
// Requests: reading.

/// Reads an OpenAI chat-completions request body into a request (see the
/// [module documentation](super) for the mapping).
///
/// # Errors
///
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind), whose client message names the field, for
/// a body that is not JSON, misses `model` or `messages`, has a field of the wrong type, a
/// role or part type OpenAI does not define, a tool message without `tool_call_id`, or a part
/// a message of its role cannot carry.
pub fn decode_request(body: &[u8]) -> Result<LlmRequest, LlmError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format_args!("is not JSON ({e})")))?;
    let mut o = Obj::new(value, String::new(), Side::Request)?;

    let model: String = o.require("model", "a string")?;
    let raw_messages: Vec<Value> = o.require("messages", "an array of messages")?;
    let messages = raw_messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| decode_message(m, i))
        .collect::<Result<Vec<_>, _>>()?;

    let params = SamplingParams {
        max_tokens: o.get("max_tokens", "a whole number")?,
        max_completion_tokens: o.get("max_completion_tokens", "a whole number")?,
        temperature: o.float("temperature")?,
        top_p: o.float("top_p")?,
        top_k: o.get("top_k", "a whole number")?,
        presence_penalty: o.float("presence_penalty")?,
        frequency_penalty: o.float("frequency_penalty")?,
        seed: o.get("seed", "a whole number")?,
        stop: decode_stop(&mut o)?,
        n: o.get("n", "a whole number")?,
        logprobs: o.get("logprobs", "a boolean")?,
        top_logprobs: o.get("top_logprobs", "a whole number from 0 to 20")?,
    };

    let mut options = ChatOptions::default();
    if let Some(tools) = o.get::<Vec<Value>>("tools", "an array of tools")? {
        options.tools = tools
            .into_iter()
            .enumerate()
            .map(|(i, t)| decode_tool(t, i))
            .collect::<Result<_, _>>()?;
    }
    if let Some(choice) = o.take("tool_choice") {
        options.tool_choice = Some(decode_tool_choice(&o, choice)?);
    }
    options.parallel_tool_calls = o.get("parallel_tool_calls", "a boolean")?;
    if let Some(format) = o.take("response_format") {
        options.response_format = Some(decode_response_format(format)?);
    }
    options.reasoning_effort = o.string("reasoning_effort")?;
    if let Some(thinking) = o.map.get("thinking").and_then(thinking_of) {
        options.thinking = Some(thinking);
        o.map.remove("thinking");
    }
    options.user = o.string("user")?;
    options.safety_identifier = o.string("safety_identifier")?;
    options.metadata = o.get("metadata", "an object")?;
    options.prompt_cache_key = o.string("prompt_cache_key")?;
    // `stream: false` stays among the extras: the model's `false` is "not sent".
    if o.map.get("stream").is_some_and(|s| !s.is_boolean()) {
        return Err(o.err("stream", "must be a boolean"));
    }
    if o.map.get("stream") == Some(&Value::Bool(true)) {
        options.stream = true;
        o.map.remove("stream");
    }
    o.map.retain(|_, v| !v.is_null());
    options.extra_body = o.map;

    Ok(LlmRequest::new(model, messages)
        .with_params(params)
        .with_options(options))
}

fn decode_stop(o: &mut Obj) -> Result<Option<Arc<[String]>>, LlmError> {
    match o.take("stop") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(Arc::from(vec![s]))),
        Some(v) => {
            let stops: Vec<String> = o.parse("stop", v, "a string or an array of strings")?;
            Ok(Some(stops.into()))
        }
    }
}

/// `{"type":"enabled","budget_tokens":n}` or `{"type":"disabled"}`, nothing else.
fn thinking_of(v: &Value) -> Option<Thinking> {
    let map = v.as_object()?;
    match (map.get("type")?.as_str()?, map.len()) {
        ("disabled", 1) => Some(Thinking::Disabled),
        ("enabled", 2) => {
            let budget = map.get("budget_tokens")?.as_u64()?;
            Some(Thinking::Enabled {
                budget_tokens: u32::try_from(budget).ok()?,
            })
        }
        _ => None,
    }
}

fn decode_message(value: Value, i: usize) -> Result<Message, LlmError> {
    let mut o = Obj::new(value, format!("messages[{i}]"), Side::Request)?;
    let role_name: String = o.require("role", "a string")?;
    let role = match role_name.as_str() {
        "system" => Role::System,
        "developer" => Role::Developer,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        "function" => {
            return Err(o.err(
                "role",
                "`function` is the deprecated form of `tool`; send a `tool` message",
            ));
        }
        other => return Err(o.err("role", format_args!("`{other}` is not a role"))),
    };

    let content_path = o.at("content");
    let mut content = match o.take("content") {
        None if role == Role::Assistant => Content::default(),
        None => return Err(o.err("content", "is missing")),
        Some(Value::String(s)) => Content::Text(s),
        Some(Value::Array(items)) => Content::Parts(
            items
                .into_iter()
                .enumerate()
                .map(|(j, p)| decode_part(p, format!("{content_path}[{j}]"), role))
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(o.err(
                "content",
                format_args!(
                    "must be a string or an array of parts, not {}",
                    json_kind(&other)
                ),
            ));
        }
    };

    let mut msg = Message::new(role, Content::default());
    msg.name = o.string("name")?;

    if let Some(calls) = o.get::<Vec<Value>>("tool_calls", "an array of tool calls")? {
        if role != Role::Assistant {
            return Err(o.err("tool_calls", "is only valid on an assistant message"));
        }
        let base = o.at("tool_calls");
        msg.tool_calls = calls
            .into_iter()
            .enumerate()
            .map(|(j, c)| decode_request_tool_call(c, format!("{base}[{j}]")))
            .collect::<Result<_, _>>()?;
    }

    msg.tool_call_id = o.string("tool_call_id")?;
    match (role, &msg.tool_call_id) {
        (Role::Tool, None) => return Err(o.err("tool_call_id", "is required on a tool message")),
        (Role::Tool, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(o.err("tool_call_id", "is only valid on a tool message")),
    }

    let refusal = o.string("refusal")?;
    let reasoning = o.string("reasoning_content")?;
    if role != Role::Assistant {
        if refusal.is_some() {
            return Err(o.err("refusal", "is only valid on an assistant message"));
        }
        if reasoning.is_some() {
            return Err(o.err("reasoning_content", "is only valid on an assistant message"));
        }
    }
    if refusal.is_some() || reasoning.is_some() {
        let mut parts = Vec::new();
        if let Some(thinking) = reasoning {
            parts.push(Part::Thinking {
                thinking,
                signature: None,
            });
        }
        parts.extend(content.parts().iter().cloned());
        if let Some(refusal) = refusal {
            parts.push(Part::Refusal { refusal });
        }
        content = Content::Parts(parts);
    }

    if role == Role::Tool {
        msg.tool_error = strip_tool_error(&mut content);
    }
    msg.content = content;
    msg.extra = o.map;
    Ok(msg)
}

/// Removes the `Error: ` prefix of a tool result, saying whether it was there.
fn strip_tool_error(content: &mut Content) -> bool {
    match content {
        Content::Text(t) => match t.strip_prefix(TOOL_ERROR_PREFIX) {
            Some(rest) => {
                *t = rest.to_owned();
                true
            }
            None => false,
        },
        Content::Parts(parts) => {
            let Some(Part::Text { text, .. }) = parts.first_mut() else {
                return false;
            };
            let Some(rest) = text.strip_prefix(TOOL_ERROR_PREFIX) else {
                return false;
            };
            *text = rest.to_owned();
            if text.is_empty() {
                parts.remove(0);
            }
            true
        }
    }
}

fn decode_cache_control(o: &mut Obj) -> Result<Option<CacheControl>, LlmError> {
    let Some(cc) = o.get::<WireCacheControl>("cache_control", "an object {type, ttl}")? else {
        return Ok(None);
    };
    if cc.kind != "ephemeral" {
        return Err(o.err("cache_control.type", "must be `ephemeral`"));
    }
    Ok(Some(CacheControl { ttl: cc.ttl }))
}

fn decode_part(value: Value, path: String, role: Role) -> Result<Part, LlmError> {
    let mut o = Obj::new(value, path, Side::Request)?;
    let kind: String = o.require("type", "a string")?;
    let cache_control = decode_cache_control(&mut o)?;
    let part = match kind.as_str() {
        "text" => Part::Text {
            text: o.require("text", "a string")?,
            cache_control,
        },
        "image_url" => {
            let w: WireImageUrl = o.require("image_url", "an object {url, detail}")?;
            Part::Image {
                source: url_source(w.url),
                detail: w.detail,
                cache_control,
            }
        }
        "input_audio" => {
            let w: WireInputAudio = o.require("input_audio", "an object {data, format}")?;
            if cache_control.is_some() {
                return Err(o.err("cache_control", "is not supported on audio"));
            }
            Part::Audio {
                data: w.data,
                format: w.format,
            }
        }
        "file" => {
            let w: WireFile = o.require("file", "an object {file_data, file_id, filename}")?;
            let source = match (w.file_data, w.file_id) {
                (Some(data), None) => match parse_data_url(&data) {
                    Some((media_type, data)) => MediaSource::Base64 {
                        media_type: media_type.to_owned(),
                        data: data.to_owned(),
                    },
                    // Bare base64: its media type is not known.
                    None => MediaSource::Base64 {
                        media_type: String::new(),
                        data,
                    },
                },
                (None, Some(id)) => MediaSource::FileId(id),
                (None, None) => return Err(o.err("file", "needs `file_data` or `file_id`")),
                (Some(_), Some(_)) => {
                    return Err(o.err("file", "takes one of `file_data` and `file_id`"));
                }
            };
            Part::File {
                source,
                filename: w.filename,
                cache_control,
            }
        }
        "refusal" => {
            if cache_control.is_some() {
                return Err(o.err("cache_control", "is not supported on a refusal"));
            }
            Part::Refusal {
                refusal: o.require("refusal", "a string")?,
            }
        }
        other => {
            return Err(o.err("type", format_args!("`{other}` is not a content part type")));
        }
    };
    let path = o.path.clone();
    o.finish()?;
    check_part(role, &part, &path)?;
    Ok(part)
}

fn decode_request_tool_call(value: Value, path: String) -> Result<ToolCall, LlmError> {
    let mut o = Obj::new(value, path, Side::Request)?;
    let id: String = o.require("id", "a string")?;
    if let Some(kind) = o.string("type")?
        && kind != "function"
    {
        return Err(o.err(
            "type",
            format_args!("`{kind}` is not supported (only `function`)"),
        ));
    }
    let f: WireFunctionCall = o.require("function", "an object {name, arguments}")?;
    o.finish()?;
    Ok(ToolCall::new(id, f.name, f.arguments))
}

fn decode_tool(value: Value, i: usize) -> Result<Tool, LlmError> {
    let mut o = Obj::new(value, format!("tools[{i}]"), Side::Request)?;
    let kind: String = o.require("type", "a string")?;
    if kind != "function" {
        return Err(o.err(
            "type",
            format_args!("`{kind}` is not supported (only `function`)"),
        ));
    }
    let f: WireFunction = o.require(
        "function",
        "an object {name, description, parameters, strict}",
    )?;
    let cache_control = decode_cache_control(&mut o)?;
    o.finish()?;
    Ok(Tool {
        name: f.name,
        description: f.description,
        parameters: f.parameters.unwrap_or(Value::Null),
        strict: f.strict,
        cache_control,
    })
}

fn decode_tool_choice(o: &Obj, value: Value) -> Result<ToolChoice, LlmError> {
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(o.err(
                "tool_choice",
                format_args!("`{other}` is not one of `auto`, `none`, `required`"),
            )),
        },
        v => {
            let named: WireNamedToolChoice = o.parse(
                "tool_choice",
                v,
                "a string or {\"type\": \"function\", \"function\": {\"name\": ...}}",
            )?;
            if named.kind != "function" {
                return Err(o.err(
                    "tool_choice.type",
                    format_args!("`{}` is not supported (only `function`)", named.kind),
                ));
            }
            Ok(ToolChoice::Function(named.function.name))
        }
    }
}

fn decode_response_format(value: Value) -> Result<ResponseFormat, LlmError> {
    let mut o = Obj::new(value, "response_format".to_owned(), Side::Request)?;
    let kind: String = o.require("type", "a string")?;
    let format = match kind.as_str() {
        "text" => ResponseFormat::Text,
        "json_object" => ResponseFormat::JsonObject,
        "json_schema" => {
            let s: WireJsonSchema = o.require(
                "json_schema",
                "an object {name, description, schema, strict}",
            )?;
            ResponseFormat::JsonSchema {
                name: s.name,
                description: s.description,
                schema: s.schema.unwrap_or(Value::Null),
                strict: s.strict,
            }
        }
        other => {
            return Err(o.err(
                "type",
                format_args!("`{other}` is not one of `text`, `json_object`, `json_schema`"),
            ));
        }
    };
    o.finish()?;
    Ok(format)
}

// ---------------------------------------------------------------------------------------------
// Requests: writing.

/// Writes a request as an OpenAI chat-completions body (see the [module documentation](super)
/// for the mapping, what is refused and what is left out).
///
/// # Errors
///
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind) naming the field OpenAI cannot express.
pub fn encode_request(req: &LlmRequest) -> Result<Vec<u8>, LlmError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model()));
    let messages = req
        .messages()
        .iter()
        .enumerate()
        .map(|(i, m)| encode_message(m, i))
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));

    let p = req.params();
    put(&mut body, "max_tokens", p.max_tokens.map(Value::from));
    put(
        &mut body,
        "max_completion_tokens",
        p.max_completion_tokens.map(Value::from),
    );
    put_float(&mut body, "temperature", p.temperature)?;
    put_float(&mut body, "top_p", p.top_p)?;
    put(&mut body, "top_k", p.top_k.map(Value::from));
    put_float(&mut body, "presence_penalty", p.presence_penalty)?;
    put_float(&mut body, "frequency_penalty", p.frequency_penalty)?;
    put(&mut body, "seed", p.seed.map(Value::from));
    put(
        &mut body,
        "stop",
        p.stop
            .as_ref()
            .map(|s| Value::Array(s.iter().map(|x| Value::from(x.as_str())).collect())),
    );
    put(&mut body, "n", p.n.map(Value::from));
    put(&mut body, "logprobs", p.logprobs.map(Value::from));
    put(&mut body, "top_logprobs", p.top_logprobs.map(Value::from));

    let o = req.options();
    if !o.tools.is_empty() {
        let tools = o
            .tools
            .iter()
            .map(encode_tool)
            .collect::<Result<Vec<_>, _>>()?;
        body.insert("tools".into(), Value::Array(tools));
    }
    put(
        &mut body,
        "tool_choice",
        o.tool_choice.as_ref().map(encode_tool_choice),
    );
    put(
        &mut body,
        "parallel_tool_calls",
        o.parallel_tool_calls.map(Value::from),
    );
    if let Some(format) = &o.response_format {
        body.insert("response_format".into(), encode_response_format(format)?);
    }
    put(
        &mut body,
        "reasoning_effort",
        o.reasoning_effort.as_deref().map(Value::from),
    );
    put(&mut body, "thinking", o.thinking.map(encode_thinking));
    put(&mut body, "user", o.user.as_deref().map(Value::from));
    put(
        &mut body,
        "safety_identifier",
        o.safety_identifier.as_deref().map(Value::from),
    );
    put(&mut body, "metadata", o.metadata.clone().map(Value::Object));
    put(
        &mut body,
        "prompt_cache_key",
        o.prompt_cache_key.as_deref().map(Value::from),
    );
    if o.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    merge_extra(&mut body, &o.extra_body);
    to_bytes(&Value::Object(body)).map_err(|e| invalid("body", e))
}

fn put_float(map: &mut Map<String, Value>, key: &str, x: Option<f32>) -> Result<(), LlmError> {
    if let Some(x) = x {
        map.insert(
            key.to_owned(),
            float_value(x).ok_or_else(|| invalid(key, "is not a finite number"))?,
        );
    }
    Ok(())
}

/// An `f32` as the JSON number it was written as: its shortest decimal form (so `0.7f32` is
/// `0.7`, not `0.699999988079071`), a whole number as an integer.
fn float_value(x: f32) -> Option<Value> {
    if !x.is_finite() {
        return None;
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return Some(Value::from(x as i64));
    }
    let wide: f64 = x.to_string().parse().unwrap_or(f64::from(x));
    Number::from_f64(wide).map(Value::Number)
}

fn encode_message(m: &Message, i: usize) -> Result<Value, LlmError> {
    let path = format!("messages[{i}]");
    let mut out = Map::new();
    out.insert("role".into(), Value::from(m.role.as_str()));

    let (content, refusal) = encode_content(m, &path)?;
    out.insert("content".into(), content);
    put(&mut out, "refusal", refusal.map(Value::from));
    put(&mut out, "name", m.name.as_deref().map(Value::from));

    if !m.tool_calls.is_empty() {
        if m.role != Role::Assistant {
            return Err(invalid(
                format_args!("{path}.tool_calls"),
                "is only valid on an assistant message",
            ));
        }
        let calls = m.tool_calls.iter().map(encode_tool_call).collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    match (m.role, &m.tool_call_id) {
        (Role::Tool, Some(id)) => {
            out.insert("tool_call_id".into(), Value::from(id.as_str()));
        }
        (Role::Tool, None) => {
            return Err(invalid(
                format_args!("{path}.tool_call_id"),
                "is required on a tool message",
            ));
        }
        (_, Some(_)) => {
            return Err(invalid(
                format_args!("{path}.tool_call_id"),
                "is only valid on a tool message",
            ));
        }
        (_, None) => {}
    }
    merge_extra(&mut out, &m.extra);
    Ok(Value::Object(out))
}

/// A message's `content` and its `refusal` field.
fn encode_content(m: &Message, path: &str) -> Result<(Value, Option<String>), LlmError> {
    let error_prefix = m.role == Role::Tool && m.tool_error;
    let parts = match &m.content {
        Content::Text(t) if error_prefix => {
            return Ok((Value::from(format!("{TOOL_ERROR_PREFIX}{t}")), None));
        }
        Content::Text(t) => return Ok((Value::from(t.as_str()), None)),
        Content::Parts(parts) => parts,
    };
    // Thinking is left out: OpenAI servers do not take reasoning as input.
    let visible: Vec<(usize, &Part)> = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| !matches!(p, Part::Thinking { .. } | Part::RedactedThinking { .. }))
        .collect();
    if m.role == Role::Assistant {
        match visible.as_slice() {
            [] => return Ok((Value::Null, None)),
            [(_, Part::Refusal { refusal })] => return Ok((Value::Null, Some(refusal.clone()))),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(visible.len() + 1);
    for (j, part) in visible {
        let part_path = format!("{path}.content[{j}]");
        check_part(m.role, part, &part_path)?;
        out.push(encode_part(part, &part_path)?);
    }
    if error_prefix {
        match out.first_mut().and_then(|p| p.get_mut("text")) {
            Some(Value::String(text)) => text.insert_str(0, TOOL_ERROR_PREFIX),
            _ => out.insert(0, text_part(TOOL_ERROR_PREFIX)),
        }
    }
    Ok((Value::Array(out), None))
}

fn text_part(text: &str) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), Value::from("text"));
    out.insert("text".into(), Value::from(text));
    Value::Object(out)
}

fn typed(kind: &str, key: &str, value: Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), Value::from(kind));
    out.insert(key.into(), value);
    Value::Object(out)
}

fn encode_part(part: &Part, path: &str) -> Result<Value, LlmError> {
    Ok(match part {
        // `cache_control` is a hint OpenAI has no field for: left out.
        Part::Text { text, .. } => text_part(text),
        Part::Image { source, detail, .. } => {
            let url = match source {
                MediaSource::Url(u) => u.clone(),
                MediaSource::Base64 { media_type, .. } if media_type.is_empty() => {
                    return Err(invalid(
                        format_args!("{path}.image_url"),
                        "is inline data without a media type, which a data: URL needs",
                    ));
                }
                MediaSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
                MediaSource::FileId(_) => {
                    return Err(invalid(
                        format_args!("{path}.image_url"),
                        "is a file id; OpenAI takes an image by URL or inline data",
                    ));
                }
            };
            typed(
                "image_url",
                "image_url",
                to_value(&WireImageUrl {
                    url,
                    detail: detail.clone(),
                }),
            )
        }
        Part::Audio { data, format } => typed(
            "input_audio",
            "input_audio",
            to_value(&WireInputAudio {
                data: data.clone(),
                format: format.clone(),
            }),
        ),
        Part::File {
            source, filename, ..
        } => {
            let (file_data, file_id) = match source {
                MediaSource::Base64 { media_type, data } if media_type.is_empty() => {
                    (Some(data.clone()), None)
                }
                MediaSource::Base64 { media_type, data } => {
                    (Some(format!("data:{media_type};base64,{data}")), None)
                }
                MediaSource::FileId(id) => (None, Some(id.clone())),
                MediaSource::Url(_) => {
                    return Err(invalid(
                        format_args!("{path}.file"),
                        "is a URL; OpenAI takes a file as inline data or a file id",
                    ));
                }
            };
            typed(
                "file",
                "file",
                to_value(&WireFile {
                    file_data,
                    file_id,
                    filename: filename.clone(),
                }),
            )
        }
        Part::Refusal { refusal } => typed("refusal", "refusal", Value::from(refusal.as_str())),
        Part::Thinking { .. } | Part::RedactedThinking { .. } => {
            return Err(invalid(
                path,
                "is a thinking block, which OpenAI does not take",
            ));
        }
    })
}

fn encode_tool(t: &Tool) -> Result<Value, LlmError> {
    let function = WireFunction {
        name: t.name.clone(),
        description: t.description.clone(),
        parameters: (!t.parameters.is_null()).then(|| t.parameters.clone()),
        strict: t.strict,
    };
    // `cache_control` is a hint OpenAI has no field for: left out.
    Ok(typed("function", "function", to_value(&function)))
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => Value::from("auto"),
        ToolChoice::None => Value::from("none"),
        ToolChoice::Required => Value::from("required"),
        ToolChoice::Function(name) => {
            let mut f = Map::new();
            f.insert("name".into(), Value::from(name.as_str()));
            typed("function", "function", Value::Object(f))
        }
    }
}

fn encode_response_format(format: &ResponseFormat) -> Result<Value, LlmError> {
    let mut out = Map::new();
    match format {
        ResponseFormat::Text => {
            out.insert("type".into(), Value::from("text"));
        }
        ResponseFormat::JsonObject => {
            out.insert("type".into(), Value::from("json_object"));
        }
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => {
            out.insert("type".into(), Value::from("json_schema"));
            let s = WireJsonSchema {
                name: name.clone(),
                description: description.clone(),
                schema: (!schema.is_null()).then(|| schema.clone()),
                strict: *strict,
            };
            out.insert("json_schema".into(), to_value(&s));
        }
    }
    Ok(Value::Object(out))
}

fn encode_thinking(t: Thinking) -> Value {
    let mut out = Map::new();
    match t {
        Thinking::Enabled { budget_tokens } => {
            out.insert("type".into(), Value::from("enabled"));
            out.insert("budget_tokens".into(), Value::from(budget_tokens));
        }
        Thinking::Disabled => {
            out.insert("type".into(), Value::from("disabled"));
        }
    }
    Value::Object(out)
}
