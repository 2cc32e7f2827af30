//! [`FallbackLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use std::time::Duration;
use towerguard_outcome::{Lanes, Padded};

use tower_layer::Layer;
use towerguard_outcome::{AttemptHook, ClassifyError, Clock, ConfigError, TokioClock, Verdict};

use crate::MAX_PROVIDERS;
use crate::health::{AllDown, Health};
use crate::plan::{Plan, Strategy};
use crate::service::Fallback;
use crate::shared::{Config, Predicate, Provider, Shared};
use crate::stats::{Counters, FallbackHandle};

/// The longest hedge delay or wait for recovery that makes sense for one request.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// The shortest: tokio's timers count whole milliseconds.
const SHORTEST_WAIT: Duration = Duration::from_millis(1);

/// Sends a request to the next provider when the one before fails.
///
/// The layer wraps the primary service; the others are given to the builder, each with a
/// name (and, for LLMs, optionally the model to ask that provider for). Every clone of the
/// service shares the configuration and statistics. `Req` and `E` are the request and error
/// types every provider speaks. See the [crate] docs for an example.
pub struct FallbackLayer<F, Req, E> {
    shared: Arc<Lanes<Shared<F, Req, E>>>,
}

impl<F, Req, E> Clone for FallbackLayer<F, Req, E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<F, Req, E> fmt::Debug for FallbackLayer<F, Req, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared.shared();
        let names: Vec<&str> = shared.providers.iter().map(|p| &*p.name).collect();
        f.debug_struct("FallbackLayer")
            .field("providers", &names)
            .field("strategy", &shared.config.strategy)
            .finish_non_exhaustive()
    }
}

impl<F: Send + Sync + 'static, Req: 'static, E: 'static> FallbackLayer<F, Req, E> {
    /// A handle to the statistics.
    pub fn handle(&self) -> FallbackHandle {
        FallbackHandle::new(self.shared.this_thread())
    }
}

impl<S, F, Req, E> Layer<S> for FallbackLayer<F, Req, E> {
    type Service = Fallback<S, F, Req, E>;

    fn layer(&self, primary: S) -> Self::Service {
        Fallback::new(primary, self.shared.clone())
    }
}

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
impl<F> FallbackLayer<F, towerguard_llm_core::LlmRequest, towerguard_llm_core::LlmError> {
    /// A builder for LLM providers: `LlmError`'s verdicts (the design's table),
    /// [`model_for`](FallbackLayerBuilder::model_for) sets the request's model per provider,
    /// and the cost meter's [`AttemptHook`] in the request is asked before each attempt.
    pub fn builder()
    -> FallbackLayerBuilder<F, towerguard_llm_core::LlmRequest, towerguard_llm_core::LlmError> {
        use towerguard_llm_core::LlmRequest;
        let mut b = FallbackLayerBuilder::generic();
        b.config.remodel = Some(|req: &LlmRequest, model: &Arc<str>| {
            let mut req = req.clone();
            if req.model() != &**model {
                req.set_model(model.clone());
            }
            req
        });
        b.config.hook_of = LlmRequest::attempt_hook;
        b.config.model_of = |req: &LlmRequest| Some(req.model());
        b.names_models = true;
        b
    }
}

/// Builds a [`FallbackLayer`]; [`build`](Self::build) checks the configuration.
pub struct FallbackLayerBuilder<F, Req, E> {
    providers: Vec<Provider>,
    backups: Vec<F>,
    prices: Vec<Option<f64>>,
    chains: Vec<(Predicate<E>, Vec<Arc<str>>)>,
    /// Models whose requests start at a given provider: (model, provider index).
    routes: Vec<(Arc<str>, usize)>,
    /// Requests name their model (`model_of` is set): routes can apply.
    names_models: bool,
    config: Config<Req, E>,
    /// The first unknown provider name given to a method, reported by `build`.
    unknown: Option<ConfigError>,
}

impl<F, Req, E: ClassifyError> FallbackLayerBuilder<F, Req, E> {
    /// A builder for any request and error types. Errors are judged by their
    /// [`ClassifyError`] verdict; requests carry no attempt hook unless
    /// [`attempt_hook`](Self::attempt_hook) says where to find it.
    pub fn generic() -> Self {
        let mut b = Self {
            providers: Vec::new(),
            backups: Vec::new(),
            prices: Vec::new(),
            chains: Vec::new(),
            routes: Vec::new(),
            names_models: false,
            config: Config {
                strategy: Strategy::Priority,
                health_aware: true,
                all_down: AllDown::TryAnyway,
                max_providers: 5,
                hedge_after: None,
                verdict: Box::new(|e: &E| e.verdict()),
                label: E::label,
                fallback_if: None,
                on_fallback: None,
                remodel: None,
                mapper: None,
                hook_of: |_| None,
                model_of: |_| None,
                clock: Box::new(TokioClock::new()),
            },
            unknown: None,
        };
        b.add("primary");
        b
    }
}

impl<F, Req, E> FallbackLayerBuilder<F, Req, E> {
    fn add(&mut self, name: impl Into<Arc<str>>) {
        let (name, model, health) = (name.into(), None, Health::new(None));
        self.providers.push(Provider {
            name,
            model,
            health,
        });
        self.prices.push(None);
    }

    /// Names the wrapped (primary) service (default `"primary"`).
    pub fn primary(mut self, name: impl Into<Arc<str>>) -> Self {
        self.providers[0].name = name.into();
        self
    }

    /// Adds a provider after those already given.
    pub fn provider(mut self, name: impl Into<Arc<str>>, service: F) -> Self {
        self.add(name);
        self.backups.push(service);
        self
    }

    /// The index of the provider named `name`; an unknown name is remembered for `build` to
    /// report under `field`.
    fn find(&mut self, field: &'static str, name: &str) -> Option<usize> {
        let found = self.providers.iter().position(|p| &*p.name == name);
        if found.is_none() && self.unknown.is_none() {
            self.unknown = Some(unknown(field, name));
        }
        found
    }

    /// The model to ask provider `name` for (e.g. `"claude-sonnet-4-5"` on Anthropic).
    pub fn model_for(mut self, name: &str, model: impl Into<Arc<str>>) -> Self {
        if let Some(i) = self.find("model_for", name) {
            self.providers[i].model = Some(model.into());
        }
        self
    }

    /// Requests asking for `model` start at provider `name` (for example the provider a
    /// model alias names), then go on in the strategy's order; with [`Strategy::FailFast`]
    /// they are tried on `name` alone. A provider known to be down is still tried last. Only
    /// for requests that name their model (the LLM [`builder`](FallbackLayer::builder)).
    pub fn start_with(mut self, model: impl Into<Arc<str>>, name: &str) -> Self {
        if let Some(i) = self.find("start_with", name) {
            let model = model.into();
            self.routes.retain(|(m, _)| *m != model);
            self.routes.push((model, i));
        }
        self
    }

    /// A price hint for provider `name` (any unit, e.g. USD per million output tokens) for
    /// [`Strategy::CheapestFirst`]. It must be a finite number, at least 0.
    pub fn price_for(mut self, name: &str, price: f64) -> Self {
        if let Some(i) = self.find("price_for", name) {
            self.prices[i] = Some(price);
        }
        self
    }

    /// A health check for provider `name` (e.g. `move || !breaker.is_rejecting()`): while it
    /// says false the provider is skipped (tried last).
    pub fn health_check(
        mut self,
        name: &str,
        up: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        if let Some(i) = self.find("health_check", name) {
            self.providers[i].health = Health::new(Some(Box::new(up)));
        }
        self
    }

    /// The order strategy (default [`Strategy::Priority`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.config.strategy = strategy;
        self
    }

    /// Whether providers that are down (a Retry-After or open breaker still in the future, or
    /// a failing health check) are skipped and tried last (default true).
    pub fn health_aware(mut self, on: bool) -> Self {
        self.config.health_aware = on;
        self
    }

    /// What to do when every provider is down (default: try them anyway). A wait must be
    /// between 1 ms and 1 hour, and needs [`health_aware`](Self::health_aware).
    pub fn when_all_down(mut self, all_down: AllDown) -> Self {
        self.config.all_down = all_down;
        self
    }

    /// The most providers tried for one request (default 5, at least 1).
    pub fn max_providers(mut self, n: usize) -> Self {
        self.config.max_providers = n;
        self
    }

    /// Hedging: if no answer came after `delay` (1 ms to 1 hour), start the next provider
    /// too; the first success wins and the others are dropped (cancelled). A hedged request
    /// runs in a boxed future from its start.
    pub fn hedge_after(mut self, delay: Duration) -> Self {
        self.config.hedge_after = Some(delay);
        self
    }

    /// Judges errors with `verdict` instead of their [`ClassifyError`] verdict: a provider is
    /// left for the next if [`Verdict::should_fallback`], and skipped for the
    /// [`Verdict::retry_after`] hint it gives.
    pub fn classify(mut self, verdict: impl Fn(&E) -> Verdict + Send + Sync + 'static) -> Self {
        self.config.verdict = Box::new(verdict);
        self
    }

    /// Falls back on the errors `predicate` picks, instead of those whose verdict says
    /// [`should_fallback`](Verdict::should_fallback). The verdict's Retry-After hint still
    /// applies.
    pub fn fallback_if(mut self, predicate: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.config.fallback_if = Some(Box::new(predicate));
        self
    }

    /// A chain for one condition: when an error matches `condition`, the remaining attempts
    /// go to `providers` (in that order; each provider still at most once per request). An
    /// empty list stops there. Conditions are checked in the order given, before the verdict
    /// and `fallback_if`.
    pub fn chain_when<I, N>(
        mut self,
        condition: impl Fn(&E) -> bool + Send + Sync + 'static,
        providers: I,
    ) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<Arc<str>>,
    {
        let names = providers.into_iter().map(Into::into).collect();
        self.chains.push((Box::new(condition), names));
        self
    }

    /// Rewrites the request for a provider, given the provider's name (after `model_for`).
    pub fn map_request(mut self, f: impl Fn(&str, &Req) -> Req + Send + Sync + 'static) -> Self {
        self.config.mapper = Some(Box::new(f));
        self
    }

    /// Where requests carry the [`AttemptHook`] of a meter above (the LLM builder reads
    /// `LlmRequest::attempt_hook`). Before each attempt the hook is asked with the provider's
    /// name and its `model_for` model; an exhausted budget ends the request without calling
    /// the provider, an unpriced model counts as that provider's failure.
    pub fn attempt_hook(mut self, hook_of: fn(&Req) -> Option<&AttemptHook>) -> Self {
        self.config.hook_of = hook_of;
        self
    }

    /// Called on every switch with `(error, from, to)`.
    pub fn on_fallback(mut self, f: impl Fn(&E, &str, &str) + Send + Sync + 'static) -> Self {
        self.config.on_fallback = Some(Box::new(f));
        self
    }

    /// The clock cool-downs are measured with (default [`TokioClock`], which follows tokio's
    /// paused clock in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Box::new(clock);
        self
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<FallbackLayer<F, Req, E>, ConfigError> {
        self.check()?;
        let index_of = |name: &str| self.providers.iter().position(|p| &*p.name == name);
        let mut chains = Vec::with_capacity(self.chains.len());
        for (when, names) in self.chains {
            let mut plan = Plan::default();
            for name in &names {
                let i = index_of(name).ok_or_else(|| unknown("chain_when", name))?;
                if plan.iter().any(|j| j == i) {
                    let reason = format!("names `{name}` twice in one chain");
                    return Err(ConfigError::new("chain_when", reason));
                }
                plan.push(i);
            }
            chains.push((when, plan));
        }
        let n = self.providers.len();
        let mut cheapest: Vec<usize> = (0..n).collect();
        let price = |i: usize| self.prices[i].unwrap_or(f64::INFINITY);
        cheapest.sort_by(|&a, &b| price(a).total_cmp(&price(b)));
        let cheapest: Plan = cheapest.into_iter().collect();
        let config = self.config;
        let starts_on_primary = config.hedge_after.is_none()
            && match config.strategy {
                Strategy::Priority | Strategy::FailFast => true,
                Strategy::CheapestFirst => cheapest.first() == Some(0),
                Strategy::RoundRobin => false,
            };
        let primary_as_is = config.mapper.is_none()
            && (config.remodel.is_none() || self.providers[0].model.is_none());
        let shared = Shared {
            primary_as_is,
            providers: self.providers,
            backups: self.backups,
            counters: Counters::new(n),
            cheapest,
            round_robin: Padded(AtomicUsize::new(0)),
            starts_on_primary,
            chains,
            routes: self.routes,
            config,
        };
        Ok(FallbackLayer {
            shared: Arc::new(Lanes::new(Arc::new(shared))),
        })
    }

    /// Everything `build` refuses but the chains.
    fn check(&self) -> Result<(), ConfigError> {
        let n = self.providers.len();
        if n < 2 {
            let reason = "a fallback needs at least one provider besides the primary";
            return Err(ConfigError::new("provider", reason));
        }
        if n > MAX_PROVIDERS {
            let reason =
                format!("at most {MAX_PROVIDERS} providers, the primary included, got {n}");
            return Err(ConfigError::new("provider", reason));
        }
        for (i, p) in self.providers.iter().enumerate() {
            if p.name.is_empty() {
                return Err(ConfigError::new("provider", "a provider's name is empty"));
            }
            if self.providers[..i].iter().any(|o| o.name == p.name) {
                let reason = format!("the name `{}` is used twice", p.name);
                return Err(ConfigError::new("provider", reason));
            }
            if let Some(price) = self.prices[i] {
                ConfigError::check_non_negative("price_for", price).map_err(|e| {
                    ConfigError::new("price_for", format!("`{}` {}", p.name, e.reason()))
                })?;
            }
        }
        if let Some(e) = &self.unknown {
            return Err(e.clone());
        }
        if !self.routes.is_empty() && !self.names_models {
            let reason = "needs requests that name their model (the LLM builder)";
            return Err(ConfigError::new("start_with", reason));
        }
        let c = &self.config;
        if c.max_providers == 0 {
            return Err(ConfigError::new("max_providers", "must be at least 1"));
        }
        if let Some(delay) = c.hedge_after {
            check_wait("hedge_after", delay)?;
            if c.strategy == Strategy::FailFast {
                let reason = "cannot hedge with `Strategy::FailFast`, which tries one provider";
                return Err(ConfigError::new("hedge_after", reason));
            }
        }
        if let AllDown::WaitForRecovery(max) = c.all_down {
            check_wait("when_all_down", max)?;
            if !c.health_aware {
                let reason = "waiting for recovery needs `health_aware(true)`";
                return Err(ConfigError::new("when_all_down", reason));
            }
        }
        Ok(())
    }
}

fn unknown(field: &'static str, name: &str) -> ConfigError {
    ConfigError::new(field, format!("no provider is named `{name}`"))
}

fn check_wait(field: &'static str, wait: Duration) -> Result<(), ConfigError> {
    if (SHORTEST_WAIT..=LONGEST_WAIT).contains(&wait) {
        Ok(())
    } else {
        let reason = format!("must be between 1 ms and 1 hour, got {wait:?}");
        Err(ConfigError::new(field, reason))
    }
}
