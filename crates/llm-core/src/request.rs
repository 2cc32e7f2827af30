//! The request every layer sees: [`LlmRequest`] and its parts.

use std::fmt;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};
use towerguard_outcome::AttemptHook;

use crate::message::Message;
use crate::options::ChatOptions;

/// Sampling parameters. `None` means "the provider's default".
///
/// Cheap to clone: the only heap part (stop sequences) is shared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingParams {
    /// Upper bound on generated tokens (OpenAI's older `max_tokens`, Anthropic's
    /// `max_tokens`). Budgets reserve against it, so set it (or `max_completion_tokens`).
    pub max_tokens: Option<u32>,
    /// OpenAI's `max_completion_tokens`, which reasoning models require in place of
    /// `max_tokens` (it counts reasoning tokens too). Anthropic reads it as `max_tokens`.
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Top-k sampling (Anthropic, Ollama).
    pub top_k: Option<u32>,
    /// OpenAI presence penalty.
    pub presence_penalty: Option<f32>,
    /// OpenAI frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// Seed for reproducible sampling, where supported.
    pub seed: Option<u64>,
    /// Stop sequences.
    pub stop: Option<Arc<[String]>>,
    /// How many answers to generate (OpenAI `n`; Anthropic has one).
    pub n: Option<u32>,
    /// Whether to return log probabilities of the output tokens (OpenAI).
    pub logprobs: Option<bool>,
    /// How many most likely tokens to return at each position (OpenAI, 0 to 20).
    pub top_logprobs: Option<u8>,
}

impl SamplingParams {
    /// The most tokens the answer may take: `max_completion_tokens`, else `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// The caller's identity: per-client limits and budgets key on it.
///
/// Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(Arc<str>);

impl ClientKey {
    /// A client key from any string (a user id, a tenant, a hashed API key).
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a shared string (cloning it is a reference-count increment).
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientKey").field(&&*self.0).finish()
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ClientKey {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for ClientKey {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// An identifier for one logical request, kept across retries and fallbacks.
///
/// Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

impl RequestId {
    /// A request id from a string the caller already has (e.g. an `x-request-id` header).
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// A fresh process-unique id (`req-` followed by a counter in hex).
    pub fn generate() -> Self {
        let n = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
        Self(format!("req-{n:08x}").into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&&*self.0).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A chat-completion request, the input of every `Service<LlmRequest>`.
///
/// Retries, fallbacks and hedging clone requests, so everything but the extensions lives
/// behind one shared pointer: a clone costs one reference-count increment (plus the
/// [`http::Extensions`] map, which is free while empty). Setters copy the shared part only if
/// another clone still uses it (copy on write).
///
/// ```
/// use towerguard_llm_core::{LlmRequest, Message};
///
/// let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("Hello")])
///     .with_max_tokens(256)
///     .with_temperature(0.2)
///     .with_client_key("tenant-42");
/// assert_eq!(req.model(), "gpt-4o-mini");
/// assert_eq!(req.client_key().map(|k| k.as_str()), Some("tenant-42"));
/// let mut retry = req.clone(); // cheap
/// assert_eq!(retry.request_id(), req.request_id());
/// retry.set_model("claude-sonnet-4-5"); // copies on write; `req` is unchanged
/// assert_eq!(req.model(), "gpt-4o-mini");
/// ```
#[derive(Debug, Clone)]
pub struct LlmRequest {
    shared: Arc<Parts>,
    /// The user's own data, carried through every layer.
    pub extensions: http::Extensions,
    /// The cost meter's handle, asked before each attempt below it (see [`AttemptHook`]).
    attempt_hook: Option<AttemptHook>,
}

#[derive(Debug, Clone)]
struct Parts {
    model: Arc<str>,
    messages: Arc<[Message]>,
    params: SamplingParams,
    options: Arc<ChatOptions>,
    client_key: Option<ClientKey>,
    request_id: RequestId,
}

impl LlmRequest {
    /// A request for `model` with these messages, default parameters and a fresh request id.
    pub fn new(model: impl Into<Arc<str>>, messages: impl Into<Arc<[Message]>>) -> Self {
        Self {
            shared: Arc::new(Parts {
                model: model.into(),
                messages: messages.into(),
                params: SamplingParams::default(),
                options: Arc::default(),
                client_key: None,
                request_id: RequestId::generate(),
            }),
            extensions: http::Extensions::new(),
            attempt_hook: None,
        }
    }

    /// The handle of the cost meter above, which a fallback asks before each attempt.
    pub fn attempt_hook(&self) -> Option<&AttemptHook> {
        self.attempt_hook.as_ref()
    }

    /// Sets (the cost meter does) or clears the handle of the meter above.
    pub fn set_attempt_hook(&mut self, hook: Option<AttemptHook>) {
        self.attempt_hook = hook;
    }

    fn parts_mut(&mut self) -> &mut Parts {
        Arc::make_mut(&mut self.shared)
    }

    /// The model asked for. The fallback layer may rewrite it per provider.
    pub fn model(&self) -> &str {
        &self.shared.model
    }

    /// The model name as a shared string (cloning it is a reference-count increment).
    pub fn model_arc(&self) -> &Arc<str> {
        &self.shared.model
    }

    /// Replaces the model (used to map one request onto another provider's model names).
    pub fn set_model(&mut self, model: impl Into<Arc<str>>) {
        self.parts_mut().model = model.into();
    }

    /// The conversation.
    pub fn messages(&self) -> &[Message] {
        &self.shared.messages
    }

    /// The conversation as a shared slice.
    pub fn messages_arc(&self) -> &Arc<[Message]> {
        &self.shared.messages
    }

    /// Sampling parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.shared.params
    }

    /// Sampling parameters, mutably.
    pub fn params_mut(&mut self) -> &mut SamplingParams {
        &mut self.parts_mut().params
    }

    /// Tools, output format, reasoning, pass-through fields and the rest.
    pub fn options(&self) -> &ChatOptions {
        &self.shared.options
    }

    /// The options, to change (copied only if another clone shares them).
    pub fn options_mut(&mut self) -> &mut ChatOptions {
        Arc::make_mut(&mut self.parts_mut().options)
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: ChatOptions) -> Self {
        self.parts_mut().options = Arc::new(options);
        self
    }

    /// Adds a tool the model may call.
    pub fn with_tool(mut self, tool: crate::Tool) -> Self {
        self.options_mut().tools.push(tool);
        self
    }

    /// Who is calling, if known.
    pub fn client_key(&self) -> Option<&ClientKey> {
        self.shared.client_key.as_ref()
    }

    /// Sets or clears the client key.
    pub fn set_client_key(&mut self, key: Option<ClientKey>) {
        self.parts_mut().client_key = key;
    }

    /// The id of this logical request (the same on every retry and fallback).
    pub fn request_id(&self) -> &RequestId {
        &self.shared.request_id
    }

    /// Whether two requests share their (immutable) parts, i.e. one is an unmodified clone of
    /// the other.
    pub fn shares_parts_with(&self, other: &LlmRequest) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Sets `max_tokens`.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.params_mut().max_tokens = Some(max_tokens);
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.params_mut().temperature = Some(temperature);
        self
    }

    /// Replaces all sampling parameters.
    pub fn with_params(mut self, params: SamplingParams) -> Self {
        self.parts_mut().params = params;
        self
    }

    /// Sets the client key.
    pub fn with_client_key(mut self, key: impl Into<ClientKey>) -> Self {
        self.parts_mut().client_key = Some(key.into());
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: RequestId) -> Self {
        self.parts_mut().request_id = id;
        self
    }

    /// A rough, allocation-free estimate of the prompt's tokens: about four bytes of text
    /// (and of tool definitions) per token plus a few tokens of framing per message and tool;
    /// an image, audio clip or file counts 1,600 tokens. Budgets and token-rate limits use it
    /// before the provider reports the real count; it errs on the high side for English text.
    pub fn estimated_input_tokens(&self) -> u64 {
        let messages = self.messages();
        let options = self.options();
        let bytes: usize = messages.iter().map(Message::estimated_bytes).sum::<usize>()
            + options
                .tools
                .iter()
                .map(|t| {
                    t.name.len()
                        + t.description.as_ref().map_or(0, String::len)
                        + json_bytes(&t.parameters)
                })
                .sum::<usize>();
        (bytes as u64).div_ceil(4) + 4 * messages.len() as u64 + 8 * options.tools.len() as u64
    }
}

/// The length of a JSON value written out, counted without writing it.
fn json_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_bytes(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() + 4 + json_bytes(x))
                .sum::<usize>()
        }
    }
}
