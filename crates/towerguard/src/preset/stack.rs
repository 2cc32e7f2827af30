//! One provider's stack: `[rate limit] -> Retry -> CircuitBreaker -> Timeout -> client`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

use super::{Pipeline, ProviderSpec};
use crate::breaker::{CircuitBreakerHandle, CircuitBreakerLayer};
use crate::limit::ErrorRateLimitLayer;
use crate::llm::{ErrorKind, LlmError, LlmRequest, LlmResponse};
use crate::outcome::{ConfigError, Verdict};
use crate::retry::{LlmAttempts, RetryLayer};

/// The kind of a provider's last failed attempt, lock-free: 0 for none, else the kind's
/// position in [`ErrorKind::ALL`] plus one.
#[derive(Debug, Default)]
pub(crate) struct LastError(AtomicU8);

impl LastError {
    fn set(&self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.0.store(i as u8 + 1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> Option<ErrorKind> {
        let i = usize::from(self.0.load(Ordering::Relaxed));
        i.checked_sub(1)
            .and_then(|i| ErrorKind::ALL.get(i).copied())
    }
}

/// The stack of `spec`, and its breaker's handle.
pub(crate) fn provider(
    spec: &ProviderSpec,
    last: Arc<LastError>,
) -> Result<(Pipeline, CircuitBreakerHandle), ConfigError> {
    let name = spec.name.clone();
    let at = format!("providers.{name}");
    let attempt: Pipeline = match spec.timeout {
        Some(limit) => {
            let provider = name.clone();
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .map_err(move |e: BoxError| timeout_error(e, &provider, limit))
                    .timeout(limit)
                    .service(spec.client.clone()),
            )
        }
        None => spec.client.clone(),
    };
    let breaker = breaker_layer(spec).map_err(|e| e.under(&format!("{at}.breaker")))?;
    let breaker_handle = breaker.handle();
    let retry = RetryLayer::builder()
        .max_retries(spec.retry.max_retries)
        .backoff(spec.retry.backoff.clone())
        .max_retry_after(spec.retry.max_retry_after)
        .record_attempts(LlmAttempts)
        .build()
        .map_err(|e| e.under(&format!("{at}.retry")))?;
    let record = move |e: LlmError| {
        last.set(e.kind());
        e
    };
    let stack: Pipeline = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(retry)
            .layer(breaker)
            .map_err(record)
            .service(attempt),
    );
    if !spec.rate.is_set() {
        return Ok((stack, breaker_handle));
    }
    let mut limiter = ErrorRateLimitLayer::builder()
        .key_with(one_key)
        .classify_with(|_: &Result<LlmResponse, LlmError>| Verdict::Success);
    if let Some(rpm) = spec.rate.rpm {
        limiter = limiter.requests_per_minute(rpm);
    }
    if let Some(tpm) = spec.rate.tpm {
        limiter = limiter.tokens_per_minute(tpm);
    }
    let limiter = limiter
        .build()
        .map_err(|e| e.under(&format!("{at}.rate_limit")))?;
    let provider = name.clone();
    let limited = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_err(move |e: LlmError| provider_rate_error(e, &provider))
            .layer(limiter)
            .service(stack),
    );
    Ok((limited, breaker_handle))
}

/// Every request to one provider shares its rate allowance.
fn one_key(_: &LlmRequest) -> Option<&str> {
    None
}

/// The provider's breaker layer from its settings.
fn breaker_layer(spec: &ProviderSpec) -> Result<CircuitBreakerLayer, ConfigError> {
    let s = &spec.breaker;
    let mut b = CircuitBreakerLayer::builder()
        .name(spec.name.clone())
        .open_duration(s.open_duration)
        .half_open_permits(s.half_open_permits)
        .count_window(s.window);
    b = match s.consecutive_failures {
        Some(n) => b.consecutive_failures(n),
        None => b.no_consecutive_failures(),
    };
    // The window is always kept, for the recent success rate; without a failure rate of
    // its own it trips only when every call of a full window failed.
    b = match s.failure_rate {
        Some(rate) => b.failure_rate(rate).min_calls(u64::from(s.min_calls)),
        None => b.failure_rate(1.0).min_calls(u64::from(s.window)),
    };
    b.build()
}

/// tower's timeout error as an `LlmError`: an elapsed attempt is kind `Timeout`; the
/// client's own errors pass unchanged.
fn timeout_error(e: BoxError, provider: &Arc<str>, limit: Duration) -> LlmError {
    match e.downcast::<LlmError>() {
        Ok(e) => *e,
        Err(e) if e.is::<tower::timeout::error::Elapsed>() => LlmError::new(ErrorKind::Timeout)
            .with_provider(provider.clone())
            .with_detail(format!("no answer within the attempt timeout of {limit:?}")),
        Err(e) => LlmError::new(ErrorKind::Server)
            .with_provider(provider.clone())
            .with_detail(e.to_string()),
    }
}

/// A request over the provider's own rate is that provider's rate limit: the fallback moves
/// on and skips it for the wait.
fn provider_rate_error(e: LlmError, provider: &Arc<str>) -> LlmError {
    if e.kind() != ErrorKind::Throttled {
        return e;
    }
    let err = LlmError::new(ErrorKind::RateLimited)
        .with_provider(provider.clone())
        .with_detail("the provider's configured rate limit is reached");
    match e.retry_after() {
        Some(wait) => err.with_retry_after(wait),
        None => err,
    }
}
