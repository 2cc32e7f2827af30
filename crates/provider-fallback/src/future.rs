//! The [`ResponseFuture`] of a [`Fallback`](crate::Fallback) call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;
use towerguard_outcome::AttemptRefused;

use crate::attempts::{self, BoxFuture};
use crate::error::AllProvidersFailed;
use crate::shared::SharedLane;
use crate::stats::Ended;

pin_project! {
    #[project = StateProj]
    enum State<Fut, Res, F, Req, E> {
        // The primary's attempt, with what a fallback needs if it fails.
        Primary {
            #[pin]
            future: Fut,
            fallback: Option<(SharedLane<F, Req, E>, Req)>,
        },
        // Every other attempt.
        Boxed { future: BoxFuture<Result<Res, E>> },
        // Refused before any attempt.
        Failed { error: Option<E> },
    }
}

pin_project! {
    /// The future of a [`Fallback`](crate::Fallback) call. While the primary answers, nothing
    /// is boxed.
    pub struct ResponseFuture<Fut, Res, F, Req, E> {
        #[pin]
        state: State<Fut, Res, F, Req, E>,
    }
}

impl<Fut, Res, F, Req, E> ResponseFuture<Fut, Res, F, Req, E> {
    pub(crate) fn primary(future: Fut, shared: SharedLane<F, Req, E>, req: Req) -> Self {
        let fallback = Some((shared, req));
        Self {
            state: State::Primary { future, fallback },
        }
    }

    pub(crate) fn boxed(future: BoxFuture<Result<Res, E>>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }

    pub(crate) fn failed(error: E) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<Fut, Res, F, Req, E> Future for ResponseFuture<Fut, Res, F, Req, E>
where
    Fut: Future<Output = Result<Res, E>>,
    Res: Send + 'static,
    F: Service<Req, Response = Res, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + From<AttemptRefused> + Send + Sync + 'static,
{
    type Output = Result<Res, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let StateProj::Primary { future, fallback } = this.state.as_mut().project() {
            let output = future.poll(cx);
            let Some((shared, req)) = fallback.take_if(|_| output.is_ready()) else {
                return output; // pending, or polled again after the end
            };
            let error = match output {
                Poll::Ready(Err(error)) => error,
                output => {
                    shared.providers[0].health.answered();
                    shared.counters.served(0, Ended::First);
                    return output;
                }
            };
            let rest = attempts::after_primary::<Res, F, Req, E>(shared, req, error);
            this.state.set(State::Boxed { future: rest });
        }
        match this.state.project() {
            StateProj::Boxed { future } => future.as_mut().poll(cx),
            StateProj::Failed { error } => Poll::Ready(match error.take() {
                Some(error) => Err(error),
                None => panic!("`ResponseFuture` polled after completion"),
            }),
            StateProj::Primary { .. } => Poll::Pending, // left above
        }
    }
}
