//! The errors a meter answers with before any provider is called.

use std::error::Error;
use std::fmt;

use towerguard_outcome::{
    AttemptRefusal, AttemptRefused, ClassifyError, Declared, Failure, Verdict,
};

use crate::prices::Nanos;

/// A request the meter refused. The service's error type must be `From<CostError>`
/// (`BoxError` is; with the `llm` feature `LlmError` is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostError {
    /// A budget would be exceeded: `budget` names it (`"global daily"`, `"client acme
    /// monthly"`, `"per-request"`). A refusal of ours: never retried, never the client's
    /// fault, no fallback.
    BudgetExceeded {
        /// Which budget.
        budget: String,
        /// Its limit, in nano-dollars.
        limit: Nanos,
        /// Spent and reserved in the window before this request.
        spent: Nanos,
        /// This request's worst-case cost.
        requested: Nanos,
    },
    /// The model has no price and unknown models are refused: the operator's configuration
    /// error (a server-side failure that may fall back), never the client's fault.
    Unpriced(String),
}

/// The verdicts a [`CostError`] declares in its source chain.
static REFUSED: Declared = Declared(Verdict::refused());
static UNPRICED: Declared = Declared(Verdict::Upstream(Failure {
    retryable: false,
    unhealthy: false,
    fallback: true,
    retry_after: None,
}));

impl CostError {
    /// The budget's name, for `BudgetExceeded`.
    pub fn budget(&self) -> Option<&str> {
        match self {
            CostError::BudgetExceeded { budget, .. } => Some(budget),
            CostError::Unpriced(_) => None,
        }
    }

    fn declared(&self) -> &'static Declared {
        match self {
            CostError::BudgetExceeded { .. } => &REFUSED,
            CostError::Unpriced(_) => &UNPRICED,
        }
    }
}

impl fmt::Display for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CostError::BudgetExceeded {
                budget,
                limit,
                spent,
                requested,
            } => write!(
                f,
                "{budget} budget exceeded: ${:.6} of ${:.6} used, this request may cost up to ${:.6}",
                *spent as f64 / 1e9,
                *limit as f64 / 1e9,
                *requested as f64 / 1e9
            ),
            CostError::Unpriced(m) => write!(f, "no price is known for model `{m}`"),
        }
    }
}

impl Error for CostError {
    /// The error's [`Declared`] verdict, so a boxed `CostError` is classified the same.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.declared())
    }
}

impl ClassifyError for CostError {
    fn verdict(&self) -> Verdict {
        self.declared().0
    }
}

impl From<CostError> for AttemptRefused {
    /// How the attempt hook refuses: the detail names the budget or the model.
    fn from(e: CostError) -> Self {
        match e {
            CostError::BudgetExceeded { budget, .. } => {
                AttemptRefused::new(AttemptRefusal::BudgetExceeded, budget)
            }
            CostError::Unpriced(model) => {
                AttemptRefused::new(AttemptRefusal::Unpriced, format!("model {model}"))
            }
        }
    }
}

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
impl From<CostError> for towerguard_llm_core::LlmError {
    /// `BudgetExceeded` (the detail names the budget; the client message stays generic),
    /// or `Configuration` for a model without a price (the detail names the model).
    fn from(e: CostError) -> Self {
        use towerguard_llm_core::{ErrorKind, LlmError};
        let kind = match &e {
            CostError::BudgetExceeded { .. } => ErrorKind::BudgetExceeded,
            CostError::Unpriced(_) => ErrorKind::Configuration,
        };
        LlmError::new(kind).with_detail(e.to_string())
    }
}
