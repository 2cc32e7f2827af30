//! The error an open breaker answers with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::core::State;

/// A call rejected by the breaker without reaching the service. The service's error type
/// must be `From<CircuitOpenError>` (`BoxError` is; with the `llm` feature `LlmError` is, as
/// an [`ErrorKind::CircuitOpen`](towerguard_llm_core::ErrorKind) error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpenError {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) state: State,
    pub(crate) retry_after: Option<Duration>,
}

impl CircuitOpenError {
    /// The breaker's name (usually the provider's), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The state that rejected the call: open, forced open, or half-open with every probe
    /// permit taken.
    pub fn state(&self) -> State {
        self.state
    }

    /// Time left open, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "circuit breaker `{n}` is {}", self.state)?,
            None => write!(f, "circuit breaker is {}", self.state)?,
        }
        if let Some(d) = self.retry_after {
            write!(f, "; retry after {d:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CircuitOpenError {}

/// For services that speak `std::io::Error` (database and socket clients): the rejection
/// becomes an `io::Error` of kind `Other` wrapping the [`CircuitOpenError`].
impl From<CircuitOpenError> for std::io::Error {
    fn from(e: CircuitOpenError) -> Self {
        std::io::Error::other(e)
    }
}

#[cfg(feature = "llm")]
impl From<CircuitOpenError> for towerguard_llm_core::LlmError {
    fn from(e: CircuitOpenError) -> Self {
        let err = towerguard_llm_core::LlmError::circuit_open(e.retry_after);
        match e.name {
            Some(name) => err.with_provider(name),
            None => err,
        }
    }
}
