//! [`ErrorRateLimitLayer`], its builder, and the state its services share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use towerguard_outcome::{Classify, ClassifyFn, ConfigError, DefaultClassify, Lanes, Verdict};

use crate::key::{DefaultKey, KeyFn};
use crate::key_state::check_duration;
use crate::service::ErrorRateLimit;
use crate::store::{LimiterHandle, LimiterStore, MemoryStore, Rules};
use crate::waiters::Waiters;

/// What every service of one layer shares. Services hold it in [`Lanes`] (behind one `Arc`,
/// so that cloning a service allocates nothing), and each call's response future holds its
/// thread's lane, so threads do not write one reference count.
pub(crate) struct Shared<K, C, St: LimiterStore> {
    pub(crate) store: Arc<St>,
    pub(crate) key: K,
    classify: C,
    count_upstream: bool,
    pub(crate) delay: Option<Arc<Waiters<St::Key>>>,
}

impl<K, C, St: LimiterStore> Shared<K, C, St> {
    /// Does this outcome count against the client? Its own faults do; upstream failures that
    /// say the upstream is unhealthy only if asked; our own refusals never.
    pub(crate) fn counts<Res, E>(&self, result: &Result<Res, E>) -> bool
    where
        C: Classify<Res, E>,
    {
        self.counts_verdict(self.classify.classify(result))
    }

    /// Does an outcome with this verdict count against the client?
    pub(crate) fn counts_verdict(&self, verdict: towerguard_outcome::Verdict) -> bool {
        verdict.is_client_fault() || (self.count_upstream && verdict.counts_for_breaker())
    }
}

/// Throttles the clients (keys) that keep causing errors, and optionally limits each key's
/// requests and tokens per minute. Rejected requests get a [`ThrottledError`] with a
/// retry-after and a generic message, and never reach the inner service. See the crate's
/// example.
///
/// [`ThrottledError`]: crate::ThrottledError
pub struct ErrorRateLimitLayer<K = DefaultKey, C = DefaultClassify, St: LimiterStore = MemoryStore>
{
    shared: Arc<Lanes<Shared<K, C, St>>>,
}

impl<K, C, St: LimiterStore> Clone for ErrorRateLimitLayer<K, C, St> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, C, St: LimiterStore> fmt::Debug for ErrorRateLimitLayer<K, C, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRateLimitLayer")
            .finish_non_exhaustive()
    }
}

impl ErrorRateLimitLayer {
    /// A builder with the defaults of [`Rules::default`], the client's own faults counted,
    /// and rejecting (not delaying) refused requests.
    pub fn builder() -> ErrorRateLimitLayerBuilder {
        ErrorRateLimitLayerBuilder {
            settings: Settings {
                rules: Rules::default(),
                count_upstream: false,
                delay: None,
                max_delay: None,
            },
            store: StoreSource::Memory(MemoryStore::new),
            key: DefaultKey,
            classify: DefaultClassify,
        }
    }

    /// Per client key (the `LlmRequest` client key by default), with every default.
    pub fn per_client() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }
}

impl<K, C, St: LimiterStore> ErrorRateLimitLayer<K, C, St> {
    /// A handle to read and control the limiter's state: its store.
    pub fn handle(&self) -> LimiterHandle<St> {
        self.shared.shared().store.clone()
    }
}

impl<S, K, C, St: LimiterStore> Layer<S> for ErrorRateLimitLayer<K, C, St> {
    type Service = ErrorRateLimit<S, K, C, St>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorRateLimit::new(inner, self.shared.clone())
    }
}

/// Where the layer's store comes from: made from the rules, or given.
enum StoreSource<St> {
    Memory(fn(Rules) -> Result<St, ConfigError>),
    Given(St),
}

/// The builder's settings that do not change its type.
struct Settings {
    rules: Rules,
    count_upstream: bool,
    delay: Option<usize>,
    max_delay: Option<Duration>,
}

/// Builds an [`ErrorRateLimitLayer`]; [`build`](Self::build) checks the configuration and
/// refuses nonsense, naming the field.
pub struct ErrorRateLimitLayerBuilder<K = DefaultKey, C = DefaultClassify, St = MemoryStore> {
    settings: Settings,
    store: StoreSource<St>,
    key: K,
    classify: C,
}

impl<K, C, St> ErrorRateLimitLayerBuilder<K, C, St> {
    fn set(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// Errors within the window that throttle a key (default 5; 1..=1000).
    pub fn threshold(self, errors: u32) -> Self {
        self.set(|s| s.rules.threshold = errors)
    }

    /// The sliding window errors are counted over (default 60 s).
    pub fn window(self, window: Duration) -> Self {
        self.set(|s| s.rules.window = window)
    }

    /// The first penalty and the longest one; each repeated offence doubles the penalty.
    pub fn penalty(self, first: Duration, max: Duration) -> Self {
        self.set(|s| (s.rules.base_penalty, s.rules.max_penalty) = (first, max))
    }

    /// One earlier offence is forgiven per `period` without a new one (default 10 min).
    pub fn decay(self, period: Duration) -> Self {
        self.set(|s| s.rules.decay = period)
    }

    /// Limit each key to `rpm` requests per minute (GCRA; bursts of a tenth of it).
    pub fn requests_per_minute(self, rpm: u64) -> Self {
        self.set(|s| s.rules.rpm = Some(rpm))
    }

    /// Limit each key to `tpm` tokens per minute (GCRA weighted by the request's tokens;
    /// bursts of a tenth of it).
    pub fn tokens_per_minute(self, tpm: u64) -> Self {
        self.set(|s| s.rules.tpm = Some(tpm))
    }

    /// Most keys tracked at once (default 100,000; at most 10,000,000). Memory is taken as
    /// keys arrive; keys with nothing left to remember make room for new ones.
    pub fn max_keys(self, n: usize) -> Self {
        self.set(|s| s.rules.max_keys = n)
    }

    /// Delay refused requests (throttled, or over their RPM/TPM) instead of rejecting them,
    /// with at most `max_waiting` requests waiting at once; beyond that they are rejected at
    /// once. A waiting request asks again when its wait is over, and waits again (or is
    /// rejected, past [`max_delay`](Self::max_delay)) if refused again. The waiters of one
    /// key are admitted in arrival order; a request that finds its key admissible passes
    /// without queueing.
    pub fn delay_instead(self, max_waiting: usize) -> Self {
        self.set(|s| s.delay = Some(max_waiting))
    }

    /// In delay mode, the longest a request may wait in all (default: as long as it takes);
    /// one that would wait longer is rejected.
    pub fn max_delay(self, max: Duration) -> Self {
        self.set(|s| s.max_delay = Some(max))
    }

    /// Count upstream failures that say the upstream is unhealthy (outages, its rate limits,
    /// timeouts) against the client too, not only the client's own faults. Refusals of our
    /// own layers and the operator's own failures (an unpriced model, a revoked provider key)
    /// never count.
    pub fn count_upstream_errors(self, on: bool) -> Self {
        self.set(|s| s.count_upstream = on)
    }

    /// Key requests with a closure borrowing the key from the request (`None`: the one
    /// global key), e.g. `|req: &MyRequest| Some(req.tenant.as_str())`.
    pub fn key_with<Req, F>(self, f: F) -> ErrorRateLimitLayerBuilder<KeyFn<F>, C, St>
    where
        F: for<'a> Fn(&'a Req) -> Option<&'a str>,
    {
        let Self {
            settings,
            store,
            classify,
            ..
        } = self;
        ErrorRateLimitLayerBuilder {
            settings,
            store,
            key: KeyFn(f),
            classify,
        }
    }

    /// Classify outcomes with a closure: an outcome counts against the client iff its
    /// verdict [`is_client_fault`](Verdict::is_client_fault) (or, with
    /// [`count_upstream_errors`](Self::count_upstream_errors), says the upstream is
    /// unhealthy).
    pub fn classify_with<F, Res, E>(self, f: F) -> ErrorRateLimitLayerBuilder<K, ClassifyFn<F>, St>
    where
        F: Fn(&Result<Res, E>) -> Verdict,
    {
        self.classifier(ClassifyFn(f))
    }

    /// Any [`Classify`] implementation (default: [`DefaultClassify`], which asks the error's
    /// [`ClassifyError`](towerguard_outcome::ClassifyError) verdict).
    pub fn classifier<C2>(self, classify: C2) -> ErrorRateLimitLayerBuilder<K, C2, St> {
        let Self {
            settings,
            store,
            key,
            ..
        } = self;
        ErrorRateLimitLayerBuilder {
            settings,
            store,
            key,
            classify,
        }
    }

    /// Keep the state in `store` (a store shared by a fleet) instead of a [`MemoryStore`].
    /// The rules set here configure only the in-memory store: give yours its own (e.g.
    /// `MemoryStore::with_clock(rules, clock)`).
    pub fn store<St2: LimiterStore>(self, store: St2) -> ErrorRateLimitLayerBuilder<K, C, St2> {
        let Self {
            settings,
            key,
            classify,
            ..
        } = self;
        let store = StoreSource::Given(store);
        ErrorRateLimitLayerBuilder {
            settings,
            store,
            key,
            classify,
        }
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<ErrorRateLimitLayer<K, C, St>, ConfigError>
    where
        St: LimiterStore,
    {
        let Settings {
            rules,
            count_upstream,
            delay,
            max_delay,
        } = self.settings;
        let delay = match delay {
            None if max_delay.is_some() => {
                return Err(ConfigError::new(
                    "max_delay",
                    "applies only with delay_instead",
                ));
            }
            None => None,
            Some(max_waiting) => {
                ConfigError::check_range("delay_instead", max_waiting, 1, usize::MAX)?;
                if let Some(d) = max_delay {
                    check_duration("max_delay", d)?;
                }
                Some(Arc::new(Waiters::new(max_waiting, max_delay)))
            }
        };
        let store = match self.store {
            StoreSource::Given(store) => store,
            StoreSource::Memory(make) => make(rules)?,
        };
        let (key, classify, store) = (self.key, self.classify, Arc::new(store));
        let shared = Shared {
            store,
            key,
            classify,
            count_upstream,
            delay,
        };
        Ok(ErrorRateLimitLayer {
            shared: Arc::new(Lanes::new(Arc::new(shared))),
        })
    }
}
