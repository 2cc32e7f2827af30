//! The errors a meter answers with before any provider is called.

use std::fmt;

use crate::prices::Nanos;

/// A request the meter refused. The service's error type must be `From<CostError>`
/// (`BoxError` is; with the `llm` feature `LlmError` is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostError {
    /// A budget would be exceeded: `budget` names it (`"global daily"`, `"client acme
    /// monthly"`, `"per-request"`).
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
    /// The price table does not know the model and unknown models are refused.
    UnknownModel(String),
}

impl CostError {
    /// The budget's name, for `BudgetExceeded`.
    pub fn budget(&self) -> Option<&str> {
        match self {
            CostError::BudgetExceeded { budget, .. } => Some(budget),
            CostError::UnknownModel(_) => None,
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
            CostError::UnknownModel(m) => write!(f, "no price is known for model `{m}`"),
        }
    }
}

impl std::error::Error for CostError {}

#[cfg(feature = "llm")]
impl From<CostError> for towerguard_llm_core::LlmError {
    /// `BudgetExceeded` (the detail names the budget; the client message stays generic), or
    /// `InvalidRequest` for an unknown model.
    fn from(e: CostError) -> Self {
        use towerguard_llm_core::{ErrorKind, LlmError};
        match &e {
            CostError::BudgetExceeded { .. } => {
                LlmError::new(ErrorKind::BudgetExceeded).with_detail(e.to_string())
            }
            CostError::UnknownModel(_) => LlmError::new(ErrorKind::InvalidRequest)
                .with_message("the requested model has no known price")
                .with_detail(e.to_string()),
        }
    }
}
