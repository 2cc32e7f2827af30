//! The error a throttled request gets.

use std::fmt;
use std::time::Duration;

use crate::store::Reason;

/// A request refused by the limiter. Its message is the same for every client and cause, and
/// says nothing of the upstream or of other clients. The service's error type must be
/// `From<ThrottledError>` (`BoxError` is; with the `llm` feature `LlmError` is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottledError {
    pub(crate) reason: Reason,
    pub(crate) retry_after: Duration,
}

impl ThrottledError {
    /// When the client may try again.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// Why (for the operator's logs and metrics; not shown to the client).
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl fmt::Display for ThrottledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many requests; retry after {} s",
            self.retry_after.as_secs_f64().ceil()
        )
    }
}

impl std::error::Error for ThrottledError {}

#[cfg(feature = "llm")]
impl From<ThrottledError> for towerguard_llm_core::LlmError {
    fn from(e: ThrottledError) -> Self {
        towerguard_llm_core::LlmError::throttled(Some(e.retry_after))
    }
}
