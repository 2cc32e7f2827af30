//! [`PipelineHandle`]: every layer's state, read and acted on from outside the call path.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::stack::LastError;
use crate::breaker::{CircuitBreakerHandle, State, Stats as BreakerStats};
use crate::cost::{BudgetAlert, Ledger, LedgerSnapshot, StatsRow};
use crate::fallback::{FallbackHandle, FallbackStats};
use crate::limit::{LimiterHandle, LimiterStats, LimiterStore, ThrottledKey};
use crate::llm::ErrorKind;

/// Budget alerts kept for [`PipelineStats::alerts`].
const KEPT_ALERTS: usize = 32;

/// The last budget alerts of a ledger the preset made.
#[derive(Clone, Default)]
pub(crate) struct Alerts(Arc<Mutex<VecDeque<BudgetAlert>>>);

impl Alerts {
    pub(crate) fn push(&self, alert: BudgetAlert) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT_ALERTS {
            kept.pop_front();
        }
        tracing::warn!(budget = %alert.budget, spent = alert.spent, limit = alert.limit, "budget alert");
        kept.push_back(alert);
    }

    fn read(&self) -> Vec<BudgetAlert> {
        let kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().cloned().collect()
    }
}

pub(crate) struct ProviderEntry {
    pub(crate) name: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) breaker: CircuitBreakerHandle,
    pub(crate) last_error: Arc<LastError>,
}

pub(crate) struct HandleInner {
    pub(crate) providers: Vec<ProviderEntry>,
    pub(crate) fallback: Option<FallbackHandle>,
    pub(crate) ledger: Ledger,
    /// The default limiter, then each tenant's own.
    pub(crate) limiters: Vec<(Option<Arc<str>>, LimiterHandle)>,
    pub(crate) alerts: Alerts,
    pub(crate) aliases: Vec<(Arc<str>, Arc<str>, Arc<str>)>,
}

/// Reads every layer of a [`Pipeline`](super::Pipeline) and acts on it: health per provider,
/// statistics, reset or isolate a provider, lift a tenant's throttle. Cheap to clone; every
/// clone sees the same pipeline.
#[derive(Clone)]
pub struct PipelineHandle {
    inner: Arc<HandleInner>,
}

impl fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.providers.iter().map(|p| &*p.name).collect();
        f.debug_struct("PipelineHandle")
            .field("providers", &names)
            .finish_non_exhaustive()
    }
}

/// One provider's health, from [`PipelineHandle::health`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderHealth {
    /// The provider's name.
    pub name: Arc<str>,
    /// The model it is asked for, if fixed.
    pub model: Option<Arc<str>>,
    /// Its breaker's state.
    pub state: State,
    /// Whether its breaker rejects calls right now (open, or forced open).
    pub rejecting: bool,
    /// The kind of its last failed attempt (timeouts included), if any failed.
    pub last_error: Option<ErrorKind>,
    /// Successes among the calls in its breaker's window (the last calls since it last
    /// closed), from 0 to 1; `None` while the window is empty.
    pub success_rate: Option<f64>,
    /// Its breaker's counts.
    pub breaker: BreakerStats,
}

/// Everything the pipeline counts, from [`PipelineHandle::stats`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Cost and tokens: overall, per provider, per model and per tenant.
    pub ledger: LedgerSnapshot,
    /// Cost and tokens per (provider, model).
    pub rows: Vec<StatsRow>,
    /// Fallbacks, requests by how they ended, per-provider served and failed counts (`None`
    /// for a pipeline of one provider, which has no fallback layer).
    pub fallback: Option<FallbackStats>,
    /// Tenants throttled now.
    pub throttled: Vec<ThrottledKey>,
    /// The per-tenant limiter's counts.
    pub limiter: LimiterStats,
    /// The last budget alerts (at most 32; only for a ledger the preset made).
    pub alerts: Vec<BudgetAlert>,
}

impl PipelineHandle {
    pub(crate) fn new(inner: HandleInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The providers' names, in configuration order.
    pub fn providers(&self) -> Vec<Arc<str>> {
        self.inner
            .providers
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// The aliases: `(public name, provider, model)`.
    pub fn aliases(&self) -> &[(Arc<str>, Arc<str>, Arc<str>)] {
        &self.inner.aliases
    }

    /// Each provider's breaker state, last error kind and recent success rate, in
    /// configuration order.
    pub fn health(&self) -> Vec<ProviderHealth> {
        self.inner
            .providers
            .iter()
            .map(|p| {
                let stats = p.breaker.stats();
                let w = stats.window;
                ProviderHealth {
                    name: p.name.clone(),
                    model: p.model.clone(),
                    state: stats.state,
                    rejecting: p.breaker.is_rejecting(),
                    last_error: p.last_error.get(),
                    success_rate: (w.calls > 0)
                        .then(|| w.calls.saturating_sub(w.failures) as f64 / w.calls as f64),
                    breaker: stats,
                }
            })
            .collect()
    }

    /// The ledger's totals and rows, the fallback's counts, the throttled tenants and the
    /// limiter's counts, and the last budget alerts. Asynchronous because the limiter's
    /// store is (the in-memory one answers at once).
    pub async fn stats(&self) -> PipelineStats {
        let i = &self.inner;
        PipelineStats {
            ledger: i.ledger.snapshot(),
            rows: i.ledger.stats(),
            fallback: i.fallback.as_ref().map(FallbackHandle::stats),
            throttled: self.throttled().await,
            limiter: self.limiter_stats().await,
            alerts: i.alerts.read(),
        }
    }

    /// The ledger, to read a budget's spend or share it.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The breaker handle of provider `name`.
    pub fn breaker(&self, name: &str) -> Option<&CircuitBreakerHandle> {
        self.inner
            .providers
            .iter()
            .find(|p| &*p.name == name)
            .map(|p| &p.breaker)
    }

    /// Closes provider `name`'s breaker and clears its window (after an outage is fixed, or
    /// to end a [`force_open`](Self::force_open)). False if no provider has that name.
    pub fn reset_provider(&self, name: &str) -> bool {
        self.breaker(name)
            .map(CircuitBreakerHandle::reset)
            .is_some()
    }

    /// Opens provider `name`'s breaker until [`reset_provider`](Self::reset_provider): every
    /// request goes to the others. False if no provider has that name.
    pub fn force_open(&self, name: &str) -> bool {
        self.breaker(name)
            .map(CircuitBreakerHandle::force_open)
            .is_some()
    }

    /// Lifts tenant `name`'s throttle and forgets its errors and offences. False if the
    /// limiter does not track that tenant.
    pub async fn unthrottle(&self, name: &str) -> bool {
        match self.limiter_of(name) {
            Some((_, limiter)) => limiter.unthrottle(name).await,
            None => false,
        }
    }

    /// Counts an error tenant `name` caused outside the pipeline (for example a request a
    /// service refused as malformed before sending it) in that tenant's error-rate limiter,
    /// as a request that failed by its own fault: admitted first (a throttled tenant is
    /// refused, and the request takes its share of the RPM allowance), then its error
    /// counted. Answers `Some(retry_after)` when the tenant is throttled, already or by this
    /// error.
    pub async fn record_client_error(&self, name: &str) -> Option<std::time::Duration> {
        let (_, limiter) = self.limiter_of(name)?;
        let key = limiter.key(name);
        if let Err(refused) = limiter.admit(&key, name, 0).await {
            return Some(refused.retry_after());
        }
        limiter.record_error(&key).await
    }

    /// The limiter of tenant `name`: its own, else the default one.
    fn limiter_of(&self, name: &str) -> Option<&(Option<Arc<str>>, LimiterHandle)> {
        let limiters = &self.inner.limiters;
        let own = limiters.iter().find(|(t, _)| t.as_deref() == Some(name));
        own.or(limiters.first())
    }

    /// Tenants throttled now, sorted by name.
    pub async fn throttled(&self) -> Vec<ThrottledKey> {
        let mut all = Vec::new();
        for (_, limiter) in &self.inner.limiters {
            all.extend(limiter.throttled().await);
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The limiters' counts, summed.
    async fn limiter_stats(&self) -> LimiterStats {
        let mut sum = LimiterStats::default();
        for (_, limiter) in &self.inner.limiters {
            let s = limiter.stats().await;
            sum.keys += s.keys;
            sum.throttled += s.throttled;
            sum.rejected += s.rejected;
            sum.errors += s.errors;
            sum.offences += s.offences;
            sum.evicted += s.evicted;
            sum.overflowed += s.overflowed;
        }
        sum
    }
}
