//! The [`CostMeter`] service.

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;
use towerguard_outcome::AttemptHook;

use crate::error::CostError;
use crate::future::ResponseFuture;
use crate::ledger::Ledger;
use crate::request::{CostRequest, CostResponse};
use crate::reservation::{Handle, Raise};
use crate::store::{BudgetStore, MemoryStore};

/// A service whose calls are metered. Made by [`CostMeterLayer`](crate::CostMeterLayer);
/// clones share the ledger.
pub struct CostMeter<S, St: BudgetStore = MemoryStore> {
    inner: S,
    ledger: Ledger<St>,
}

impl<S, St: BudgetStore> CostMeter<S, St> {
    /// Meters `inner` through `ledger`.
    pub fn new(inner: S, ledger: Ledger<St>) -> Self {
        Self { inner, ledger }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger<St> {
        &self.ledger
    }
}

impl<S: Clone, St: BudgetStore> Clone for CostMeter<S, St> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.ledger.clone())
    }
}

impl<S: fmt::Debug, St: BudgetStore> fmt::Debug for CostMeter<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostMeter")
            .field("inner", &self.inner)
            .field("ledger", &self.ledger)
            .finish()
    }
}

impl<S, Req, St> Service<Req> for CostMeter<S, St>
where
    S: Service<Req> + Clone,
    S::Response: CostResponse + 'static,
    S::Error: From<CostError>,
    Req: CostRequest,
    St: BudgetStore + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        // only a ledger that can refuse needs to hear about attempts below
        let shared = self.ledger.inner().has_limits() && req.carries_attempt_hook();
        let handle = match Handle::new(&self.ledger, &req, shared) {
            Ok(handle) => handle,
            Err(e) => return ResponseFuture::refused(e),
        };
        if let Handle::Shared(reservation) = &handle {
            req.set_attempt_hook(AttemptHook::new(reservation.clone()));
        }
        match handle.reserve_requested() {
            Raise::Done(Ok(())) => ResponseFuture::calling(self.inner.call(req), handle),
            Raise::Done(Err(e)) => ResponseFuture::refused(e),
            Raise::Pending(raise) => {
                // the store answers later: take the service that is ready, leave a clone
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::reserving(raise, ready, req, handle)
            }
        }
    }
}
