//! The error when every provider tried failed.

use std::fmt;
use std::sync::Arc;

use towerguard_outcome::{ClassifyError, Declared, Failure, Verdict};

/// What "every provider failed" means to the layers above: an upstream failure that is not
/// retried, not counted by a breaker and not worth another fallback (the design's table).
const EXHAUSTED: Verdict = Verdict::Upstream(Failure {
    retryable: false,
    unhealthy: false,
    fallback: false,
    retry_after: None,
});

/// Every provider tried failed: each provider's name with its error, in the order tried.
///
/// The service's error type must be `From<AllProvidersFailed<E>>`: `BoxError` is, and with
/// the `llm` feature `LlmError` is (as an `AllProvidersFailed` error whose client message
/// names no provider and whose `attempts()` keep every error). Boxed, it still says it is not
/// worth retrying: its [`source`](std::error::Error::source) declares that verdict.
#[derive(Debug)]
pub struct AllProvidersFailed<E> {
    /// `(provider, error)` in the order tried.
    pub attempts: Vec<(Arc<str>, E)>,
    declared: Declared,
}

impl<E> AllProvidersFailed<E> {
    /// The failure of these attempts, `(provider, error)` in the order tried.
    pub fn new(attempts: Vec<(Arc<str>, E)>) -> Self {
        Self {
            attempts,
            declared: Declared(EXHAUSTED),
        }
    }
}

impl<E: fmt::Display> fmt::Display for AllProvidersFailed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} providers failed", self.attempts.len())?;
        for (n, (name, e)) in self.attempts.iter().enumerate() {
            write!(f, "{} {name}: {e}", if n == 0 { ":" } else { ";" })?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for AllProvidersFailed<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.declared)
    }
}

impl<E> ClassifyError for AllProvidersFailed<E> {
    fn verdict(&self) -> Verdict {
        EXHAUSTED
    }

    fn label(&self) -> &'static str {
        "all_providers_failed"
    }
}

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
impl From<AllProvidersFailed<towerguard_llm_core::LlmError>> for towerguard_llm_core::LlmError {
    fn from(all: AllProvidersFailed<towerguard_llm_core::LlmError>) -> Self {
        let attempts = all
            .attempts
            .into_iter()
            .map(|(name, e)| e.or_provider(&name))
            .collect();
        towerguard_llm_core::LlmError::all_providers_failed(attempts)
    }
}
