//! The [`CircuitBreaker`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::Classify;
use crate::core::{Admission, State};
use crate::error::CircuitOpenError;
use crate::future::ResponseFuture;
use crate::layer::{Breaker, CircuitBreakerHandle};

/// What one clone of the service hands to its calls' futures. Each clone has its own, so the
/// reference count a call bumps is not shared with other threads' clones.
pub(crate) struct Local<C> {
    pub(crate) breaker: Arc<Breaker>,
    pub(crate) classifier: C,
}

/// A service behind a circuit breaker. Made by
/// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
///
/// `poll_ready` asks the breaker first: when it rejects, the service reports ready at once
/// (without polling the inner service) and `call` answers with a ready
/// [`CircuitOpenError`], never reaching the inner service. A half-open probe permit taken in
/// `poll_ready` is given back if the service is dropped before `call`.
pub struct CircuitBreaker<S, C> {
    inner: S,
    local: Arc<Local<C>>,
    owned: Owned,
    ticket: Option<Admission>,
}

/// Whether a service clone has a handle of its own. A clone first shares its parent's, so a
/// clone made for a single request (as axum makes one per request) never allocates; a clone
/// that serves a second request makes its own, so long-lived clones on different threads do
/// not share one reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owned {
    Yes,
    Shared,
    SharedUsed,
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            inner,
            local: Arc::new(Local {
                breaker,
                classifier,
            }),
            owned: Owned::Yes,
            ticket: None,
        }
    }

    /// A call on a clone still sharing its parent's handle: the second one takes its own.
    #[cold]
    #[inline(never)]
    fn on_shared_call(&mut self)
    where
        C: Clone,
    {
        if self.owned == Owned::Shared {
            self.owned = Owned::SharedUsed;
            return;
        }
        self.local = Arc::new(Local {
            breaker: self.local.breaker.clone(),
            classifier: self.local.classifier.clone(),
        });
        self.owned = Owned::Yes;
    }

    /// A handle to read and control the shared breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        crate::layer::handle_of(&self.local.breaker)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            local: self.local.clone(),
            owned: Owned::Shared,
            ticket: None,
        }
    }
}

impl<S, C> Drop for CircuitBreaker<S, C> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.local.breaker.core.cancel(ticket);
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("state", &self.local.breaker.core.state())
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: From<CircuitOpenError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let breaker = &self.local.breaker;
        let ticket = *self
            .ticket
            .get_or_insert_with(|| breaker.core.admit(&|| breaker.now()));
        if let Admission::Reject(_) = ticket {
            // `call` answers with the rejection; the inner service is not asked.
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                if let Some(t) = self.ticket.take() {
                    breaker.core.cancel(t);
                }
                Poll::Ready(Err(e))
            }
            other => other,
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let breaker = &self.local.breaker;
        let ticket = match self.ticket.take() {
            Some(t) => t,
            // `call` without `poll_ready` breaks the Service contract; stay safe anyway.
            None => breaker.core.admit(&|| breaker.now()),
        };
        match ticket {
            Admission::Reject(retry_after) => {
                let state = match breaker.core.state() {
                    State::ForcedOpen => State::ForcedOpen,
                    State::HalfOpen => State::HalfOpen,
                    _ => State::Open,
                };
                ResponseFuture::rejected(S::Error::from(CircuitOpenError {
                    name: breaker.core.name().cloned(),
                    state,
                    retry_after,
                }))
            }
            Admission::Pass => ResponseFuture::passed(self.inner.call(req)),
            admission => {
                let started = breaker
                    .core
                    .rules()
                    .slow_threshold
                    .map(|_| tokio::time::Instant::now());
                let future = self.inner.call(req);
                if self.owned != Owned::Yes {
                    self.on_shared_call();
                }
                ResponseFuture::admitted(future, admission, self.local.clone(), started)
            }
        }
    }
}
