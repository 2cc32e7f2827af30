//! The pipeline's configuration: a TOML file, overridden by environment variables, validated
//! in full before anything starts.
//!
//! ```
//! use towerguard::config::Config;
//!
//! let text = r#"
//!     [providers.local]
//!     kind = "simulated"
//!     model = "gpt-4o-mini"
//!     retry.max_retries = 20
//!
//!     [budgets]
//!     daily_usd = -1
//! "#;
//! // the environment is injected: tests never touch the process's
//! let env = |name: &str| (name == "LOCAL_TIMEOUT").then(|| "soon".to_string());
//! let errors = Config::from_toml_str(text, env).unwrap_err();
//! let fields: Vec<&str> = errors.iter().map(|e| e.field()).collect();
//! assert_eq!(fields, ["providers.local.timeout", "providers.local.retry.max_retries", "budgets.daily_usd"]);
//! assert!(errors.to_string().contains("LOCAL_TIMEOUT"));
//! ```
//!
//! The file's sections (every key optional unless said; durations are humantime strings
//! such as `"30s"`, `"5m"`, `"1h 30m"`; amounts are US dollars):
//!
//! | section | keys |
//! |---|---|
//! | `[server]` | `bind` (`"127.0.0.1"`), `port` (8080), `max_body_bytes` (1 MiB), `request_timeout` (`"300s"`), `concurrency_limit` (256), `admin_token_env` (the variable holding the admin token; admin routes are off without it), `keys_required` (false), `otlp_endpoint` (unset: where the gateway built with its `otlp` feature exports its spans over OTLP/HTTP, e.g. `"http://127.0.0.1:4318"`; off when unset) |
//! | `[fallback]` | `strategy` (`priority`, `cheapest`, `round-robin`, `fail-fast`), `order` (provider names; unlisted providers follow in file order), `health_aware` (true) |
//! | `[budgets]` | `daily_usd`, `monthly_usd`, `max_per_request_usd`, `alert_threshold` (share of a budget, in (0, 1]), `per_tenant_daily_usd`, `unknown_models` (`reject` or `free`) |
//! | `[limits]` | per tenant: `error_threshold` (5), `window` (`"60s"`), `penalty` (`"30s"`), `max_penalty` (`"1h"`), `rpm`, `tpm` |
//! | `[providers.<name>]` | `kind` (`openai`, `anthropic`, `openai-compatible`, `simulated`; required), `base_url`, `api_key_env`, `model`, `timeout` (`"60s"` per attempt), `retry.max_retries` (2), `retry.backoff` (`"500ms"`), `retry.max_backoff` (`"8s"`), `breaker.consecutive_failures` (5), `breaker.open_duration` (`"60s"`), `breaker.failure_rate`, `rate_limit.rpm`, `rate_limit.tpm`, `faults` (simulated only: `seed`, `rates` per error kind, `hang_rate`, `retry_after`, `latency`, `latency_max`) |
//! | `[aliases]` | `<public name> = { provider = "...", model = "..." }` |
//! | `[prices."<model>"]` | USD per million tokens: `input`, `output` (required), `cached_input`, `cache_write` (default: the input price) |
//! | `[[tenants]]` | `name`, `key_sha256` (64 hex digits: the SHA-256 of the tenant's key), `budget.daily_usd`, `limits.error_threshold`, `limits.rpm`, `limits.tpm` |
//!
//! The environment variables, applied over the file ([`ENV_VARS`] lists them; `<PROVIDER>`
//! is the provider's name upper-cased, `-` as `_`):
//!
//! | variable | overrides |
//! |---|---|
//! | `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `DEEPSEEK_API_KEY`, `XAI_API_KEY` / `GROK_API_KEY` | the key of the provider whose `api_key_env` it is (the default for its kind or name) |
//! | `OLLAMA_HOST` | `providers.ollama.base_url` |
//! | `LLM_DAILY_COST_LIMIT`, `LLM_MONTHLY_COST_LIMIT`, `LLM_MAX_COST_PER_REQUEST` | `budgets.daily_usd`, `budgets.monthly_usd`, `budgets.max_per_request_usd` |
//! | `LLM_BUDGET_ALERT_THRESHOLD` | `budgets.alert_threshold` (`0.8` or `80%`) |
//! | `LLM_FALLBACK_STRATEGY` | `fallback.strategy` |
//! | `<PROVIDER>_RATE_LIMIT_RPM`, `<PROVIDER>_RATE_LIMIT_TPM` | `providers.<name>.rate_limit.rpm` / `.tpm` |
//! | `<PROVIDER>_TIMEOUT` | `providers.<name>.timeout` (`"30s"`, or seconds) |
//! | `<PROVIDER>_MAX_RETRIES` | `providers.<name>.retry.max_retries` |
//! | `TOWERGUARD_PORT` | `server.port` |

mod build;
mod defaults;
mod env;
mod errors;
mod parse;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use env::{ENV_VARS, Env, ProcessEnv};
pub use errors::{ConfigErrors, FieldError};
pub use secret::Secret;

/// A whole configuration. Build one with [`Config::load`], [`Config::from_toml_str`] or
/// [`Config::embedded_default`]; [`Config::pipeline`] builds the pipeline from it.
///
/// Its `Debug` never shows a key: keys read from the environment are [`Secret`]s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The gateway's HTTP server.
    pub server: ServerConfig,
    /// The fallback across providers.
    pub fallback: FallbackConfig,
    /// Spending limits.
    pub budgets: BudgetsConfig,
    /// Per-tenant limits.
    pub limits: LimitsConfig,
    /// The providers, in file order.
    pub providers: Providers,
    /// Public model names mapped to a provider's model.
    pub aliases: BTreeMap<String, AliasConfig>,
    /// Price overrides per model, over the built-in table.
    pub prices: BTreeMap<String, PriceConfig>,
    /// The tenants (callers) and their overrides.
    pub tenants: Vec<TenantConfig>,
    /// The admin token, read from `server.admin_token_env`.
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// The fields the environment set, with the variable that set each.
    #[serde(skip)]
    from_env: BTreeMap<String, String>,
}

/// `[server]`: where and how the gateway listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address to bind (default `127.0.0.1`).
    pub bind: String,
    /// The port (default 8080; `TOWERGUARD_PORT` overrides; 0 picks a free one).
    pub port: u16,
    /// The largest request body accepted (default 1 MiB).
    pub max_body_bytes: usize,
    /// The longest a request may take in all (default 300 s).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests served at once (default 256).
    pub concurrency_limit: usize,
    /// The environment variable that holds the admin token (admin routes are off when it is
    /// unset or empty).
    pub admin_token_env: Option<String>,
    /// Whether callers must present a tenant's key (default false: local use).
    pub keys_required: bool,
    /// The OTLP/HTTP endpoint (`http://host:4318`) the gateway exports its spans to, when
    /// it is built with its `otlp` feature (default unset: no export).
    pub otlp_endpoint: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(300),
            concurrency_limit: 256,
            admin_token_env: None,
            keys_required: false,
            otlp_endpoint: None,
        }
    }
}

/// `[fallback]`: the order providers are tried in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// The strategy (default `priority`).
    pub strategy: StrategyName,
    /// Provider names in the order to try them; providers not listed follow, in file order.
    pub order: Vec<String>,
    /// Whether providers whose breaker is open are tried last (default true).
    pub health_aware: bool,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            strategy: StrategyName::Priority,
            order: Vec::new(),
            health_aware: true,
        }
    }
}

/// A fallback strategy's name in the file (`priority`, `cheapest`, `round-robin`,
/// `fail-fast`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    /// In order (default).
    #[default]
    Priority,
    /// Cheapest output price first.
    Cheapest,
    /// Each request starts one provider further.
    RoundRobin,
    /// The first provider only.
    FailFast,
}

impl StrategyName {
    /// Reads a name as written in the file or the environment (`_` and `-` alike, any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "priority" | "ordered" | "order" => Some(Self::Priority),
            "cheapest" | "cheapest-first" | "cost" => Some(Self::Cheapest),
            "round-robin" | "roundrobin" => Some(Self::RoundRobin),
            "fail-fast" | "failfast" | "none" => Some(Self::FailFast),
            _ => None,
        }
    }

    /// The fallback layer's strategy.
    pub fn strategy(self) -> crate::fallback::Strategy {
        use crate::fallback::Strategy;
        match self {
            Self::Priority => Strategy::Priority,
            Self::Cheapest => Strategy::CheapestFirst,
            Self::RoundRobin => Strategy::RoundRobin,
            Self::FailFast => Strategy::FailFast,
        }
    }
}

/// `[budgets]`: spending limits in US dollars (all off by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// All spending per UTC day (`LLM_DAILY_COST_LIMIT`).
    pub daily_usd: Option<f64>,
    /// All spending per UTC month (`LLM_MONTHLY_COST_LIMIT`).
    pub monthly_usd: Option<f64>,
    /// One request's worst case (`LLM_MAX_COST_PER_REQUEST`).
    pub max_per_request_usd: Option<f64>,
    /// Alert when a budget reaches this share of its limit (`LLM_BUDGET_ALERT_THRESHOLD`).
    pub alert_threshold: Option<f64>,
    /// Each tenant's spending per UTC day.
    pub per_tenant_daily_usd: Option<f64>,
    /// What to do with models without a price (default `reject`).
    pub unknown_models: UnknownModels,
}

/// Models without a price: refused (default) or free.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownModels {
    /// Refused with kind `Configuration` (never a silent wrong number).
    #[default]
    Reject,
    /// Counted at zero cost (local models).
    Free,
}

/// `[limits]`: what each tenant may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Errors within `window` that throttle a tenant (default 5).
    pub error_threshold: u32,
    /// The window errors are counted over (default 60 s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The first penalty (default 30 s), doubling with each repeated offence.
    #[serde(with = "humantime_serde")]
    pub penalty: Duration,
    /// The longest penalty (default 1 h).
    #[serde(with = "humantime_serde")]
    pub max_penalty: Duration,
    /// Requests per minute per tenant.
    pub rpm: Option<u64>,
    /// Tokens per minute per tenant.
    pub tpm: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = crate::preset::LimitSettings::default();
        Self {
            error_threshold: d.error_threshold,
            window: d.window,
            penalty: d.penalty,
            max_penalty: d.max_penalty,
            rpm: None,
            tpm: None,
        }
    }
}

/// The providers, in the order the file lists them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Providers(pub indexmap::IndexMap<String, ProviderConfig>);

/// What serves a provider's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI's API (`OPENAI_API_KEY`).
    Openai,
    /// Anthropic's Messages API (`ANTHROPIC_API_KEY`).
    Anthropic,
    /// Any OpenAI-compatible server (DeepSeek, xAI, Groq, Mistral, Ollama, vLLM, ...):
    /// `base_url` is needed unless the name is one of those.
    OpenaiCompatible,
    /// A fake provider with seeded faults, in this process (no key, no network).
    Simulated,
}

/// `[providers.<name>]`: one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// What serves it.
    pub kind: ProviderKind,
    /// The API's base URL (default: the kind's, or the well-known provider's of that name).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the key (default: the kind's, e.g.
    /// `OPENAI_API_KEY`, or `<NAME>_API_KEY` for a compatible server).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The model to ask this provider for, whatever the request names.
    #[serde(default)]
    pub model: Option<String>,
    /// The longest one attempt may take (default 60 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The retry loop.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// The provider's own rate limits.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Seeded faults of a `simulated` provider.
    #[serde(default)]
    pub faults: Option<FaultsConfig>,
    /// The key, read from `api_key_env`.
    #[serde(skip)]
    pub api_key: Option<Secret>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

impl ProviderConfig {
    /// A provider of `kind` with every default.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            base_url: None,
            api_key_env: None,
            model: None,
            timeout: default_timeout(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            rate_limit: RateLimitConfig::default(),
            faults: None,
            api_key: None,
        }
    }
}

/// `retry`: a provider's retry loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt, 0 to 10 (default 2).
    pub max_retries: u32,
    /// The first backoff, doubling per retry with full jitter (default 500 ms).
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// The longest backoff (default 8 s).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: crate::retry::DEFAULT_MAX_RETRIES,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// `breaker`: a provider's circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Open after this many failures in a row (default 5).
    pub consecutive_failures: u32,
    /// How long to stay open (default 60 s).
    #[serde(with = "humantime_serde")]
    pub open_duration: Duration,
    /// Also open when this share of the last 100 calls failed (at least 10 of them).
    pub failure_rate: Option<f64>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            open_duration: Duration::from_secs(60),
            failure_rate: None,
        }
    }
}

/// `rate_limit`: what may be sent to one provider per minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per minute (`<PROVIDER>_RATE_LIMIT_RPM`).
    pub rpm: Option<u64>,
    /// Tokens per minute (`<PROVIDER>_RATE_LIMIT_TPM`).
    pub tpm: Option<u64>,
}

/// `faults`: how a `simulated` provider misbehaves, reproducibly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// The seed: the same seed and order of calls give the same outcomes.
    pub seed: u64,
    /// The share of calls failing with each error kind (`rate_limited`, `overloaded`,
    /// `server`, `timeout`, `connection`, ...), adding up to at most 1.
    pub rates: BTreeMap<String, f64>,
    /// The share of calls that never answer (the per-attempt timeout ends them).
    pub hang_rate: f64,
    /// The Retry-After hint of rate-limited and overloaded answers.
    #[serde(with = "humantime_serde")]
    pub retry_after: Option<Duration>,
    /// How long each call takes (uniform up to `latency_max` when that is set).
    #[serde(with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// The longest a call takes.
    #[serde(with = "humantime_serde")]
    pub latency_max: Option<Duration>,
}

/// `[aliases]` entry: a public model name served as `model` by `provider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    /// The provider that serves it.
    pub provider: String,
    /// The model it is asked for.
    pub model: String,
}

/// `[prices."<model>"]`: a model's price in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Per million uncached input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
    /// Per million cached input tokens (default: the input price).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Per million cache-write tokens (default: the input price).
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// `[[tenants]]`: a caller, known by the SHA-256 of its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Its name (the client key its requests carry through the pipeline).
    pub name: String,
    /// The SHA-256 of its key, 64 hex digits.
    pub key_sha256: String,
    /// Its own budget, instead of `budgets.per_tenant_daily_usd`.
    #[serde(default)]
    pub budget: TenantBudget,
    /// Its own limits, instead of `[limits]`.
    #[serde(default)]
    pub limits: TenantLimits,
}

/// A tenant's own budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantBudget {
    /// Its spending per UTC day.
    pub daily_usd: Option<f64>,
}

/// A tenant's own limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Errors within the window that throttle it.
    pub error_threshold: Option<u32>,
    /// Its requests per minute.
    pub rpm: Option<u64>,
    /// Its tokens per minute.
    pub tpm: Option<u64>,
}

impl Config {
    /// Reads the file at `path`, applies the process environment and validates.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigErrors> {
        Self::load_with(path, ProcessEnv)
    }

    /// Reads the file at `path`, applies `env` and validates.
    pub fn load_with(path: impl AsRef<Path>, env: impl Env) -> Result<Self, ConfigErrors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one(FieldError::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            ))
        })?;
        Self::from_toml_str(&text, env)
    }

    /// Parses `text`, applies `env` (see the [module](self) docs) and validates: every
    /// mistake is reported at once, each with its field path. A syntax error is reported
    /// alone; unknown keys and values of the wrong type are reported together, before the
    /// checks of what the values mean (which need a file that reads).
    pub fn from_toml_str(text: &str, env: impl Env) -> Result<Self, ConfigErrors> {
        let mut config = Self::parse(text)?;
        let mut errors = ConfigErrors::default();
        config.apply_env(&env, &mut errors);
        config.validate_into(&mut errors);
        errors.into_result(config)
    }

    /// Parses `text` only: no environment, no validation. A syntax error is reported alone;
    /// every unknown key and value of the wrong type is reported at once, naming its path.
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        parse::parse(text)
    }

    /// The built-in configuration a gateway runs when it has no file and no provider key:
    /// three simulated providers with visible seeded faults (a flaky primary, an overloaded
    /// second, a healthy third), budgets and limits set. Valid; needs no environment.
    pub fn embedded_default() -> Self {
        defaults::embedded()
    }

    /// The configuration of the well-known providers whose keys `env` holds
    /// (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `DEEPSEEK_API_KEY`, `XAI_API_KEY` /
    /// `GROK_API_KEY`, `OLLAMA_HOST`), with the environment's overrides, validated; `None`
    /// when none is set (then use [`embedded_default`](Self::embedded_default)).
    pub fn from_env(env: impl Env) -> Option<Result<Self, ConfigErrors>> {
        defaults::from_env(&env)
    }

    /// Checks everything: every mistake, each with its field path.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        self.validate_into(&mut errors);
        errors.into_result(())
    }

    /// The pipeline and its handle, from a valid configuration: real clients for
    /// `openai`, `anthropic` and `openai-compatible` providers (keys from the environment
    /// read at load time), fakes with seeded faults for `simulated` ones, aliases applied
    /// before the pipeline.
    pub fn pipeline(
        &self,
    ) -> Result<(crate::preset::Pipeline, crate::preset::PipelineHandle), ConfigErrors> {
        self.validate()?;
        build::pipeline(self)
    }

    /// The fields the environment set, each with the variable that set it.
    pub fn env_overrides(&self) -> impl Iterator<Item = (&str, &str)> {
        self.from_env.iter().map(|(f, v)| (f.as_str(), v.as_str()))
    }

    /// The tenant whose key hashes to `sha256_hex` (64 hex digits, any case).
    pub fn tenant_by_key_hash(&self, sha256_hex: &str) -> Option<&TenantConfig> {
        self.tenants
            .iter()
            .find(|t| t.key_sha256.eq_ignore_ascii_case(sha256_hex))
    }
}
