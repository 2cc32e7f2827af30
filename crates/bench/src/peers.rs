//! The peers, built as the benches measure them: each over any client (usually
//! [`ReadyClient`](towerguard_testkit::ReadyClient)) speaking `LlmRequest` / `LlmResponse` /
//! `LlmError`, so they do the same work as our layers.
//!
//! governor and failsafe are not tower layers: [`GovernorDirect`], [`GovernorKeyed`] and
//! [`Failsafe`] call them once per request (governor's `check()` / `check_key()`, failsafe's
//! `is_call_permitted()` then `on_success()` / `on_error()`) in front of the client, which
//! is how a service would use them.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{BoxError, Service, ServiceBuilder};
use towerguard_llm_core::{ClientKey, LlmError, LlmRequest, LlmResponse};

// ---- tower ----------------------------------------------------------------------------------

/// tower's retry with its budget, as its docs build it: deposit on success, withdraw on error.
#[derive(Clone)]
pub struct TowerBudgetPolicy(pub Arc<TpsBudget>);

impl TowerBudgetPolicy {
    /// A budget of tower's defaults: 10 s window, 10 retries per second minimum, 20 % extra.
    pub fn new() -> Self {
        Self(Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)))
    }
}

impl Default for TowerBudgetPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for TowerBudgetPolicy {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.0.deposit();
                None
            }
            Err(_) => self.0.withdraw().then(|| std::future::ready(())),
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// tower's retry with [`TowerBudgetPolicy`].
pub fn tower_retry() -> tower::retry::RetryLayer<TowerBudgetPolicy> {
    tower::retry::RetryLayer::new(TowerBudgetPolicy::new())
}

/// tower's rate limit at a rate no benchmark reaches (needs a tokio runtime with time).
pub fn tower_rate_limit() -> tower::limit::RateLimitLayer {
    tower::limit::RateLimitLayer::new(u64::MAX / 2, Duration::from_secs(1))
}

/// tower's concurrency limit, far above one call in flight.
pub fn tower_concurrency_limit() -> tower::limit::ConcurrencyLimitLayer {
    tower::limit::ConcurrencyLimitLayer::new(1024)
}

/// tower's timeout of 30 s (needs a tokio runtime with time).
pub fn tower_timeout() -> tower::timeout::TimeoutLayer {
    tower::timeout::TimeoutLayer::new(Duration::from_secs(30))
}

// ---- tower-resilience -----------------------------------------------------------------------

/// tower-resilience's retry: 3 attempts, exponential backoff from 500 ms.
pub fn resilience_retry<E>() -> tower_resilience_retry::RetryLayer<LlmRequest, LlmResponse, E> {
    tower_resilience_retry::RetryLayer::<LlmRequest, LlmResponse, E>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(500))
        .build()
}

/// tower-resilience's breaker over a count window of 100 calls.
pub fn resilience_breaker() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(100)
        .build()
        .unwrap()
}

/// tower-resilience's breaker that opens on the first failure and stays open for an hour.
pub fn resilience_breaker_tripping() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// tower-resilience's rate limiter at a rate no benchmark reaches.
pub fn resilience_rate_limiter() -> tower_resilience_ratelimiter::RateLimiterLayer {
    tower_resilience_ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(usize::MAX / 2)
        .refresh_period(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// tower-resilience's time limiter of 30 s.
pub fn resilience_time_limiter() -> tower_resilience_timelimiter::TimeLimiterLayer {
    tower_resilience_timelimiter::TimeLimiterLayer::builder()
        .timeout_duration(Duration::from_secs(30))
        .build()
}

/// tower-resilience's fallback to the service `backup`.
pub fn resilience_fallback<B>(
    backup: B,
) -> tower_resilience_fallback::ServiceFallbackLayer<B, LlmRequest, LlmResponse, LlmError> {
    tower_resilience_fallback::FallbackLayer::<LlmRequest, LlmResponse, LlmError>::tower_service(
        backup,
    )
}

fn to_box<E: Into<BoxError>>(e: E) -> BoxError {
    e.into()
}

/// tower-resilience's retry -> circuit breaker -> rate limiter -> time limiter over `client`.
pub fn resilience_stack<C>(
    client: C,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = BoxError> + Clone + Send
where
    C: Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
{
    ServiceBuilder::new()
        .layer(resilience_retry::<BoxError>())
        .map_err(to_box)
        .layer(resilience_breaker())
        .map_err(to_box)
        .layer(resilience_rate_limiter())
        .map_err(to_box)
        .layer(resilience_time_limiter())
        .service(client)
}

// ---- governor and failsafe, once per request ------------------------------------------------

/// Why an adapted peer did not answer `Ok`.
#[derive(Debug)]
pub enum PeerError {
    /// The peer refused the call (rate reached, breaker open).
    Refused,
    /// The client's own error.
    Client(LlmError),
}

/// The future of an adapted peer: refused at once, or the client's future.
#[derive(Debug)]
pub enum PeerFuture<F> {
    /// Refused before the client was called.
    Refused,
    /// The client's call.
    Called(F),
}

impl<F> Future for PeerFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>> + Unpin,
{
    type Output = Result<LlmResponse, PeerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            PeerFuture::Refused => Poll::Ready(Err(PeerError::Refused)),
            PeerFuture::Called(f) => Pin::new(f).poll(cx).map(|r| r.map_err(PeerError::Client)),
        }
    }
}

/// governor's direct (one global) limiter checked once per request in front of `inner`.
#[derive(Clone)]
pub struct GovernorDirect<S> {
    limiter: Arc<DefaultDirectRateLimiter>,
    inner: S,
}

impl<S> GovernorDirect<S> {
    /// `inner` behind a direct limiter of `quota`.
    pub fn new(quota: Quota, inner: S) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::direct(quota)),
            inner,
        }
    }

    /// `inner` behind a direct limiter at a rate no benchmark reaches.
    pub fn unlimited(inner: S) -> Self {
        Self::new(Quota::per_second(NonZeroU32::MAX), inner)
    }
}

impl<S> Service<LlmRequest> for GovernorDirect<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    S::Future: Unpin,
{
    type Response = LlmResponse;
    type Error = PeerError;
    type Future = PeerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PeerError>> {
        self.inner.poll_ready(cx).map_err(PeerError::Client)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => PeerFuture::Called(self.inner.call(req)),
            Err(_) => PeerFuture::Refused,
        }
    }
}

/// governor's keyed limiter checked once per request with the request's client key in
/// front of `inner` (requests without a key pass unchecked).
#[derive(Clone)]
pub struct GovernorKeyed<S> {
    limiter: Arc<DefaultKeyedRateLimiter<ClientKey>>,
    inner: S,
}

impl<S> GovernorKeyed<S> {
    /// `inner` behind a keyed limiter of `quota` per client key.
    pub fn new(quota: Quota, inner: S) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            inner,
        }
    }

    /// `inner` behind a keyed limiter at a rate no benchmark reaches.
    pub fn unlimited(inner: S) -> Self {
        Self::new(Quota::per_second(NonZeroU32::MAX), inner)
    }

    /// `inner` behind a keyed limiter of one request per client key per hour.
    pub fn one_per_hour(inner: S) -> Self {
        Self::new(Quota::per_hour(NonZeroU32::MIN), inner)
    }
}

impl<S> Service<LlmRequest> for GovernorKeyed<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    S::Future: Unpin,
{
    type Response = LlmResponse;
    type Error = PeerError;
    type Future = PeerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PeerError>> {
        self.inner.poll_ready(cx).map_err(PeerError::Client)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let allowed = match req.client_key() {
            Some(key) => self.limiter.check_key(key).is_ok(),
            None => true,
        };
        if allowed {
            PeerFuture::Called(self.inner.call(req))
        } else {
            PeerFuture::Refused
        }
    }
}

/// failsafe's breaker policy: open after `failures` in a row, for `open`.
pub type FailsafeBreaker = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;

/// failsafe's breaker opening after `failures` failures in a row, for `open`.
pub fn failsafe_breaker(failures: u32, open: Duration) -> FailsafeBreaker {
    let policy =
        failsafe::failure_policy::consecutive_failures(failures, failsafe::backoff::constant(open));
    failsafe::Config::new().failure_policy(policy).build()
}

/// failsafe's breaker around `inner`: asks `is_call_permitted()` before each call and reports
/// its outcome with `on_success()` / `on_error()` when the client answers.
#[derive(Clone)]
pub struct Failsafe<S> {
    breaker: FailsafeBreaker,
    inner: S,
}

impl<S> Failsafe<S> {
    /// `inner` behind `breaker`.
    pub fn new(breaker: FailsafeBreaker, inner: S) -> Self {
        Self { breaker, inner }
    }
}

/// The future of [`Failsafe`]: reports the client's outcome to the breaker.
pub struct FailsafeFuture<F> {
    call: PeerFuture<F>,
    breaker: FailsafeBreaker,
}

impl<F> Future for FailsafeFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>> + Unpin,
{
    type Output = Result<LlmResponse, PeerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let out = std::task::ready!(Pin::new(&mut this.call).poll(cx));
        match &out {
            Ok(_) => this.breaker.on_success(),
            Err(PeerError::Client(_)) => this.breaker.on_error(),
            Err(PeerError::Refused) => {}
        }
        Poll::Ready(out)
    }
}

impl<S> Service<LlmRequest> for Failsafe<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    S::Future: Unpin,
{
    type Response = LlmResponse;
    type Error = PeerError;
    type Future = FailsafeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PeerError>> {
        self.inner.poll_ready(cx).map_err(PeerError::Client)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let call = if self.breaker.is_call_permitted() {
            PeerFuture::Called(self.inner.call(req))
        } else {
            PeerFuture::Refused
        };
        FailsafeFuture {
            call,
            breaker: self.breaker.clone(),
        }
    }
}
