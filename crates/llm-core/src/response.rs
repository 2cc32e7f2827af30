//! What a provider answers: [`LlmResponse`] with its [`Choice`]s, [`Usage`], [`FinishReason`].

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use std::pin::Pin;

use futures_core::Stream;

use crate::LlmError;
use crate::message::{Content, Message, Role, ToolCall};
use crate::stream::{ChunkStream, Collector};

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
/// - `output_tokens`: generated tokens, reasoning included (both providers count it there and
///   bill it at the output price); `reasoning_tokens` says how many of them were reasoning
///   (OpenAI `completion_tokens_details.reasoning_tokens`), for information only.
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
    /// How many of `output_tokens` were reasoning (not added to the total: already in it).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Usage with only uncached input and output tokens.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
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
    /// A natural end (OpenAI `stop`, Anthropic `end_turn`).
    #[default]
    Stop,
    /// One of the stop sequences (OpenAI `stop`, Anthropic `stop_sequence`).
    StopSequence,
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
            "stop" | "end_turn" => FinishReason::Stop,
            "stop_sequence" => FinishReason::StopSequence,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "tool_use" | "function_call" => FinishReason::ToolCalls,
            "content_filter" | "refusal" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        }
    }

    /// The OpenAI spelling of this reason.
    pub fn as_openai_str(&self) -> &str {
        match self {
            FinishReason::Stop | FinishReason::StopSequence => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(s) => s,
        }
    }

    /// The Anthropic spelling of this reason.
    pub fn as_anthropic_str(&self) -> &str {
        match self {
            FinishReason::Stop => "end_turn",
            FinishReason::StopSequence => "stop_sequence",
            FinishReason::Length => "max_tokens",
            FinishReason::ToolCalls => "tool_use",
            FinishReason::ContentFilter => "refusal",
            FinishReason::Other(s) => s,
        }
    }
}

/// One answer of a response (OpenAI returns `n` of them; Anthropic one).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Its position among the choices.
    pub index: u32,
    /// The assistant turn: its content (text, thinking, refusal blocks) and tool calls.
    pub message: Message,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The stop sequence that ended it (Anthropic `stop_sequence`).
    pub stop_sequence: Option<String>,
    /// OpenAI's `logprobs` object, as sent.
    pub logprobs: Option<Value>,
}

impl Choice {
    /// A choice of plain text that ended with [`FinishReason::Stop`].
    pub fn text(index: u32, text: impl Into<String>) -> Self {
        Self {
            index,
            message: Message::new(Role::Assistant, Content::Text(text.into())),
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            logprobs: None,
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
/// assert_eq!(resp.text(), "Hi!");
/// assert_eq!(resp.usage.total_tokens(), 15);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct LlmResponse {
    /// The provider's id for it (`chatcmpl-...`, `msg_...`), if it sent one.
    pub id: Option<String>,
    /// The answers; one unless the request asked for `n` of them.
    pub choices: Vec<Choice>,
    /// The model that answered, as the provider named it.
    pub model: Arc<str>,
    /// The provider that served the request (`"openai"`, `"anthropic"`, ...).
    pub provider: Arc<str>,
    /// Billed tokens.
    pub usage: Usage,
    /// When it was made, in Unix seconds (OpenAI `created`).
    pub created: Option<u64>,
    /// Body fields the model does not name (e.g. `system_fingerprint`, `service_tier`), as
    /// the provider sent them.
    pub extra: Map<String, Value>,
    /// Data added by layers on the way back (e.g. the retry layer's attempt count).
    pub extensions: http::Extensions,
    /// What the cost meter charged for this call, in nano-dollars (set by the meter on a
    /// complete answer; a stream is billed when it ends, after the answer left).
    pub cost_nanos: Option<u64>,
    /// The chunks, for a streamed answer (its `choices` are then empty and `usage` zero until
    /// read: see [`into_complete`](Self::into_complete) and [`crate::stream`]).
    pub stream: Option<ChunkStream>,
}

impl LlmResponse {
    /// A streamed answer: `stream` holds its chunks (the first one already arrived).
    pub fn streaming(
        stream: ChunkStream,
        model: impl Into<Arc<str>>,
        provider: impl Into<Arc<str>>,
    ) -> Self {
        let mut resp = Self::with_choices(Vec::new(), model, provider);
        resp.stream = Some(stream);
        resp
    }

    /// Whether this is a streamed answer not yet read.
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Reads a streamed answer to its end and returns it complete (choices, usage, id); a
    /// complete answer is returned as it is. The stream's error item, if it fails, is the
    /// error.
    pub async fn into_complete(mut self) -> Result<LlmResponse, LlmError> {
        let Some(mut stream) = self.stream.take() else {
            return Ok(self);
        };
        let mut collector = Collector::default();
        while let Some(item) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
        {
            collector.push(&item?);
        }
        let mut done = collector.finish(self.provider.clone(), self.model.clone());
        done.extra = std::mem::take(&mut self.extra);
        done.extensions = std::mem::take(&mut self.extensions);
        done.created = self.created;
        done.id = done.id.or(self.id.take());
        Ok(done)
    }

    /// A response of one text choice, with zero usage and [`FinishReason::Stop`].
    pub fn new(
        content: impl Into<String>,
        model: impl Into<Arc<str>>,
        provider: impl Into<Arc<str>>,
    ) -> Self {
        Self::with_choices(vec![Choice::text(0, content)], model, provider)
    }

    /// A response with these choices and zero usage.
    pub fn with_choices(
        choices: Vec<Choice>,
        model: impl Into<Arc<str>>,
        provider: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            id: None,
            choices,
            model: model.into(),
            provider: provider.into(),
            usage: Usage::default(),
            created: None,
            extra: Map::new(),
            extensions: http::Extensions::new(),
            cost_nanos: None,
            stream: None,
        }
    }

    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the first choice's finish reason.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        if let Some(c) = self.choices.first_mut() {
            c.finish_reason = reason;
        }
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

    /// The first choice, if any.
    pub fn first(&self) -> Option<&Choice> {
        self.choices.first()
    }

    /// The first choice's text (empty when there is none).
    pub fn text(&self) -> Cow<'_, str> {
        self.first().map_or(Cow::Borrowed(""), |c| c.message.text())
    }

    /// The first choice's tool calls.
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.first().map_or(&[], |c| &c.message.tool_calls)
    }

    /// The first choice's finish reason ([`FinishReason::Stop`] when there is no choice).
    pub fn finish_reason(&self) -> &FinishReason {
        const STOP: &FinishReason = &FinishReason::Stop;
        self.first().map_or(STOP, |c| &c.finish_reason)
    }

    /// The first choice's refusal, if the model declined.
    pub fn refusal(&self) -> Option<&str> {
        self.first().and_then(|c| c.message.content.refusal())
    }

    /// The first choice's reasoning (thinking) text, if the provider sent it.
    pub fn reasoning(&self) -> Option<&str> {
        self.first().and_then(|c| c.message.content.thinking())
    }
}
