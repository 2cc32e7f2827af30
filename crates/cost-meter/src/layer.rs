//! [`CostMeterLayer`]: wraps a service in a [`CostMeter`].

use std::fmt;

use tower_layer::Layer;

use crate::ledger::Ledger;
use crate::service::CostMeter;
use crate::store::{BudgetStore, MemoryStore};

/// Meters every call through the [`Ledger`] it was made with: reserves the request's worst
/// case on every budget that applies before the call (refusing it with
/// [`CostError::BudgetExceeded`](crate::CostError::BudgetExceeded) if one cannot cover
/// it), raises the reservation before each fallback attempt below (through the request's
/// attempt hook), and settles it at the provider and model named on the response.
pub struct CostMeterLayer<St: BudgetStore = MemoryStore> {
    ledger: Ledger<St>,
}

impl<St: BudgetStore> CostMeterLayer<St> {
    /// A meter writing to `ledger` (clone the ledger to share it between meters).
    pub fn new(ledger: Ledger<St>) -> Self {
        Self { ledger }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger<St> {
        &self.ledger
    }
}

impl<St: BudgetStore> Clone for CostMeterLayer<St> {
    fn clone(&self) -> Self {
        Self::new(self.ledger.clone())
    }
}

impl<St: BudgetStore> fmt::Debug for CostMeterLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostMeterLayer")
            .field("ledger", &self.ledger)
            .finish()
    }
}

impl<S, St: BudgetStore> Layer<S> for CostMeterLayer<St> {
    type Service = CostMeter<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        CostMeter::new(inner, self.ledger.clone())
    }
}
