//! The seam between a meter above a fallback and each attempt below it.
//!
//! A cost meter reserves a request's worst case before the call. Below it, a fallback may
//! send the request to another provider and model, which may cost far more. So the meter puts
//! an [`AttemptHook`] into the request, and whoever makes an attempt (the fallback layer,
//! before each provider it calls) asks it first with the provider and model about to be
//! used. The meter raises the reservation to that attempt's worst case, or refuses: then the
//! attempt is not made. Neither crate depends on the other; both depend on this one.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::classify::Declared;
use crate::verdict::{Failure, Verdict};

/// Why a meter refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptRefusal {
    /// A budget cannot cover the attempt's worst case: the request ends here.
    BudgetExceeded,
    /// The attempt's model has no price and the meter refuses unknown models: an operator's
    /// configuration error. Another provider may still be tried.
    Unpriced,
}

/// An attempt refused by a meter above. Its [`Display`](fmt::Display) names the budget or
/// model (operator detail, no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRefused {
    reason: AttemptRefusal,
    detail: String,
    declared: Declared,
}

impl AttemptRefused {
    /// A refusal for `reason`, with a detail naming the budget or model.
    pub fn new(reason: AttemptRefusal, detail: impl Into<String>) -> Self {
        let verdict = match reason {
            AttemptRefusal::BudgetExceeded => Verdict::refused(),
            AttemptRefusal::Unpriced => Verdict::Upstream(Failure {
                retryable: false,
                unhealthy: false,
                fallback: true,
                retry_after: None,
            }),
        };
        Self {
            reason,
            detail: detail.into(),
            declared: Declared(verdict),
        }
    }

    /// Why.
    pub fn reason(&self) -> AttemptRefusal {
        self.reason
    }

    /// The budget or model at fault.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What the refusal means to the layers: an exhausted budget is a refusal that does not
    /// fall back; an unpriced model a server-side failure that may.
    pub fn verdict(&self) -> Verdict {
        self.declared.0
    }
}

impl fmt::Display for AttemptRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            AttemptRefusal::BudgetExceeded => write!(f, "budget exceeded: {}", self.detail),
            AttemptRefusal::Unpriced => write!(f, "no price for {}", self.detail),
        }
    }
}

impl Error for AttemptRefused {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.declared)
    }
}

impl crate::ClassifyError for AttemptRefused {
    fn verdict(&self) -> Verdict {
        self.declared.0
    }
}

impl From<AttemptRefused> for std::io::Error {
    fn from(e: AttemptRefused) -> Self {
        std::io::Error::other(e)
    }
}

/// The answer to [`AttemptHook::before_attempt`]: a future, ready at once for in-memory
/// budgets (no allocation), pending for a store that makes a round trip.
pub struct AttemptCheck(CheckState);

enum CheckState {
    Ready(Option<Result<(), AttemptRefused>>),
    Pending(Pin<Box<dyn Future<Output = Result<(), AttemptRefused>> + Send>>),
}

impl AttemptCheck {
    /// An answer known now.
    pub fn ready(result: Result<(), AttemptRefused>) -> Self {
        Self(CheckState::Ready(Some(result)))
    }

    /// An answer that needs a round trip.
    pub fn pending(
        future: impl Future<Output = Result<(), AttemptRefused>> + Send + 'static,
    ) -> Self {
        Self(CheckState::Pending(Box::pin(future)))
    }
}

impl fmt::Debug for AttemptCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            CheckState::Ready(r) => f.debug_tuple("AttemptCheck::Ready").field(r).finish(),
            CheckState::Pending(_) => f.write_str("AttemptCheck::Pending"),
        }
    }
}

impl Future for AttemptCheck {
    type Output = Result<(), AttemptRefused>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            CheckState::Ready(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
            CheckState::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

/// What a meter does before each attempt below it. Implemented by the cost meter's
/// per-request reservation.
pub trait AttemptBudget: Send + Sync + 'static {
    /// An attempt is about to be sent to `provider` for `model`: cover its worst case or
    /// refuse.
    fn before_attempt(&self, provider: &str, model: &str) -> AttemptCheck;
}

/// A request's handle on the cost meter above it, asked before each attempt below it with
/// the provider and model about to be used: the meter raises its reservation or refuses.
/// Cheap to clone: clones share the one reservation.
#[derive(Clone)]
pub struct AttemptHook(Arc<dyn AttemptBudget>);

impl AttemptHook {
    /// A hook that asks `budget`.
    pub fn new(budget: Arc<dyn AttemptBudget>) -> Self {
        Self(budget)
    }

    /// Asks the meter before an attempt on `provider` for `model`.
    pub fn before_attempt(&self, provider: &str, model: &str) -> AttemptCheck {
        self.0.before_attempt(provider, model)
    }
}

impl fmt::Debug for AttemptHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttemptHook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClassifyError;

    struct Cap;
    impl AttemptBudget for Cap {
        fn before_attempt(&self, _: &str, model: &str) -> AttemptCheck {
            if model == "cheap" {
                AttemptCheck::ready(Ok(()))
            } else {
                let refused = AttemptRefused::new(AttemptRefusal::BudgetExceeded, "global");
                AttemptCheck::pending(async move { Err(refused) })
            }
        }
    }

    #[tokio::test]
    async fn hook_answers_ready_or_pending() {
        let hook = AttemptHook::new(Arc::new(Cap));
        assert!(hook.before_attempt("a", "cheap").await.is_ok());
        let err = hook.before_attempt("b", "dear").await.unwrap_err();
        assert_eq!(err.reason(), AttemptRefusal::BudgetExceeded);
        assert!(err.verdict().is_refusal() && !err.verdict().should_fallback());
        let boxed: crate::BoxError = Box::new(err);
        assert!(boxed.verdict().is_refusal());
        let unpriced = AttemptRefused::new(AttemptRefusal::Unpriced, "model llama3");
        assert!(unpriced.verdict().should_fallback() && !unpriced.verdict().is_client_fault());
    }
}
