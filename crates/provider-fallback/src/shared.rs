//! What every clone of the service shares: the providers, the policy, the counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use towerguard_outcome::{AttemptHook, Clock, Lane, Padded, Verdict};

use crate::health::{AllDown, Health};
use crate::plan::{Plan, Strategy};
use crate::stats::{Counters, FallbackStats, Report};

pub(crate) type Predicate<E> = Box<dyn Fn(&E) -> bool + Send + Sync>;
pub(crate) type VerdictFn<E> = Box<dyn Fn(&E) -> Verdict + Send + Sync>;
pub(crate) type Mapper<Req> = Box<dyn Fn(&str, &Req) -> Req + Send + Sync>;
pub(crate) type Remodel<Req> = fn(&Req, &Arc<str>) -> Req;
pub(crate) type OnFallback<E> = Box<dyn Fn(&E, &str, &str) + Send + Sync>;

/// One provider's configuration and health. Index 0 is the wrapped (primary) service.
pub(crate) struct Provider {
    pub(crate) name: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) health: Health,
}

/// What the builder was told, as it was told.
pub(crate) struct Config<Req, E> {
    pub(crate) strategy: Strategy,
    pub(crate) health_aware: bool,
    pub(crate) all_down: AllDown,
    pub(crate) max_providers: usize,
    pub(crate) hedge_after: Option<Duration>,
    pub(crate) verdict: VerdictFn<E>,
    pub(crate) label: fn(&E) -> &'static str,
    pub(crate) fallback_if: Option<Predicate<E>>,
    pub(crate) on_fallback: Option<OnFallback<E>>,
    pub(crate) remodel: Option<Remodel<Req>>,
    pub(crate) mapper: Option<Mapper<Req>>,
    /// Finds the attempt hook of the meter above in a request.
    pub(crate) hook_of: fn(&Req) -> Option<&AttemptHook>,
    /// The model a request asks for, if requests of this type name one.
    pub(crate) model_of: fn(&Req) -> Option<&str>,
    pub(crate) clock: Box<dyn Clock>,
}

/// A call's hold on the shared state: its thread group's lane, so that threads calling one
/// service do not write one reference count.
pub(crate) type SharedLane<F, Req, E> = Arc<Lane<Shared<F, Req, E>>>;

pub(crate) struct Shared<F, Req, E> {
    pub(crate) providers: Vec<Provider>,
    /// The services of providers 1.. (the primary is the service the layer wraps).
    pub(crate) backups: Vec<F>,
    pub(crate) counters: Counters,
    pub(crate) cheapest: Plan,
    pub(crate) round_robin: Padded<AtomicUsize>,
    /// Requests start on the primary when it is ready and up (no hedging, and the strategy
    /// puts it first): they start in `call`, without boxing.
    pub(crate) starts_on_primary: bool,
    /// The primary gets the request as it is (no model of its own, no mapper).
    pub(crate) primary_as_is: bool,
    pub(crate) chains: Vec<(Predicate<E>, Plan)>,
    /// Models whose requests start at a given provider (see `start_with`).
    pub(crate) routes: Vec<(Arc<str>, usize)>,
    pub(crate) config: Config<Req, E>,
}

impl<F, Req, E> Shared<F, Req, E> {
    pub(crate) fn name(&self, i: usize) -> &str {
        &self.providers[i].name
    }

    /// Provider `i` is known to be down and a health-aware plan puts it last.
    pub(crate) fn is_down(&self, i: usize) -> bool {
        self.config.health_aware && !self.providers[i].health.is_up(&*self.config.clock)
    }

    /// The provider `req`'s model starts at, if a route names it.
    pub(crate) fn route_of(&self, req: &Req) -> Option<usize> {
        if self.routes.is_empty() {
            return None;
        }
        let model = (self.config.model_of)(req)?;
        self.routes
            .iter()
            .find(|(m, _)| &**m == model)
            .map(|&(_, i)| i)
    }

    /// The order for a new request, before health: its route's provider first, then the
    /// strategy's order.
    pub(crate) fn base_order(&self, req: &Req) -> Plan {
        let plan = self.strategy_order();
        match self.route_of(req) {
            Some(i) if self.config.strategy == Strategy::FailFast => Plan::from_iter([i]),
            Some(i) => std::iter::once(i)
                .chain(plan.iter().filter(|&j| j != i))
                .collect(),
            None => plan,
        }
    }

    /// The strategy's order for a new request.
    fn strategy_order(&self) -> Plan {
        let n = self.providers.len();
        match self.config.strategy {
            Strategy::Priority => (0..n).collect(),
            Strategy::FailFast => Plan::from_iter([0]),
            Strategy::CheapestFirst => self.cheapest,
            Strategy::RoundRobin => {
                let first = self.round_robin.0.fetch_add(1, Ordering::Relaxed) % n;
                (0..n).map(|k| (first + k) % n).collect()
            }
        }
    }

    /// The plan with the providers known to be down moved last, and whether any is up.
    pub(crate) fn by_health(&self, plan: Plan) -> (Plan, bool) {
        let plan = plan.partition(|i| !self.is_down(i));
        let any_up = plan.first().is_some_and(|i| !self.is_down(i));
        (plan, any_up)
    }

    /// The request as provider `i` gets it: its model, then the user's mapper.
    pub(crate) fn request_for(&self, i: usize, req: &Req) -> Req
    where
        Req: Clone,
    {
        let provider = &self.providers[i];
        let out = match (&self.config.remodel, &provider.model) {
            (Some(remodel), Some(model)) => remodel(req, model),
            _ => req.clone(),
        };
        match &self.config.mapper {
            Some(map) => map(&provider.name, &out),
            None => out,
        }
    }

    /// The meter's hook in `attempt`, with the model that attempt asks provider `i` for.
    pub(crate) fn hook<'r>(
        &'r self,
        i: usize,
        attempt: &'r Req,
    ) -> Option<(&'r AttemptHook, &'r str)> {
        let hook = (self.config.hook_of)(attempt)?;
        let model = (self.config.model_of)(attempt).or(self.providers[i].model.as_deref());
        Some((hook, model.unwrap_or("")))
    }

    /// Records that provider `i` failed with `error` and returns the plan to go on with, or
    /// `None` to stop: a matching chain replaces `plan`, else the verdict (or the user's
    /// `fallback_if`) says whether to go on. A Retry-After hint cools the provider down.
    pub(crate) fn failed(&self, i: usize, error: &E, plan: Plan) -> Option<Plan> {
        let verdict = (self.config.verdict)(error);
        self.counters.attempt_failed(i, (self.config.label)(error));
        if let Some(time) = verdict.retry_after()
            && self.config.health_aware
            && !time.is_zero()
        {
            self.providers[i]
                .health
                .cool_down(&*self.config.clock, time);
        }
        if let Some((_, chain)) = self.chains.iter().find(|(when, _)| when(error)) {
            return (!chain.is_empty()).then_some(*chain);
        }
        let go = match &self.config.fallback_if {
            Some(fallback_if) => fallback_if(error),
            None => verdict.should_fallback(),
        };
        go.then_some(plan)
    }

    /// A switch from provider `from` to `to` after `error`.
    pub(crate) fn announce(&self, error: &E, from: usize, to: usize) {
        self.counters.fell_back(false);
        let (from, to) = (self.name(from), self.name(to));
        let label = (self.config.label)(error);
        tracing::info!(from, to, error = label, "falling back to the next provider");
        if let Some(on_fallback) = &self.config.on_fallback {
            on_fallback(error, from, to);
        }
    }
}

impl<F: Send + Sync, Req, E> Report for Lane<Shared<F, Req, E>> {
    fn report(&self) -> FallbackStats {
        let clock = &*self.config.clock;
        let providers = self.providers.iter();
        self.counters
            .read(providers.map(|p| (p.name.clone(), !p.health.is_up(clock))))
    }
}
