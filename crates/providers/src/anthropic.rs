//! [`Anthropic`]: the Messages API (`POST {base_url}/v1/messages`).

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Uri};
use serde::{Deserialize, Serialize};
use towerguard_llm_core::{
    ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, Role, Usage,
};

use crate::key::{ApiKey, Env, ProcessEnv, key_from};
use crate::transport::{ConfigError, Limits, Transport, endpoint, malformed, secret_header};

/// The `anthropic-version` header sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

struct Inner {
    name: Arc<str>,
    url: Uri,
    key: HeaderValue,
    default_max_tokens: u32,
    transport: Transport,
}

/// Anthropic's Messages API as a `Service<LlmRequest>`. System messages become the
/// top-level `system` prompt; a request without `max_tokens` gets the default (4096), since
/// the API requires one. The key is never in `Debug`, logs or errors.
///
/// ```
/// use towerguard_providers::{Anthropic, ApiKey};
/// let claude = Anthropic::builder(ApiKey::new("sk-ant-test").unwrap()).build().unwrap();
/// assert!(!format!("{claude:?}").contains("sk-ant-test"));
/// ```
#[derive(Clone)]
pub struct Anthropic {
    inner: Arc<Inner>,
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic")
            .field("name", &self.inner.name)
            .field("url", &self.inner.url)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Builds an [`Anthropic`] client.
#[derive(Debug)]
pub struct AnthropicBuilder {
    name: Arc<str>,
    base_url: String,
    key: ApiKey,
    default_max_tokens: u32,
    limits: Limits,
}

impl AnthropicBuilder {
    /// Another base URL (a proxy, a test server). Default `https://api.anthropic.com`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Another provider name (default `"anthropic"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// `max_tokens` for requests that set none (default 4096).
    pub fn default_max_tokens(mut self, n: u32) -> Self {
        self.default_max_tokens = n;
        self
    }

    /// Timeouts and the body cap.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the configuration and makes the client.
    pub fn build(self) -> Result<Anthropic, ConfigError> {
        if self.default_max_tokens == 0 {
            return Err(ConfigError::new("default_max_tokens", "must be above zero"));
        }
        Ok(Anthropic {
            inner: Arc::new(Inner {
                name: self.name,
                url: endpoint(&self.base_url, "/v1/messages")?,
                key: secret_header(self.key.expose())?,
                default_max_tokens: self.default_max_tokens,
                transport: Transport::new(self.limits)?,
            }),
        })
    }
}

impl Anthropic {
    /// A builder with this key.
    pub fn builder(key: ApiKey) -> AnthropicBuilder {
        AnthropicBuilder {
            name: Arc::from("anthropic"),
            base_url: "https://api.anthropic.com".into(),
            key,
            default_max_tokens: 4096,
            limits: Limits::default(),
        }
    }

    /// A client keyed by `ANTHROPIC_API_KEY` (`ANTHROPIC_BASE_URL` overrides the URL).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&ProcessEnv)
    }

    /// A client keyed by `ANTHROPIC_API_KEY` read from `env`.
    pub fn from_env_with(env: &dyn Env) -> Result<Self, ConfigError> {
        let key = key_from(env, &["ANTHROPIC_API_KEY"])
            .ok_or_else(|| ConfigError::new("api_key", "is missing: set ANTHROPIC_API_KEY"))?;
        let mut b = Self::builder(key);
        if let Some(url) = env.var("ANTHROPIC_BASE_URL") {
            b = b.base_url(url);
        }
        b.build()
    }
}

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct MessagesResponse {
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

/// The Messages API body: system messages joined into `system`, tool turns sent as user turns.
pub(crate) fn request_body(req: &LlmRequest, default_max_tokens: u32) -> Result<Vec<u8>, LlmError> {
    let p = req.params();
    let system: Vec<&str> = req
        .messages()
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let body = MessagesRequest {
        model: req.model(),
        max_tokens: p.max_tokens.unwrap_or(default_max_tokens),
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages: req
            .messages()
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| Turn {
                role: if m.role == Role::Assistant {
                    "assistant"
                } else {
                    "user"
                },
                content: &m.content,
            })
            .collect(),
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: p.top_k,
        stop_sequences: p.stop.as_deref(),
    };
    serde_json::to_vec(&body).map_err(|e| {
        LlmError::new(ErrorKind::InvalidRequest)
            .with_detail(format!("the request cannot be encoded: {e}"))
    })
}

/// Parses a Messages answer. Anthropic's `input_tokens` already excludes the cache reads and
/// writes, which are kept apart.
pub(crate) fn parse_response(
    body: &[u8],
    provider: &Arc<str>,
    asked: &Arc<str>,
) -> Result<LlmResponse, LlmError> {
    let parsed: MessagesResponse = serde_json::from_slice(body).map_err(malformed)?;
    let content: String = parsed
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let usage = parsed.usage.map_or(Usage::default(), |u| Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
        cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
    });
    let model: Arc<str> = match parsed.model {
        Some(m) if !m.is_empty() => Arc::from(m),
        _ => asked.clone(),
    };
    Ok(LlmResponse::new(content, model, provider.clone())
        .with_usage(usage)
        .with_finish_reason(
            parsed
                .stop_reason
                .as_deref()
                .map_or(FinishReason::Stop, FinishReason::from_provider),
        ))
}

impl Inner {
    async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
        let headers = [
            ("x-api-key", self.key.clone()),
            (
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ),
        ];
        let body = request_body(&req, self.default_max_tokens);
        self.transport
            .post_json(
                &self.name,
                &self.url,
                &headers,
                body,
                req.model_arc(),
                parse_response,
            )
            .await
    }
}

crate::transport::provider_service!(Anthropic);
