//! [`FallbackLayer`] and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tower_layer::Layer;
use towerguard_outcome::{AttemptHook, ClassifyError, Clock, ConfigError, TokioClock, Verdict};

use crate::MAX_PROVIDERS;
use crate::health::{AllDown, Health, HealthCheck};
use crate::plan::{Plan, Strategy};
use crate::service::Fallback;
use crate::shared::{Mapper, OnFallback, Predicate, Provider, Remodel, Shared, VerdictFn};
use crate::stats::{Counters, FallbackHandle, Padded};

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
    shared: Arc<Shared<F, Req, E>>,
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
        let names: Vec<&str> = self.shared.providers.iter().map(|p| &*p.name).collect();
        f.debug_struct("FallbackLayer")
            .field("providers", &names)
            .field("strategy", &self.shared.strategy)
            .finish_non_exhaustive()
    }
}

impl<F: Send + Sync + 'static, Req: 'static, E: 'static> FallbackLayer<F, Req, E> {
    /// A handle to the statistics.
    pub fn handle(&self) -> FallbackHandle {
        FallbackHandle::new(self.shared.clone())
    }
}

impl<S, F, Req, E> Layer<S> for FallbackLayer<F, Req, E> {
    type Service = Fallback<S, F, Req, E>;

    fn layer(&self, primary: S) -> Self::Service {
        Fallback::new(primary, self.shared.clone())
    }
}

#[cfg(feature = "llm")]
impl<F> FallbackLayer<F, towerguard_llm_core::LlmRequest, towerguard_llm_core::LlmError> {
    /// A builder for LLM providers: `LlmError`'s verdicts (the design's table),
    /// [`model_for`](FallbackLayerBuilder::model_for) sets the request's model per provider,
    /// and the cost meter's [`AttemptHook`] in the request is asked before each attempt.
    pub fn builder()
    -> FallbackLayerBuilder<F, towerguard_llm_core::LlmRequest, towerguard_llm_core::LlmError> {
        use towerguard_llm_core::LlmRequest;
        let mut b = FallbackLayerBuilder::generic();
        b.remodel = Some(|req: &LlmRequest, model: &Arc<str>| {
            let mut req = req.clone();
            if req.model() != &**model {
                req.set_model(model.clone());
            }
            req
        });
        b.hook_of = LlmRequest::attempt_hook;
        b.model_of = |req: &LlmRequest| Some(req.model());
        b
    }
}

struct ProviderSpec<F> {
    name: Arc<str>,
    service: Option<F>,
    model: Option<Arc<str>>,
    price: Option<f64>,
    health: Option<HealthCheck>,
}

impl<F> ProviderSpec<F> {
    fn new(name: Arc<str>, service: Option<F>) -> Self {
        Self {
            name,
            service,
            model: None,
            price: None,
            health: None,
        }
    }
}

/// Builds a [`FallbackLayer`]; [`build`](Self::build) checks the configuration.
pub struct FallbackLayerBuilder<F, Req, E> {
    specs: Vec<ProviderSpec<F>>,
    strategy: Strategy,
    health_aware: bool,
    all_down: AllDown,
    max_providers: usize,
    hedge_after: Option<Duration>,
    verdict: VerdictFn<E>,
    label: fn(&E) -> &'static str,
    fallback_if: Option<Predicate<E>>,
    chains: Vec<(Predicate<E>, Vec<Arc<str>>)>,
    mapper: Option<Mapper<Req>>,
    remodel: Option<Remodel<Req>>,
    hook_of: fn(&Req) -> Option<&AttemptHook>,
    model_of: fn(&Req) -> Option<&str>,
    on_fallback: Option<OnFallback<E>>,
    clock: Box<dyn Clock>,
    /// The first unknown provider name given to a method, reported by `build`.
    unknown: Option<ConfigError>,
    _types: PhantomData<fn(Req, E)>,
}

impl<F, Req, E: ClassifyError> FallbackLayerBuilder<F, Req, E> {
    /// A builder for any request and error types. Errors are judged by their
    /// [`ClassifyError`] verdict; requests carry no attempt hook unless
    /// [`attempt_hook`](Self::attempt_hook) says where to find it.
    pub fn generic() -> Self {
        Self {
            specs: vec![ProviderSpec::new(Arc::from("primary"), None)],
            strategy: Strategy::Priority,
            health_aware: true,
            all_down: AllDown::TryAnyway,
            max_providers: 5,
            hedge_after: None,
            verdict: Box::new(|e: &E| e.verdict()),
            label: E::label,
            fallback_if: None,
            chains: Vec::new(),
            mapper: None,
            remodel: None,
            hook_of: |_| None,
            model_of: |_| None,
            on_fallback: None,
            clock: Box::new(TokioClock::new()),
            unknown: None,
            _types: PhantomData,
        }
    }
}

impl<F, Req, E> FallbackLayerBuilder<F, Req, E> {
    /// Names the wrapped (primary) service (default `"primary"`).
    pub fn primary(mut self, name: impl Into<Arc<str>>) -> Self {
        self.specs[0].name = name.into();
        self
    }

    /// Adds a provider after those already given.
    pub fn provider(mut self, name: impl Into<Arc<str>>, service: F) -> Self {
        self.specs
            .push(ProviderSpec::new(name.into(), Some(service)));
        self
    }

    /// The provider named `name`; an unknown name is remembered for `build` to report
    /// under `field`.
    fn spec(&mut self, field: &'static str, name: &str) -> Option<&mut ProviderSpec<F>> {
        let found = self.specs.iter().position(|s| &*s.name == name);
        if found.is_none() && self.unknown.is_none() {
            self.unknown = Some(unknown(field, name));
        }
        found.map(|i| &mut self.specs[i])
    }

    /// The model to ask provider `name` for (e.g. `"claude-sonnet-4-5"` on Anthropic).
    pub fn model_for(mut self, name: &str, model: impl Into<Arc<str>>) -> Self {
        if let Some(s) = self.spec("model_for", name) {
            s.model = Some(model.into());
        }
        self
    }

    /// A price hint for provider `name` (any unit, e.g. USD per million output tokens) for
    /// [`Strategy::CheapestFirst`]. It must be a finite number, at least 0.
    pub fn price_for(mut self, name: &str, price: f64) -> Self {
        if let Some(s) = self.spec("price_for", name) {
            s.price = Some(price);
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
        if let Some(s) = self.spec("health_check", name) {
            s.health = Some(Box::new(up));
        }
        self
    }

    /// The order strategy (default [`Strategy::Priority`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Whether providers that are down (a Retry-After or open breaker still in the future, or
    /// a failing health check) are skipped and tried last (default true).
    pub fn health_aware(mut self, on: bool) -> Self {
        self.health_aware = on;
        self
    }

    /// What to do when every provider is down (default: try them anyway). A wait must be
    /// between 1 ms and 1 hour, and needs [`health_aware`](Self::health_aware).
    pub fn when_all_down(mut self, all_down: AllDown) -> Self {
        self.all_down = all_down;
        self
    }

    /// The most providers tried for one request (default 5, at least 1).
    pub fn max_providers(mut self, n: usize) -> Self {
        self.max_providers = n;
        self
    }

    /// Hedging: if no answer came after `delay` (1 ms to 1 hour), start the next provider
    /// too; the first success wins and the others are dropped (cancelled). A hedged request
    /// runs in a boxed future from its start.
    pub fn hedge_after(mut self, delay: Duration) -> Self {
        self.hedge_after = Some(delay);
        self
    }

    /// Judges errors with `verdict` instead of their [`ClassifyError`] verdict: a provider is
    /// left for the next if [`Verdict::should_fallback`], and skipped for the
    /// [`Verdict::retry_after`] hint it gives.
    pub fn classify(mut self, verdict: impl Fn(&E) -> Verdict + Send + Sync + 'static) -> Self {
        self.verdict = Box::new(verdict);
        self
    }

    /// Falls back on the errors `predicate` picks, instead of those whose verdict says
    /// [`should_fallback`](Verdict::should_fallback). The verdict's Retry-After hint still
    /// applies.
    pub fn fallback_if(mut self, predicate: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.fallback_if = Some(Box::new(predicate));
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
        self.mapper = Some(Box::new(f));
        self
    }

    /// Where requests carry the [`AttemptHook`] of a meter above (the LLM builder reads
    /// `LlmRequest::attempt_hook`). Before each attempt the hook is asked with the provider's
    /// name and its `model_for` model; an exhausted budget ends the request without calling
    /// the provider, an unpriced model counts as that provider's failure.
    pub fn attempt_hook(mut self, hook_of: fn(&Req) -> Option<&AttemptHook>) -> Self {
        self.hook_of = hook_of;
        self
    }

    /// Called on every switch with `(error, from, to)`.
    pub fn on_fallback(mut self, f: impl Fn(&E, &str, &str) + Send + Sync + 'static) -> Self {
        self.on_fallback = Some(Box::new(f));
        self
    }

    /// The clock cool-downs are measured with (default [`TokioClock`], which follows tokio's
    /// paused clock in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<FallbackLayer<F, Req, E>, ConfigError> {
        self.check()?;
        let n = self.specs.len();
        let index_of = |name: &str| self.specs.iter().position(|s| &*s.name == name);
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
        let mut cheapest: Vec<usize> = (0..n).collect();
        let price = |i: usize| self.specs[i].price.unwrap_or(f64::INFINITY);
        cheapest.sort_by(|&a, &b| price(a).total_cmp(&price(b)));
        let cheapest: Plan = cheapest.into_iter().collect();
        let starts_on_primary = self.hedge_after.is_none()
            && match self.strategy {
                Strategy::Priority | Strategy::FailFast => true,
                Strategy::CheapestFirst => cheapest.first() == Some(0),
                Strategy::RoundRobin => false,
            };
        let mut backups = Vec::with_capacity(n - 1);
        let mut providers = Vec::with_capacity(n);
        for spec in self.specs {
            backups.extend(spec.service);
            providers.push(Provider {
                name: spec.name,
                model: spec.model,
                health: Health::new(spec.health),
            });
        }
        Ok(FallbackLayer {
            shared: Arc::new(Shared {
                providers,
                backups,
                counters: Counters::new(n),
                clock: self.clock,
                strategy: self.strategy,
                cheapest,
                round_robin: Padded(AtomicUsize::new(0)),
                starts_on_primary,
                health_aware: self.health_aware,
                all_down: self.all_down,
                max_providers: self.max_providers,
                hedge_after: self.hedge_after,
                verdict: self.verdict,
                label: self.label,
                fallback_if: self.fallback_if,
                chains,
                on_fallback: self.on_fallback,
                remodel: self.remodel,
                mapper: self.mapper,
                hook_of: self.hook_of,
                model_of: self.model_of,
            }),
        })
    }

    /// Everything `build` refuses but the chains.
    fn check(&self) -> Result<(), ConfigError> {
        let n = self.specs.len();
        if n < 2 {
            return Err(ConfigError::new(
                "provider",
                "a fallback needs at least one provider besides the primary",
            ));
        }
        if n > MAX_PROVIDERS {
            let reason =
                format!("at most {MAX_PROVIDERS} providers, the primary included, got {n}");
            return Err(ConfigError::new("provider", reason));
        }
        for (i, s) in self.specs.iter().enumerate() {
            if s.name.is_empty() {
                return Err(ConfigError::new("provider", "a provider's name is empty"));
            }
            if self.specs[..i].iter().any(|o| o.name == s.name) {
                let reason = format!("the name `{}` is used twice", s.name);
                return Err(ConfigError::new("provider", reason));
            }
            if let Some(p) = s.price {
                ConfigError::check_non_negative("price_for", p).map_err(|e| {
                    ConfigError::new("price_for", format!("`{}` {}", s.name, e.reason()))
                })?;
            }
        }
        if let Some(e) = &self.unknown {
            return Err(e.clone());
        }
        if self.max_providers == 0 {
            return Err(ConfigError::new("max_providers", "must be at least 1"));
        }
        if let Some(delay) = self.hedge_after {
            check_wait("hedge_after", delay)?;
            if self.strategy == Strategy::FailFast {
                let reason = "cannot hedge with `Strategy::FailFast`, which tries one provider";
                return Err(ConfigError::new("hedge_after", reason));
            }
        }
        if let AllDown::WaitForRecovery(max) = self.all_down {
            check_wait("when_all_down", max)?;
            if !self.health_aware {
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
