//! [`ResponseFuture`]: a call's future, from the store's answer to the counted outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use towerguard_outcome::{Classify, Lane};

use crate::error::ThrottledError;
use crate::layer::Shared;
use crate::store::{Admit, LimiterStore};
use crate::waiters::Place;

/// A request not yet sent: waiting for the store's answer or for its turn.
pub(crate) struct Wait<S, Req, Key: Eq + std::hash::Hash> {
    svc: S,
    req: Req,
    name: Box<str>,
    tokens: u64,
    since: Instant,
    place: Option<Place<Key>>,
}

impl<S, Req, Key: Eq + std::hash::Hash> Wait<S, Req, Key> {
    pub(crate) fn new(svc: S, req: Req, name: Box<str>, tokens: u64) -> Self {
        let (since, place) = (Instant::now(), None);
        Self {
            svc,
            req,
            name,
            tokens,
            since,
            place,
        }
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<S, Req, St>
    where
        S: Service<Req>,
        St: LimiterStore,
    {
        // the inner service's call
        Called { #[pin] future: S::Future },
        // waiting for the store's answer
        Asking { admit: St::Future<Admit>, wait: Option<Wait<S, Req, St::Key>> },
        // delayed: waiting for its turn among its key's waiters, then for `sleep`
        Waiting { #[pin] sleep: Sleep, wait: Option<Wait<S, Req, St::Key>> },
        // the store counting the error the outcome was
        Recording { record: St::Future<Option<Duration>>, result: Option<Result<S::Response, S::Error>> },
        Rejected { error: Option<S::Error> },
    }
}

pin_project! {
    /// The future of an [`ErrorRateLimit`](crate::ErrorRateLimit) call: the inner service's
    /// answer, its error counted against the key if it is the client's fault; or a
    /// [`ThrottledError`]; or, in delay mode, the answer after a wait.
    pub struct ResponseFuture<S, Req, K, C, St>
    where
        S: Service<Req>,
        St: LimiterStore,
    {
        #[pin]
        pub(crate) state: State<S, Req, St>,
        // this thread's lane of the layer's state: threads do not write one reference count
        pub(crate) shared: Arc<Lane<Shared<K, C, St>>>,
        pub(crate) key: St::Key,
    }
}

impl<S, Req, St> State<S, Req, St>
where
    S: Service<Req>,
    S::Error: From<ThrottledError>,
    St: LimiterStore,
{
    pub(crate) fn rejected(refusal: ThrottledError) -> Self {
        tracing::debug!(reason = refusal.reason().as_str(), "request throttled");
        State::Rejected {
            error: Some(S::Error::from(refusal)),
        }
    }

    /// What a request not yet sent does on the store's answer: a pass calls the service; a
    /// refusal waits in delay mode (if there is room and time), else is rejected.
    pub(crate) fn answered<K, C>(
        shared: &Shared<K, C, St>,
        key: &St::Key,
        answer: Admit,
        mut wait: Wait<S, Req, St::Key>,
    ) -> Self {
        let refusal = match answer {
            Ok(()) => {
                let future = wait.svc.call(wait.req);
                // leaving the queue lets the key's next waiter go, after this one was sent
                drop(wait.place);
                return State::Called { future };
            }
            Err(refusal) => refusal,
        };
        if let Some(waiters) = &shared.delay {
            let retry_after = refusal.retry_after();
            let in_time = waiters
                .max_delay
                .is_none_or(|max| wait.since.elapsed() + retry_after <= max);
            if in_time && wait.place.is_none() {
                wait.place = waiters.join(key);
            }
            if in_time && wait.place.is_some() {
                tracing::debug!(
                    reason = refusal.reason().as_str(),
                    wait_ms = retry_after.as_millis() as u64,
                    "delaying a refused request"
                );
                return State::Waiting {
                    sleep: tokio::time::sleep(retry_after),
                    wait: Some(wait),
                };
            }
        }
        Self::rejected(refusal)
    }
}

/// A streamed answer is judged by how it ends (as tower-http's `ClassifyEos` has it): an
/// error item that is the client's fault (or, if asked, an upstream failure) is counted
/// against the key when the stream ends with it.
#[cfg(feature = "llm")]
fn count_at_stream_end<Res: 'static, K, C, St>(
    response: &mut Res,
    shared: &Arc<Lane<Shared<K, C, St>>>,
    key: &St::Key,
) where
    K: Send + Sync + 'static,
    C: Send + Sync + 'static,
    St: LimiterStore + Send + Sync + 'static,
{
    use towerguard_llm_core::stream::{Ended, on_stream_end};
    let (shared, key) = (shared.clone(), key.clone());
    let _ = on_stream_end(response, move |end| {
        if let Ended::Failed(e) = end.how
            && shared.counts_verdict(e.verdict())
        {
            // the in-memory store answers at once; a remote one records on its own
            drop(shared.store.record_error(&key));
        }
    });
}

impl<S, Req, K, C, St> Future for ResponseFuture<S, Req, K, C, St>
where
    S: Service<Req>,
    S::Response: 'static,
    S::Error: From<ThrottledError>,
    K: Send + Sync + 'static,
    C: Classify<S::Response, S::Error> + Send + Sync + 'static,
    St: LimiterStore + Send + Sync + 'static,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    #[allow(unused_mut)]
                    let mut result = ready!(future.poll(cx));
                    #[cfg(feature = "llm")]
                    if let Ok(response) = &mut result {
                        count_at_stream_end(response, this.shared, this.key);
                    }
                    if !this.shared.counts(&result) {
                        return Poll::Ready(result);
                    }
                    State::Recording {
                        record: this.shared.store.record_error(this.key),
                        result: Some(result),
                    }
                }
                StateProj::Recording { record, result } => {
                    ready!(Pin::new(record).poll(cx));
                    return result.take().map_or(Poll::Pending, Poll::Ready);
                }
                StateProj::Asking { admit, wait } => {
                    let answer = ready!(Pin::new(admit).poll(cx));
                    let Some(wait) = wait.take() else {
                        return Poll::Pending;
                    };
                    State::answered(this.shared, this.key, answer, wait)
                }
                StateProj::Waiting { sleep, wait } => {
                    let place = wait.as_ref().and_then(|w| w.place.as_ref());
                    if place.is_some_and(|p| !p.is_first(cx)) {
                        return Poll::Pending;
                    }
                    ready!(sleep.poll(cx));
                    let Some(wait) = wait.take() else {
                        return Poll::Pending;
                    };
                    State::Asking {
                        admit: this.shared.store.admit(this.key, &wait.name, wait.tokens),
                        wait: Some(wait),
                    }
                }
                StateProj::Rejected { error } => {
                    return error.take().map_or(Poll::Pending, |e| Poll::Ready(Err(e)));
                }
            };
            this.state.set(next);
        }
    }
}
