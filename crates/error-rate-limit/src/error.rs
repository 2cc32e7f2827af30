//! The error a throttled request gets.

use std::fmt;
use std::time::Duration;

use towerguard_outcome::{ClassifyError, Declared, Verdict};

use crate::store::Reason;

/// A request refused by the limiter. Its message is the same for every client and cause, and
/// says nothing of the upstream or of other clients. The service's error type must be
/// `From<ThrottledError>` (`BoxError` is; with the `llm` feature `LlmError` is).
///
/// It is a refusal by one of our layers ([`Verdict::Refused`], with the retry-after), and
/// says so in its [`source`](std::error::Error::source) chain, so a `BoxError` pipeline never
/// retries it, never counts it for a breaker and never counts it against the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottledError {
    reason: Reason,
    retry_after: Duration,
    declared: Declared,
}

impl ThrottledError {
    /// Refused for `reason`; the client may try again after `retry_after`.
    pub fn new(reason: Reason, retry_after: Duration) -> Self {
        let declared = Declared(Verdict::refused().with_retry_after(Some(retry_after)));
        Self {
            reason,
            retry_after,
            declared,
        }
    }

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

impl std::error::Error for ThrottledError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.declared)
    }
}

/// A refusal of ours, with the retry-after: never retried, never the client's fault.
impl ClassifyError for ThrottledError {
    fn verdict(&self) -> Verdict {
        self.declared.0
    }
}

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
impl From<ThrottledError> for towerguard_llm_core::LlmError {
    fn from(e: ThrottledError) -> Self {
        towerguard_llm_core::LlmError::throttled(Some(e.retry_after))
    }
}
