//! Anthropic's Messages stream (`stream: true`) <-> [`Chunk`]s, one server-sent event at a time.
//!
//! # Reading ([`StreamDecoder`])
//!
//! The event's `type` is read from its data (Anthropic repeats it as the `event:` name; the
//! name is used only when the data has no `type`). The stream ends with `message_stop`
//! ([`Step::Done`]). There is one choice, 0.
//!
//! | event | chunks |
//! |---|---|
//! | `message_start` | [`Chunk::Start`] (`message.id`, `message.model`), then [`Chunk::Usage`] if the message has `usage` |
//! | `content_block_start` `text` / `thinking` | [`Chunk::Text`] / [`Chunk::Reasoning`] if it starts with text (it usually starts empty) |
//! | `content_block_start` `redacted_thinking` | [`Chunk::RedactedThinking`] (its `data`) |
//! | `content_block_start` `tool_use` | [`Chunk::ToolCall`] with its `id` and `name`; tool calls are numbered 0, 1, ... in the order their blocks start |
//! | `content_block_delta` `text_delta` / `thinking_delta` / `signature_delta` | [`Chunk::Text`] / [`Chunk::Reasoning`] / [`Chunk::Signature`] |
//! | `content_block_delta` `input_json_delta` | [`Chunk::ToolCall`] with its `partial_json` as more arguments, for the tool call of that block |
//! | `message_delta` | [`Chunk::Finish`] (`delta.stop_reason`), then [`Chunk::Usage`] if it has `usage` |
//! | `message_stop` | none: [`Step::Done`] |
//! | `ping`, `content_block_stop` | none |
//! | `error` | the classified [`LlmError`] |
//!
//! Usage: `message_start` gives input (`input_tokens`, which excludes cache reads and writes),
//! `cache_read_input_tokens`, `cache_creation_input_tokens` and the output so far; the counts
//! of a `message_delta` are cumulative and replace those it names, the others are kept (so
//! the input read at the start stays when the delta names only `output_tokens`).
//!
//! Anthropic's versioning policy says new event types, block types and fields may appear and
//! clients must ignore them: an unknown event type, an unknown block type (e.g.
//! `server_tool_use`, `web_search_tool_result`) with its deltas, an unknown delta type and
//! unknown fields are skipped. An `error` event (`{"type":"error","error":{"type":
//! "overloaded_error","message":"Overloaded"}}`) is the error its type means outside a stream
//! (`overloaded_error` as a 529, so [`Overloaded`](crate::ErrorKind::Overloaded); `api_error`
//! a 500, [`Server`](crate::ErrorKind::Server); `rate_limit_error` a 429, ...), classified by
//! llm-core's rules ([`crate::classify_http_error`]). Data that is not JSON, has no `type`, or
//! has a field of the wrong type is a [`Server`](crate::ErrorKind::Server) error whose detail
//! starts "malformed stream event".
//!
//! # Writing ([`StreamWriter`])
//!
//! The reverse, for a gateway answering an Anthropic client: `event: <type>\ndata: {...}\n\n`
//! events. `message_start` is written before the first content (with the usage reported so
//! far), blocks are opened (`content_block_start`) and closed (`content_block_stop`) as the kind
//! of chunk changes (text, thinking with its signature, one block per tool call, redacted
//! thinking as a block of its own), [`Chunk::Finish`] and the [`Chunk::Usage`] after it become
//! `message_delta` (with cumulative usage, input included), and [`StreamWriter::finish`] writes
//! the `message_delta` if none was written and `message_stop`. Anthropic has one choice: chunks
//! of other choices are left out; a refusal is written as text, as
//! [`super::anthropic::encode_response`] does. Tool-call pieces must come call after call (as
//! both providers send them): a piece of an earlier call after another call started opens a
//! new block.
//!
//! ```
//! use towerguard_llm_core::wire::{Step, anthropic_sse::{StreamDecoder, StreamWriter}};
//! use towerguard_llm_core::Chunk;
//!
//! let mut decoder = StreamDecoder::default();
//! let mut chunks = Vec::new();
//! let data = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
//! decoder.decode("content_block_delta", data, &mut chunks).unwrap();
//! assert_eq!(chunks, [Chunk::Text { choice: 0, text: "Hi".into() }]);
//! assert_eq!(decoder.decode("message_stop", r#"{"type":"message_stop"}"#, &mut chunks).unwrap(), Step::Done);
//!
//! let mut writer = StreamWriter::new("msg_1", "claude-sonnet-4-5");
//! let mut sse = Vec::new();
//! writer.write(&chunks[0], &mut sse);
//! writer.finish(&mut sse);
//! assert!(sse.starts_with(b"event: message_start\n"));
//! assert!(sse.ends_with(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Step, error_event, malformed_event};
use crate::stream::{Chunk, ToolCallDelta};
use crate::{ErrorKind, FinishReason, LlmError, Usage};

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default, borrow)]
    delta: Option<WireDelta<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// A `content_block_delta`'s `delta`, or a `message_delta`'s (`stop_reason`).
#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// `base` with the counts this object names replaced.
    fn over(&self, base: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.unwrap_or(base.input_tokens),
            output_tokens: self.output_tokens.unwrap_or(base.output_tokens),
            cached_input_tokens: self
                .cache_read_input_tokens
                .unwrap_or(base.cached_input_tokens),
            cache_write_tokens: self
                .cache_creation_input_tokens
                .unwrap_or(base.cache_write_tokens),
            reasoning_tokens: base.reasoning_tokens,
        }
    }
}

/// Reads an Anthropic Messages stream one event at a time (see the
/// [module documentation](self) for what becomes which chunk).
///
/// It remembers which content blocks are tool calls (to number their argument pieces), the
/// usage so far (Anthropic's counts are cumulative) and whether `message_stop` came: one
/// decoder per stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// `(block index, tool call index)` of each `tool_use` block started.
    tools: Vec<(u32, u32)>,
    usage: Usage,
    done: bool,
}

impl StreamDecoder {
    /// Reads one event: `event` is its `event:` name (`""` if none), `data` its `data:` lines
    /// joined. The chunks it means are pushed onto `out` (a buffer the caller reuses; nothing
    /// is cleared). [`Step::Done`] once `message_stop` arrived; events after it are ignored.
    ///
    /// # Errors
    ///
    /// An `error` event as the classified [`LlmError`]; data that is not JSON, has no type,
    /// or has a field of the wrong type as a [`Server`](crate::ErrorKind::Server) "malformed
    /// stream event" error. Nothing is pushed for an event that fails.
    pub fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut Vec<Chunk>,
    ) -> Result<Step, LlmError> {
        if self.done {
            return Ok(Step::Done);
        }
        let parsed = if data.trim_start().starts_with('{') {
            serde_json::from_str::<WireEvent<'_>>(data).map_err(|e| e.to_string())
        } else {
            Err("not a JSON object".to_owned())
        };
        let wire = match parsed {
            Ok(w) => w,
            Err(why) if event == "error" => {
                return Err(error_event(500, data)
                    .with_detail(format!("error event in the stream, unreadable ({why})")));
            }
            Err(why) => return Err(malformed_event(format_args!("not an event object ({why})"))),
        };
        let kind: &str = match &wire.kind {
            Some(k) => k,
            None if !event.is_empty() => event,
            None => return Err(malformed_event("the event has no `type`")),
        };
        match kind {
            "message_start" => {
                let Some(message) = wire.message else {
                    return Err(malformed_event("`message_start` without its `message`"));
                };
                out.push(Chunk::Start {
                    id: message.id,
                    model: message.model,
                });
                if let Some(u) = message.usage {
                    self.usage = u.over(Usage::default());
                    out.push(Chunk::Usage(self.usage));
                }
            }
            "content_block_start" => {
                let block = wire.content_block.unwrap_or(Value::Null);
                self.block_start(wire.index, &block, out)?;
            }
            "content_block_delta" => {
                if let Some(delta) = wire.delta {
                    self.block_delta(wire.index, delta, out);
                }
            }
            "message_delta" => {
                if let Some(reason) = wire.delta.and_then(|d| d.stop_reason) {
                    out.push(Chunk::Finish {
                        choice: 0,
                        reason: FinishReason::from_provider(&reason),
                    });
                }
                if let Some(u) = wire.usage {
                    self.usage = u.over(self.usage);
                    out.push(Chunk::Usage(self.usage));
                }
            }
            "message_stop" => {
                self.done = true;
                return Ok(Step::Done);
            }
            "error" => return Err(error_event(status_of(data), data)),
            // `ping`, `content_block_stop`, and types added after this was written.
            _ => {}
        }
        Ok(Step::Continue)
    }

    /// Whether `message_stop` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn block_start(
        &mut self,
        index: Option<u32>,
        block: &Value,
        out: &mut Vec<Chunk>,
    ) -> Result<(), LlmError> {
        let field = |key: &str| -> Result<Option<&str>, LlmError> {
            match block.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(malformed_event(format_args!(
                    "`content_block.{key}` must be a string"
                ))),
            }
        };
        let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        match field("type")? {
            Some("text") => {
                if let Some(text) = owned(field("text")?) {
                    out.push(Chunk::Text { choice: 0, text });
                }
            }
            Some("thinking") => {
                if let Some(text) = owned(field("thinking")?) {
                    out.push(Chunk::Reasoning { choice: 0, text });
                }
                if let Some(signature) = owned(field("signature")?) {
                    out.push(Chunk::Signature {
                        choice: 0,
                        signature,
                    });
                }
            }
            Some("redacted_thinking") => {
                let data = field("data")?.unwrap_or_default().to_owned();
                out.push(Chunk::RedactedThinking { choice: 0, data });
            }
            Some("tool_use") => {
                let Some(block_index) = index else {
                    return Err(malformed_event("a `tool_use` block without its `index`"));
                };
                let tool = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.push((block_index, tool));
                out.push(Chunk::ToolCall(ToolCallDelta {
                    choice: 0,
                    index: tool,
                    id: owned(field("id")?),
                    name: owned(field("name")?),
                    arguments: String::new(),
                }));
            }
            // server tools, their results, and block types added later
            _ => {}
        }
        Ok(())
    }

    fn block_delta(&mut self, index: Option<u32>, delta: WireDelta<'_>, out: &mut Vec<Chunk>) {
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        match delta.kind.as_deref() {
            Some("text_delta") => {
                if let Some(text) = nonempty(delta.text) {
                    out.push(Chunk::Text { choice: 0, text });
                }
            }
            Some("thinking_delta") => {
                if let Some(text) = nonempty(delta.thinking) {
                    out.push(Chunk::Reasoning { choice: 0, text });
                }
            }
            Some("signature_delta") => {
                if let Some(signature) = nonempty(delta.signature) {
                    out.push(Chunk::Signature {
                        choice: 0,
                        signature,
                    });
                }
            }
            Some("input_json_delta") => {
                // Only client tool calls: a server tool's input is not the caller's to run.
                let tool = index.and_then(|i| {
                    self.tools
                        .iter()
                        .rev()
                        .find(|(block, _)| *block == i)
                        .map(|(_, tool)| *tool)
                });
                if let (Some(tool), Some(arguments)) = (tool, nonempty(delta.partial_json)) {
                    out.push(Chunk::ToolCall(ToolCallDelta {
                        choice: 0,
                        index: tool,
                        id: None,
                        name: None,
                        arguments,
                    }));
                }
            }
            // `citations_delta` and types added later
            _ => {}
        }
    }
}

/// The HTTP status Anthropic answers an error of this type with outside a stream.
fn status_of(data: &str) -> u16 {
    let value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    let ty = value
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match ty {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        // `api_error` and anything unknown: a failure on Anthropic's side
        _ => 500,
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

#[derive(Serialize)]
struct OutUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

impl From<&Usage> for OutUsage {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_write_tokens,
            cache_read_input_tokens: u.cached_input_tokens,
        }
    }
}

#[derive(Serialize)]
struct OutMessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: OutMessage<'a>,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: OutUsage,
}

#[derive(Serialize)]
struct OutBlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: OutBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: OutEmpty,
    },
}

#[derive(Serialize)]
struct OutEmpty {}

#[derive(Serialize)]
struct OutBlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: OutDelta<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum OutDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct OutIndex {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct OutMessageDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: OutStop<'a>,
    usage: OutUsage,
}

#[derive(Serialize)]
struct OutStop<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutType {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct OutError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: OutErrorBody<'a>,
}

#[derive(Serialize)]
struct OutErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// The content block open in a [`StreamWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Thinking,
    Tool(u32),
}

/// Writes [`Chunk`]s as Anthropic Messages stream events (see the
/// [module documentation](self)): for a gateway answering an Anthropic client, whatever
/// provider served the answer.
#[derive(Debug)]
pub struct StreamWriter {
    id: String,
    model: String,
    started: bool,
    usage: Usage,
    open: Open,
    next_block: u32,
    stop: Option<FinishReason>,
    delta_sent: bool,
    finished: bool,
}

impl StreamWriter {
    /// A writer whose `message_start` names this `id` (`msg_...`) and `model`. A
    /// [`Chunk::Start`] does not change them: the gateway decides what its client sees.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            started: false,
            usage: Usage::default(),
            open: Open::None,
            next_block: 0,
            stop: None,
            delta_sent: false,
            finished: false,
        }
    }

    /// Appends the events of one chunk to `out` (see the [module documentation](self)):
    /// `message_start` before the first content, block starts and stops as the kind of chunk
    /// changes, the deltas. [`Chunk::Start`] and usage reported before the first content write
    /// nothing yet (the usage goes into `message_start`); usage after [`Chunk::Finish`] writes
    /// the `message_delta`. Nothing after [`finish`](Self::finish) or [`error`](Self::error).
    pub fn write(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        match chunk {
            Chunk::Start { .. } => {}
            Chunk::Usage(u) => {
                self.usage = *u;
                if self.stop.is_some() {
                    self.message_delta(out);
                }
            }
            Chunk::Finish { choice: 0, reason } => {
                self.start(out);
                self.close(out);
                self.stop = Some(reason.clone());
                self.delta_sent = false;
            }
            Chunk::Text { choice: 0, text } | Chunk::Refusal { choice: 0, text } => {
                self.open(Open::Text, out);
                let delta = OutDelta::Text { text };
                self.delta(delta, out);
            }
            Chunk::Reasoning { choice: 0, text } => {
                self.open(Open::Thinking, out);
                self.delta(OutDelta::Thinking { thinking: text }, out);
            }
            Chunk::Signature {
                choice: 0,
                signature,
            } => {
                self.open(Open::Thinking, out);
                self.delta(OutDelta::Signature { signature }, out);
            }
            Chunk::RedactedThinking { choice: 0, data } => {
                self.start(out);
                self.close(out);
                let index = self.next_block;
                self.next_block += 1;
                let start = OutBlockStart {
                    kind: "content_block_start",
                    index,
                    content_block: OutBlock::RedactedThinking { data },
                };
                event("content_block_start", &start, out);
                let stop = OutIndex {
                    kind: "content_block_stop",
                    index,
                };
                event("content_block_stop", &stop, out);
            }
            Chunk::ToolCall(d) if d.choice == 0 => {
                if self.open != Open::Tool(d.index) {
                    self.start(out);
                    self.close(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    let start = OutBlockStart {
                        kind: "content_block_start",
                        index,
                        content_block: OutBlock::ToolUse {
                            id: d.id.as_deref().unwrap_or(""),
                            name: d.name.as_deref().unwrap_or(""),
                            input: OutEmpty {},
                        },
                    };
                    event("content_block_start", &start, out);
                    self.open = Open::Tool(d.index);
                }
                if !d.arguments.is_empty() {
                    let delta = OutDelta::InputJson {
                        partial_json: &d.arguments,
                    };
                    self.delta(delta, out);
                }
            }
            // other choices: Anthropic answers with one
            _ => {}
        }
    }

    /// Appends the end of the stream (once): `message_start` if nothing was written, the open
    /// block's `content_block_stop`, the `message_delta` if none was written since the last
    /// [`Chunk::Finish`] (`end_turn` when no finish reason came), and `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close(out);
        if !self.delta_sent {
            self.message_delta(out);
        }
        self.finished = true;
        event(
            "message_stop",
            &OutType {
                kind: "message_stop",
            },
            out,
        );
    }

    /// Appends an `error` event for `err` and ends the stream (nothing follows): its `type`
    /// says the kind (`overloaded_error`, `rate_limit_error`, `api_error`, ...) and its
    /// `message` is the error's client-safe message, never its operator detail.
    pub fn error(&mut self, err: &LlmError, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let body = OutError {
            kind: "error",
            error: OutErrorBody {
                kind: error_type(err.kind()),
                message: err.client_message(),
            },
        };
        event("error", &body, out);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let start = OutMessageStart {
            kind: "message_start",
            message: OutMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: OutUsage::from(&self.usage),
            },
        };
        event("message_start", &start, out);
    }

    /// Makes `kind` the open block (closing another one first).
    fn open(&mut self, kind: Open, out: &mut Vec<u8>) {
        self.start(out);
        if self.open == kind {
            return;
        }
        self.close(out);
        let content_block = match kind {
            Open::Thinking => OutBlock::Thinking {
                thinking: "",
                signature: "",
            },
            _ => OutBlock::Text { text: "" },
        };
        let start = OutBlockStart {
            kind: "content_block_start",
            index: self.next_block,
            content_block,
        };
        event("content_block_start", &start, out);
        self.next_block += 1;
        self.open = kind;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open == Open::None {
            return;
        }
        self.open = Open::None;
        let stop = OutIndex {
            kind: "content_block_stop",
            index: self.next_block - 1,
        };
        event("content_block_stop", &stop, out);
    }

    fn delta(&self, delta: OutDelta<'_>, out: &mut Vec<u8>) {
        let body = OutBlockDelta {
            kind: "content_block_delta",
            index: self.next_block.saturating_sub(1),
            delta,
        };
        event("content_block_delta", &body, out);
    }

    fn message_delta(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        self.delta_sent = true;
        let reason = self.stop.as_ref().unwrap_or(&FinishReason::Stop);
        let body = OutMessageDelta {
            kind: "message_delta",
            delta: OutStop {
                stop_reason: reason.as_anthropic_str(),
                stop_sequence: None,
            },
            usage: OutUsage::from(&self.usage),
        };
        event("message_delta", &body, out);
    }
}

/// `event: <name>\ndata: <json>\n\n`. Serializing these plain structs cannot fail; if it ever
/// did, the half-written event is taken back, so `out` stays a valid event stream.
fn event(name: &str, value: &impl Serialize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

/// The Anthropic error type written for a kind.
fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::RateLimited | ErrorKind::Throttled => "rate_limit_error",
        ErrorKind::QuotaExceeded | ErrorKind::BudgetExceeded => "billing_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::ModelNotFound => "not_found_error",
        ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy => {
            "invalid_request_error"
        }
        ErrorKind::Timeout => "timeout_error",
        _ => "api_error",
    }
}
