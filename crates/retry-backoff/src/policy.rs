//! What is retried, and the hooks called along the way.
//!
//! Whether a result is retried is its [`Verdict`]: retried iff
//! [`is_retryable`](Verdict::is_retryable), after its [`retry_after`](Verdict::retry_after)
//! hint when it has one. The default, [`DefaultClassify`](towerguard_outcome::DefaultClassify),
//! asks the error ([`ClassifyError`](towerguard_outcome::ClassifyError)); [`RetryIf`],
//! [`ClassifyFn`](towerguard_outcome::ClassifyFn) and [`StopOn`] override it.

use std::time::Duration;

use towerguard_outcome::{Classify, Failure, Verdict};

/// Retries the results a predicate picks (successes too), with no Retry-After hint. Results
/// it does not pick are returned: a response as a success, an error as a failure not worth
/// retrying.
#[derive(Debug, Clone, Copy)]
pub struct RetryIf<F>(pub F);

impl<Res, E, F> Classify<Res, E> for RetryIf<F>
where
    F: Fn(&Result<Res, E>) -> bool,
{
    fn classify(&self, result: &Result<Res, E>) -> Verdict {
        match result {
            _ if (self.0)(result) => Verdict::transient(),
            Ok(_) => Verdict::Success,
            Err(_) => Verdict::permanent(),
        }
    }
}

/// Wraps a classifier: the results `stop` picks are never retried (the rest of their verdict
/// is kept).
#[derive(Debug, Clone, Copy)]
pub struct StopOn<C, F> {
    inner: C,
    stop: F,
}

impl<C, F> StopOn<C, F> {
    /// `inner`, except that results for which `stop` returns true are returned at once.
    pub fn new(inner: C, stop: F) -> Self {
        Self { inner, stop }
    }
}

impl<Res, E, C, F> Classify<Res, E> for StopOn<C, F>
where
    C: Classify<Res, E>,
    F: Fn(&Result<Res, E>) -> bool,
{
    fn classify(&self, result: &Result<Res, E>) -> Verdict {
        match self.inner.classify(result) {
            Verdict::Upstream(f) if (self.stop)(result) => Verdict::Upstream(Failure {
                retryable: false,
                ..f
            }),
            verdict => verdict,
        }
    }
}

/// Called before each retry with the failed result, the 1-based index of the retry about to
/// be made, and the delay before it. Implemented for `()` (nothing) and for closures
/// `Fn(&Result<Res, E>, u32, Duration)`.
pub trait OnRetry<Res, E> {
    /// The hook.
    fn on_retry(&self, result: &Result<Res, E>, retry: u32, delay: Duration);
}

impl<Res, E> OnRetry<Res, E> for () {
    #[inline]
    fn on_retry(&self, _: &Result<Res, E>, _: u32, _: Duration) {}
}

impl<Res, E, F> OnRetry<Res, E> for F
where
    F: Fn(&Result<Res, E>, u32, Duration),
{
    fn on_retry(&self, result: &Result<Res, E>, retry: u32, delay: Duration) {
        self(result, retry, delay)
    }
}

/// Called when a retryable result is returned because no more retries are allowed (retries
/// used up, budget empty, hint too long, time cap reached), with the attempts made.
/// Implemented for `()` and for closures `Fn(&Result<Res, E>, u32)`.
pub trait OnGiveUp<Res, E> {
    /// The hook.
    fn on_give_up(&self, result: &Result<Res, E>, attempts: u32);
}

impl<Res, E> OnGiveUp<Res, E> for () {
    #[inline]
    fn on_give_up(&self, _: &Result<Res, E>, _: u32) {}
}

impl<Res, E, F> OnGiveUp<Res, E> for F
where
    F: Fn(&Result<Res, E>, u32),
{
    fn on_give_up(&self, result: &Result<Res, E>, attempts: u32) {
        self(result, attempts)
    }
}

/// Writes the number of attempts made (1 if the first call answered) into the result handed
/// back to the caller. Implemented for `()` (records nothing), for closures
/// `Fn(&mut Result<Res, E>, u32)`, and with the `llm` feature by [`LlmAttempts`].
pub trait RecordAttempts<Res, E> {
    /// Records `attempts` on `result`.
    fn record_attempts(&self, result: &mut Result<Res, E>, attempts: u32);
}

impl<Res, E> RecordAttempts<Res, E> for () {
    #[inline]
    fn record_attempts(&self, _: &mut Result<Res, E>, _: u32) {}
}

impl<Res, E, F> RecordAttempts<Res, E> for F
where
    F: Fn(&mut Result<Res, E>, u32),
{
    fn record_attempts(&self, result: &mut Result<Res, E>, attempts: u32) {
        self(result, attempts)
    }
}

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub use llm::{LlmAttempts, attempts};

#[cfg(feature = "llm")]
mod llm {
    use super::RecordAttempts;
    use towerguard_llm_core::{Attempts, LlmError, LlmResponse};

    /// Records [`Attempts`] in an `LlmError`'s extensions, and in an `LlmResponse`'s when more
    /// than one attempt was made (a first-try success stays allocation-free). Read it with
    /// [`attempts`].
    #[derive(Debug, Clone, Copy, Default)]
    #[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
    pub struct LlmAttempts;

    impl RecordAttempts<LlmResponse, LlmError> for LlmAttempts {
        #[inline]
        fn record_attempts(&self, result: &mut Result<LlmResponse, LlmError>, attempts: u32) {
            match result {
                Ok(resp) if attempts > 1 => {
                    resp.extensions.insert(Attempts(attempts));
                }
                Ok(_) => {}
                Err(e) => {
                    e.extensions_mut().insert(Attempts(attempts));
                }
            }
        }
    }

    /// The number of attempts [`LlmAttempts`] recorded in a response's or error's
    /// extensions: 1 when nothing was recorded.
    #[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
    pub fn attempts(extensions: &http::Extensions) -> u32 {
        extensions.get::<Attempts>().map_or(1, |a| a.0)
    }
}
