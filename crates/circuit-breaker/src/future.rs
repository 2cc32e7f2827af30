//! The [`ResponseFuture`] of a [`CircuitBreaker`](crate::CircuitBreaker) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use towerguard_outcome::Classify;

use crate::service::Lane;
use crate::shard::Padded;
use crate::state::{Admission, Outcome};

/// Records the outcome of an admitted call, or gives its permit back if dropped first.
struct Guard<C> {
    lane: Arc<Padded<Lane<C>>>,
    admission: Admission,
    /// When the call started (clock nanoseconds), if slow calls are counted.
    started: Option<u64>,
    done: bool,
}

impl<C> Drop for Guard<C> {
    fn drop(&mut self) {
        if !self.done {
            self.lane.breaker.cancel(self.admission, self.lane.shard);
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E, C> {
        Rejected { error: Option<E> },
        Admitted { #[pin] future: F, guard: Guard<C> },
    }
}

pin_project! {
    /// The future of a [`CircuitBreaker`](crate::CircuitBreaker) call.
    pub struct ResponseFuture<F, E, C> {
        #[pin]
        kind: Kind<F, E, C>,
    }
}

impl<F, E, C> ResponseFuture<F, E, C> {
    pub(crate) fn rejected(error: E) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    pub(crate) fn admitted(
        future: F,
        admission: Admission,
        lane: Arc<Padded<Lane<C>>>,
        started: Option<u64>,
    ) -> Self {
        let guard = Guard {
            lane,
            admission,
            started,
            done: false,
        };
        Self {
            kind: Kind::Admitted { future, guard },
        }
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, E, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { error } => match error.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            KindProj::Admitted { future, guard } => {
                let result = ready!(future.poll(cx));
                if !guard.done {
                    guard.done = true;
                    let lane = &guard.lane;
                    let outcome = Outcome::of(lane.classifier.classify(&result));
                    let elapsed = guard
                        .started
                        .map(|s| Duration::from_nanos(lane.breaker.now().saturating_sub(s)));
                    lane.breaker
                        .record(guard.admission, outcome, elapsed, lane.shard);
                }
                Poll::Ready(result)
            }
        }
    }
}
