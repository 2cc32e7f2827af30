//! Deciding what counts as a failure.

use std::time::Duration;

use crate::core::Outcome;

/// Classifies a call's result for the breaker. Implemented by [`DefaultClassifier`] and
/// [`ClassifyFn`]; implement it for full control.
pub trait Classify<Res, E> {
    /// Success, failure (with the callee's Retry-After hint) or ignored.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

/// What an error says about the callee's health, for [`DefaultClassifier`].
///
/// Implemented for `std::io::Error`, `Box<dyn Error + Send + Sync>` (with the `llm` feature a
/// boxed `LlmError` inside is asked) and, with the `llm` feature, `LlmError`. Implement it for
/// your own error types; the default counts every error as a failure.
pub trait FailureHint {
    /// How the breaker counts this error. Default: a failure without a hint.
    fn breaker_outcome(&self) -> Outcome {
        Outcome::Failure { retry_after: None }
    }
}

impl FailureHint for std::io::Error {
    fn breaker_outcome(&self) -> Outcome {
        // another breaker's rejection says nothing about this callee
        if self
            .get_ref()
            .is_some_and(|e| e.is::<crate::CircuitOpenError>())
        {
            Outcome::Ignored
        } else {
            Outcome::Failure { retry_after: None }
        }
    }
}

impl FailureHint for std::convert::Infallible {}

impl FailureHint for Box<dyn std::error::Error + Send + Sync> {
    fn breaker_outcome(&self) -> Outcome {
        #[cfg(feature = "llm")]
        if let Some(e) = self.downcast_ref::<towerguard_llm_core::LlmError>() {
            return e.breaker_outcome();
        }
        if self.is::<crate::CircuitOpenError>() {
            return Outcome::Ignored;
        }
        Outcome::Failure { retry_after: None }
    }
}

#[cfg(feature = "llm")]
impl FailureHint for towerguard_llm_core::LlmError {
    /// The design table: the kinds that say the provider is unhealthy are failures (with
    /// their Retry-After hint); our own layers' refusals are ignored; every other answer
    /// (a bad request, a quota problem) shows a provider that is up, so it is a success.
    fn breaker_outcome(&self) -> Outcome {
        use towerguard_llm_core::ErrorKind;
        if self.counts_for_breaker() {
            Outcome::Failure {
                retry_after: self.retry_after(),
            }
        } else if matches!(
            self.kind(),
            ErrorKind::CircuitOpen
                | ErrorKind::BudgetExceeded
                | ErrorKind::Throttled
                | ErrorKind::AllProvidersFailed
        ) {
            Outcome::Ignored
        } else {
            Outcome::Success
        }
    }
}

/// The default: successes are successes; errors are asked ([`FailureHint`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<Res, E: FailureHint> Classify<Res, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => e.breaker_outcome(),
        }
    }
}

/// A classifier from a closure over the whole result.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyFn<F>(pub F);

impl<Res, E, F> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        (self.0)(result)
    }
}

/// Shorthand for a failure with a Retry-After hint.
pub fn failure_after(retry_after: Duration) -> Outcome {
    Outcome::Failure {
        retry_after: Some(retry_after),
    }
}
