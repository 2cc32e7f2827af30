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

impl<C> Guard<C> {
    /// Records the call's outcome (once).
    fn record(&mut self, outcome: Outcome, elapsed: Option<Duration>) {
        if !self.done {
            self.done = true;
            let lane = &self.lane;
            lane.breaker
                .record(self.admission, outcome, elapsed, lane.shard);
        }
    }
}

impl<C> Drop for Guard<C> {
    fn drop(&mut self) {
        if !self.done {
            self.lane.breaker.cancel(self.admission, self.lane.shard);
        }
    }
}

/// A streamed answer's outcome is known at its end, as tower-http's `ClassifyEos` has it:
/// the guard moves into the stream and records a failure if the stream fails, a success if
/// it completes or the caller drops it (chunks arrived: the callee was up). Its time is the
/// time to the first chunk.
#[cfg(feature = "llm")]
fn defer_to_stream_end<T: 'static, E, C>(
    result: &mut Result<T, E>,
    guard: &mut Option<Guard<C>>,
    elapsed: Option<Duration>,
) where
    C: Send + Sync + 'static,
{
    use towerguard_llm_core::stream::{Ended, is_stream, on_stream_end};
    let Ok(response) = result else { return };
    if !is_stream(response) {
        return;
    }
    let Some(mut g) = guard.take() else { return };
    let _ = on_stream_end(response, move |end| {
        let outcome = match end.how {
            Ended::Failed(e) => Outcome::of(e.verdict()),
            Ended::Complete | Ended::Dropped => Outcome::Success,
        };
        g.record(outcome, elapsed);
    });
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E, C> {
        Rejected { error: Option<E> },
        Admitted { #[pin] future: F, guard: Option<Guard<C>> },
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
            kind: Kind::Admitted {
                future,
                guard: Some(guard),
            },
        }
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, E, C>
where
    F: Future<Output = Result<T, E>>,
    T: 'static,
    C: Classify<T, E> + Send + Sync + 'static,
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
                #[allow(unused_mut)]
                let mut result = ready!(future.poll(cx));
                let elapsed = guard.as_ref().and_then(|g| {
                    g.started
                        .map(|s| Duration::from_nanos(g.lane.breaker.now().saturating_sub(s)))
                });
                #[cfg(feature = "llm")]
                defer_to_stream_end(&mut result, guard, elapsed);
                if let Some(g) = guard {
                    let outcome = Outcome::of(g.lane.classifier.classify(&result));
                    g.record(outcome, elapsed);
                }
                Poll::Ready(result)
            }
        }
    }
}
