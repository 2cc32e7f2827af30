//! What an error says about falling back, and the error when every provider failed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What an error says to the fallback layer. Implemented for `std::io::Error`,
/// `Box<dyn Error + Send + Sync>` (with the `llm` feature a boxed `LlmError` inside is asked)
/// and, with the `llm` feature, `LlmError`. The defaults: every error falls back, no hint.
pub trait FallbackHint {
    /// Is the next provider worth trying?
    fn should_fallback(&self) -> bool {
        true
    }

    /// How long this provider asked us to stay away (Retry-After, or an open breaker's time
    /// left). A health-aware fallback skips the provider until then.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// A short label for statistics (e.g. the error kind).
    fn label(&self) -> &'static str {
        "error"
    }
}

impl FallbackHint for std::io::Error {
    fn label(&self) -> &'static str {
        "io"
    }
}

impl FallbackHint for std::convert::Infallible {}

impl FallbackHint for Box<dyn std::error::Error + Send + Sync> {
    fn should_fallback(&self) -> bool {
        #[cfg(feature = "llm")]
        if let Some(e) = self.downcast_ref::<towerguard_llm_core::LlmError>() {
            return e.should_fallback();
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

#[cfg(feature = "llm")]
impl FallbackHint for towerguard_llm_core::LlmError {
    /// The design table: provider trouble, quota, auth, unknown model, context length and an
    /// open breaker fall back; invalid requests, content policy and our own refusals do not.
    fn should_fallback(&self) -> bool {
        towerguard_llm_core::LlmError::should_fallback(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        towerguard_llm_core::LlmError::retry_after(self)
    }

    fn label(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// Every provider tried failed: each provider's name with its error, in the order tried.
///
/// The service's error type must be `From<AllProvidersFailed<E>>`: `BoxError` is, and with
/// the `llm` feature `LlmError` is (as an `AllProvidersFailed` error whose client message
/// names no provider and whose `attempts()` keep every error).
#[derive(Debug)]
pub struct AllProvidersFailed<E> {
    /// `(provider, error)` in the order tried.
    pub attempts: Vec<(Arc<str>, E)>,
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

impl<E: fmt::Debug + fmt::Display> std::error::Error for AllProvidersFailed<E> {}

#[cfg(feature = "llm")]
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
