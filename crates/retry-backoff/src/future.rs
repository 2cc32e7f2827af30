//! The [`ResponseFuture`] of a [`Retry`](crate::Retry) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::classify::{Classify, Decision};
use crate::layer::{OnGiveUp, OnRetry, Shared};

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Sleeping { #[pin] sleep: Sleep },
        Readying,
    }
}

pin_project! {
    /// The future of a [`Retry`](crate::Retry) call: drives attempts, delays and readiness.
    pub struct ResponseFuture<S, Req, C, R, G>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        request: Option<Req>,
        shared: Arc<Shared<C, R, G>>,
        attempts: u32,
        started: Option<Instant>,
        prev_delay: Duration,
    }
}

impl<S, Req, C, R, G> ResponseFuture<S, Req, C, R, G>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        request: Option<Req>,
        shared: Arc<Shared<C, R, G>>,
    ) -> Self {
        let started = shared.max_elapsed.map(|_| Instant::now());
        Self {
            state: State::Calling { future },
            service,
            request,
            shared,
            attempts: 1,
            started,
            prev_delay: Duration::ZERO,
        }
    }
}

/// Why a retryable result was returned anyway.
#[derive(Clone, Copy)]
enum GiveUp {
    RetriesExhausted,
    HintTooLong(Duration),
    ElapsedCap,
    Budget,
}

impl<S, Req, C, R, G> Future for ResponseFuture<S, Req, C, R, G>
where
    S: Service<Req>,
    Req: Clone,
    C: Classify<S::Response, S::Error>,
    R: OnRetry<S::Response, S::Error>,
    G: OnGiveUp<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let mut result = ready!(future.poll(cx));
                    let shared = &**this.shared;
                    let after = match shared.classifier.classify(&result) {
                        Decision::Accept => {
                            shared
                                .classifier
                                .record_attempts(&mut result, *this.attempts);
                            return Poll::Ready(result);
                        }
                        Decision::Retry { after } => after,
                    };
                    let retry_index = *this.attempts - 1;
                    let verdict = if retry_index >= shared.max_retries || this.request.is_none() {
                        Err(GiveUp::RetriesExhausted)
                    } else {
                        match after {
                            Some(hint) if hint > shared.max_retry_after => {
                                Err(GiveUp::HintTooLong(hint))
                            }
                            Some(hint) => Ok(hint),
                            None => Ok(shared.backoff.next_delay(retry_index, *this.prev_delay)),
                        }
                    };
                    let started = *this.started;
                    let verdict = verdict.and_then(|delay| match (shared.max_elapsed, started) {
                        (Some(cap), Some(start)) if start.elapsed() + delay > cap => {
                            Err(GiveUp::ElapsedCap)
                        }
                        _ => Ok(delay),
                    });
                    let verdict = verdict.and_then(|delay| match &shared.budget {
                        Some(budget) if !budget.withdraw() => Err(GiveUp::Budget),
                        _ => Ok(delay),
                    });
                    let delay = match verdict {
                        Ok(delay) => delay,
                        Err(why) => {
                            give_up_event(why, *this.attempts);
                            shared.on_give_up.on_give_up(&result, *this.attempts);
                            shared
                                .classifier
                                .record_attempts(&mut result, *this.attempts);
                            return Poll::Ready(result);
                        }
                    };
                    tracing::warn!(
                        attempt = *this.attempts,
                        delay_ms = delay.as_millis() as u64,
                        "retrying after a retryable failure"
                    );
                    shared.on_retry.on_retry(&result, retry_index + 1, delay);
                    drop(result);
                    *this.prev_delay = delay;
                    if delay.is_zero() {
                        this.state.set(State::Readying);
                    } else {
                        this.state.set(State::Sleeping {
                            sleep: tokio::time::sleep(delay),
                        });
                    }
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        let mut result = Err(e);
                        this.shared
                            .classifier
                            .record_attempts(&mut result, *this.attempts);
                        return Poll::Ready(result);
                    }
                    let retries_left = this.shared.max_retries > *this.attempts;
                    let req = if retries_left {
                        this.request.clone()
                    } else {
                        this.request.take()
                    };
                    let Some(req) = req else {
                        unreachable!("a retry is only scheduled while the request is kept");
                    };
                    *this.attempts += 1;
                    let future = this.service.call(req);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

fn give_up_event(why: GiveUp, attempts: u32) {
    match why {
        GiveUp::RetriesExhausted => {
            tracing::warn!(attempts, "giving up: retries exhausted")
        }
        GiveUp::HintTooLong(hint) => tracing::warn!(
            attempts,
            retry_after_ms = hint.as_millis() as u64,
            "giving up: Retry-After is longer than max_retry_after"
        ),
        GiveUp::ElapsedCap => tracing::warn!(attempts, "giving up: max_elapsed reached"),
        GiveUp::Budget => tracing::warn!(attempts, "giving up: retry budget exhausted"),
    }
}
