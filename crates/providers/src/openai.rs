//! [`OpenAiCompatible`]: `POST {base_url}/chat/completions` with bearer auth.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use towerguard_llm_core::wire::openai_sse;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse};

use crate::key::{ApiKey, Env, ProcessEnv, key_from};
use crate::limits::{ConfigError, Limits};
use crate::transport::{Post, Transport, endpoint, secret_header};

/// A provider with an OpenAI-compatible API, and where its key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// OpenAI (`OPENAI_API_KEY`; `OPENAI_BASE_URL` overrides the URL).
    OpenAi,
    /// DeepSeek (`DEEPSEEK_API_KEY`).
    DeepSeek,
    /// xAI Grok (`XAI_API_KEY` or `GROK_API_KEY`).
    Xai,
    /// Groq (`GROQ_API_KEY`).
    Groq,
    /// Mistral (`MISTRAL_API_KEY`).
    Mistral,
    /// Ollama on `OLLAMA_HOST` (default `http://localhost:11434`), no key.
    Ollama,
}

impl Preset {
    /// The provider's name on responses, errors and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Preset::OpenAi => "openai",
            Preset::DeepSeek => "deepseek",
            Preset::Xai => "xai",
            Preset::Groq => "groq",
            Preset::Mistral => "mistral",
            Preset::Ollama => "ollama",
        }
    }

    fn base_url(self, env: &dyn Env) -> String {
        match self {
            Preset::OpenAi => env
                .var("OPENAI_BASE_URL")
                .unwrap_or_else(|| "https://api.openai.com/v1".into()),
            Preset::DeepSeek => "https://api.deepseek.com/v1".into(),
            Preset::Xai => "https://api.x.ai/v1".into(),
            Preset::Groq => "https://api.groq.com/openai/v1".into(),
            Preset::Mistral => "https://api.mistral.ai/v1".into(),
            Preset::Ollama => {
                let host = env
                    .var("OLLAMA_HOST")
                    .unwrap_or_else(|| "http://localhost:11434".into());
                let host = if host.starts_with("http://") || host.starts_with("https://") {
                    host
                } else {
                    format!("http://{host}")
                };
                format!("{}/v1", host.trim_end_matches('/'))
            }
        }
    }

    fn key_vars(self) -> &'static [&'static str] {
        match self {
            Preset::OpenAi => &["OPENAI_API_KEY"],
            Preset::DeepSeek => &["DEEPSEEK_API_KEY"],
            Preset::Xai => &["XAI_API_KEY", "GROK_API_KEY"],
            Preset::Groq => &["GROQ_API_KEY"],
            Preset::Mistral => &["MISTRAL_API_KEY"],
            Preset::Ollama => &[],
        }
    }
}

struct Inner {
    name: Arc<str>,
    url: Uri,
    auth: Option<HeaderValue>,
    headers: HeaderMap,
    transport: Transport,
}

/// An OpenAI-compatible chat-completions client as a `Service<LlmRequest>`: OpenAI, DeepSeek,
/// xAI, Groq, Mistral, Ollama, vLLM, a LiteLLM proxy, llama.cpp's server, ...
///
/// Clones share one connection pool. It makes exactly one HTTP call per request: retries
/// belong to the retry layer. The API key is never in `Debug`, logs or errors.
///
/// ```
/// use towerguard_providers::{ApiKey, OpenAiCompatible};
///
/// let local = OpenAiCompatible::builder("vllm", "http://127.0.0.1:8000/v1").build().unwrap();
/// let openai = OpenAiCompatible::builder("openai", "https://api.openai.com/v1")
///     .api_key(ApiKey::new("sk-test-123").unwrap())
///     .build()
///     .unwrap();
/// assert!(!format!("{openai:?}").contains("sk-test-123"));
/// # let _ = local;
/// ```
#[derive(Clone)]
pub struct OpenAiCompatible {
    inner: Arc<Inner>,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("name", &self.inner.name)
            .field("url", &self.inner.url)
            .field("api_key", &self.inner.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Builds an [`OpenAiCompatible`] client.
#[derive(Debug)]
pub struct OpenAiCompatibleBuilder {
    name: Arc<str>,
    base_url: String,
    key: Option<ApiKey>,
    limits: Limits,
    headers: HeaderMap,
}

impl OpenAiCompatibleBuilder {
    /// A header sent with every request (e.g. `OpenAI-Organization`, `OpenAI-Project`),
    /// before the request's own [`extra_headers`](towerguard_llm_core::ChatOptions). Headers
    /// that carry credentials or framing (`authorization`, `x-api-key`, `host`,
    /// `content-length`, `content-type`) are never sent from here.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The API key (sent as `Authorization: Bearer`).
    pub fn api_key(mut self, key: ApiKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Timeouts and the body cap.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the configuration and makes the client.
    pub fn build(self) -> Result<OpenAiCompatible, ConfigError> {
        let url = endpoint(&self.base_url, "/chat/completions")?;
        let auth = match &self.key {
            Some(k) => Some(secret_header(&format!("Bearer {}", k.expose()))?),
            None => None,
        };
        Ok(OpenAiCompatible {
            inner: Arc::new(Inner {
                name: self.name,
                url,
                auth,
                headers: self.headers,
                transport: Transport::new(self.limits)?,
            }),
        })
    }
}

impl OpenAiCompatible {
    /// A client for any OpenAI-compatible server at `base_url` (the part before
    /// `/chat/completions`), named `name`.
    pub fn builder(
        name: impl Into<Arc<str>>,
        base_url: impl Into<String>,
    ) -> OpenAiCompatibleBuilder {
        OpenAiCompatibleBuilder {
            name: name.into(),
            base_url: base_url.into(),
            key: None,
            limits: Limits::default(),
            headers: HeaderMap::new(),
        }
    }

    /// A preset, with its key read from the process environment.
    pub fn preset(preset: Preset) -> Result<Self, ConfigError> {
        Self::preset_from(preset, &ProcessEnv)
    }

    /// A preset, with its key read from `env`.
    pub fn preset_from(preset: Preset, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::preset_builder(preset, env)?.build()
    }

    /// A preset's builder (to change limits), with its key read from `env`. A missing key is
    /// an error naming the variable.
    pub fn preset_builder(
        preset: Preset,
        env: &dyn Env,
    ) -> Result<OpenAiCompatibleBuilder, ConfigError> {
        let vars = preset.key_vars();
        let mut b = Self::builder(preset.name(), preset.base_url(env));
        if !vars.is_empty() {
            let key = key_from(env, vars).ok_or_else(|| {
                ConfigError::new("api_key", format!("is missing: set {}", vars.join(" or ")))
            })?;
            b = b.api_key(key);
        }
        Ok(b)
    }

    /// OpenAI, keyed by `OPENAI_API_KEY`.
    pub fn openai() -> Result<Self, ConfigError> {
        Self::preset(Preset::OpenAi)
    }

    /// DeepSeek, keyed by `DEEPSEEK_API_KEY`.
    pub fn deepseek() -> Result<Self, ConfigError> {
        Self::preset(Preset::DeepSeek)
    }

    /// xAI Grok, keyed by `XAI_API_KEY` or `GROK_API_KEY`.
    pub fn xai() -> Result<Self, ConfigError> {
        Self::preset(Preset::Xai)
    }

    /// Groq, keyed by `GROQ_API_KEY`.
    pub fn groq() -> Result<Self, ConfigError> {
        Self::preset(Preset::Groq)
    }

    /// Mistral, keyed by `MISTRAL_API_KEY`.
    pub fn mistral() -> Result<Self, ConfigError> {
        Self::preset(Preset::Mistral)
    }

    /// Ollama on `OLLAMA_HOST` (default `http://localhost:11434`).
    pub fn ollama() -> Result<Self, ConfigError> {
        Self::preset(Preset::Ollama)
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl Inner {
    async fn complete(&self, mut req: LlmRequest) -> Result<LlmResponse, LlmError> {
        let headers: &[(&'static str, HeaderValue)] = match &self.auth {
            Some(auth) => &[("authorization", auth.clone())],
            None => &[],
        };
        let stream = req.options().stream;
        if stream && !req.options().extra_body.contains_key("stream_options") {
            // Usage comes only when asked, in a last chunk with no choices.
            req.options_mut().extra_body.insert(
                "stream_options".into(),
                serde_json::json!({ "include_usage": true }),
            );
        }
        let post = Post {
            provider: &self.name,
            url: &self.url,
            headers,
            extra: [&self.headers, &req.options().extra_headers],
            body: req.to_openai_json(),
            asked: req.model_arc(),
        };
        if stream {
            self.transport
                .post_stream::<openai_sse::StreamDecoder>(post)
                .await
        } else {
            self.transport
                .post_json(post, LlmResponse::from_openai_json)
                .await
        }
    }
}

crate::transport::provider_service!(OpenAiCompatible);
