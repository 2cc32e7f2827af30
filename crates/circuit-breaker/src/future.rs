//! The [`ResponseFuture`] of a [`CircuitBreaker`](crate::CircuitBreaker) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::classify::Classify;
use crate::core::Admission;
use crate::service::Local;

/// Records the outcome of an admitted call, or gives its permit back if it is dropped first.
struct Guard<C> {
    local: Arc<Local<C>>,
    admission: Admission,
    started: Option<Instant>,
    done: bool,
}

impl<C> Drop for Guard<C> {
    fn drop(&mut self) {
        if !self.done {
            self.local.breaker.core.cancel(self.admission);
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E, C> {
        Rejected { error: Option<E> },
        Passed { #[pin] future: F },
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

    pub(crate) fn passed(future: F) -> Self {
        Self {
            kind: Kind::Passed { future },
        }
    }

    pub(crate) fn admitted(
        future: F,
        admission: Admission,
        local: Arc<Local<C>>,
        started: Option<Instant>,
    ) -> Self {
        Self {
            kind: Kind::Admitted {
                future,
                guard: Guard {
                    local,
                    admission,
                    started,
                    done: false,
                },
            },
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
            KindProj::Passed { future } => future.poll(cx),
            KindProj::Admitted { future, guard } => {
                let result = ready!(future.poll(cx));
                if !guard.done {
                    guard.done = true;
                    let local = &*guard.local;
                    let outcome = local.classifier.classify(&result);
                    let elapsed = guard.started.map(|s| s.elapsed());
                    let breaker = &local.breaker;
                    breaker
                        .core
                        .record(guard.admission, outcome, elapsed, &|| breaker.now());
                }
                Poll::Ready(result)
            }
        }
    }
}
