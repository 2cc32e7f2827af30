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

mod request;
mod response;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};

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

/// Writes the extras where the model set no such key.
fn merge_extra(map: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (k, v) in extra {
        if !map.contains_key(k) {
            map.insert(k.clone(), v.clone());
        }
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
