//! Deciding which results are retried.

use std::time::Duration;

/// What to do with one attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Return it to the caller.
    Accept,
    /// Retry, after the server's hint if it gave one (else after the backoff).
    Retry {
        /// The server's Retry-After hint.
        after: Option<Duration>,
    },
}

/// Classifies an attempt's result. Implemented by [`DefaultClassifier`], [`RetryIf`],
/// [`ClassifyFn`] and [`StopOn`]; implement it for full control.
pub trait Classify<Res, E> {
    /// Retry this result?
    fn classify(&self, result: &Result<Res, E>) -> Decision;

    /// Called once on the result handed back to the caller, with the number of attempts made
    /// (1 if the first call answered). The default does nothing.
    fn record_attempts(&self, result: &mut Result<Res, E>, attempts: u32) {
        let _ = (result, attempts);
    }
}

/// What an error type says about retrying, for [`DefaultClassifier`].
///
/// Implemented for `std::io::Error`, for `Box<dyn Error + Send + Sync>` (tower's `BoxError`;
/// with the `llm` feature a boxed `LlmError` inside is asked), and, through
/// [`RetryOutcome`], for `LlmError`. Implement it for your own error types.
pub trait RetryHint {
    /// Is this failure worth retrying? Default: yes.
    fn is_retryable(&self) -> bool {
        true
    }

    /// The server's Retry-After hint, if any. Default: none.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// Records the number of attempts on the error handed to the caller. Default: nothing.
    fn record_attempts(&mut self, attempts: u32) {
        let _ = attempts;
    }
}

impl RetryHint for std::io::Error {
    fn is_retryable(&self) -> bool {
        use std::io::ErrorKind::*;
        matches!(
            self.kind(),
            TimedOut
                | Interrupted
                | ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | BrokenPipe
                | UnexpectedEof
                | WouldBlock
        )
    }
}

impl RetryHint for Box<dyn std::error::Error + Send + Sync> {
    fn is_retryable(&self) -> bool {
        #[cfg(feature = "llm")]
        if let Some(e) = self.downcast_ref::<towerguard_llm_core::LlmError>() {
            return e.is_retryable();
        }
        if let Some(e) = self.downcast_ref::<std::io::Error>() {
            return RetryHint::is_retryable(e);
        }
        true
    }

    fn retry_after(&self) -> Option<Duration> {
        #[cfg(feature = "llm")]
        if let Some(e) = self.downcast_ref::<towerguard_llm_core::LlmError>() {
            return e.retry_after();
        }
        None
    }
}

impl RetryHint for std::convert::Infallible {}

/// A whole result's retry semantics, used by [`DefaultClassifier`]: implemented for every
/// `Result<Res, E>` whose error is a [`RetryHint`] (successes are never retried), and with the
/// `llm` feature for `Result<LlmResponse, LlmError>`.
pub trait RetryOutcome {
    /// Retry this result?
    fn decision(&self) -> Decision;
    /// Records the number of attempts on the result handed back.
    fn record_attempts(&mut self, attempts: u32);
}

/// The decision for an error that says whether it is retryable and after how long.
#[inline]
fn error_decision(retryable: bool, after: Option<Duration>) -> Decision {
    if retryable {
        Decision::Retry { after }
    } else {
        Decision::Accept
    }
}

impl<Res, E: RetryHint> RetryOutcome for Result<Res, E> {
    #[inline]
    fn decision(&self) -> Decision {
        match self {
            Ok(_) => Decision::Accept,
            Err(e) => error_decision(e.is_retryable(), e.retry_after()),
        }
    }

    #[inline]
    fn record_attempts(&mut self, attempts: u32) {
        if let Err(e) = self {
            e.record_attempts(attempts);
        }
    }
}

/// The default: retry what the result itself says is retryable ([`RetryOutcome`]).
///
/// For LLM services that is the design table: rate limits, overloads, server errors,
/// timeouts and connection failures are retried (after their Retry-After hint if any, unless
/// the provider sent `x-should-retry: false`); authentication, quota, invalid requests,
/// context length, content policy and our own layers' refusals are not.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<Res, E> Classify<Res, E> for DefaultClassifier
where
    Result<Res, E>: RetryOutcome,
{
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Decision {
        result.decision()
    }

    #[inline]
    fn record_attempts(&self, result: &mut Result<Res, E>, attempts: u32) {
        RetryOutcome::record_attempts(result, attempts);
    }
}

/// Retries the results a predicate picks (no Retry-After hint).
#[derive(Debug, Clone, Copy)]
pub struct RetryIf<F>(pub F);

impl<Res, E, F> Classify<Res, E> for RetryIf<F>
where
    F: Fn(&Result<Res, E>) -> bool,
{
    fn classify(&self, result: &Result<Res, E>) -> Decision {
        if (self.0)(result) {
            Decision::Retry { after: None }
        } else {
            Decision::Accept
        }
    }
}

/// A classifier from a closure returning a [`Decision`] (full control, hints included).
#[derive(Debug, Clone, Copy)]
pub struct ClassifyFn<F>(pub F);

impl<Res, E, F> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(&Result<Res, E>) -> Decision,
{
    fn classify(&self, result: &Result<Res, E>) -> Decision {
        (self.0)(result)
    }
}

/// Wraps a classifier: results the predicate picks are never retried.
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
    fn classify(&self, result: &Result<Res, E>) -> Decision {
        if (self.stop)(result) {
            Decision::Accept
        } else {
            self.inner.classify(result)
        }
    }

    fn record_attempts(&self, result: &mut Result<Res, E>, attempts: u32) {
        self.inner.record_attempts(result, attempts);
    }
}

#[cfg(feature = "llm")]
mod llm {
    use super::{Decision, RetryOutcome, error_decision};
    use towerguard_llm_core::{Attempts, LlmError, LlmResponse};

    impl RetryOutcome for Result<LlmResponse, LlmError> {
        #[inline]
        fn decision(&self) -> Decision {
            match self {
                Ok(_) => Decision::Accept,
                Err(e) => error_decision(e.is_retryable(), e.retry_after()),
            }
        }

        /// Stores [`Attempts`] in the error's extensions, and in the response's when more
        /// than one attempt was made (a first-try success stays allocation-free; read it
        /// with [`attempts`](crate::attempts), which says 1 when absent).
        #[inline]
        fn record_attempts(&mut self, attempts: u32) {
            match self {
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
}
