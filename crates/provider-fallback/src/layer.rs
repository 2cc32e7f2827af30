//! [`FallbackLayer`], its builder, the shared configuration and the statistics handle.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;

use crate::hint::FallbackHint;
use crate::service::Fallback;

/// Most providers one layer can hold (the wrapped primary included).
pub const MAX_PROVIDERS: usize = 16;

/// The order providers are tried in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The primary, then the others in the order given (default).
    #[default]
    Priority,
    /// By price hint, cheapest first; providers without a price go last, in order.
    CheapestFirst,
    /// Each request starts one provider further along the list.
    RoundRobin,
    /// The primary only: no fallback.
    FailFast,
}

/// What a health-aware fallback does when every provider in the plan is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllDown {
    /// Try them anyway, in order (default): a provider that is down may be back.
    #[default]
    TryAnyway,
    /// Wait until the first provider's known recovery time (at most this long), then try.
    WaitForRecovery(Duration),
}

/// Invalid fallback configuration, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid fallback configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

pub(crate) type Predicate<E> = Box<dyn Fn(&E) -> bool + Send + Sync>;
pub(crate) type Mapper<Req> = Box<dyn Fn(&str, &Req) -> Req + Send + Sync>;
pub(crate) type Remodel<Req> = fn(&Req, &Arc<str>) -> Req;
pub(crate) type OnFallback<E> = Box<dyn Fn(&E, &str, &str) + Send + Sync>;
pub(crate) type Health = Box<dyn Fn() -> bool + Send + Sync>;

/// Per-provider settings and counters. Index 0 is the wrapped (primary) service.
pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) health: Option<Health>,
    /// Skip until this many nanoseconds after `start` (0: not cooling down).
    pub(crate) cooldown_until: AtomicU64,
    pub(crate) served: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) last_error: std::sync::Mutex<Option<&'static str>>,
}

/// What every clone of the service shares.
pub(crate) struct Shared<F, Req, E> {
    pub(crate) others: Vec<F>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) strategy: Strategy,
    pub(crate) cheapest: Vec<u8>,
    /// Every request starts on the primary (no hedging, and the strategy puts it first).
    pub(crate) primary_first: bool,
    /// The primary gets the request unchanged (no model mapping, no mapper).
    pub(crate) primary_as_is: bool,
    pub(crate) health_aware: bool,
    pub(crate) all_down: AllDown,
    pub(crate) max_providers: usize,
    pub(crate) hedge_after: Option<Duration>,
    pub(crate) fallback_if: Option<Predicate<E>>,
    pub(crate) hint: fn(&E) -> (bool, Option<Duration>, &'static str),
    pub(crate) chains: Vec<(Predicate<E>, Vec<u8>)>,
    pub(crate) mapper: Option<Mapper<Req>>,
    pub(crate) remodel: Option<Remodel<Req>>,
    pub(crate) on_fallback: Option<OnFallback<E>>,
    pub(crate) round_robin: AtomicUsize,
    pub(crate) stopped: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) exhausted: AtomicU64,
    pub(crate) start: Instant,
}

impl<F, Req, E> Shared<F, Req, E> {
    pub(crate) fn now(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos();
        nanos.min(u128::from(u64::MAX)) as u64
    }

    /// Is provider `i` up, as far as we know? Reads the clock only while it cools down.
    #[inline]
    pub(crate) fn is_up(&self, i: usize) -> bool {
        let slot = &self.slots[i];
        let until = slot.cooldown_until.load(Ordering::Relaxed);
        if until != 0 && self.now() < until {
            return false;
        }
        slot.health.as_ref().is_none_or(|h| h())
    }

    /// Nanoseconds until provider `i` is expected back (0 if up or unknown).
    pub(crate) fn recovers_in(&self, i: usize) -> u64 {
        let until = self.slots[i].cooldown_until.load(Ordering::Relaxed);
        until.saturating_sub(self.now())
    }

    pub(crate) fn cool_down(&self, i: usize, d: Duration) {
        let until = self
            .now()
            .saturating_add(d.as_nanos().min(u128::from(u64::MAX)) as u64)
            .max(1);
        self.slots[i].cooldown_until.store(until, Ordering::Relaxed);
    }

    pub(crate) fn served(&self, i: usize) {
        let slot = &self.slots[i];
        slot.served.fetch_add(1, Ordering::Relaxed);
        if slot.cooldown_until.load(Ordering::Relaxed) != 0 {
            slot.cooldown_until.store(0, Ordering::Relaxed);
        }
    }

    /// The default order for a new request (before health).
    pub(crate) fn base_order(&self) -> Plan {
        let n = self.slots.len();
        let mut plan = Plan::default();
        match self.strategy {
            Strategy::Priority => (0..n).for_each(|i| plan.push(i)),
            Strategy::FailFast => plan.push(0),
            Strategy::CheapestFirst => self.cheapest.iter().for_each(|&i| plan.push(i.into())),
            Strategy::RoundRobin => {
                let first = self.round_robin.fetch_add(1, Ordering::Relaxed) % n;
                (0..n).for_each(|k| plan.push((first + k) % n));
            }
        }
        plan
    }

    /// Puts providers that are down after the ones that are up (order kept within each).
    pub(crate) fn by_health(&self, plan: Plan) -> (Plan, bool) {
        if !self.health_aware {
            return (plan, true);
        }
        let mut up = Plan::default();
        let mut down = Plan::default();
        for i in plan.iter() {
            if self.is_up(i) {
                up.push(i);
            } else {
                down.push(i);
            }
        }
        let any_up = !up.is_empty();
        for i in down.iter() {
            up.push(i);
        }
        (up, any_up)
    }

    pub(crate) fn request_for(&self, i: usize, req: &Req) -> Req
    where
        Req: Clone,
    {
        let slot = &self.slots[i];
        let mut out = match (&self.remodel, &slot.model) {
            (Some(remodel), Some(model)) => remodel(req, model),
            _ => req.clone(),
        };
        if let Some(map) = &self.mapper {
            out = map(&slot.name, &out);
        }
        out
    }

    /// `(fall back?, retry-after, label)`, with the user's predicate if set.
    pub(crate) fn judge(&self, e: &E) -> (bool, Option<Duration>, &'static str) {
        let (default, hint, label) = (self.hint)(e);
        let go = match &self.fallback_if {
            Some(p) => p(e),
            None => default,
        };
        (go, hint, label)
    }
}

/// An ordered list of provider indices, without allocating.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plan {
    items: [u8; MAX_PROVIDERS],
    len: u8,
}

impl Plan {
    pub(crate) fn push(&mut self, i: usize) {
        if (self.len as usize) < MAX_PROVIDERS {
            self.items[self.len as usize] = i as u8;
            self.len += 1;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.items[..self.len as usize]
            .iter()
            .map(|&i| usize::from(i))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Statistics of a fallback layer, from [`FallbackHandle::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackStats {
    /// Requests answered (served, exhausted, or stopped on an error that does not fall back).
    pub requests: u64,
    /// Switches from one provider to the next.
    pub fallbacks: u64,
    /// Requests on which every provider tried failed.
    pub exhausted: u64,
    /// Per provider, in configuration order (the primary first).
    pub providers: Vec<ProviderStats>,
}

/// One provider's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStats {
    /// Its name.
    pub name: Arc<str>,
    /// Requests it served.
    pub served: u64,
    /// Attempts it failed.
    pub failed: u64,
    /// The label of its last failure (the `ErrorKind` for LLM errors).
    pub last_error: Option<&'static str>,
    /// Whether it is skipped right now (cooling down after a Retry-After, or its health
    /// check says down).
    pub down: bool,
}

/// Reads a fallback layer's statistics.
pub struct FallbackHandle {
    stats: Arc<dyn Fn() -> FallbackStats + Send + Sync>,
}

impl fmt::Debug for FallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackHandle").finish_non_exhaustive()
    }
}

impl Clone for FallbackHandle {
    fn clone(&self) -> Self {
        Self {
            stats: self.stats.clone(),
        }
    }
}

impl FallbackHandle {
    /// Requests, fallbacks, and per-provider served and failed counts.
    pub fn stats(&self) -> FallbackStats {
        (self.stats)()
    }
}

/// Sends a request to the next provider when the one before fails.
///
/// The layer wraps the primary service; the others are given to the builder, each with a
/// name (and, for LLMs, optionally the model to ask that provider for). Every clone of the
/// service shares the configuration and statistics. `Req` and `E` are the request and error
/// types every provider speaks.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use towerguard_llm_core::ErrorKind;
/// use towerguard_provider_fallback::FallbackLayer;
/// use towerguard_testkit::{request, FakeProvider, Outcome};
///
/// let deepseek = FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Server));
/// let openai = FakeProvider::new("openai");
/// let fallback = FallbackLayer::builder()
///     .primary("deepseek")
///     .provider("openai", openai.clone())
///     .model_for("openai", "gpt-4o-mini")
///     .build()
///     .unwrap();
/// let stats = fallback.handle();
/// let mut svc = ServiceBuilder::new().layer(fallback).service(deepseek);
/// let resp = svc.ready().await.unwrap().call(request("deepseek-chat")).await.unwrap();
/// assert_eq!((resp.provider(), resp.model()), ("openai", "gpt-4o-mini"));
/// assert_eq!(stats.stats().fallbacks, 1);
/// # });
/// ```
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
        let names: Vec<&str> = self.shared.slots.iter().map(|s| &*s.name).collect();
        f.debug_struct("FallbackLayer")
            .field("providers", &names)
            .field("strategy", &self.shared.strategy)
            .finish_non_exhaustive()
    }
}

impl<F, Req, E> FallbackLayer<F, Req, E>
where
    F: Send + Sync + 'static,
    Req: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A handle to the statistics.
    pub fn handle(&self) -> FallbackHandle {
        let shared = self.shared.clone();
        FallbackHandle {
            stats: Arc::new(move || {
                let providers: Vec<ProviderStats> = shared
                    .slots
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ProviderStats {
                        name: s.name.clone(),
                        served: s.served.load(Ordering::Relaxed),
                        failed: s.failed.load(Ordering::Relaxed),
                        last_error: *s.last_error.lock().unwrap_or_else(|p| p.into_inner()),
                        down: !shared.is_up(i),
                    })
                    .collect();
                let served: u64 = providers.iter().map(|p: &ProviderStats| p.served).sum();
                let exhausted = shared.exhausted.load(Ordering::Relaxed);
                FallbackStats {
                    requests: served + exhausted + shared.stopped.load(Ordering::Relaxed),
                    fallbacks: shared.fallbacks.load(Ordering::Relaxed),
                    exhausted,
                    providers,
                }
            }),
        }
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
    /// A builder for LLM providers: `LlmError`'s fallback policy, and [`model_for`] maps the
    /// request's model per provider.
    ///
    /// [`model_for`]: FallbackLayerBuilder::model_for
    pub fn builder()
    -> FallbackLayerBuilder<F, towerguard_llm_core::LlmRequest, towerguard_llm_core::LlmError> {
        let mut b = FallbackLayerBuilder::generic();
        b.remodel = Some(|req: &towerguard_llm_core::LlmRequest, model: &Arc<str>| {
            let mut r = req.clone();
            r.set_model(model.clone());
            r
        });
        b
    }
}

struct ProviderSpec<F> {
    name: Arc<str>,
    service: Option<F>,
    model: Option<Arc<str>>,
    price: Option<f64>,
    health: Option<Health>,
}

/// Builds a [`FallbackLayer`]; [`build`](Self::build) checks the configuration.
pub struct FallbackLayerBuilder<F, Req, E> {
    specs: Vec<ProviderSpec<F>>,
    strategy: Strategy,
    health_aware: bool,
    all_down: AllDown,
    max_providers: usize,
    hedge_after: Option<Duration>,
    fallback_if: Option<Predicate<E>>,
    chains: Vec<(Predicate<E>, Vec<Arc<str>>)>,
    mapper: Option<Mapper<Req>>,
    remodel: Option<Remodel<Req>>,
    on_fallback: Option<OnFallback<E>>,
    unknown: Vec<String>,
    _types: PhantomData<fn(Req, E)>,
}

impl<F, Req, E> fmt::Debug for FallbackLayerBuilder<F, Req, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.specs.iter().map(|s| &*s.name).collect();
        f.debug_struct("FallbackLayerBuilder")
            .field("providers", &names)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl<F, Req, E> FallbackLayerBuilder<F, Req, E> {
    /// A builder for any request and error types (the error must be a [`FallbackHint`]).
    pub fn generic() -> Self {
        Self {
            specs: vec![ProviderSpec {
                name: Arc::from("primary"),
                service: None,
                model: None,
                price: None,
                health: None,
            }],
            strategy: Strategy::Priority,
            health_aware: true,
            all_down: AllDown::TryAnyway,
            max_providers: 5,
            hedge_after: None,
            fallback_if: None,
            chains: Vec::new(),
            mapper: None,
            remodel: None,
            on_fallback: None,
            unknown: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Names the wrapped (primary) service (default `"primary"`).
    pub fn primary(mut self, name: impl Into<Arc<str>>) -> Self {
        self.specs[0].name = name.into();
        self
    }

    /// Adds a provider after those already given.
    pub fn provider(mut self, name: impl Into<Arc<str>>, service: F) -> Self {
        self.specs.push(ProviderSpec {
            name: name.into(),
            service: Some(service),
            model: None,
            price: None,
            health: None,
        });
        self
    }

    fn spec_mut(&mut self, name: &str) -> Option<&mut ProviderSpec<F>> {
        self.specs.iter_mut().find(|s| &*s.name == name)
    }

    /// The model to ask provider `name` for (e.g. `"claude-sonnet-4-5"` on Anthropic).
    /// Unknown names are reported by [`build`](Self::build).
    pub fn model_for(mut self, name: &str, model: impl Into<Arc<str>>) -> Self {
        let model = model.into();
        match self.spec_mut(name) {
            Some(s) => s.model = Some(model),
            None => self.chains_unknown(name),
        }
        self
    }

    /// A price hint for provider `name` (any unit, e.g. USD per million output tokens) for
    /// [`Strategy::CheapestFirst`].
    pub fn price_for(mut self, name: &str, price: f64) -> Self {
        match self.spec_mut(name) {
            Some(s) => s.price = Some(price),
            None => self.chains_unknown(name),
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
        match self.spec_mut(name) {
            Some(s) => s.health = Some(Box::new(up)),
            None => self.chains_unknown(name),
        }
        self
    }

    fn chains_unknown(&mut self, name: &str) {
        // build() reports it
        self.unknown.push(name.to_owned());
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

    /// What to do when every provider is down (default: try them anyway).
    pub fn when_all_down(mut self, all_down: AllDown) -> Self {
        self.all_down = all_down;
        self
    }

    /// The most providers tried for one request (default 5).
    pub fn max_providers(mut self, n: usize) -> Self {
        self.max_providers = n;
        self
    }

    /// Hedging: if no answer came after `delay`, start the next provider too; the first
    /// success wins and the others are dropped (cancelled).
    pub fn hedge_after(mut self, delay: Duration) -> Self {
        self.hedge_after = Some(delay);
        self
    }

    /// Fall back on the errors `predicate` picks, instead of the default ([`FallbackHint`]).
    pub fn fallback_if(mut self, predicate: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.fallback_if = Some(Box::new(predicate));
        self
    }

    /// A chain for one condition: when an error matches `condition`, the remaining attempts
    /// go to `providers` (in that order; each provider still at most once per request). An
    /// empty list stops there. Conditions are checked in the order given, before the default.
    pub fn chain_when<I, N>(
        mut self,
        condition: impl Fn(&E) -> bool + Send + Sync + 'static,
        providers: I,
    ) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<Arc<str>>,
    {
        self.chains.push((
            Box::new(condition),
            providers.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Rewrites the request for a provider, given the provider's name (after `model_for`).
    pub fn map_request(mut self, f: impl Fn(&str, &Req) -> Req + Send + Sync + 'static) -> Self {
        self.mapper = Some(Box::new(f));
        self
    }

    /// Called on every switch with `(error, from, to)`.
    pub fn on_fallback(mut self, f: impl Fn(&E, &str, &str) + Send + Sync + 'static) -> Self {
        self.on_fallback = Some(Box::new(f));
        self
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<FallbackLayer<F, Req, E>, ConfigError>
    where
        E: FallbackHint,
    {
        let n = self.specs.len();
        if n > MAX_PROVIDERS {
            return Err(ConfigError::new(
                "provider",
                format!("at most {MAX_PROVIDERS} providers, got {n}"),
            ));
        }
        if self.max_providers == 0 {
            return Err(ConfigError::new("max_providers", "must be at least 1"));
        }
        for (i, s) in self.specs.iter().enumerate() {
            if self.specs[..i].iter().any(|o| o.name == s.name) {
                return Err(ConfigError::new(
                    "provider",
                    format!("the name `{}` is used twice", s.name),
                ));
            }
            if let Some(p) = s.price
                && (!p.is_finite() || p < 0.0)
            {
                return Err(ConfigError::new(
                    "price_for",
                    format!(
                        "price of `{}` must be a finite number >= 0, got {p}",
                        s.name
                    ),
                ));
            }
        }
        if let Some(name) = self.unknown.first() {
            return Err(ConfigError::new(
                "provider",
                format!("no provider is named `{name}`"),
            ));
        }
        let index_of = |name: &str| self.specs.iter().position(|s| &*s.name == name);
        let mut chains = Vec::new();
        for (cond, names) in self.chains {
            let mut idx = Vec::new();
            for name in names {
                match index_of(&name) {
                    Some(i) => idx.push(i as u8),
                    None => {
                        return Err(ConfigError::new(
                            "chain_when",
                            format!("no provider is named `{name}`"),
                        ));
                    }
                }
            }
            chains.push((cond, idx));
        }
        let mut cheapest: Vec<u8> = (0..n as u8).collect();
        cheapest.sort_by(|&a, &b| {
            let pa = self.specs[usize::from(a)].price.unwrap_or(f64::INFINITY);
            let pb = self.specs[usize::from(b)].price.unwrap_or(f64::INFINITY);
            pa.total_cmp(&pb)
        });
        let mut others = Vec::with_capacity(n - 1);
        let mut slots = Vec::with_capacity(n);
        for s in self.specs {
            if let Some(svc) = s.service {
                others.push(svc);
            }
            slots.push(Slot {
                name: s.name,
                model: s.model,
                health: s.health,
                cooldown_until: AtomicU64::new(0),
                served: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                last_error: std::sync::Mutex::new(None),
            });
        }
        let primary_first = self.hedge_after.is_none()
            && match self.strategy {
                Strategy::Priority | Strategy::FailFast => true,
                Strategy::CheapestFirst => cheapest.first() == Some(&0),
                Strategy::RoundRobin => false,
            };
        let primary_as_is = slots[0].model.is_none() && self.mapper.is_none();
        Ok(FallbackLayer {
            shared: Arc::new(Shared {
                others,
                slots,
                strategy: self.strategy,
                primary_first,
                primary_as_is,
                cheapest,
                health_aware: self.health_aware,
                all_down: self.all_down,
                max_providers: self.max_providers,
                hedge_after: self.hedge_after,
                fallback_if: self.fallback_if,
                hint: |e: &E| (e.should_fallback(), e.retry_after(), e.label()),
                chains,
                mapper: self.mapper,
                remodel: self.remodel,
                on_fallback: self.on_fallback,
                round_robin: AtomicUsize::new(0),
                stopped: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
                exhausted: AtomicU64::new(0),
                start: Instant::now(),
            }),
        })
    }
}
