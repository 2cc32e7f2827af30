//! What one outcome means to the layers.

use std::time::Duration;

/// What one outcome means: a success, the client's fault, an upstream failure, or a refusal by
/// one of our own layers. Each layer reads the part it needs: retry asks
/// [`is_retryable`](Self::is_retryable), the breaker [`counts_for_breaker`](Self::counts_for_breaker),
/// the fallback [`should_fallback`](Self::should_fallback), the error-rate limiter
/// [`is_client_fault`](Self::is_client_fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call did what was asked.
    Success,
    /// The caller's own fault (an invalid request): never retried, says nothing bad about the
    /// upstream, counted against the client by an error-rate limiter.
    ClientFault {
        /// Worth trying elsewhere (e.g. a context-length error, to a model with a larger one).
        fallback: bool,
    },
    /// The upstream (or the path to it) failed.
    Upstream(Failure),
    /// One of our own layers refused (open breaker, throttled client, exhausted budget): never
    /// retried, never counted by a breaker, never the client's fault by default.
    Refused(Refusal),
}

/// The facts about an upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// A retry after a delay may succeed.
    pub retryable: bool,
    /// Says the upstream is unhealthy: a circuit breaker counts it.
    pub unhealthy: bool,
    /// Worth sending to the next provider.
    pub fallback: bool,
    /// The upstream's Retry-After hint.
    pub retry_after: Option<Duration>,
}

/// The facts about a refusal by one of our own layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Worth trying another provider (an open breaker is; an exhausted budget is not).
    pub fallback: bool,
    /// When the refusal may lift (an open breaker's time left, a throttle's end).
    pub retry_after: Option<Duration>,
}

impl Verdict {
    /// A transient upstream failure: retried, counted by the breaker, falls back.
    pub const fn transient() -> Self {
        Verdict::Upstream(Failure {
            retryable: true,
            unhealthy: true,
            fallback: true,
            retry_after: None,
        })
    }

    /// A transient upstream failure with a Retry-After hint.
    pub const fn transient_after(retry_after: Duration) -> Self {
        Verdict::Upstream(Failure {
            retryable: true,
            unhealthy: true,
            fallback: true,
            retry_after: Some(retry_after),
        })
    }

    /// An upstream answer that waiting will not fix, from an upstream that is up (quota,
    /// authentication, unknown model): not retried, not counted by the breaker, falls back.
    pub const fn permanent() -> Self {
        Verdict::Upstream(Failure {
            retryable: false,
            unhealthy: false,
            fallback: true,
            retry_after: None,
        })
    }

    /// The client's fault, not worth a fallback.
    pub const fn client_fault() -> Self {
        Verdict::ClientFault { fallback: false }
    }

    /// A refusal by one of our layers, not worth a fallback.
    pub const fn refused() -> Self {
        Verdict::Refused(Refusal {
            fallback: false,
            retry_after: None,
        })
    }

    /// Is a success.
    pub const fn is_success(&self) -> bool {
        matches!(self, Verdict::Success)
    }

    /// Worth retrying on the same upstream.
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Verdict::Upstream(f) if f.retryable)
    }

    /// A circuit breaker counts it as a failure.
    pub const fn counts_for_breaker(&self) -> bool {
        matches!(self, Verdict::Upstream(f) if f.unhealthy)
    }

    /// Worth sending to the next provider.
    pub const fn should_fallback(&self) -> bool {
        match self {
            Verdict::Success => false,
            Verdict::ClientFault { fallback } => *fallback,
            Verdict::Upstream(f) => f.fallback,
            Verdict::Refused(r) => r.fallback,
        }
    }

    /// The caller's own fault.
    pub const fn is_client_fault(&self) -> bool {
        matches!(self, Verdict::ClientFault { .. })
    }

    /// An upstream failure of any sort.
    pub const fn is_upstream_failure(&self) -> bool {
        matches!(self, Verdict::Upstream(_))
    }

    /// A refusal by one of our own layers.
    pub const fn is_refusal(&self) -> bool {
        matches!(self, Verdict::Refused(_))
    }

    /// The Retry-After hint of an upstream failure or a refusal.
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Verdict::Upstream(f) => f.retry_after,
            Verdict::Refused(r) => r.retry_after,
            _ => None,
        }
    }

    /// The same verdict with this Retry-After hint (ignored on successes and client faults).
    pub const fn with_retry_after(self, retry_after: Option<Duration>) -> Self {
        match self {
            Verdict::Upstream(f) => Verdict::Upstream(Failure { retry_after, ..f }),
            Verdict::Refused(r) => Verdict::Refused(Refusal { retry_after, ..r }),
            v => v,
        }
    }

    /// A short, stable label for logs and statistics.
    pub const fn label(&self) -> &'static str {
        match self {
            Verdict::Success => "success",
            Verdict::ClientFault { .. } => "client_fault",
            Verdict::Upstream(f) if f.retryable => "upstream_transient",
            Verdict::Upstream(_) => "upstream",
            Verdict::Refused(_) => "refused",
        }
    }
}
