//! [`ErrorRateLimitLayer`], its builder, and the state its services share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use towerguard_outcome::{
    Classify, ClassifyFn, Clock, ConfigError, DefaultClassify, TokioClock, Verdict,
};

use crate::handle::LimiterHandle;
use crate::key::{DefaultKey, KeyFn};
use crate::key_state::check_duration;
use crate::service::ErrorRateLimit;
use crate::store::{LimiterStore, MemoryStore, Rules};
use crate::waiters::Waiters;

/// What every service of one layer shares (and each call's response future holds).
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
        let verdict = self.classify.classify(result);
        verdict.is_client_fault() || (self.count_upstream && verdict.counts_for_breaker())
    }
}

/// Throttles the clients (keys) that keep causing errors, and optionally limits each key's
/// requests and tokens per minute. Rejected requests get a [`ThrottledError`] with a
/// retry-after and a generic message, and never reach the inner service.
///
/// [`ThrottledError`]: crate::ThrottledError
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use towerguard_error_rate_limit::ErrorRateLimitLayer;
/// use towerguard_llm_core::{ErrorKind, LlmRequest, Message};
/// use towerguard_testkit::{FakeProvider, Outcome};
///
/// let limiter = ErrorRateLimitLayer::builder()
///     .threshold(3)
///     .window(Duration::from_secs(60))
///     .penalty(Duration::from_secs(10), Duration::from_secs(600))
///     .build()
///     .unwrap();
/// let provider = FakeProvider::always("openai", Outcome::fail(ErrorKind::InvalidRequest));
/// let mut svc = ServiceBuilder::new().layer(limiter).service(provider.clone());
/// let bad = || LlmRequest::new("gpt-4o", vec![Message::user("?")]).with_client_key("mallory");
/// for _ in 0..3 {
///     let _ = svc.ready().await.unwrap().call(bad()).await;
/// }
/// let err = svc.ready().await.unwrap().call(bad()).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Throttled);
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
/// assert_eq!(provider.calls(), 3);
/// # });
/// ```
pub struct ErrorRateLimitLayer<K = DefaultKey, C = DefaultClassify, St: LimiterStore = MemoryStore>
{
    shared: Arc<Shared<K, C, St>>,
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
            rules: Rules::default(),
            clock: None,
            store: StoreSource::Memory(MemoryStore::with_clock),
            key: DefaultKey,
            classify: DefaultClassify,
            count_upstream: false,
            delay: None,
            max_delay: None,
        }
    }

    /// Per client key (the `LlmRequest` client key by default), with every default.
    pub fn per_client() -> Self {
        match Self::builder().build() {
            Ok(l) => l,
            Err(_) => unreachable!("the default limiter configuration is valid"),
        }
    }
}

impl<K, C, St: LimiterStore> ErrorRateLimitLayer<K, C, St> {
    /// A handle to read and control the limiter's state.
    pub fn handle(&self) -> LimiterHandle<St> {
        LimiterHandle::new(self.shared.store.clone())
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
    Memory(fn(Rules, Arc<dyn Clock>) -> Result<St, ConfigError>),
    Given(St),
}

/// Builds an [`ErrorRateLimitLayer`]; [`build`](Self::build) checks the configuration and
/// refuses nonsense, naming the field.
pub struct ErrorRateLimitLayerBuilder<K = DefaultKey, C = DefaultClassify, St = MemoryStore> {
    rules: Rules,
    clock: Option<Arc<dyn Clock>>,
    store: StoreSource<St>,
    key: K,
    classify: C,
    count_upstream: bool,
    delay: Option<usize>,
    max_delay: Option<Duration>,
}

impl<K, C, St> fmt::Debug for ErrorRateLimitLayerBuilder<K, C, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRateLimitLayerBuilder")
            .field("rules", &self.rules)
            .field("count_upstream", &self.count_upstream)
            .field("delay", &self.delay)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}

impl<K, C, St> ErrorRateLimitLayerBuilder<K, C, St> {
    /// Errors within the window that throttle a key (default 5; 1..=1000).
    pub fn threshold(mut self, errors: u32) -> Self {
        self.rules.threshold = errors;
        self
    }

    /// The sliding window errors are counted over (default 60 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.rules.window = window;
        self
    }

    /// The first penalty and the longest one; each repeated offence doubles the penalty.
    pub fn penalty(mut self, first: Duration, max: Duration) -> Self {
        self.rules.base_penalty = first;
        self.rules.max_penalty = max;
        self
    }

    /// One earlier offence is forgiven per `period` without a new one (default 10 min).
    pub fn decay(mut self, period: Duration) -> Self {
        self.rules.decay = period;
        self
    }

    /// Limit each key to `rpm` requests per minute (GCRA; bursts of a tenth of it).
    pub fn requests_per_minute(mut self, rpm: u64) -> Self {
        self.rules.rpm = Some(rpm);
        self
    }

    /// Limit each key to `tpm` tokens per minute (GCRA weighted by the request's tokens;
    /// bursts of a tenth of it).
    pub fn tokens_per_minute(mut self, tpm: u64) -> Self {
        self.rules.tpm = Some(tpm);
        self
    }

    /// Most keys tracked at once (default 100,000; at most 10,000,000). Memory is taken as
    /// keys arrive; keys with nothing left to remember make room for new ones.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.rules.max_keys = n;
        self
    }

    /// All the rules at once.
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The clock of the in-memory store (default: [`TokioClock`], which follows tokio's
    /// paused clock in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Delay refused requests (throttled, or over their RPM/TPM) instead of rejecting them,
    /// with at most `max_waiting` requests waiting at once; beyond that they are rejected at
    /// once. A waiting request asks again when its wait is over, and waits again (or is
    /// rejected, past [`max_delay`](Self::max_delay)) if refused again. The waiters of one
    /// key are admitted in arrival order; a request that finds its key admissible passes
    /// without queueing.
    pub fn delay_instead(mut self, max_waiting: usize) -> Self {
        self.delay = Some(max_waiting);
        self
    }

    /// In delay mode, the longest a request may wait in all (default: as long as it takes);
    /// one that would wait longer is rejected.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = Some(max);
        self
    }

    /// Count upstream failures that say the upstream is unhealthy (outages, its rate limits,
    /// timeouts) against the client too, not only the client's own faults. Refusals of our
    /// own layers and the operator's own failures (an unpriced model, a revoked provider key)
    /// never count.
    pub fn count_upstream_errors(mut self, on: bool) -> Self {
        self.count_upstream = on;
        self
    }

    /// Key requests with a closure borrowing the key from the request (`None`: the one
    /// global key), e.g. `|req: &MyRequest| Some(req.tenant.as_str())`.
    pub fn key_with<Req, F>(self, f: F) -> ErrorRateLimitLayerBuilder<KeyFn<F>, C, St>
    where
        F: for<'a> Fn(&'a Req) -> Option<&'a str>,
    {
        ErrorRateLimitLayerBuilder {
            rules: self.rules,
            clock: self.clock,
            store: self.store,
            key: KeyFn(f),
            classify: self.classify,
            count_upstream: self.count_upstream,
            delay: self.delay,
            max_delay: self.max_delay,
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
        ErrorRateLimitLayerBuilder {
            rules: self.rules,
            clock: self.clock,
            store: self.store,
            key: self.key,
            classify,
            count_upstream: self.count_upstream,
            delay: self.delay,
            max_delay: self.max_delay,
        }
    }

    /// Keep the state in `store` (a store shared by a fleet) instead of a [`MemoryStore`].
    /// The rules, key cap and clock set here configure only the in-memory store: give yours
    /// its own.
    pub fn store<St2: LimiterStore>(self, store: St2) -> ErrorRateLimitLayerBuilder<K, C, St2> {
        ErrorRateLimitLayerBuilder {
            rules: self.rules,
            clock: self.clock,
            store: StoreSource::Given(store),
            key: self.key,
            classify: self.classify,
            count_upstream: self.count_upstream,
            delay: self.delay,
            max_delay: self.max_delay,
        }
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<ErrorRateLimitLayer<K, C, St>, ConfigError>
    where
        St: LimiterStore,
    {
        let delay = match self.delay {
            None if self.max_delay.is_some() => {
                return Err(ConfigError::new(
                    "max_delay",
                    "applies only with delay_instead",
                ));
            }
            None => None,
            Some(max_waiting) => {
                ConfigError::check_range("delay_instead", max_waiting, 1, usize::MAX)?;
                let max_delay = self
                    .max_delay
                    .map(|d| check_duration("max_delay", d).map(|_| d))
                    .transpose()?;
                Some(Arc::new(Waiters::new(max_waiting, max_delay)))
            }
        };
        let store = match self.store {
            StoreSource::Given(store) => store,
            StoreSource::Memory(make) => make(
                self.rules,
                self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
            )?,
        };
        Ok(ErrorRateLimitLayer {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                key: self.key,
                classify: self.classify,
                count_upstream: self.count_upstream,
                delay,
            }),
        })
    }
}
