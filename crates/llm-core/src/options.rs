//! What a request asks besides its messages and sampling: tools, output format, reasoning,
//! identity, caching, and the provider-specific fields the model does not name
//! ([`ChatOptions`]).

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::message::CacheControl;

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// Its parameters as a JSON Schema object (Anthropic's `input_schema`).
    pub parameters: Value,
    /// OpenAI's `strict`: the arguments follow the schema exactly (Anthropic's `strict` too).
    pub strict: Option<bool>,
    /// Anthropic's cache breakpoint after this tool definition.
    pub cache_control: Option<CacheControl>,
}

impl Tool {
    /// A function tool with these JSON Schema parameters.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            parameters,
            strict: None,
            cache_control: None,
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolChoice {
    /// The model decides (OpenAI `auto`, Anthropic `auto`).
    Auto,
    /// No tool (OpenAI `none`, Anthropic `none`).
    None,
    /// Some tool (OpenAI `required`, Anthropic `any`).
    Required,
    /// This function (OpenAI `{"type":"function",...}`, Anthropic `{"type":"tool",...}`).
    Function(String),
}

/// The shape of the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object (OpenAI's JSON mode).
    JsonObject,
    /// JSON following a schema (OpenAI `json_schema`, Anthropic's `output_format`).
    JsonSchema {
        /// The schema's name.
        name: String,
        /// What the output is, for the model.
        description: Option<String>,
        /// The JSON Schema.
        schema: Value,
        /// Whether the schema is followed exactly.
        strict: Option<bool>,
    },
}

/// Extended thinking with a token budget (Anthropic's `thinking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Thinking {
    /// Thinking on, with at most this many tokens of it (part of `max_tokens`).
    Enabled {
        /// The most tokens the model may think for.
        budget_tokens: u32,
    },
    /// Thinking off.
    Disabled,
}

/// Everything a chat request carries besides the model, the messages and the sampling
/// parameters. `None` or empty means "not sent".
///
/// ```
/// use serde_json::json;
/// use towerguard_llm_core::{ChatOptions, Tool, ToolChoice};
///
/// let mut options = ChatOptions::default();
/// options.tools.push(Tool::function(
///     "get_weather",
///     "The weather in a city",
///     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
/// ));
/// options.tool_choice = Some(ToolChoice::Auto);
/// // A field towerguard does not name, sent as it is:
/// options.extra_body.insert("service_tier".into(), json!("flex"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ChatOptions {
    /// The functions the model may call.
    pub tools: Vec<Tool>,
    /// Whether and which tool it must call.
    pub tool_choice: Option<ToolChoice>,
    /// Whether it may call several tools in one turn (Anthropic: the inverse of
    /// `disable_parallel_tool_use`).
    pub parallel_tool_calls: Option<bool>,
    /// The answer's shape.
    pub response_format: Option<ResponseFormat>,
    /// OpenAI's `reasoning_effort` (`"minimal"`, `"low"`, `"medium"`, `"high"`, ...).
    pub reasoning_effort: Option<String>,
    /// Anthropic's extended thinking.
    pub thinking: Option<Thinking>,
    /// OpenAI's `user` (an end-user id; Anthropic's `metadata.user_id`).
    pub user: Option<String>,
    /// OpenAI's `safety_identifier`.
    pub safety_identifier: Option<String>,
    /// Request metadata (OpenAI `metadata`: string values; Anthropic `metadata`).
    pub metadata: Option<Map<String, Value>>,
    /// OpenAI's `prompt_cache_key`.
    pub prompt_cache_key: Option<String>,
    /// Whether the caller asked for a stream (`stream: true`).
    pub stream: bool,
    /// Body fields the model does not name, sent unchanged (e.g. `service_tier`, `store`,
    /// `top_k` for a vLLM server, Anthropic's `container`). A field here never overrides
    /// one the model sets.
    pub extra_body: Map<String, Value>,
    /// Headers sent with this request (e.g. `anthropic-beta`, `OpenAI-Organization`), after the
    /// provider's own.
    pub extra_headers: HeaderMap,
}
