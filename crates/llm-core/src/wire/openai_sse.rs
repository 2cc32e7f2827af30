//! OpenAI's chat-completions stream (`stream: true`) <-> [`Chunk`]s, one server-sent event at a
//! time.
//!
//! # Reading ([`StreamDecoder`])
//!
//! Each event's `data` is a `chat.completion.chunk` object, and the stream ends with
//! `data: [DONE]` ([`Step::Done`]). The first chunk object gives [`Chunk::Start`] (its `id` and
//! `model`); then, for each choice (in order) of each object:
//!
//! | wire (`choices[i].delta`) | chunk |
//! |---|---|
//! | `reasoning_content` (DeepSeek, vLLM; `reasoning` where a server names it so) | [`Chunk::Reasoning`] |
//! | `content` | [`Chunk::Text`] |
//! | `refusal` | [`Chunk::Refusal`] |
//! | `tool_calls[{index, id, function{name, arguments}}]` | [`Chunk::ToolCall`] per entry |
//! | `choices[i].finish_reason` | [`Chunk::Finish`] |
//! | top-level `usage` (the last object, when asked with `stream_options.include_usage`) | [`Chunk::Usage`] |
//!
//! Empty or `null` strings make no chunk (the first object's `"content": ""` only says who
//! speaks). Usage follows the complete decoder ([`super::openai`]): `prompt_tokens` includes
//! `prompt_tokens_details.cached_tokens`, so `input_tokens = prompt_tokens - cached_tokens`;
//! `completion_tokens` is the output, reasoning included.
//!
//! An object with an `error` (`{"error":{"message","type","code"}}`, as OpenAI and
//! OpenAI-compatible servers send when they fail mid-stream; also an `event: error`) is the
//! [`LlmError`] its `code` and `type` mean: a numeric `code` from 400 to 599 (OpenRouter,
//! vLLM) is read as that HTTP status, a known code or type as the status OpenAI answers it
//! with outside a stream (`rate_limit_exceeded` 429, `insufficient_quota` 429 as quota,
//! `context_length_exceeded` 400, `server_error` 500, ...), anything else as a server
//! failure; then llm-core's classification ([`crate::classify_http_error`]) decides the kind.
//! Data that is not JSON or has a field of the wrong type is a
//! [`Server`](crate::ErrorKind::Server) error whose detail starts "malformed stream event".
//! Fields this module does not read (`logprobs`, `role`, `system_fingerprint`, ...) are
//! ignored, and so are comments and events after `[DONE]`.
//!
//! # Writing ([`StreamWriter`])
//!
//! The reverse, for a gateway answering an OpenAI client: each chunk becomes one
//! `data: {...}\n\n` event of a `chat.completion.chunk` object with the writer's `id`,
//! `created` and `model`, the first preceded by the opening chunk (`"role": "assistant"`,
//! `"content": ""`); usage is written as the final object with empty `choices`;
//! [`StreamWriter::finish`] writes `data: [DONE]`. Signatures and redacted thinking, which only
//! Anthropic reads back, are left out, as [`super::openai::encode_response`] leaves them out.
//!
//! ```
//! use towerguard_llm_core::wire::{Step, openai_sse::{StreamDecoder, StreamWriter}};
//! use towerguard_llm_core::Chunk;
//!
//! let mut decoder = StreamDecoder::default();
//! let mut chunks = Vec::new();
//! let data = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
//! assert_eq!(decoder.decode("", data, &mut chunks).unwrap(), Step::Continue);
//! assert_eq!(decoder.decode("", "[DONE]", &mut chunks).unwrap(), Step::Done);
//! assert_eq!(chunks[1], Chunk::Text { choice: 0, text: "Hi".into() });
//!
//! let mut writer = StreamWriter::new("chatcmpl-1", "gpt-4o-mini", 1);
//! let mut sse = Vec::new();
//! writer.write(&chunks[1], &mut sse);
//! writer.finish(&mut sse);
//! assert!(sse.ends_with(b"data: [DONE]\n\n"));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Step, error_event, malformed_event};
use crate::stream::{Chunk, ToolCallDelta};
use crate::{ErrorKind, FinishReason, LlmError, Usage};

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolDelta>>,
}

#[derive(Deserialize)]
struct WireToolDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WireCached>,
    #[serde(default)]
    completion_tokens_details: Option<WireReasoning>,
}

#[derive(Deserialize)]
struct WireCached {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireReasoning {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Usage {
            input_tokens: prompt.saturating_sub(cached),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_input_tokens: cached,
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// Reads an OpenAI chat-completions stream one event at a time (see the
/// [module documentation](self) for what becomes which chunk).
///
/// It remembers only whether [`Chunk::Start`] was given and whether `[DONE]` came: one
/// decoder per stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    done: bool,
}

impl StreamDecoder {
    /// Reads one event: `event` is its `event:` name (`""` if none), `data` its `data:` lines
    /// joined. The chunks it means are pushed onto `out` (a buffer the caller reuses; nothing
    /// is cleared). [`Step::Done`] once `[DONE]` arrived; events after it are ignored.
    ///
    /// # Errors
    ///
    /// An error object (or an `event: error`) as the classified [`LlmError`]; data that is not
    /// a chunk object (not JSON, a field of the wrong type) as a
    /// [`Server`](crate::ErrorKind::Server) "malformed stream event" error. Nothing is pushed
    /// for an event that fails.
    pub fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut Vec<Chunk>,
    ) -> Result<Step, LlmError> {
        if self.done {
            return Ok(Step::Done);
        }
        let trimmed = data.trim();
        if trimmed == "[DONE]" {
            self.done = true;
            return Ok(Step::Done);
        }
        let parsed = if trimmed.starts_with('{') {
            serde_json::from_str::<WireChunk>(trimmed).map_err(|e| e.to_string())
        } else {
            Err("not a JSON object".to_owned())
        };
        let chunk = match parsed {
            Ok(c) => c,
            Err(why) if event == "error" => {
                return Err(error_event(500, data)
                    .with_detail(format!("error event in the stream, unreadable ({why})")));
            }
            Err(why) => return Err(malformed_event(format_args!("not a chunk object ({why})"))),
        };
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(error_event(status_of(error), data));
        }
        if event == "error" {
            return Err(error_event(500, data));
        }
        if !self.started {
            self.started = true;
            out.push(Chunk::Start {
                id: chunk.id,
                model: chunk.model,
            });
        }
        for (i, choice) in chunk.choices.into_iter().flatten().enumerate() {
            let n = choice
                .index
                .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX));
            if let Some(delta) = choice.delta {
                push_delta(n, delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                out.push(Chunk::Finish {
                    choice: n,
                    reason: FinishReason::from_provider(&reason),
                });
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(Chunk::Usage(usage.usage()));
        }
        Ok(Step::Continue)
    }

    /// Whether `[DONE]` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn push_delta(choice: u32, delta: WireDelta, out: &mut Vec<Chunk>) {
    let reasoning = delta.reasoning_content.or(delta.reasoning);
    if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
        out.push(Chunk::Reasoning { choice, text });
    }
    if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
        out.push(Chunk::Text { choice, text });
    }
    if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
        out.push(Chunk::Refusal { choice, text });
    }
    for (j, call) in delta.tool_calls.into_iter().flatten().enumerate() {
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments.unwrap_or_default()),
            None => (None, String::new()),
        };
        out.push(Chunk::ToolCall(ToolCallDelta {
            choice,
            index: call
                .index
                .unwrap_or_else(|| u32::try_from(j).unwrap_or(u32::MAX)),
            id: call.id.filter(|id| !id.is_empty()),
            name: name.filter(|n| !n.is_empty()),
            arguments,
        }));
    }
}

/// The HTTP status an OpenAI-style error object stands for (see the module documentation).
fn status_of(error: &Value) -> u16 {
    let code = error.get("code");
    if let Some(n) = code.and_then(Value::as_u64)
        && (400..=599).contains(&n)
    {
        return n as u16;
    }
    let named = |s: &str| -> Option<u16> {
        Some(match s {
            "context_length_exceeded"
            | "string_above_max_length"
            | "content_policy_violation"
            | "content_filter"
            | "invalid_request_error" => 400,
            "invalid_api_key" | "authentication_error" => 401,
            "permission_error" | "permission_denied" => 403,
            "model_not_found" | "not_found_error" => 404,
            "timeout" | "timeout_error" => 408,
            "insufficient_quota" | "rate_limit_exceeded" | "rate_limit_error" => 429,
            "overloaded" | "overloaded_error" => 529,
            "server_error" | "internal_error" | "api_error" => 500,
            _ => return None,
        })
    };
    code.and_then(Value::as_str)
        .and_then(named)
        .or_else(|| error.get("type").and_then(Value::as_str).and_then(named))
        .unwrap_or(500)
}

// ---------------------------------------------------------------------------------------------
// Writing

#[derive(Serialize)]
struct OutChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [OutChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OutUsage>,
}

#[derive(Serialize)]
struct OutChoice<'a> {
    index: u32,
    delta: OutDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct OutDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[OutToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct OutUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<OutCached>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<OutReasoning>,
}

#[derive(Serialize)]
struct OutCached {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct OutReasoning {
    reasoning_tokens: u64,
}

#[derive(Serialize)]
struct OutError<'a> {
    error: OutErrorBody<'a>,
}

#[derive(Serialize)]
struct OutErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<()>,
    code: Option<&'static str>,
}

/// Writes [`Chunk`]s as OpenAI chat-completions stream events (see the
/// [module documentation](self)): for a gateway answering an OpenAI client, whatever provider
/// served the answer.
#[derive(Debug)]
pub struct StreamWriter {
    id: String,
    model: String,
    created: u64,
    opened: bool,
    finished: bool,
}

impl StreamWriter {
    /// A writer whose every event names this `id` (`chatcmpl-...`), `model` and `created`
    /// time (Unix seconds). A [`Chunk::Start`] does not change them: the gateway decides
    /// what its client sees.
    pub fn new(id: impl Into<String>, model: impl Into<String>, created: u64) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            created,
            opened: false,
            finished: false,
        }
    }

    /// Appends the event(s) of one chunk to `out`: the opening event first if none was
    /// written yet, then the chunk's own (none for a repeated [`Chunk::Start`], a signature or
    /// redacted thinking). Nothing after [`finish`](Self::finish) or [`error`](Self::error).
    pub fn write(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if !self.opened {
            self.opened = true;
            let delta = OutDelta {
                role: Some("assistant"),
                content: Some(""),
                ..OutDelta::default()
            };
            self.event(&[choice(0, delta, None)], None, out);
        }
        match chunk {
            Chunk::Start { .. } | Chunk::Signature { .. } | Chunk::RedactedThinking { .. } => {}
            Chunk::Text { choice: c, text } => {
                let delta = OutDelta {
                    content: Some(text),
                    ..OutDelta::default()
                };
                self.event(&[choice(*c, delta, None)], None, out);
            }
            Chunk::Reasoning { choice: c, text } => {
                let delta = OutDelta {
                    reasoning_content: Some(text),
                    ..OutDelta::default()
                };
                self.event(&[choice(*c, delta, None)], None, out);
            }
            Chunk::Refusal { choice: c, text } => {
                let delta = OutDelta {
                    refusal: Some(text),
                    ..OutDelta::default()
                };
                self.event(&[choice(*c, delta, None)], None, out);
            }
            Chunk::ToolCall(d) => {
                let call = OutToolCall {
                    index: d.index,
                    id: d.id.as_deref(),
                    kind: d.id.as_ref().map(|_| "function"),
                    function: OutFunction {
                        name: d.name.as_deref(),
                        arguments: &d.arguments,
                    },
                };
                let delta = OutDelta {
                    tool_calls: Some([call]),
                    ..OutDelta::default()
                };
                self.event(&[choice(d.choice, delta, None)], None, out);
            }
            Chunk::Finish { choice: c, reason } => {
                let delta = OutDelta::default();
                self.event(
                    &[choice(*c, delta, Some(reason.as_openai_str()))],
                    None,
                    out,
                );
            }
            Chunk::Usage(u) => {
                let usage = OutUsage {
                    prompt_tokens: u.total_input_tokens(),
                    completion_tokens: u.output_tokens,
                    total_tokens: u.total_tokens(),
                    prompt_tokens_details: (u.cached_input_tokens > 0).then_some(OutCached {
                        cached_tokens: u.cached_input_tokens,
                    }),
                    completion_tokens_details: (u.reasoning_tokens > 0).then_some(OutReasoning {
                        reasoning_tokens: u.reasoning_tokens,
                    }),
                };
                self.event(&[], Some(usage), out);
            }
        }
    }

    /// Appends the terminator, `data: [DONE]` (once; nothing after an error).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.finished = true;
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }

    /// Appends an error event for `err` and ends the stream (no `[DONE]` follows): an OpenAI
    /// error object whose `type` and `code` say the kind and whose `message` is the error's
    /// client-safe message, never its operator detail.
    pub fn error(&mut self, err: &LlmError, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (kind, code) = error_names(err.kind());
        let body = OutError {
            error: OutErrorBody {
                message: err.client_message(),
                kind,
                param: None,
                code,
            },
        };
        data_line(&body, out);
    }

    fn event(&self, choices: &[OutChoice<'_>], usage: Option<OutUsage>, out: &mut Vec<u8>) {
        let chunk = OutChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        data_line(&chunk, out);
    }
}

fn choice<'a>(index: u32, delta: OutDelta<'a>, finish: Option<&'a str>) -> OutChoice<'a> {
    OutChoice {
        index,
        delta,
        logprobs: None,
        finish_reason: finish,
    }
}

/// `data: <json>\n\n`. Serializing these plain structs cannot fail; if it ever did, the
/// half-written event is taken back, so `out` stays a valid event stream.
fn data_line(value: &impl Serialize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

/// The OpenAI `type` and `code` written for a kind (read back as the same kind, except that a
/// connection failure reads back as a server failure: OpenAI has no name for it).
fn error_names(kind: ErrorKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ErrorKind::RateLimited | ErrorKind::Throttled => {
            ("rate_limit_error", Some("rate_limit_exceeded"))
        }
        ErrorKind::QuotaExceeded | ErrorKind::BudgetExceeded => {
            ("insufficient_quota", Some("insufficient_quota"))
        }
        ErrorKind::Overloaded => ("server_error", Some("overloaded")),
        ErrorKind::Timeout => ("timeout", Some("timeout")),
        ErrorKind::Authentication => ("authentication_error", Some("invalid_api_key")),
        ErrorKind::PermissionDenied => ("permission_error", Some("permission_denied")),
        ErrorKind::ModelNotFound => ("invalid_request_error", Some("model_not_found")),
        ErrorKind::ContextLengthExceeded => {
            ("invalid_request_error", Some("context_length_exceeded"))
        }
        ErrorKind::ContentPolicy => ("invalid_request_error", Some("content_policy_violation")),
        ErrorKind::InvalidRequest => ("invalid_request_error", None),
        _ => ("server_error", Some("server_error")),
    }
}
