//! The layer's counters, and the statistics read from them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use towerguard_outcome::ShardedCounter;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Served by its first choice.
    First,
    /// Served after at least one provider failed (or, hedging, did not answer in time).
    AfterFailure,
    /// Served after skipping its first choice, known to be down or not ready, with no failure.
    AfterSkip,
    /// Every provider it could try failed.
    Exhausted,
    /// On an error that does not fall back (or a chain that ends there).
    Stopped,
    /// A budget above refused an attempt.
    Refused,
}

#[derive(Default)]
struct ProviderCounters {
    /// Written on every call this provider serves: kept per group of threads.
    served: ShardedCounter,
    failed: AtomicU64,
    last_error: Mutex<Option<&'static str>>,
}

/// Every counter of one layer. Providers are recorded by index; their names stay in the
/// configuration.
pub(crate) struct Counters {
    providers: Vec<ProviderCounters>,
    /// By [`Ended`]; requests served by their first choice are not counted apart: they are
    /// the providers' served total less the other served kinds.
    ended: [AtomicU64; 6],
    fallbacks: AtomicU64,
    hedges: AtomicU64,
}

impl Counters {
    pub(crate) fn new(providers: usize) -> Self {
        Self {
            providers: (0..providers)
                .map(|_| ProviderCounters::default())
                .collect(),
            ended: Default::default(),
            fallbacks: AtomicU64::new(0),
            hedges: AtomicU64::new(0),
        }
    }

    /// Provider `i` served a request, which got there as `how` says.
    pub(crate) fn served(&self, i: usize, how: Ended) {
        if let Some(p) = self.providers.get(i) {
            p.served.add(1);
        }
        self.ended(how);
    }

    /// A request ended (served requests: through [`served`](Self::served)).
    pub(crate) fn ended(&self, how: Ended) {
        if how != Ended::First {
            add(&self.ended[how as usize]);
        }
    }

    /// An attempt on provider `i` failed with an error labelled `label`.
    pub(crate) fn attempt_failed(&self, i: usize, label: &'static str) {
        if let Some(p) = self.providers.get(i) {
            add(&p.failed);
            *p.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(label);
        }
    }

    pub(crate) fn fell_back(&self, hedge: bool) {
        add(&self.fallbacks);
        if hedge {
            add(&self.hedges);
        }
    }

    /// The statistics, given each provider's name and whether it is down now.
    pub(crate) fn read(&self, providers: impl Iterator<Item = (Arc<str>, bool)>) -> FallbackStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let providers: Vec<ProviderStats> = providers
            .zip(&self.providers)
            .map(|((name, down), c)| ProviderStats {
                name,
                served: c.served.sum(),
                failed: load(&c.failed),
                last_error: *c.last_error.lock().unwrap_or_else(|p| p.into_inner()),
                down,
            })
            .collect();
        let served: u64 = providers.iter().map(|p| p.served).sum();
        let [_, after_failure, after_skip, exhausted, stopped, refused] =
            self.ended.each_ref().map(load);
        let served_by_first = served.saturating_sub(after_failure + after_skip);
        let failed = exhausted + stopped + refused;
        FallbackStats {
            requests: served_by_first + after_failure + after_skip + failed,
            served_by_first,
            served_after_failure: after_failure,
            served_after_skip: after_skip,
            failed,
            exhausted,
            stopped,
            refused,
            fallbacks: load(&self.fallbacks),
            hedges: load(&self.hedges),
            providers,
        }
    }
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Statistics of a fallback layer, from [`FallbackHandle::stats`].
///
/// Each request is counted once, when it ends (requests in flight or cancelled are not):
/// `requests = served_by_first + served_after_failure + served_after_skip + failed`, and
/// `failed = exhausted + stopped + refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackStats {
    /// Requests answered, served or failed.
    pub requests: u64,
    /// Served by their first choice (the strategy's first provider).
    pub served_by_first: u64,
    /// Served after at least one provider failed, or (hedging) did not answer in time.
    pub served_after_failure: u64,
    /// Served with no failure after skipping the first choice: it was known to be down
    /// (cooling down after a Retry-After or an open breaker, or its health check said down)
    /// or was not ready.
    pub served_after_skip: u64,
    /// Requests that ended in an error.
    pub failed: u64,
    /// Of the failed: every provider tried failed.
    pub exhausted: u64,
    /// Of the failed: stopped on an error that does not fall back (or a chain that ends).
    pub stopped: u64,
    /// Of the failed: a budget above refused an attempt (`AttemptRefusal::BudgetExceeded`).
    pub refused: u64,
    /// Switches from one provider to the next (hedges included).
    pub fallbacks: u64,
    /// Attempts started by hedging, while the one before was still running.
    pub hedges: u64,
    /// Per provider, in configuration order (the primary first).
    pub providers: Vec<ProviderStats>,
}

/// One provider's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStats {
    /// Its name.
    pub name: Arc<str>,
    /// Requests it served.
    pub served: u64,
    /// Attempts it failed (an attempt refused because its model has no price included).
    pub failed: u64,
    /// The label of its last failure (`ClassifyError::label`: the kind for LLM errors).
    pub last_error: Option<&'static str>,
    /// Whether it is skipped right now (cooling down after a Retry-After, or its health
    /// check says down).
    pub down: bool,
}

/// What a handle reads its statistics from (the layer's shared state, whatever its types).
pub(crate) trait Report: Send + Sync {
    fn report(&self) -> FallbackStats;
}

/// Reads a fallback layer's statistics. Cheap to clone.
#[derive(Clone)]
pub struct FallbackHandle {
    source: Arc<dyn Report>,
}

impl FallbackHandle {
    pub(crate) fn new(source: Arc<dyn Report>) -> Self {
        Self { source }
    }

    /// Requests by how they ended, fallbacks, and each provider's counts.
    pub fn stats(&self) -> FallbackStats {
        self.source.report()
    }
}

impl fmt::Debug for FallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackHandle").finish_non_exhaustive()
    }
}
