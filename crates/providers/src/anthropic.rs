//! [`Anthropic`]: the Messages API (`POST {base_url}/v1/messages`).

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use towerguard_llm_core::wire::anthropic_sse;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse};

use crate::key::{ApiKey, Env, ProcessEnv, key_from};
use crate::limits::{ConfigError, Limits};
use crate::transport::{Post, Transport, endpoint, secret_header};

/// The `anthropic-version` header sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

struct Inner {
    name: Arc<str>,
    url: Uri,
    key: HeaderValue,
    default_max_tokens: u32,
    headers: HeaderMap,
    transport: Transport,
}

/// Anthropic's Messages API as a `Service<LlmRequest>`, translating the model as
/// [`wire::anthropic`](towerguard_llm_core::wire::anthropic) says: system and developer
/// messages become the top-level `system` prompt, tool results `tool_result` blocks; a request
/// without `max_tokens` gets the default (4096), since the API requires one. The key is never in `Debug`, logs or errors.
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
    headers: HeaderMap,
}

impl AnthropicBuilder {
    /// A header sent with every request (e.g. `anthropic-beta`), before the request's own
    /// [`extra_headers`](towerguard_llm_core::ChatOptions). Headers that carry credentials or
    /// framing (`authorization`, `x-api-key`, `host`, `content-length`, `content-type`) are
    /// never sent from here.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

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
                headers: self.headers,
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
            headers: HeaderMap::new(),
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

impl Inner {
    async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
        let headers = [
            ("x-api-key", self.key.clone()),
            (
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ),
        ];
        let body = req.to_anthropic_json(self.default_max_tokens);
        let beta = towerguard_llm_core::wire::anthropic::beta_headers(&req)
            .map(|b| ("anthropic-beta", HeaderValue::from_static(b)));
        let headers: &[_] = match beta {
            Some(beta) => &[headers[0].clone(), headers[1].clone(), beta],
            None => &headers,
        };
        let post = Post {
            provider: &self.name,
            url: &self.url,
            headers,
            extra: [&self.headers, &req.options().extra_headers],
            body,
            asked: req.model_arc(),
        };
        if req.options().stream {
            self.transport
                .post_stream::<anthropic_sse::StreamDecoder>(post)
                .await
        } else {
            self.transport
                .post_json(post, LlmResponse::from_anthropic_json)
                .await
        }
    }
}

crate::transport::provider_service!(Anthropic);
