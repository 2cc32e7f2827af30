//! The [`Fallback`] service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tower_service::Service;
use towerguard_outcome::{AttemptRefusal, AttemptRefused, Lanes};

use crate::attempts::{self, Start, Tried};
use crate::error::AllProvidersFailed;
use crate::future::ResponseFuture;
use crate::shared::Shared;
use crate::stats::Ended;

/// Tries the primary, then the next providers as the configuration says. Made by
/// [`FallbackLayer`](crate::FallbackLayer).
///
/// `poll_ready` polls only the primary and never waits for it: if the primary is not ready,
/// the request goes to the other providers first (the primary is tried last). Every other
/// provider is cloned and made ready when its turn comes, so one provider that is not ready
/// never holds up the others.
///
/// A request that starts on the primary (the default priority order, no hedging, the
/// primary ready and up) is sent from `call` without boxing or locking. Once it must fall
/// back (or when it starts elsewhere, or hedges), the rest runs in one boxed future.
pub struct Fallback<S, F, Req, E> {
    primary: S,
    primary_ready: bool,
    /// One `Arc`, so a clone allocates nothing; each call's future holds this thread's lane.
    shared: Arc<Lanes<Shared<F, Req, E>>>,
}

impl<S, F, Req, E> Fallback<S, F, Req, E> {
    pub(crate) fn new(primary: S, shared: Arc<Lanes<Shared<F, Req, E>>>) -> Self {
        Self {
            primary,
            primary_ready: false,
            shared,
        }
    }
}

impl<S: Clone, F, Req, E> Clone for Fallback<S, F, Req, E> {
    fn clone(&self) -> Self {
        Self::new(self.primary.clone(), self.shared.clone())
    }
}

impl<S: fmt::Debug, F, Req, E> fmt::Debug for Fallback<S, F, Req, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("primary", &self.primary)
            .field("providers", &self.shared.shared().providers.len())
            .finish_non_exhaustive()
    }
}

impl<S, F, Req, E> Service<Req> for Fallback<S, F, Req, E>
where
    S: Service<Req, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    F: Service<Req, Response = S::Response, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + From<AttemptRefused> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = E;
    type Future = ResponseFuture<S::Future, S::Response, F, Req, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        if !self.primary_ready {
            // never wait for the primary: if it is not ready (or broken), the others go first
            self.primary_ready = matches!(self.primary.poll_ready(cx), Poll::Ready(Ok(())));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = self.shared.shared();
        let ready = std::mem::take(&mut self.primary_ready);
        let routed_away = shared.route_of(&req).is_some_and(|i| i != 0);
        if !(ready && shared.starts_on_primary && !shared.is_down(0)) || routed_away {
            return self.run(
                Start::Fresh {
                    primary_ready: ready,
                },
                req,
            );
        }
        let attempt = match shared.primary_as_is {
            true => req.clone(),
            false => shared.request_for(0, &req),
        };
        if let Some((hook, model)) = shared.hook(0, &attempt) {
            let mut check = hook.before_attempt(shared.name(0), model);
            // an in-memory meter answers at once: no need to leave the fast path
            match Pin::new(&mut check).poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(refused)) => return self.refused(refused, req),
                Poll::Pending => return self.run(Start::Checking { check, attempt }, req),
            }
        }
        // the future holds this thread's lane: threads do not write one reference count
        ResponseFuture::primary(self.primary.call(attempt), self.shared.this_thread(), req)
    }
}

impl<S, F, Req, E> Fallback<S, F, Req, E>
where
    S: Service<Req, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    F: Service<Req, Response = S::Response, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + From<AttemptRefused> + Send + Sync + 'static,
{
    /// Runs the request's attempts in a boxed future; it takes the primary as it is (ready
    /// or not) and leaves a clone in its place.
    fn run(&mut self, start: Start<Req, E>, req: Req) -> <Self as Service<Req>>::Future {
        let clone = self.primary.clone();
        let primary = std::mem::replace(&mut self.primary, clone);
        let future = attempts::run(self.shared.this_thread(), Some(primary), req, start);
        ResponseFuture::boxed(Box::pin(future))
    }

    /// The meter refused the primary's attempt: an exhausted budget ends the request at
    /// once; an unpriced model is the primary's failure, and the others are tried.
    fn refused(&mut self, refused: AttemptRefused, req: Req) -> <Self as Service<Req>>::Future {
        if refused.reason() == AttemptRefusal::Unpriced {
            let future = attempts::run::<Tried<S::Response, E>, _, _, _>(
                self.shared.this_thread(),
                None,
                req,
                Start::Unpriced(refused),
            );
            return ResponseFuture::boxed(Box::pin(future));
        }
        self.shared.shared().counters.ended(Ended::Refused);
        ResponseFuture::failed(E::from(refused))
    }
}
