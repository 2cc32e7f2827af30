//! The error an open breaker answers with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use towerguard_outcome::{ClassifyError, Declared, Refusal, Verdict};

use crate::state::State;

/// A call rejected by the breaker without reaching the service. The service's error type
/// must be `From<CircuitOpenError>`: `BoxError` and `std::io::Error` are, and with the `llm`
/// feature `LlmError` is (as an `ErrorKind::CircuitOpen` error).
///
/// Its verdict is a refusal worth a fallback, with the time left open as its Retry-After;
/// the verdict is also in its [`source`](std::error::Error::source) chain, so other layers
/// recognise a boxed one and never retry it or count it against the callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpenError {
    name: Option<Arc<str>>,
    state: State,
    declared: Declared,
}

impl CircuitOpenError {
    pub(crate) fn new(name: Option<Arc<str>>, state: State, retry_after: Option<Duration>) -> Self {
        let verdict = Verdict::Refused(Refusal {
            fallback: true,
            retry_after,
        });
        Self {
            name,
            state,
            declared: Declared(verdict),
        }
    }

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
        self.declared.0.retry_after()
    }
}

impl fmt::Display for CircuitOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "circuit breaker `{n}` is {}", self.state)?,
            None => write!(f, "circuit breaker is {}", self.state)?,
        }
        if let Some(d) = self.retry_after() {
            write!(f, "; retry after {d:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CircuitOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.declared)
    }
}

/// A refusal, worth a fallback, with the time left open as its Retry-After.
impl ClassifyError for CircuitOpenError {
    fn verdict(&self) -> Verdict {
        self.declared.0
    }

    fn label(&self) -> &'static str {
        "circuit_open"
    }
}

/// For services that speak `std::io::Error` (database and socket clients): the rejection
/// becomes an `io::Error` of kind `Other` wrapping the [`CircuitOpenError`].
impl From<CircuitOpenError> for std::io::Error {
    fn from(e: CircuitOpenError) -> Self {
        std::io::Error::other(e)
    }
}

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
impl From<CircuitOpenError> for towerguard_llm_core::LlmError {
    fn from(e: CircuitOpenError) -> Self {
        let err = towerguard_llm_core::LlmError::circuit_open(e.retry_after());
        match e.name {
            Some(name) => err.with_provider(name),
            None => err,
        }
    }
}
