//! The [`CircuitBreaker`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;
use towerguard_outcome::Classify;

use crate::error::CircuitOpenError;
use crate::future::ResponseFuture;
use crate::handle::CircuitBreakerHandle;
use crate::shard::{self, Padded};
use crate::state::{Admission, Breaker};

/// What a call's future holds: the breaker and the classifier. There is one per shard, and a
/// call takes its thread's, so that calls on different threads do not all bump one
/// reference count (a shared `Arc` cloned by every call halves two threads' throughput).
#[derive(Debug)]
pub(crate) struct Lane<C> {
    pub(crate) breaker: Arc<Breaker>,
    pub(crate) classifier: C,
    pub(crate) shard: usize,
}

/// The lanes of one breaker, one per shard.
pub(crate) type Lanes<C> = Arc<[Arc<Padded<Lane<C>>>]>;

/// The lane of the current thread.
fn this_lane<C>(lanes: &Lanes<C>) -> &Arc<Padded<Lane<C>>> {
    &lanes[shard::this_thread(lanes.len())]
}

pub(crate) fn lanes<C: Clone>(breaker: &Arc<Breaker>, classifier: C) -> Lanes<C> {
    (0..shard::count())
        .map(|shard| {
            Arc::new(Padded(Lane {
                breaker: breaker.clone(),
                classifier: classifier.clone(),
                shard,
            }))
        })
        .collect()
}

/// A service behind a circuit breaker. Made by
/// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer); clones share the breaker.
///
/// `poll_ready` asks the breaker first: when it rejects, the service reports ready at once
/// (without polling the inner service) and `call` answers with a ready
/// [`CircuitOpenError`], never reaching the inner service. A half-open probe permit taken in
/// `poll_ready` is given back if the service is dropped before `call`.
pub struct CircuitBreaker<S, C> {
    inner: S,
    lanes: Lanes<C>,
    ticket: Option<Admission>,
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, lanes: Lanes<C>) -> Self {
        Self {
            inner,
            lanes,
            ticket: None,
        }
    }

    /// A handle to read and control the shared breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            breaker: self.lanes[0].breaker.clone(),
        }
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

impl<S: Clone, C> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.lanes.clone())
    }
}

impl<S, C> Drop for CircuitBreaker<S, C> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let lane = this_lane(&self.lanes);
            lane.breaker.cancel(ticket, lane.shard);
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("state", &self.lanes[0].breaker.state())
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Response: 'static,
    S::Error: From<CircuitOpenError>,
    C: Classify<S::Response, S::Error> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let lane = this_lane(&self.lanes);
        let ticket = *self
            .ticket
            .get_or_insert_with(|| lane.breaker.admit(lane.shard));
        if let Admission::Reject(..) = ticket {
            // `call` answers with the rejection; the inner service is not asked.
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                if let Some(t) = self.ticket.take() {
                    lane.breaker.cancel(t, lane.shard);
                }
                Poll::Ready(Err(e))
            }
            other => other,
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let lane = this_lane(&self.lanes);
        // `call` without `poll_ready` breaks the Service contract; stay safe anyway.
        let ticket = match self.ticket.take() {
            Some(t) => t,
            None => lane.breaker.admit(lane.shard),
        };
        match ticket {
            Admission::Reject(state, retry_after) => {
                let name = lane.breaker.name().cloned();
                ResponseFuture::rejected(CircuitOpenError::new(name, state, retry_after).into())
            }
            admission => {
                let lane = lane.clone();
                let started = lane.breaker.slow_threshold().map(|_| lane.breaker.now());
                ResponseFuture::admitted(self.inner.call(req), admission, lane, started)
            }
        }
    }
}
