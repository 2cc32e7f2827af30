//! Requests: Anthropic's Messages request JSON read into an `LlmRequest` and written back.

use super::*;

// ---------------------------------------------------------------------------------------------
// Requests: decode
// ---------------------------------------------------------------------------------------------

/// Reads an Anthropic Messages request body into a request (see the [module](super) docs for
/// what maps where).
///
/// # Errors
///
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) whose client message names
/// the field (`messages[3].content[1].source`) when the body is not JSON, a field has the
/// wrong type, a required field is missing, or a field cannot be carried by the model.
pub fn decode_request(body: &[u8]) -> Result<LlmRequest, LlmError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format_args!("is not valid JSON ({e})")))?;
    let Value::Object(mut map) = value else {
        return Err(invalid("body", "must be a JSON object"));
    };

    let model: String = take(&mut map, "", "model")?.ok_or_else(|| required("model"))?;
    let raw_messages: Vec<Value> =
        take(&mut map, "", "messages")?.ok_or_else(|| required("messages"))?;

    let mut messages = Vec::with_capacity(raw_messages.len() + 1);
    if let Some(system) = map.remove("system")
        && let Some(m) = decode_system(system)?
    {
        messages.push(m);
    }
    for (i, raw) in raw_messages.into_iter().enumerate() {
        decode_message(&format!("messages[{i}]"), raw, &mut messages)?;
    }

    let mut params = SamplingParams {
        max_tokens: take(&mut map, "", "max_tokens")?,
        temperature: take::<f64>(&mut map, "", "temperature")?.map(|t| t as f32),
        top_p: take::<f64>(&mut map, "", "top_p")?.map(|t| t as f32),
        top_k: take(&mut map, "", "top_k")?,
        ..SamplingParams::default()
    };
    if let Some(stop) = take::<Vec<String>>(&mut map, "", "stop_sequences")? {
        params.stop = Some(stop.into());
    }

    let mut options = ChatOptions::default();
    if let Some(raw_tools) = take::<Vec<Value>>(&mut map, "", "tools")? {
        options.tools = raw_tools
            .into_iter()
            .enumerate()
            .map(|(i, t)| decode_tool(&format!("tools[{i}]"), t))
            .collect::<Result<_, _>>()?;
    }
    if let Some(choice) = take::<WireToolChoice>(&mut map, "", "tool_choice")? {
        options.tool_choice = Some(match choice.kind {
            ToolChoiceKind::Auto => ToolChoice::Auto,
            ToolChoiceKind::Any => ToolChoice::Required,
            ToolChoiceKind::None => ToolChoice::None,
            ToolChoiceKind::Tool => {
                ToolChoice::Function(choice.name.ok_or_else(|| required("tool_choice.name"))?)
            }
        });
        options.parallel_tool_calls = choice.disable_parallel_tool_use.map(|d| !d);
    }
    options.thinking = take::<WireThinking>(&mut map, "", "thinking")?.map(|t| match t {
        WireThinking::Enabled { budget_tokens } => Thinking::Enabled { budget_tokens },
        WireThinking::Disabled {} => Thinking::Disabled,
    });
    if let Some(WireOutputFormat::JsonSchema { schema }) =
        take::<WireOutputFormat>(&mut map, "", "output_format")?
    {
        options.response_format = Some(ResponseFormat::JsonSchema {
            name: OUTPUT_FORMAT_NAME.to_owned(),
            description: None,
            schema,
            strict: Some(true),
        });
    }
    if let Some(mut metadata) = take::<Map<String, Value>>(&mut map, "", "metadata")? {
        match metadata.remove("user_id") {
            None | Some(Value::Null) => options.metadata = Some(metadata),
            Some(Value::String(user)) => {
                options.user = Some(user);
                if !metadata.is_empty() {
                    options.metadata = Some(metadata);
                }
            }
            Some(_) => return Err(invalid("metadata.user_id", "must be a string")),
        }
    }
    options.stream = take(&mut map, "", "stream")?.unwrap_or(false);
    options.extra_body = map;

    Ok(LlmRequest::new(model, messages)
        .with_params(params)
        .with_options(options))
}

fn required(field: &str) -> LlmError {
    invalid(field, "is required")
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Removes `key` from `map` and reads it as a `T`; absent and `null` are `None`.
fn take<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<T>, LlmError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| invalid(join(prefix, key), format_args!("is invalid ({e})"))),
    }
}

/// Refuses the first non-null field the model cannot carry.
fn refuse_extra(path: &str, extra: &Map<String, Value>) -> Result<(), LlmError> {
    match extra.iter().find(|(_, v)| !v.is_null()) {
        None => Ok(()),
        Some((key, _)) => Err(invalid(
            join(path, key),
            "is not supported (towerguard's model cannot carry it)",
        )),
    }
}

fn decode_system(system: Value) -> Result<Option<Message>, LlmError> {
    match system {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Message::system(s))),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, raw) in blocks.into_iter().enumerate() {
                let path = format!("system[{j}]");
                match decode_part(&path, parse_block(&path, raw)?)? {
                    p @ Part::Text { .. } => parts.push(p),
                    _ => return Err(invalid(path, "must be a text block")),
                }
            }
            Ok(Some(Message::system(Content::Parts(parts))))
        }
        _ => Err(invalid(
            "system",
            "must be a string or an array of text blocks",
        )),
    }
}

/// Reads one block; a `tool_result`'s content is read block by block for its paths.
fn parse_block(path: &str, raw: Value) -> Result<(Block, Option<Value>), LlmError> {
    let mut raw = raw;
    let nested = match &mut raw {
        Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("tool_result") => {
            obj.remove("content")
        }
        Value::Object(_) => None,
        _ => return Err(invalid(path, "must be a content block object")),
    };
    let block = serde_json::from_value(raw)
        .map_err(|e| invalid(path, format_args!("is not a valid content block ({e})")))?;
    Ok((block, nested))
}

fn decode_cache(cache: Option<WireCache>) -> Option<CacheControl> {
    cache.map(|c| CacheControl { ttl: c.ttl })
}

/// A text, image, document, thinking or redacted-thinking block as a part.
fn decode_part(path: &str, (block, _): (Block, Option<Value>)) -> Result<Part, LlmError> {
    match block {
        Block::Text {
            text,
            cache_control,
            extra,
        } => {
            refuse_extra(path, &extra)?;
            Ok(Part::Text {
                text,
                cache_control: decode_cache(cache_control),
            })
        }
        Block::Image {
            source,
            cache_control,
            extra,
        } => {
            refuse_extra(path, &extra)?;
            let source = match source {
                Source::Base64 { media_type, data } => MediaSource::Base64 { media_type, data },
                Source::Url { url } => MediaSource::Url(url),
                Source::File { file_id } => MediaSource::FileId(file_id),
                Source::Text { .. } | Source::Content { .. } => {
                    return Err(invalid(
                        format!("{path}.source.type"),
                        "must be `base64`, `url` or `file` for an image",
                    ));
                }
            };
            Ok(Part::Image {
                source,
                detail: None,
                cache_control: decode_cache(cache_control),
            })
        }
        Block::Document {
            source,
            title,
            cache_control,
            extra,
        } => {
            refuse_extra(path, &extra)?;
            let source = match source {
                Source::Base64 { media_type, data } => MediaSource::Base64 { media_type, data },
                Source::Text { media_type, data } => MediaSource::Base64 {
                    media_type,
                    data: BASE64.encode(data.as_bytes()),
                },
                Source::Url { url } => MediaSource::Url(url),
                Source::File { file_id } => MediaSource::FileId(file_id),
                Source::Content { .. } => {
                    return Err(invalid(
                        format!("{path}.source.type"),
                        "`content` document sources are not supported",
                    ));
                }
            };
            Ok(Part::File {
                source,
                filename: title,
                cache_control: decode_cache(cache_control),
            })
        }
        Block::Thinking {
            thinking,
            signature,
            extra,
        } => {
            refuse_extra(path, &extra)?;
            Ok(Part::Thinking {
                thinking,
                signature,
            })
        }
        Block::RedactedThinking { data, extra } => {
            refuse_extra(path, &extra)?;
            Ok(Part::RedactedThinking { data })
        }
        Block::ToolUse { .. } | Block::ToolResult { .. } => Err(invalid(
            path,
            "is a tool block where only content blocks are allowed",
        )),
    }
}

fn decode_message(path: &str, raw: Value, out: &mut Vec<Message>) -> Result<(), LlmError> {
    let Value::Object(mut m) = raw else {
        return Err(invalid(path, "must be an object"));
    };
    let role: String = take(&mut m, path, "role")?.ok_or_else(|| required(&join(path, "role")))?;
    let content = m
        .remove("content")
        .ok_or_else(|| required(&join(path, "content")))?;
    refuse_extra(path, &m)?;
    let assistant = match role.as_str() {
        "user" => false,
        "assistant" => true,
        _ => {
            return Err(invalid(
                join(path, "role"),
                "must be `user` or `assistant` (the system prompt is the top-level `system`)",
            ));
        }
    };
    let blocks = match content {
        Value::String(s) => {
            out.push(Message::new(
                if assistant {
                    Role::Assistant
                } else {
                    Role::User
                },
                s,
            ));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(invalid(
                join(path, "content"),
                "must be a string or an array of content blocks",
            ));
        }
    };

    let mut parts = Vec::with_capacity(blocks.len());
    let mut calls = Vec::new();
    let mut had_results = false;
    for (j, raw) in blocks.into_iter().enumerate() {
        let bpath = format!("{path}.content[{j}]");
        let (block, nested) = parse_block(&bpath, raw)?;
        match block {
            Block::ToolUse {
                id,
                name,
                input,
                cache_control: _,
                extra,
            } if assistant => {
                refuse_extra(&bpath, &extra)?;
                if !input.is_object() {
                    return Err(invalid(format!("{bpath}.input"), "must be a JSON object"));
                }
                calls.push(ToolCall::new(id, name, input.to_string()));
            }
            Block::ToolResult {
                tool_use_id,
                content: _,
                is_error,
                cache_control,
                extra,
            } if !assistant => {
                refuse_extra(&bpath, &extra)?;
                let mut content = match nested {
                    None | Some(Value::Null) => Content::Parts(Vec::new()),
                    Some(Value::String(s)) => Content::Text(s),
                    Some(Value::Array(inner)) => {
                        let mut tparts = Vec::with_capacity(inner.len());
                        for (k, raw) in inner.into_iter().enumerate() {
                            let ipath = format!("{bpath}.content[{k}]");
                            let part = decode_part(&ipath, parse_block(&ipath, raw)?)?;
                            if !matches!(
                                part,
                                Part::Text { .. } | Part::Image { .. } | Part::File { .. }
                            ) {
                                return Err(invalid(
                                    ipath,
                                    "must be a text, image or document block",
                                ));
                            }
                            tparts.push(part);
                        }
                        Content::Parts(tparts)
                    }
                    Some(_) => {
                        return Err(invalid(
                            format!("{bpath}.content"),
                            "must be a string or an array of content blocks",
                        ));
                    }
                };
                if let Some(cache) = decode_cache(cache_control) {
                    move_cache_into(&mut content, cache)
                        .map_err(|why| invalid(format!("{bpath}.cache_control"), why))?;
                }
                let msg = Message::tool_result(tool_use_id, content)
                    .with_tool_error(is_error == Some(true));
                out.push(msg);
                had_results = true;
            }
            Block::ToolUse { .. } => {
                return Err(invalid(
                    bpath,
                    "a `tool_use` block belongs in an assistant turn",
                ));
            }
            Block::ToolResult { .. } => {
                return Err(invalid(
                    bpath,
                    "a `tool_result` block belongs in a user turn",
                ));
            }
            other => parts.push(decode_part(&bpath, (other, None))?),
        }
    }
    if assistant {
        let mut msg = Message::assistant(Content::Parts(parts));
        msg.tool_calls = calls;
        out.push(msg);
    } else if !parts.is_empty() || !had_results {
        out.push(Message::user_parts(parts));
    }
    Ok(())
}

/// Puts a `tool_result`'s cache breakpoint on the last block of its content.
fn move_cache_into(content: &mut Content, cache: CacheControl) -> Result<(), &'static str> {
    if let Content::Text(text) = content {
        *content = Content::Parts(vec![Part::text(std::mem::take(text))]);
    }
    let Content::Parts(parts) = content else {
        return Err("cannot be kept");
    };
    match parts.last_mut() {
        Some(
            Part::Text { cache_control, .. }
            | Part::Image { cache_control, .. }
            | Part::File { cache_control, .. },
        ) => {
            *cache_control = Some(cache);
            Ok(())
        }
        _ => Err("cannot be kept on a tool_result without content"),
    }
}

fn decode_tool(path: &str, mut raw: Value) -> Result<Tool, LlmError> {
    let kind = raw.as_object_mut().and_then(|t| t.remove("type"));
    if let Some(kind) = kind.filter(|k| !k.is_null() && k != "custom") {
        let kind = kind
            .as_str()
            .map_or_else(|| kind.to_string(), str::to_owned);
        return Err(invalid(
            format!("{path}.type"),
            format_args!(
                "`{kind}` is a built-in Anthropic tool; only custom (function) tools are supported"
            ),
        ));
    }
    let tool: WireTool = serde_json::from_value(raw)
        .map_err(|e| invalid(path, format_args!("is not a valid tool ({e})")))?;
    refuse_extra(path, &tool.extra)?;
    Ok(Tool {
        name: tool.name,
        description: tool.description,
        parameters: tool.input_schema,
        strict: tool.strict,
        cache_control: decode_cache(tool.cache_control),
    })
}

// ---------------------------------------------------------------------------------------------
// Requests: encode
// ---------------------------------------------------------------------------------------------

/// Writes a request as an Anthropic Messages body (see the [module](super) docs for what maps
/// where). `default_max_tokens` is sent as `max_tokens`, which Anthropic requires, when the
/// request sets neither `max_completion_tokens` nor `max_tokens`.
///
/// ```
/// use towerguard_llm_core::{wire::anthropic, LlmRequest, Message};
///
/// let req = LlmRequest::new(
///     "claude-sonnet-4-5",
///     vec![Message::system("Be brief."), Message::user("Hello")],
/// );
/// let body: serde_json::Value =
///     serde_json::from_slice(&anthropic::encode_request(&req, 1024).unwrap()).unwrap();
/// assert_eq!(body["system"], "Be brief.");
/// assert_eq!(body["max_tokens"], 1024);
/// assert_eq!(body["messages"][0]["content"], "Hello");
/// ```
///
/// # Errors
///
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) naming the field when the
/// request asks for what Anthropic cannot do (`n`, `logprobs`, `top_logprobs`,
/// `presence_penalty`, `frequency_penalty`, `response_format` JSON mode, an audio part, a
/// non-text system block, tool call arguments that are not a JSON object, a tool message
/// without `tool_call_id`, an unknown `reasoning_effort`, a thinking budget not below
/// `max_tokens`).
pub fn encode_request(req: &LlmRequest, default_max_tokens: u32) -> Result<Vec<u8>, LlmError> {
    let params = req.params();
    let options = req.options();
    refuse_params(params)?;

    let mut body = Map::new();
    body.insert("model".into(), Value::String(req.model().to_owned()));
    let (system, turns) = encode_messages(req.messages())?;
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(turns));
    let max_tokens = params.max_output_tokens().unwrap_or(default_max_tokens);
    body.insert("max_tokens".into(), max_tokens.into());
    if let Some(t) = params.temperature {
        body.insert("temperature".into(), f32_value("temperature", t)?);
    }
    if let Some(p) = params.top_p {
        body.insert("top_p".into(), f32_value("top_p", p)?);
    }
    if let Some(k) = params.top_k {
        body.insert("top_k".into(), k.into());
    }
    if let Some(stop) = &params.stop {
        body.insert("stop_sequences".into(), to_value("stop", &**stop)?);
    }
    if options.stream {
        body.insert("stream".into(), Value::Bool(true));
    }

    if !options.tools.is_empty() {
        let tools = options
            .tools
            .iter()
            .map(|t| WireTool {
                name: t.name.clone(),
                description: t.description.clone(),
                input_schema: if t.parameters.is_null() {
                    serde_json::json!({"type": "object", "properties": {}})
                } else {
                    t.parameters.clone()
                },
                cache_control: encode_cache(&t.cache_control),
                strict: t.strict,
                extra: Map::new(),
            })
            .collect::<Vec<_>>();
        body.insert("tools".into(), to_value("tools", &tools)?);
    }
    if let Some(choice) = encode_tool_choice(options) {
        body.insert("tool_choice".into(), to_value("tool_choice", &choice)?);
    }
    if let Some(thinking) = encode_thinking(options, max_tokens)? {
        body.insert("thinking".into(), to_value("thinking", &thinking)?);
    }
    match &options.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            return Err(invalid(
                "response_format",
                "JSON-object mode is not supported by Anthropic; give a JSON Schema",
            ));
        }
        Some(ResponseFormat::JsonSchema {
            description,
            schema,
            ..
        }) => {
            let mut schema = schema.clone();
            if let (Some(d), Value::Object(s)) = (description, &mut schema) {
                s.entry("description")
                    .or_insert_with(|| Value::String(d.clone()));
            }
            let format = WireOutputFormat::JsonSchema { schema };
            body.insert(
                "output_format".into(),
                to_value("response_format", &format)?,
            );
        }
    }
    if options.user.is_some() || options.metadata.is_some() {
        let mut metadata = options.metadata.clone().unwrap_or_default();
        if let Some(user) = &options.user {
            metadata.insert("user_id".into(), Value::String(user.clone()));
        }
        body.insert("metadata".into(), Value::Object(metadata));
    }
    for (key, value) in &options.extra_body {
        if !body.contains_key(key) {
            body.insert(key.clone(), value.clone());
        }
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| invalid("body", e))
}

fn refuse_params(params: &SamplingParams) -> Result<(), LlmError> {
    if params.n.is_some_and(|n| n > 1) {
        return Err(invalid("n", "must be 1: Anthropic returns one answer"));
    }
    if params.logprobs == Some(true) {
        return Err(invalid("logprobs", "is not supported by Anthropic"));
    }
    if params.top_logprobs.is_some_and(|k| k > 0) {
        return Err(invalid("top_logprobs", "is not supported by Anthropic"));
    }
    if params.presence_penalty.is_some_and(|p| p != 0.0) {
        return Err(invalid("presence_penalty", "is not supported by Anthropic"));
    }
    if params.frequency_penalty.is_some_and(|p| p != 0.0) {
        return Err(invalid(
            "frequency_penalty",
            "is not supported by Anthropic",
        ));
    }
    Ok(())
}

/// An `f32` as the JSON number with its shortest decimal spelling (`0.7`, not
/// `0.699999988079071`).
fn f32_value(field: &str, x: f32) -> Result<Value, LlmError> {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| invalid(field, "must be a finite number"))
}

fn to_value<T: Serialize + ?Sized>(field: &str, v: &T) -> Result<Value, LlmError> {
    serde_json::to_value(v).map_err(|e| invalid(field, e))
}

fn encode_tool_choice(options: &ChatOptions) -> Option<WireToolChoice> {
    let (kind, name) = match &options.tool_choice {
        Some(ToolChoice::Auto) => (ToolChoiceKind::Auto, None),
        Some(ToolChoice::Required) => (ToolChoiceKind::Any, None),
        Some(ToolChoice::None) => (ToolChoiceKind::None, None),
        Some(ToolChoice::Function(name)) => (ToolChoiceKind::Tool, Some(name.clone())),
        // Parallel calls are Anthropic's default; turning them off needs a `tool_choice`.
        None if options.parallel_tool_calls == Some(false) => (ToolChoiceKind::Auto, None),
        None => return None,
    };
    let disable_parallel_tool_use = match kind {
        ToolChoiceKind::None => None,
        _ => options.parallel_tool_calls.map(|p| !p),
    };
    Some(WireToolChoice {
        kind,
        name,
        disable_parallel_tool_use,
    })
}

/// The thinking budget (in tokens) sent for an OpenAI `reasoning_effort`, as LiteLLM maps it;
/// `Ok(None)` for `"none"`.
fn effort_budget(effort: &str) -> Result<Option<u32>, LlmError> {
    Ok(Some(match effort {
        "none" => return Ok(None),
        "minimal" | "low" => 1024,
        "medium" => 2048,
        "high" => 4096,
        "xhigh" => 8192,
        _ => {
            return Err(invalid(
                "reasoning_effort",
                "must be none, minimal, low, medium, high or xhigh",
            ));
        }
    }))
}

fn encode_thinking(
    options: &ChatOptions,
    max_tokens: u32,
) -> Result<Option<WireThinking>, LlmError> {
    match (options.thinking, options.reasoning_effort.as_deref()) {
        (Some(Thinking::Enabled { budget_tokens }), _) => {
            Ok(Some(WireThinking::Enabled { budget_tokens }))
        }
        (Some(Thinking::Disabled), _) => Ok(Some(WireThinking::Disabled {})),
        (None, Some(effort)) => match effort_budget(effort)? {
            None => Ok(None),
            Some(budget) if budget >= max_tokens => Err(invalid(
                "reasoning_effort",
                format_args!(
                    "`{effort}` is a thinking budget of {budget} tokens, which must stay below max_tokens ({max_tokens})"
                ),
            )),
            Some(budget_tokens) => Ok(Some(WireThinking::Enabled { budget_tokens })),
        },
        (None, None) => Ok(None),
    }
}

/// The `system` value and the turns.
fn encode_messages(messages: &[Message]) -> Result<(Option<Value>, Vec<Value>), LlmError> {
    let instructions: Vec<(usize, &Message)> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role.is_instruction())
        .collect();
    let system = match instructions.as_slice() {
        [] => None,
        [(_, m)] if matches!(m.content, Content::Text(_)) => {
            Some(Value::String(m.content.text().into_owned()))
        }
        many => {
            let mut blocks = Vec::new();
            for (i, m) in many {
                match &m.content {
                    Content::Text(t) => blocks.push(text_block(t.clone(), &None)),
                    Content::Parts(parts) => {
                        for (j, p) in parts.iter().enumerate() {
                            match p {
                                Part::Text {
                                    text,
                                    cache_control,
                                } => blocks.push(text_block(text.clone(), cache_control)),
                                _ => {
                                    return Err(invalid(
                                        format!("messages[{i}].content[{j}]"),
                                        "must be text: Anthropic's system prompt holds text only",
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            Some(to_value("system", &blocks)?)
        }
    };

    /// One turn being built.
    struct Turn {
        assistant: bool,
        content: TurnContent,
        /// A user turn of tool results that the next tool result or user message joins.
        open_for_results: bool,
    }
    enum TurnContent {
        Text(String),
        Blocks(Vec<Block>),
    }

    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        if !m.tool_calls.is_empty() && m.role != Role::Assistant {
            return Err(invalid(
                format!("{path}.tool_calls"),
                "only an assistant turn calls tools",
            ));
        }
        match m.role {
            Role::System | Role::Developer => {}
            Role::Tool => {
                let block = tool_result_block(&path, m)?;
                match turns.last_mut() {
                    Some(Turn {
                        content: TurnContent::Blocks(blocks),
                        open_for_results: true,
                        ..
                    }) => blocks.push(block),
                    _ => turns.push(Turn {
                        assistant: false,
                        content: TurnContent::Blocks(vec![block]),
                        open_for_results: true,
                    }),
                }
            }
            Role::User => {
                if let Some(Turn {
                    content: TurnContent::Blocks(blocks),
                    open_for_results: open @ true,
                    ..
                }) = turns.last_mut()
                {
                    *open = false;
                    match &m.content {
                        Content::Text(t) if t.is_empty() => {}
                        Content::Text(t) => blocks.push(text_block(t.clone(), &None)),
                        Content::Parts(parts) => {
                            blocks.extend(encode_parts(&path, parts, false)?);
                        }
                    }
                } else {
                    let content = match &m.content {
                        Content::Text(t) => TurnContent::Text(t.clone()),
                        Content::Parts(parts) => {
                            TurnContent::Blocks(encode_parts(&path, parts, false)?)
                        }
                    };
                    turns.push(Turn {
                        assistant: false,
                        content,
                        open_for_results: false,
                    });
                }
            }
            Role::Assistant => {
                let content = match &m.content {
                    Content::Text(t) if m.tool_calls.is_empty() => TurnContent::Text(t.clone()),
                    content => {
                        let mut blocks = match content {
                            Content::Text(t) if t.is_empty() => Vec::new(),
                            Content::Text(t) => vec![text_block(t.clone(), &None)],
                            Content::Parts(parts) => encode_parts(&path, parts, true)?,
                        };
                        for (j, call) in m.tool_calls.iter().enumerate() {
                            blocks.push(Block::ToolUse {
                                id: call.id.clone(),
                                name: call.name.clone(),
                                input: arguments_object(&call.arguments).map_err(|why| {
                                    invalid(format!("{path}.tool_calls[{j}].arguments"), why)
                                })?,
                                cache_control: None,
                                extra: Map::new(),
                            });
                        }
                        TurnContent::Blocks(blocks)
                    }
                };
                turns.push(Turn {
                    assistant: true,
                    content,
                    open_for_results: false,
                });
            }
        }
    }

    let turns = turns
        .into_iter()
        .map(|t| {
            let content = match t.content {
                TurnContent::Text(s) => Value::String(s),
                TurnContent::Blocks(b) => to_value("messages", &b)?,
            };
            let mut turn = Map::new();
            let role = if t.assistant { "assistant" } else { "user" };
            turn.insert("role".into(), Value::String(role.into()));
            turn.insert("content".into(), content);
            Ok(Value::Object(turn))
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    Ok((system, turns))
}

fn encode_source(path: &str, source: &MediaSource, document: bool) -> Result<Source, LlmError> {
    Ok(match source {
        MediaSource::Url(url) => Source::Url { url: url.clone() },
        MediaSource::FileId(id) => Source::File {
            file_id: id.clone(),
        },
        MediaSource::Base64 { media_type, data } if document && media_type == "text/plain" => {
            let text = BASE64
                .decode(data)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    invalid(
                        format!("{path}.source.data"),
                        "must be base64 of UTF-8 text for a text/plain document",
                    )
                })?;
            Source::Text {
                media_type: media_type.clone(),
                data: text,
            }
        }
        MediaSource::Base64 { media_type, data } => Source::Base64 {
            media_type: media_type.clone(),
            data: data.clone(),
        },
    })
}

/// Content parts as blocks (`assistant`: a turn of the model, where thinking may appear).
fn encode_parts(path: &str, parts: &[Part], assistant: bool) -> Result<Vec<Block>, LlmError> {
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let ppath = format!("{path}.content[{j}]");
        match part {
            Part::Text {
                text,
                cache_control,
            } => blocks.push(text_block(text.clone(), cache_control)),
            Part::Image {
                source,
                detail: _,
                cache_control,
            } => blocks.push(Block::Image {
                source: encode_source(&ppath, source, false)?,
                cache_control: encode_cache(cache_control),
                extra: Map::new(),
            }),
            Part::File {
                source,
                filename,
                cache_control,
            } => blocks.push(Block::Document {
                source: encode_source(&ppath, source, true)?,
                title: filename.clone(),
                cache_control: encode_cache(cache_control),
                extra: Map::new(),
            }),
            Part::Audio { .. } => {
                return Err(invalid(ppath, "is audio, which Anthropic does not accept"));
            }
            // Anthropic accepts back only the thinking it signed.
            Part::Thinking {
                signature: None, ..
            } => {}
            Part::Thinking {
                thinking,
                signature,
            } => blocks.push(Block::Thinking {
                thinking: thinking.clone(),
                signature: signature.clone(),
                extra: Map::new(),
            }),
            Part::RedactedThinking { data } => blocks.push(Block::RedactedThinking {
                data: data.clone(),
                extra: Map::new(),
            }),
            Part::Refusal { refusal } if assistant => {
                blocks.push(text_block(refusal.clone(), &None));
            }
            Part::Refusal { .. } => {
                return Err(invalid(ppath, "a refusal belongs in an assistant turn"));
            }
        }
    }
    Ok(blocks)
}

fn tool_result_block(path: &str, m: &Message) -> Result<Block, LlmError> {
    let tool_use_id = m.tool_call_id.clone().ok_or_else(|| {
        invalid(
            format!("{path}.tool_call_id"),
            "is required on a tool message",
        )
    })?;
    let content = match &m.content {
        Content::Text(t) => Some(ToolResultContent::Text(t.clone())),
        Content::Parts(parts) if parts.is_empty() => None,
        Content::Parts(parts) => {
            if let Some((j, _)) = parts.iter().enumerate().find(|(_, p)| {
                !matches!(
                    p,
                    Part::Text { .. } | Part::Image { .. } | Part::File { .. }
                )
            }) {
                return Err(invalid(
                    format!("{path}.content[{j}]"),
                    "must be text, an image or a document in a tool result",
                ));
            }
            Some(ToolResultContent::Blocks(encode_parts(path, parts, false)?))
        }
    };
    Ok(Block::ToolResult {
        tool_use_id,
        content,
        is_error: m.tool_error.then_some(true),
        cache_control: None,
        extra: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "The grass is green. The sky is blue.",
        ] {
            let e = BASE64.encode(s.as_bytes());
            assert_eq!(BASE64.decode(&e).ok().as_deref(), Some(s.as_bytes()), "{s}");
        }
        assert_eq!(BASE64.encode(b"Ma"), "TWE=");
        assert_eq!(
            BASE64.decode("TWE").ok().as_deref(),
            Some(&b"Ma"[..]),
            "unpadded"
        );
        assert!(BASE64.decode("not base64!").is_err());
    }
}
