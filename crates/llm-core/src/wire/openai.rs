//! OpenAI's chat-completions JSON <-> the model.
//!
//! # Requests
//!
//! Every field of a chat-completions body that the model names is read into it; every other
//! top-level field (`service_tier`, `store`, `stream_options`, `logit_bias`, ...) goes to
//! [`ChatOptions::extra_body`] and is written back unchanged,
//! and fields of a message the model does not name go to [`Message::extra`]. A top-level
//! `null` is read as an absent field; `stream: false` (the model's "not sent") stays among the
//! extras, so it is written back. A `file_data` that is not a `data:` URL is read as base64 of
//! unknown media type (an empty `media_type`) and written back as it came.
//!
//! | wire | model |
//! |---|---|
//! | `role` `system` / `developer` / `user` / `assistant` / `tool` | [`Role`] |
//! | `content` string / array of parts / `null` | [`Content::Text`] / [`Content::Parts`] / no parts |
//! | part `text`, `image_url{url,detail}`, `input_audio{data,format}`, `file{file_data\|file_id,filename}`, `refusal` | [`Part`] (a `data:` URL is [`MediaSource::Base64`]) |
//! | `cache_control` on a part (LiteLLM's and OpenRouter's spelling) | the part's `cache_control` |
//! | assistant `tool_calls[{id,type,function{name,arguments}}]` | [`Message::tool_calls`] |
//! | assistant `refusal` | a trailing [`Part::Refusal`] |
//! | assistant `reasoning_content` (DeepSeek, vLLM) | a leading [`Part::Thinking`] |
//! | tool `tool_call_id` (required); content starting with `Error: ` | `tool_call_id`; `tool_error` (prefix removed) |
//! | `tools`, `tool_choice`, `parallel_tool_calls`, `response_format` | the same in [`ChatOptions`] |
//! | `max_tokens`, `max_completion_tokens`, `stop` (string or array), `seed`, `n`, `logprobs`, `top_logprobs`, `temperature`, `top_p`, `top_k`, `presence_penalty`, `frequency_penalty` | [`SamplingParams`] |
//! | `reasoning_effort`, `thinking{type,budget_tokens}`, `user`, `safety_identifier`, `metadata`, `prompt_cache_key`, `stream` | [`ChatOptions`] |
//!
//! `top_k` and `thinking` are not OpenAI's own, but OpenAI-compatible servers read them
//! (vLLM and Ollama `top_k`; Anthropic's OpenAI-compatible endpoint `thinking`), so they are
//! read and written; OpenAI itself answers them with a 400. A `thinking` value of another
//! shape (`{"type":"enabled"}` without a budget, as DeepSeek and GLM take it) stays in
//! `extra_body`.
//!
//! Writing follows the rule of [the wire module](super): what OpenAI cannot express is refused
//! with [`ErrorKind::InvalidRequest`](crate::ErrorKind) naming the field (an image, audio or
//! file outside a user message, a refusal outside an assistant message, an image by file id,
//! a file by URL, an inline image without its media type, tool calls outside an assistant
//! message, a tool message without `tool_call_id`, a `tool_call_id` elsewhere, a sampling
//! parameter that is not a finite number); `cache_control` on parts and tools, and thinking
//! blocks (which OpenAI servers reject as input) are left out. A tool message with
//! `tool_error` has `Error: ` put before its text.
//!
//! Written back, a body read from JSON is the same JSON value except that a `stop` string is
//! written as an array of one string, a whole-number sampling value as an integer (`1.0` as
//! `1`), an assistant `content` string next to a `refusal` or a `reasoning_content` as an
//! array of parts (and the `reasoning_content` itself left out), and a top-level `null` is
//! left out.
//!
//! # Answers
//!
//! Every choice is read: its message's text (`content`), `refusal`, `reasoning_content` and
//! `tool_calls` (arguments kept as the text the model wrote), `finish_reason` and `logprobs`.
//! Usage follows [`Usage`]'s rule: `prompt_tokens` includes
//! `prompt_tokens_details.cached_tokens`, so `input_tokens = prompt_tokens - cached_tokens`;
//! `completion_tokens` is the output, reasoning included, with
//! `completion_tokens_details.reasoning_tokens` read into `reasoning_tokens`. Top-level fields
//! the model does not name (`system_fingerprint`, `service_tier`, ...) go to
//! [`LlmResponse::extra`]; fields of the usage object it does not name (`audio_tokens`,
//! `accepted_prediction_tokens`, ...) to `extra["usage"]`, and those of a message
//! (`annotations`, `audio`) to its [`Message::extra`]; a `null` is kept there too, so an answer
//! read and written back is the same JSON value. Fields of a choice besides `index`,
//! `message`, `finish_reason` and `logprobs` are not kept.
//!
//! An answer without a non-empty `choices` array, an error object sent with a 200, a stream
//! chunk (`"object": "chat.completion.chunk"`), text that is not JSON or a field of the wrong
//! type is an error ([`ErrorKind::Server`](crate::ErrorKind)), never an empty success.

use std::fmt::Display;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::{invalid, malformed};
use crate::{
    CacheControl, ChatOptions, Choice, Content, FinishReason, LlmError, LlmRequest, LlmResponse,
    MediaSource, Message, Part, ResponseFormat, Role, SamplingParams, Thinking, Tool, ToolCall,
    ToolChoice, Usage,
};

/// The prefix a failed tool's result carries on the OpenAI wire, which has no error flag.
const TOOL_ERROR_PREFIX: &str = "Error: ";

// ---------------------------------------------------------------------------------------------
// Wire shapes of the leaf objects (every field named, nothing else accepted).

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireImageUrl {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireInputAudio {
    data: String,
    format: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFunctionCall {
    name: String,
    arguments: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFunction {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireJsonSchema {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCacheControl {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireName {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireNamedToolChoice {
    #[serde(rename = "type")]
    kind: String,
    function: WireName,
}

// ---------------------------------------------------------------------------------------------
// Reading objects field by field, with the path of each field for errors.

/// Whose fault a bad field is: a request's is the caller's (`InvalidRequest`), an answer's the
/// provider's (`Server`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

impl Side {
    fn err(self, path: &str, reason: impl Display) -> LlmError {
        let path = if path.is_empty() { "body" } else { path };
        match self {
            Side::Request => invalid(path, reason),
            Side::Response => malformed(format_args!("`{path}` {reason}")),
        }
    }
}

/// A JSON object being read field by field; what is left are its extras.
struct Obj {
    map: Map<String, Value>,
    path: String,
    side: Side,
}

impl Obj {
    fn new(value: Value, path: String, side: Side) -> Result<Self, LlmError> {
        match value {
            Value::Object(map) => Ok(Self { map, path, side }),
            other => Err(side.err(
                &path,
                format_args!("must be an object, not {}", json_kind(&other)),
            )),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn err(&self, key: &str, reason: impl Display) -> LlmError {
        self.side.err(&self.at(key), reason)
    }

    /// Removes a field the writer always writes; `null` is absent.
    fn take_written(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key)? {
            Value::Null => None,
            v => Some(v),
        }
    }

    /// Removes a field; `null` is absent (in an answer the `null` stays among the extras, so
    /// the answer is written back as it came).
    fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key)? {
            Value::Null => {
                if self.side == Side::Response {
                    self.map.insert(key.to_owned(), Value::Null);
                }
                None
            }
            v => Some(v),
        }
    }

    fn parse<T: DeserializeOwned>(&self, key: &str, v: Value, what: &str) -> Result<T, LlmError> {
        serde_json::from_value(v).map_err(|e| self.err(key, format_args!("must be {what} ({e})")))
    }

    fn get<T: DeserializeOwned>(&mut self, key: &str, what: &str) -> Result<Option<T>, LlmError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => self.parse(key, v, what).map(Some),
        }
    }

    fn require<T: DeserializeOwned>(&mut self, key: &str, what: &str) -> Result<T, LlmError> {
        match self.take_written(key) {
            None => Err(self.err(key, "is missing")),
            Some(v) => self.parse(key, v, what),
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, LlmError> {
        self.get(key, "a string")
    }

    fn float(&mut self, key: &str) -> Result<Option<f32>, LlmError> {
        match self.get::<f32>(key, "a number")? {
            Some(x) if !x.is_finite() => Err(self.err(key, "is out of range")),
            x => Ok(x),
        }
    }

    /// Refuses any field left (for objects whose every field the model names).
    fn finish(self) -> Result<(), LlmError> {
        match self.map.keys().next() {
            Some(k) => Err(self.err(k, "is not supported")),
            None => Ok(()),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `data:<media type>;base64,<data>` split into its media type and data.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media_type, data) = rest.split_once(";base64,")?;
    if media_type.is_empty() || media_type.contains([';', ',']) {
        return None;
    }
    Some((media_type, data))
}

fn url_source(url: String) -> MediaSource {
    match parse_data_url(&url) {
        Some((media_type, data)) => MediaSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        },
        None => MediaSource::Url(url),
    }
}

fn role_name(role: Role) -> &'static str {
    role.as_str()
}

fn part_name(part: &Part) -> &'static str {
    match part {
        Part::Text { .. } => "a text part",
        Part::Image { .. } => "an image",
        Part::Audio { .. } => "an audio clip",
        Part::File { .. } => "a file",
        Part::Thinking { .. } => "a thinking block",
        Part::RedactedThinking { .. } => "a redacted thinking block",
        Part::Refusal { .. } => "a refusal",
    }
}

/// Whether OpenAI takes this kind of part in a message of this role.
fn part_allowed(role: Role, part: &Part) -> bool {
    match part {
        Part::Text { .. } => true,
        Part::Image { .. } | Part::Audio { .. } | Part::File { .. } => role == Role::User,
        Part::Refusal { .. } | Part::Thinking { .. } | Part::RedactedThinking { .. } => {
            role == Role::Assistant
        }
    }
}

fn check_part(role: Role, part: &Part, path: &str) -> Result<(), LlmError> {
    if part_allowed(role, part) {
        Ok(())
    } else {
        Err(invalid(
            path,
            format_args!(
                "is {}, which OpenAI does not take in a `{}` message",
                part_name(part),
                role_name(role)
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: reading.

/// Reads an OpenAI chat-completions request body into a request (see the
/// [module documentation](self) for the mapping).
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

/// Writes a request as an OpenAI chat-completions body (see the [module documentation](self)
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

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
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

/// Writes the extras where the model set no such key.
fn merge_extra(map: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (k, v) in extra {
        if !map.contains_key(k) {
            map.insert(k.clone(), v.clone());
        }
    }
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
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

fn encode_tool_call(c: &ToolCall) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(c.id.as_str()));
    out.insert("type".into(), Value::from("function"));
    out.insert(
        "function".into(),
        to_value(&WireFunctionCall {
            name: c.name.clone(),
            arguments: c.arguments.clone(),
        }),
    );
    Value::Object(out)
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

// ---------------------------------------------------------------------------------------------
// Answers: reading.

/// Reads an OpenAI chat-completions answer served by `provider` for a request of
/// `asked_model` (the model it names, when it names none). See the
/// [module documentation](self) for the mapping.
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
