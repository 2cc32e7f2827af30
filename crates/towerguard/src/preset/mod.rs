//! The recommended pipeline in a few lines.
//!
//! ```text
//! aliases -> ErrorRateLimit -> CostMeter -> Fallback over providers
//!     each provider: [provider RPM/TPM] -> Retry -> CircuitBreaker -> Timeout (per attempt) -> client
//! ```
//!
//! [`Preset`] takes the providers (a name and any client service, with optional settings of
//! their own), the fallback strategy, budgets (or a [`Ledger`] of your own) and the
//! per-client limits, checks every setting (an invalid one is a [`ConfigError`] naming its
//! field, e.g. `providers.openai.retry.max_retries`) and [builds](Preset::build) one
//! [`Pipeline`] (a `Clone` service) with a [`PipelineHandle`] that reads every layer's state
//! and acts on it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::ServiceExt;
//! use towerguard::llm::ErrorKind;
//! use towerguard::preset::{BudgetSettings, Preset, ProviderSpec};
//! use towerguard::testkit::{request, FakeProvider, Outcome};
//!
//! let deepseek = FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Overloaded));
//! let openai = FakeProvider::new("openai");
//! let (pipeline, handle) = Preset::new()
//!     .provider(ProviderSpec::new("deepseek", deepseek).model("deepseek-chat").max_retries(1))
//!     .provider(ProviderSpec::new("openai", openai).model("gpt-4o-mini"))
//!     .budgets(BudgetSettings { daily_usd: Some(50.0), ..BudgetSettings::default() })
//!     .build()?;
//! let answer = pipeline.oneshot(request("gpt-4o-mini")).await?;
//! assert_eq!(answer.provider(), "openai");
//! assert_eq!(handle.stats().await.ledger.total.requests, 1);
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod handle;
mod router;
mod settings;
mod stack;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tower::Layer;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::breaker::CircuitBreakerHandle;
use crate::cost::{Budget, CostMeterLayer, Ledger, PriceTable, UnknownModel, usd};
use crate::fallback::FallbackLayer;
use crate::limit::ErrorRateLimitLayer;
use crate::llm::{LlmError, LlmRequest, LlmResponse};

pub use crate::cost::Price;
pub use crate::fallback::Strategy;
pub use crate::outcome::ConfigError;
pub use handle::{PipelineHandle, PipelineStats, ProviderHealth};
pub use settings::{
    BreakerSettings, BudgetSettings, LimitSettings, MAX_RETRIES, RateSettings, RetrySettings,
};

use handle::{Alerts, HandleInner, ProviderEntry};
use stack::LastError;

/// The whole pipeline as one service: `Clone` (clones share every layer's state), `Send`
/// and `Sync`, speaking `LlmRequest` / `LlmResponse` / `LlmError` from top to bottom.
pub type Pipeline = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// The most providers one pipeline holds (the fallback layer's limit).
pub const MAX_PROVIDERS: usize = crate::fallback::MAX_PROVIDERS;

/// One provider of a [`Preset`]: its name, its client, and the settings of its own stack
/// (`[rate limit] -> Retry -> CircuitBreaker -> Timeout -> client`).
pub struct ProviderSpec {
    pub(crate) name: Arc<str>,
    pub(crate) client: Pipeline,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) retry: RetrySettings,
    pub(crate) breaker: BreakerSettings,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) rate: RateSettings,
}

impl fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl ProviderSpec {
    /// A provider named `name` (the name its breaker, statistics, budgets and errors use)
    /// served by `client`: any `Service<LlmRequest>` answering `LlmResponse` / `LlmError`
    /// that is `Clone + Send + Sync + 'static` with `Send` futures (a
    /// [`providers`](crate::providers) client, a [`testkit`](crate::testkit) fake, your
    /// own). Defaults: the request's model as asked, [`RetrySettings::default`],
    /// [`BreakerSettings::default`], no per-attempt timeout, no provider rate limit.
    pub fn new<S>(name: impl Into<Arc<str>>, client: S) -> Self
    where
        S: tower::Service<LlmRequest, Response = LlmResponse, Error = LlmError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            name: name.into(),
            client: BoxCloneSyncService::new(client),
            model: None,
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            timeout: None,
            rate: RateSettings::default(),
        }
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ask this provider for `model`, whatever model the request names (e.g.
    /// `"claude-sonnet-4-5"` on Anthropic while the request says `"gpt-4o-mini"`).
    pub fn model(mut self, model: impl Into<Arc<str>>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The retry settings.
    pub fn retry(mut self, retry: RetrySettings) -> Self {
        self.retry = retry;
        self
    }

    /// Retries after the first attempt (at most 10; default 2).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.retry.max_retries = n;
        self
    }

    /// The backoff between retries.
    pub fn backoff(mut self, backoff: crate::retry::Backoff) -> Self {
        self.retry.backoff = backoff;
        self
    }

    /// The circuit breaker settings.
    pub fn breaker(mut self, breaker: BreakerSettings) -> Self {
        self.breaker = breaker;
        self
    }

    /// The longest one attempt may take; past it the attempt fails with an `LlmError` of
    /// kind `Timeout` (retried, counted by the breaker, falling back like any timeout).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Requests and tokens per minute sent to this provider (first attempts; a request over
    /// them fails at once with kind `RateLimited` and its wait as Retry-After, so the
    /// fallback moves on).
    pub fn rate_limit(mut self, rate: RateSettings) -> Self {
        self.rate = rate;
        self
    }
}

/// Builds the recommended pipeline: see the [module](self) docs.
pub struct Preset {
    providers: Vec<ProviderSpec>,
    strategy: Strategy,
    health_aware: bool,
    ledger: Option<Ledger>,
    budgets: BudgetSettings,
    prices: Vec<(String, Price)>,
    limits: LimitSettings,
    aliases: Vec<(String, Arc<str>, Arc<str>)>,
    tenant_limits: Vec<(Arc<str>, LimitSettings)>,
    tenant_budgets: Vec<(Arc<str>, f64)>,
}

impl fmt::Debug for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preset")
            .field("providers", &self.providers)
            .field("strategy", &self.strategy)
            .field("budgets", &self.budgets)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Preset {
    fn default() -> Self {
        Self::new()
    }
}

impl Preset {
    /// No providers yet; priority fallback, health aware; no budget (every known model
    /// priced and counted, unknown models refused); per-client error limits of
    /// [`LimitSettings::default`].
    pub fn new() -> Self {
        Self {
            providers: Vec::new(),
            strategy: Strategy::Priority,
            health_aware: true,
            ledger: None,
            budgets: BudgetSettings::default(),
            prices: Vec::new(),
            limits: LimitSettings::default(),
            aliases: Vec::new(),
            tenant_limits: Vec::new(),
            tenant_budgets: Vec::new(),
        }
    }

    /// Adds a provider after those already given (the first is tried first with
    /// [`Strategy::Priority`]).
    pub fn provider(mut self, provider: ProviderSpec) -> Self {
        self.providers.push(provider);
        self
    }

    /// The fallback strategy (default [`Strategy::Priority`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Whether providers whose breaker is open (or that asked to wait) are tried last
    /// (default true).
    pub fn health_aware(mut self, on: bool) -> Self {
        self.health_aware = on;
        self
    }

    /// Meter through this ledger (your budgets, prices and store) instead of one made from
    /// [`budgets`](Self::budgets) and [`price`](Self::price).
    pub fn ledger(mut self, ledger: Ledger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The budgets of the ledger the preset makes.
    pub fn budgets(mut self, budgets: BudgetSettings) -> Self {
        self.budgets = budgets;
        self
    }

    /// Overrides (or adds) the price of `model` in the built-in table of the ledger the
    /// preset makes.
    pub fn price(mut self, model: impl Into<String>, price: Price) -> Self {
        self.prices.push((model.into(), price));
        self
    }

    /// The per-client (tenant) error-rate limits, outermost.
    pub fn limits(mut self, limits: LimitSettings) -> Self {
        self.limits = limits;
        self
    }

    /// Requests for the model `public` are sent as requests for `model`, a model that
    /// provider `provider` serves; requests for `model` start at that provider and fall back
    /// in the strategy's order (unknown model names pass unchanged).
    pub fn alias(
        mut self,
        public: impl Into<String>,
        provider: impl Into<Arc<str>>,
        model: impl Into<Arc<str>>,
    ) -> Self {
        self.aliases
            .push((public.into(), provider.into(), model.into()));
        self
    }

    /// Limits of its own for tenant `tenant` (requests whose client key is `tenant`), instead
    /// of [`limits`](Self::limits). Such a tenant's requests take one more boxed call.
    pub fn tenant_limits(mut self, tenant: impl Into<Arc<str>>, limits: LimitSettings) -> Self {
        self.tenant_limits.push((tenant.into(), limits));
        self
    }

    /// A daily budget of its own for tenant `tenant` (requests whose client key is `tenant`),
    /// in US dollars, instead of [`BudgetSettings::per_tenant_daily_usd`] (without that, the
    /// other tenants have no daily limit). For the ledger the preset makes.
    pub fn tenant_budget(mut self, tenant: impl Into<Arc<str>>, daily_usd: f64) -> Self {
        self.tenant_budgets.push((tenant.into(), daily_usd));
        self
    }

    /// Checks every setting and builds the pipeline and its handle. The first invalid
    /// setting is a [`ConfigError`] naming it (`providers.<name>.<field>`, `budgets.<field>`,
    /// `limits.<field>`, `aliases.<name>`).
    pub fn build(self) -> Result<(Pipeline, PipelineHandle), ConfigError> {
        self.check()?;
        let alerts = Alerts::default();
        let ledger = match self.ledger {
            Some(ledger) => ledger,
            None => build_ledger(
                &self.budgets,
                &self.tenant_budgets,
                &self.prices,
                alerts.clone(),
            )?,
        };

        let mut entries = Vec::with_capacity(self.providers.len());
        let mut stacks = Vec::with_capacity(self.providers.len());
        for p in &self.providers {
            let last = Arc::new(LastError::default());
            let (svc, breaker) = stack::provider(p, last.clone())?;
            entries.push(ProviderEntry {
                name: p.name.clone(),
                model: p.model.clone(),
                breaker,
                last_error: last,
            });
            stacks.push(svc);
        }

        let mut stacks = stacks.into_iter();
        let Some(primary) = stacks.next() else {
            return Err(ConfigError::new(
                "providers",
                "at least one provider is needed",
            ));
        };
        let (core, fallback) = if self.providers.len() == 1 {
            (primary, None)
        } else {
            let first = &self.providers[0];
            let mut fb = FallbackLayer::builder()
                .primary(first.name.clone())
                .strategy(self.strategy)
                .health_aware(self.health_aware)
                .max_providers(self.providers.len());
            for (spec, svc) in self.providers.iter().skip(1).zip(stacks) {
                fb = fb.provider(spec.name.clone(), svc);
            }
            for (_, provider, model) in &self.aliases {
                fb = fb.start_with(model.clone(), provider);
            }
            for (spec, entry) in self.providers.iter().zip(&entries) {
                if let Some(model) = &spec.model {
                    fb = fb.model_for(&spec.name, model.clone());
                }
                let breaker: CircuitBreakerHandle = entry.breaker.clone();
                fb = fb.health_check(&spec.name, move || !breaker.is_rejecting());
                if self.strategy == Strategy::CheapestFirst
                    && let Some(price) = spec.model.as_deref().and_then(|m| ledger.price_of(m))
                {
                    fb = fb.price_for(&spec.name, price.output as f64);
                }
            }
            let layer = fb.build().map_err(|e| e.under("fallback"))?;
            let handle = layer.handle();
            (BoxCloneSyncService::new(layer.layer(primary)), Some(handle))
        };

        let limiter = limiter_layer(&self.limits).map_err(|e| e.under("limits"))?;
        let mut limiters = vec![(None, limiter.handle())];
        let mut pipeline: Pipeline = if self.tenant_limits.is_empty() {
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(limiter)
                    .layer(CostMeterLayer::new(ledger.clone()))
                    .service(core),
            )
        } else {
            let metered: Pipeline =
                BoxCloneSyncService::new(CostMeterLayer::new(ledger.clone()).layer(core));
            let mut tenants = HashMap::new();
            for (tenant, limits) in &self.tenant_limits {
                let own = limiter_layer(limits)
                    .map_err(|e| e.under(&format!("tenants.{tenant}.limits")))?;
                limiters.push((Some(tenant.clone()), own.handle()));
                tenants.insert(
                    tenant.clone(),
                    BoxCloneSyncService::new(own.layer(metered.clone())),
                );
            }
            BoxCloneSyncService::new(router::TenantRouter::new(
                BoxCloneSyncService::new(limiter.layer(metered)),
                tenants,
            ))
        };
        if !self.aliases.is_empty() {
            let map: HashMap<Box<str>, Arc<str>> = self
                .aliases
                .iter()
                .map(|(public, _, model)| (Box::from(public.as_str()), model.clone()))
                .collect();
            let map = Arc::new(map);
            pipeline = BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .map_request(move |req: LlmRequest| resolve_alias(&map, req))
                    .service(pipeline),
            );
        }
        let handle = PipelineHandle::new(HandleInner {
            providers: entries,
            fallback,
            ledger,
            limiters,
            alerts,
            aliases: self
                .aliases
                .into_iter()
                .map(|(p, provider, model)| (Arc::from(p), provider, model))
                .collect(),
        });
        Ok((pipeline, handle))
    }

    /// Every check that does not need a layer built.
    fn check(&self) -> Result<(), ConfigError> {
        if self.providers.is_empty() {
            return Err(ConfigError::new(
                "providers",
                "at least one provider is needed",
            ));
        }
        if self.providers.len() > MAX_PROVIDERS {
            let reason = format!(
                "at most {MAX_PROVIDERS} providers, got {}",
                self.providers.len()
            );
            return Err(ConfigError::new("providers", reason));
        }
        for (i, p) in self.providers.iter().enumerate() {
            if p.name.is_empty() {
                return Err(ConfigError::new(
                    format!("providers[{i}]"),
                    "has an empty name",
                ));
            }
            if self.providers[..i].iter().any(|o| o.name == p.name) {
                return Err(ConfigError::new(
                    format!("providers.{}", p.name),
                    "is named twice",
                ));
            }
            let at = format!("providers.{}", p.name);
            p.retry.check().map_err(|e| e.under(&at))?;
            p.breaker.check().map_err(|e| e.under(&at))?;
            p.rate.check().map_err(|e| e.under(&at))?;
            if p.timeout.is_some_and(|t| t.is_zero()) {
                return Err(ConfigError::new(
                    format!("{at}.timeout"),
                    "must be longer than zero",
                ));
            }
            if p.model.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::new(format!("{at}.model"), "is empty"));
            }
        }
        if self.ledger.is_none() {
            self.budgets.check().map_err(|e| e.under("budgets"))?;
        } else if let Some((tenant, _)) = self.tenant_budgets.first() {
            let reason = "a tenant budget is for the ledger the preset makes: give your ledger a per-client budget with `limit_for` instead";
            return Err(ConfigError::new(
                format!("tenants.{tenant}.budget.daily_usd"),
                reason,
            ));
        }
        for (i, (tenant, usd)) in self.tenant_budgets.iter().enumerate() {
            let at = format!("tenants.{tenant}.budget.daily_usd");
            if tenant.is_empty() || self.tenant_budgets[..i].iter().any(|(o, _)| o == tenant) {
                return Err(ConfigError::new(at, "needs a tenant of its own"));
            }
            settings::check_usd("daily_usd", *usd)
                .map_err(|e| ConfigError::new(at, e.reason().to_owned()))?;
        }
        self.limits.check().map_err(|e| e.under("limits"))?;
        for (i, (tenant, limits)) in self.tenant_limits.iter().enumerate() {
            if tenant.is_empty() || self.tenant_limits[..i].iter().any(|(o, _)| o == tenant) {
                return Err(ConfigError::new(
                    format!("tenants.{tenant}"),
                    "needs a name of its own",
                ));
            }
            limits
                .check()
                .map_err(|e| e.under(&format!("tenants.{tenant}.limits")))?;
        }
        for (i, (public, provider, model)) in self.aliases.iter().enumerate() {
            let at = format!("aliases.{public}");
            if let Some((other, elsewhere, _)) = self.aliases[..i]
                .iter()
                .find(|(_, p, m)| m == model && p != provider)
            {
                let reason = format!(
                    "alias `{other}` already sends `{model}` to provider `{elsewhere}`; a model starts at one provider"
                );
                return Err(ConfigError::new(format!("{at}.provider"), reason));
            }
            if public.is_empty() || model.is_empty() {
                return Err(ConfigError::new(at, "needs a name and a model"));
            }
            let Some(p) = self.providers.iter().find(|p| p.name == *provider) else {
                return Err(ConfigError::new(
                    format!("{at}.provider"),
                    format!("no provider is named `{provider}`"),
                ));
            };
            if let Some(fixed) = p.model.as_deref().filter(|m| *m != &**model) {
                let reason = format!(
                    "provider `{provider}` always asks for `{fixed}` (its `model`), so `{model}` would never be asked"
                );
                return Err(ConfigError::new(format!("{at}.model"), reason));
            }
        }
        Ok(())
    }
}

/// The request with its model replaced when it names an alias.
fn resolve_alias(map: &HashMap<Box<str>, Arc<str>>, mut req: LlmRequest) -> LlmRequest {
    if let Some(model) = map.get(req.model()) {
        req.set_model(model.clone());
    }
    req
}

/// The ledger of `budgets`, with the built-in prices overridden by `prices`.
fn build_ledger(
    budgets: &BudgetSettings,
    tenant_budgets: &[(Arc<str>, f64)],
    prices: &[(String, Price)],
    alerts: Alerts,
) -> Result<Ledger, ConfigError> {
    let mut table = PriceTable::builtin();
    for (model, price) in prices {
        table.set_price(model, *price);
    }
    let alert = budgets.alert_threshold;
    let with_alert = |b: Budget| match alert {
        Some(share) => b.alert_at(share),
        None => b,
    };
    let mut builder = Ledger::builder().prices(table).on_budget_alert(move |a| {
        alerts.push(a.clone());
    });
    if budgets.free_unknown_models {
        builder = builder.unknown_model(UnknownModel::Free);
    }
    if let Some(d) = budgets.daily_usd {
        builder = builder.budget(with_alert(Budget::global(usd(d)).daily()));
    }
    if let Some(m) = budgets.monthly_usd {
        builder = builder.budget(with_alert(Budget::global(usd(m)).monthly()));
    }
    if budgets.per_tenant_daily_usd.is_some() || !tenant_budgets.is_empty() {
        // the tenants without a budget of their own: the default, or no limit
        let others = budgets.per_tenant_daily_usd.map_or(u64::MAX, usd);
        let mut per_tenant = Budget::per_client(others).daily();
        for (tenant, daily) in tenant_budgets {
            per_tenant = per_tenant.limit_for(tenant.clone(), usd(*daily));
        }
        builder = builder.budget(with_alert(per_tenant));
    }
    if let Some(r) = budgets.max_per_request_usd {
        builder = builder.max_request_cost(usd(r));
    }
    builder.build().map_err(|e| e.under("budgets"))
}

/// The outermost layer: per-client error limits and rates.
fn limiter_layer(limits: &LimitSettings) -> Result<ErrorRateLimitLayer, ConfigError> {
    let mut b = ErrorRateLimitLayer::builder()
        .threshold(limits.error_threshold)
        .window(limits.window)
        .penalty(limits.penalty, limits.max_penalty);
    if let Some(rpm) = limits.rpm {
        b = b.requests_per_minute(rpm);
    }
    if let Some(tpm) = limits.tpm {
        b = b.tokens_per_minute(tpm);
    }
    b.build()
}
