//! Anthropic's Messages JSON (`POST /v1/messages`) <-> the model.
//!
//! # Requests
//!
//! - **System prompt.** Anthropic's top-level `system` (a string, or text blocks that may carry
//!   `cache_control`) is read as one leading [`Role::System`] message (a string as
//!   [`Content::Text`], blocks as [`Content::Parts`]). On encode every [`Role::System`] and
//!   [`Role::Developer`] message, wherever it stands in the conversation, is hoisted into
//!   `system`: a single one with plain text content is written as a string, anything else as
//!   text blocks in order. A non-text block in an instruction is refused.
//! - **User turns.** Blocks `text`, `image` (source `base64`, `url`, `file`), `document`
//!   (source `base64`, `url`, `file`, or `text`, whose plain text is kept as base64
//!   `text/plain` bytes and written back as a `text` source; `title` is the file name) and
//!   `tool_result`. A user turn's `tool_result` blocks become [`Role::Tool`] messages, in
//!   order and before the turn's other blocks, which stay one user message. On encode,
//!   consecutive tool messages, and a user message right after them, become one user turn that
//!   starts with the `tool_result` blocks. A `cache_control` on a `tool_result` block is
//!   moved onto the last block of its content (the same cache breakpoint).
//! - **Assistant turns.** Blocks `text`, `thinking` (with its `signature`),
//!   `redacted_thinking` and `tool_use` become content parts and [`ToolCall`]s; a tool call's
//!   `input` object is kept as JSON text. On encode the content parts come first, then one
//!   `tool_use` block per call, whose arguments are parsed back (`""` is `{}`; text that is not
//!   a JSON object is refused naming `messages[i].tool_calls[j].arguments`). Thinking without a
//!   signature (reasoning read from an OpenAI-compatible server) is left out: Anthropic only
//!   accepts thinking it signed. A refusal part is sent as text.
//! - **Tools.** `tools[{name, description, input_schema, cache_control, strict}]`; a built-in
//!   tool (another `type`, e.g. `web_search_20250305`) is refused naming `tools[i].type`.
//!   `tool_choice` `auto`/`any`/`tool{name}`/`none` <-> [`ToolChoice`], and
//!   `disable_parallel_tool_use` is the inverse of `parallel_tool_calls` (sent with
//!   `tool_choice: auto` when only `parallel_tool_calls: false` is set).
//! - **Reasoning.** `thinking` `{type: enabled, budget_tokens}` / `{type: disabled}` <->
//!   [`Thinking`]. A request with `reasoning_effort` but no `thinking` is sent with thinking
//!   enabled at the budget LiteLLM uses for the same effort: `minimal` and `low` 1,024 tokens
//!   (Anthropic's minimum), `medium` 2,048, `high` 4,096, `xhigh` 8,192; `none` sends no
//!   thinking; another effort is refused. The budget must stay below `max_tokens`.
//! - **Output format.** [`ResponseFormat::JsonSchema`] is sent as
//!   `output_format: {type: json_schema, schema}` (its description, if any, goes into the
//!   schema's own `description` when the schema has none); that field and `strict` tools need
//!   the beta header [`beta_headers`] returns. An `output_format` read is a JSON Schema format
//!   named `"response"`, strict (Anthropic always follows the schema).
//!   [`ResponseFormat::JsonObject`] is refused; [`ResponseFormat::Text`] sends nothing.
//! - **Other fields.** `max_tokens` (encode: [`SamplingParams::max_output_tokens`], else
//!   `default_max_tokens`), `stop_sequences` <-> `stop`, `temperature`, `top_p`, `top_k`,
//!   `stream` (sent only when true), `metadata.user_id` <-> [`ChatOptions::user`] (other
//!   `metadata` keys <-> [`ChatOptions::metadata`]). Every other top-level field (e.g.
//!   `service_tier`, `container`, `mcp_servers`) is kept in [`ChatOptions::extra_body`] and
//!   written back where the model did not set that key.
//! - **Refused** (they would change the answer): `n > 1`, `logprobs: true`, `top_logprobs`,
//!   a non-zero presence or frequency penalty, audio parts, JSON-object mode, tool calls on a
//!   turn that is not the assistant's, a tool message without `tool_call_id`. **Left out**
//!   (hints): a participant `name`, `seed`, `prompt_cache_key`, `safety_identifier`, an
//!   image's `detail`, `cache_control` on a `tool_use` block (the model's tool calls carry
//!   none).
//! - Fields of a message or block that the model cannot carry (e.g. `citations` on a
//!   document) are refused when read, naming the field, rather than dropped.
//!
//! # Responses
//!
//! `id`, `type: "message"` (required: an error object or any other type is a malformed
//! answer), `role: "assistant"`, `model`, the `content` blocks (`text`, `thinking`,
//! `redacted_thinking`, `tool_use`; any other block type is a malformed answer rather than
//! silently dropped; block fields such as `citations` are not kept), `stop_reason` (required;
//! `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `refusal`, anything else such as
//! `pause_turn` as [`FinishReason::Other`]), `stop_sequence`, and `usage`: `input_tokens`
//! (which excludes cache reads and writes) is [`Usage::input_tokens`],
//! `cache_read_input_tokens` is [`Usage::cached_input_tokens`], `cache_creation_input_tokens`
//! is [`Usage::cache_write_tokens`]. Unknown top-level fields go to [`LlmResponse::extra`];
//! unknown `usage` fields (`cache_creation`, `server_tool_use`, `service_tier`) are kept as an
//! object under `extra["usage"]` and merged back into `usage` on encode.
//! [`encode_response`] writes the first choice.
//!
//! [`Role::System`]: crate::Role::System
//! [`Role::Developer`]: crate::Role::Developer
//! [`Role::Tool`]: crate::Role::Tool
//! [`Content::Text`]: crate::Content::Text
//! [`Content::Parts`]: crate::Content::Parts
//! [`ToolCall`]: crate::ToolCall
//! [`ToolChoice`]: crate::ToolChoice
//! [`Thinking`]: crate::Thinking
//! [`ResponseFormat::JsonSchema`]: crate::ResponseFormat::JsonSchema
//! [`ResponseFormat::JsonObject`]: crate::ResponseFormat::JsonObject
//! [`ResponseFormat::Text`]: crate::ResponseFormat::Text
//! [`SamplingParams::max_output_tokens`]: crate::SamplingParams::max_output_tokens
//! [`ChatOptions::user`]: crate::ChatOptions::user
//! [`ChatOptions::metadata`]: crate::ChatOptions::metadata
//! [`ChatOptions::extra_body`]: crate::ChatOptions::extra_body
//! [`FinishReason::Other`]: crate::FinishReason::Other
//! [`Usage::input_tokens`]: crate::Usage::input_tokens
//! [`Usage::cached_input_tokens`]: crate::Usage::cached_input_tokens
//! [`Usage::cache_write_tokens`]: crate::Usage::cache_write_tokens
//! [`LlmResponse::extra`]: crate::LlmResponse::extra

mod request;
mod response;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};

use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{invalid, malformed};
use crate::{
    CacheControl, ChatOptions, Choice, Content, FinishReason, LlmError, LlmRequest, LlmResponse,
    MediaSource, Message, Part, ResponseFormat, Role, SamplingParams, Thinking, Tool, ToolCall,
    ToolChoice, Usage,
};

/// The `anthropic-beta` value that turns on structured outputs (`output_format` and `strict`
/// tools).
pub const STRUCTURED_OUTPUTS_BETA: &str = "structured-outputs-2025-11-13";

/// The `anthropic-beta` value that turns on the Files API (`file` sources).
pub const FILES_API_BETA: &str = "files-api-2025-04-14";

/// The name given to a JSON Schema output format read from Anthropic, which has no name.
pub const OUTPUT_FORMAT_NAME: &str = "response";

/// The `anthropic-beta` header value the body of `req` needs, if any: [`STRUCTURED_OUTPUTS_BETA`]
/// when it asks for a JSON Schema output or has a `strict` tool, [`FILES_API_BETA`] when it
/// refers to an uploaded file, both comma-separated when it needs both. The provider client
/// sends it beside any `anthropic-beta` the caller set in
/// [`ChatOptions::extra_headers`](crate::ChatOptions::extra_headers).
///
/// ```
/// use serde_json::json;
/// use towerguard_llm_core::{wire::anthropic, LlmRequest, Message, ResponseFormat};
///
/// let mut req = LlmRequest::new("claude-sonnet-4-5", vec![Message::user("List three colours")]);
/// assert_eq!(anthropic::beta_headers(&req), None);
/// req.options_mut().response_format = Some(ResponseFormat::JsonSchema {
///     name: "colours".into(),
///     description: None,
///     schema: json!({"type": "array", "items": {"type": "string"}}),
///     strict: Some(true),
/// });
/// assert_eq!(anthropic::beta_headers(&req), Some("structured-outputs-2025-11-13"));
/// ```
pub fn beta_headers(req: &LlmRequest) -> Option<&'static str> {
    let options = req.options();
    let structured = matches!(
        options.response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ) || options.tools.iter().any(|t| t.strict == Some(true));
    let files = req.messages().iter().any(|m| match &m.content {
        Content::Text(_) => false,
        Content::Parts(parts) => parts.iter().any(|p| {
            matches!(
                p,
                Part::Image {
                    source: MediaSource::FileId(_),
                    ..
                } | Part::File {
                    source: MediaSource::FileId(_),
                    ..
                }
            )
        }),
    });
    match (structured, files) {
        (false, false) => None,
        (true, false) => Some(STRUCTURED_OUTPUTS_BETA),
        (false, true) => Some(FILES_API_BETA),
        (true, true) => Some("structured-outputs-2025-11-13,files-api-2025-04-14"),
    }
}

// ---------------------------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------------------------

/// `cache_control` on a block or tool.
#[derive(Debug, Serialize, Deserialize)]
struct WireCache {
    #[serde(rename = "type")]
    kind: CacheKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
enum CacheKind {
    #[serde(rename = "ephemeral")]
    Ephemeral,
}

/// Where an image's or document's bytes are.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source {
    Base64 { media_type: String, data: String },
    Url { url: String },
    Text { media_type: String, data: String },
    File { file_id: String },
    Content { content: Value },
}

/// A tool result's content: a string or blocks (read block by block, for their paths).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

/// A content block, in a request or an answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<WireCache>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    Image {
        source: Source,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<WireCache>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    Document {
        source: Source,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<WireCache>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
        #[serde(default, skip_serializing)]
        cache_control: Option<WireCache>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<WireCache>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    RedactedThinking {
        data: String,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
}

/// A tool definition.
#[derive(Debug, Serialize, Deserialize)]
struct WireTool {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_control: Option<WireCache>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(flatten, skip_serializing)]
    extra: Map<String, Value>,
}

/// `tool_choice`.
#[derive(Debug, Serialize, Deserialize)]
struct WireToolChoice {
    #[serde(rename = "type")]
    kind: ToolChoiceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToolChoiceKind {
    Auto,
    Any,
    Tool,
    None,
}

/// `thinking`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireThinking {
    Enabled { budget_tokens: u32 },
    Disabled {},
}

/// `output_format`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireOutputFormat {
    JsonSchema { schema: Value },
}

/// A response body.
#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    role: String,
    #[serde(default)]
    model: Option<String>,
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A response's `usage`.
#[derive(Debug, Deserialize)]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Base64 of a text/plain document: the standard alphabet, written padded, read with or
/// without its padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn text_block(text: String, cache: &Option<CacheControl>) -> Block {
    Block::Text {
        text,
        cache_control: encode_cache(cache),
        extra: Map::new(),
    }
}

/// Tool call arguments as the JSON object Anthropic's `input` is (`""` is `{}`).
fn arguments_object(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("must be a JSON object (Anthropic's tool input is one)".into()),
        Err(e) => Err(format!("is not valid JSON ({e})")),
    }
}

fn encode_cache(cache: &Option<CacheControl>) -> Option<WireCache> {
    cache.as_ref().map(|c| WireCache {
        kind: CacheKind::Ephemeral,
        ttl: c.ttl.clone(),
    })
}
