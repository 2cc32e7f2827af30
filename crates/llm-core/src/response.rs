//! What a provider answers: [`LlmResponse`], [`Usage`], [`FinishReason`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Token counts of one billed call, split into parts that are priced differently.
///
/// The parts are disjoint, so `cost = input * input_price + cached_input * cached_price +
/// cache_write * cache_write_price + output * output_price`:
///
/// - `input_tokens`: prompt tokens billed at the normal input price. OpenAI's `prompt_tokens`
///   *includes* cached tokens, so an OpenAI client stores `prompt_tokens - cached_tokens` here;
///   Anthropic's `input_tokens` already excludes them.
/// - `cached_input_tokens`: prompt tokens read from the provider's cache (OpenAI
///   `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`).
/// - `cache_write_tokens`: prompt tokens written to the cache (Anthropic
///   `cache_creation_input_tokens`).
/// - `output_tokens`: generated tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Usage with only uncached input and output tokens.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        }
    }

    /// Every prompt token, cached or not.
    pub const fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cached_input_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Every token, prompt and output.
    pub const fn total_tokens(&self) -> u64 {
        self.total_input_tokens().saturating_add(self.output_tokens)
    }
}

/// Why the model stopped generating.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence (OpenAI `stop`, Anthropic `end_turn`/`stop_sequence`).
    #[default]
    Stop,
    /// `max_tokens` reached (OpenAI `length`, Anthropic `max_tokens`).
    Length,
    /// The model asked for a tool (OpenAI `tool_calls`, Anthropic `tool_use`).
    ToolCalls,
    /// The provider's content filter cut the answer.
    ContentFilter,
    /// Anything else, as the provider spelled it.
    Other(String),
}

impl FinishReason {
    /// Maps a provider's spelling (OpenAI or Anthropic) onto a reason.
    pub fn from_provider(s: &str) -> Self {
        match s {
            "stop" | "end_turn" | "stop_sequence" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "tool_use" | "function_call" => FinishReason::ToolCalls,
            "content_filter" | "refusal" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        }
    }

    /// The OpenAI spelling of this reason.
    pub fn as_openai_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(s) => s,
        }
    }
}

/// A completed chat completion.
///
/// ```
/// use towerguard_llm_core::{LlmResponse, Usage};
///
/// let resp = LlmResponse::new("Hi!", "gpt-4o-mini", "openai").with_usage(Usage::new(12, 3));
/// assert_eq!(resp.provider(), "openai");
/// assert_eq!(resp.usage.total_tokens(), 15);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LlmResponse {
    /// The generated text.
    pub content: String,
    /// The model that answered, as the provider named it.
    pub model: Arc<str>,
    /// The provider that served the request (`"openai"`, `"anthropic"`, ...).
    pub provider: Arc<str>,
    /// Billed tokens.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Data added by layers on the way back (e.g. the retry layer's attempt count).
    pub extensions: http::Extensions,
}

impl LlmResponse {
    /// A response with zero usage and [`FinishReason::Stop`].
    pub fn new(
        content: impl Into<String>,
        model: impl Into<Arc<str>>,
        provider: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            content: content.into(),
            model: model.into(),
            provider: provider.into(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            extensions: http::Extensions::new(),
        }
    }

    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the finish reason.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = reason;
        self
    }

    /// The provider that served it.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model that answered.
    pub fn model(&self) -> &str {
        &self.model
    }
}
