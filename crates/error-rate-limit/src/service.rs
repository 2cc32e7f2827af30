//! [`ErrorRateLimitLayer`], its builder, the service, its future and the handle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{CountErrors, RateKey};
use crate::error::ThrottledError;
use crate::store::{
    Admit, KeyId, LimiterStats, LimiterStore, MemoryStore, Reason, Rules, ThrottledKey,
};

/// The key used for requests that carry none.
pub const GLOBAL_KEY: &str = "";

/// Invalid limiter configuration, naming the field at fault.
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
            "invalid rate limit configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

pub(crate) struct Shared {
    store: Box<dyn LimiterStore>,
    start: Instant,
    delay: Option<usize>,
    waiting: AtomicUsize,
}

/// One service clone's handle on the shared state: calls' futures clone this (a reference
/// count no other thread's clone touches), not the shared state's own.
pub(crate) struct Local(Arc<Shared>);

impl std::ops::Deref for Local {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    #[inline]
    fn now(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64
    }
}

/// Reads and controls a limiter: throttled keys, `unthrottle`, counts.
#[derive(Clone)]
pub struct LimiterHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for LimiterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterHandle").finish_non_exhaustive()
    }
}

impl LimiterHandle {
    /// Keys throttled now, with their remaining time.
    pub fn throttled(&self) -> Vec<ThrottledKey> {
        self.shared.store.throttled(self.shared.now())
    }

    /// Lifts a key's throttle and forgets its offences; false if the key is not tracked.
    pub fn unthrottle(&self, key: &str) -> bool {
        let done = self.shared.store.unthrottle(key);
        if done {
            tracing::info!(key, "client unthrottled by hand");
        }
        done
    }

    /// Counts: keys tracked, throttled, rejected, errors, offences, evictions.
    pub fn stats(&self) -> LimiterStats {
        self.shared.store.stats(self.shared.now())
    }
}

/// Throttles the clients (keys) that keep causing errors, and optionally limits each key's
/// requests and tokens per minute. Rejected requests get a [`ThrottledError`] with a
/// retry-after and a generic message, and never reach the inner service.
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
pub struct ErrorRateLimitLayer<K = crate::classify::DefaultKey, C = CountErrors> {
    shared: Arc<Shared>,
    key: K,
    count: C,
}

impl<K: Clone, C: Clone> Clone for ErrorRateLimitLayer<K, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            key: self.key.clone(),
            count: self.count.clone(),
        }
    }
}

impl<K, C> fmt::Debug for ErrorRateLimitLayer<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRateLimitLayer")
            .finish_non_exhaustive()
    }
}

impl ErrorRateLimitLayer {
    /// A builder with the defaults: 5 client errors within 60 s throttle a key for 30 s, the
    /// penalty doubling with each repeated offence up to 1 hour, one offence forgiven per 10
    /// minutes of good behaviour; at most 100,000 keys tracked; no RPM/TPM limit; rejecting.
    pub fn builder() -> ErrorRateLimitLayerBuilder {
        ErrorRateLimitLayerBuilder {
            rules: Rules {
                threshold: 5,
                window: Duration::from_secs(60),
                buckets: 6,
                base_penalty: Duration::from_secs(30),
                max_penalty: Duration::from_secs(3600),
                decay: Duration::from_secs(600),
                rpm: None,
                tpm: None,
                max_keys: 100_000,
            },
            delay: None,
            store: None,
            key: crate::classify::DefaultKey,
            count: CountErrors::default(),
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

impl<K, C> ErrorRateLimitLayer<K, C> {
    /// A handle to read and control the limiter.
    pub fn handle(&self) -> LimiterHandle {
        LimiterHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for ErrorRateLimitLayer<K, C> {
    type Service = ErrorRateLimit<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorRateLimit {
            inner,
            shared: Arc::new(Local(self.shared.clone())),
            owned: Owned::Yes,
            key: self.key.clone(),
            count: self.count.clone(),
        }
    }
}

/// Builds an [`ErrorRateLimitLayer`]; [`build`](Self::build) checks the configuration.
pub struct ErrorRateLimitLayerBuilder<K = crate::classify::DefaultKey, C = CountErrors> {
    rules: Rules,
    delay: Option<usize>,
    store: Option<Box<dyn LimiterStore>>,
    key: K,
    count: C,
}

impl<K, C> fmt::Debug for ErrorRateLimitLayerBuilder<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRateLimitLayerBuilder")
            .field("rules", &self.rules)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl<K, C> ErrorRateLimitLayerBuilder<K, C> {
    /// Errors within the window that throttle a key (default 5).
    pub fn threshold(mut self, errors: u32) -> Self {
        self.rules.threshold = errors;
        self
    }

    /// The sliding window errors are counted over (default 60 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.rules.window = window;
        self
    }

    /// The buckets the window is cut into: it slides one bucket at a time (default 6).
    pub fn window_buckets(mut self, buckets: u32) -> Self {
        self.rules.buckets = buckets;
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

    /// Limit each key to `tpm` tokens per minute (GCRA weighted by the request's tokens).
    pub fn tokens_per_minute(mut self, tpm: u64) -> Self {
        self.rules.tpm = Some(tpm);
        self
    }

    /// Most keys tracked at once (default 100,000); idle keys are evicted past it.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.rules.max_keys = n;
        self
    }

    /// Delay throttled requests until their penalty ends instead of rejecting them, with at
    /// most `max_waiting` requests waiting at once (beyond that they are rejected).
    pub fn delay_instead(mut self, max_waiting: usize) -> Self {
        self.delay = Some(max_waiting);
        self
    }

    /// Where the state lives (default: a [`MemoryStore`] with these rules).
    pub fn store(mut self, store: impl LimiterStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Count upstream failures (rate limits, outages) against the client too, not only its
    /// own faults. Only for the default error counting.
    pub fn count_upstream_errors(mut self, on: bool) -> Self
    where
        C: crate::classify::SetUpstream,
    {
        self.count.set_upstream(on);
        self
    }

    /// Key requests with a closure borrowing the key from the request (`None`: the one
    /// global key), e.g. `|req: &MyRequest| Some(req.tenant.as_str())`.
    pub fn key_with<Req, F>(self, f: F) -> ErrorRateLimitLayerBuilder<crate::classify::KeyFn<F>, C>
    where
        F: for<'a> Fn(&'a Req) -> Option<&'a str>,
    {
        ErrorRateLimitLayerBuilder {
            rules: self.rules,
            delay: self.delay,
            store: self.store,
            key: crate::classify::KeyFn(f),
            count: self.count,
        }
    }

    /// Count as errors the results a predicate picks (on the error).
    pub fn count_if<F>(self, f: F) -> ErrorRateLimitLayerBuilder<K, crate::classify::CountFn<F>> {
        ErrorRateLimitLayerBuilder {
            rules: self.rules,
            delay: self.delay,
            store: self.store,
            key: self.key,
            count: crate::classify::CountFn(f),
        }
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<ErrorRateLimitLayer<K, C>, ConfigError> {
        let r = &self.rules;
        if r.threshold == 0 {
            return Err(ConfigError::new("threshold", "must be at least 1"));
        }
        if r.window.is_zero() {
            return Err(ConfigError::new("window", "must be longer than zero"));
        }
        if r.buckets == 0 || r.buckets > 1000 {
            return Err(ConfigError::new(
                "window_buckets",
                format!("must be within 1..=1000, got {}", r.buckets),
            ));
        }
        if r.base_penalty.is_zero() {
            return Err(ConfigError::new(
                "penalty.first",
                "must be longer than zero",
            ));
        }
        if r.max_penalty < r.base_penalty {
            return Err(ConfigError::new(
                "penalty.max",
                format!(
                    "({:?}) is below penalty.first ({:?})",
                    r.max_penalty, r.base_penalty
                ),
            ));
        }
        if r.decay.is_zero() {
            return Err(ConfigError::new("decay", "must be longer than zero"));
        }
        if r.rpm == Some(0) {
            return Err(ConfigError::new(
                "requests_per_minute",
                "must be at least 1",
            ));
        }
        if r.tpm == Some(0) {
            return Err(ConfigError::new("tokens_per_minute", "must be at least 1"));
        }
        if r.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        if self.delay == Some(0) {
            return Err(ConfigError::new(
                "delay_instead",
                "must let at least 1 request wait",
            ));
        }
        let store = match self.store {
            Some(s) => s,
            None => Box::new(MemoryStore::new(self.rules.clone())),
        };
        Ok(ErrorRateLimitLayer {
            shared: Arc::new(Shared {
                store,
                start: Instant::now(),
                delay: self.delay,
                waiting: AtomicUsize::new(0),
            }),
            key: self.key,
            count: self.count,
        })
    }
}

/// A service behind the limiter. Made by [`ErrorRateLimitLayer`].
pub struct ErrorRateLimit<S, K, C> {
    inner: S,
    shared: Arc<Local>,
    owned: Owned,
    key: K,
    count: C,
}

/// Whether a service clone has a handle of its own. A clone first shares its parent's, so a
/// clone made for a single request (as axum makes one per request) never allocates; a clone
/// that serves a second request makes its own, so long-lived clones on different threads do
/// not share one reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owned {
    Yes,
    Shared,
    SharedUsed,
}

impl<S, K, C> ErrorRateLimit<S, K, C> {
    /// A call on a clone still sharing its parent's handle: the second one takes its own.
    #[cold]
    #[inline(never)]
    fn on_shared_call(&mut self) {
        if self.owned == Owned::Shared {
            self.owned = Owned::SharedUsed;
            return;
        }
        self.shared = Arc::new(Local(self.shared.0.clone()));
        self.owned = Owned::Yes;
    }
}

impl<S: Clone, K: Clone, C: Clone> Clone for ErrorRateLimit<S, K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            owned: Owned::Shared,
            key: self.key.clone(),
            count: self.count.clone(),
        }
    }
}

impl<S: fmt::Debug, K, C> fmt::Debug for ErrorRateLimit<S, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, C, Req> Service<Req> for ErrorRateLimit<S, K, C>
where
    S: Service<Req> + Clone,
    S::Error: From<ThrottledError>,
    K: RateKey<Req>,
    C: crate::classify::Count<S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        let name = self.key.key(&req).unwrap_or(GLOBAL_KEY);
        let id = shared.store.key_id(name);
        let tokens = self.key.tokens(&req);
        match shared.store.admit(id, name, tokens, &|| shared.now()) {
            Admit::Pass => {
                let future = self.inner.call(req);
                if self.owned != Owned::Yes {
                    self.on_shared_call();
                }
                ResponseFuture::new(
                    State::Called { future },
                    id,
                    self.shared.clone(),
                    self.count.clone(),
                )
            }
            Admit::Deny {
                reason,
                retry_after,
            } => {
                if reason == Reason::Errors
                    && let Some(max) = shared.delay
                {
                    if shared.waiting.fetch_add(1, Ordering::AcqRel) < max {
                        tracing::debug!(
                            key = name,
                            wait_ms = retry_after.as_millis() as u64,
                            "delaying a throttled request"
                        );
                        // the service made ready goes with the request; its clone stays
                        let clone = self.inner.clone();
                        let svc = std::mem::replace(&mut self.inner, clone);
                        let state = State::Waiting {
                            sleep: tokio::time::sleep(retry_after),
                            svc: Some(svc),
                            req: Some(req),
                            _slot: WaitSlot(self.shared.clone()),
                        };
                        return ResponseFuture::new(
                            state,
                            id,
                            self.shared.clone(),
                            self.count.clone(),
                        );
                    }
                    shared.waiting.fetch_sub(1, Ordering::AcqRel);
                }
                tracing::debug!(key = name, reason = reason.as_str(), "request throttled");
                let error = S::Error::from(ThrottledError {
                    reason,
                    retry_after,
                });
                ResponseFuture::new(
                    State::Rejected { error: Some(error) },
                    id,
                    self.shared.clone(),
                    self.count.clone(),
                )
            }
        }
    }
}

/// One of the `max_waiting` places, given back when the wait ends or is abandoned.
struct WaitSlot(Arc<Local>);

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, F, E> {
        Rejected { error: Option<E> },
        Waiting { #[pin] sleep: Sleep, svc: Option<S>, req: Option<Req>, _slot: WaitSlot },
        Readying { svc: Option<S>, req: Option<Req> },
        Called { #[pin] future: F },
    }
}

pin_project! {
    /// The future of an [`ErrorRateLimit`] call.
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req, S::Future, S::Error>,
        key: KeyId,
        shared: Arc<Local>,
        count: C,
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn new(
        state: State<S, Req, S::Future, S::Error>,
        key: KeyId,
        shared: Arc<Local>,
        count: C,
    ) -> Self {
        Self {
            state,
            key,
            shared,
            count,
        }
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    C: crate::classify::Count<S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Rejected { error } => {
                    return match error.take() {
                        Some(e) => Poll::Ready(Err(e)),
                        None => Poll::Pending,
                    };
                }
                StateProj::Waiting {
                    sleep, svc, req, ..
                } => {
                    ready!(sleep.poll(cx));
                    // leaving this state drops the wait slot
                    let (svc, req) = (svc.take(), req.take());
                    this.state.set(State::Readying { svc, req });
                }
                StateProj::Readying { svc, req } => {
                    let (Some(s), Some(_)) = (svc.as_mut(), req.as_ref()) else {
                        return Poll::Pending;
                    };
                    ready!(s.poll_ready(cx))?;
                    let (Some(mut s), Some(r)) = (svc.take(), req.take()) else {
                        return Poll::Pending;
                    };
                    let future = s.call(r);
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    if let Err(e) = &result
                        && this.count.counts(e)
                    {
                        let shared = &**this.shared;
                        if let Some(penalty) = shared.store.record_error(*this.key, shared.now()) {
                            tracing::warn!(
                                key_id = this.key.0,
                                penalty_ms = penalty.as_millis() as u64,
                                "client throttled after repeated errors"
                            );
                        }
                    }
                    return Poll::Ready(result);
                }
            }
        }
    }
}
