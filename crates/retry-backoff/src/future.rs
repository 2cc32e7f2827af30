//! The [`ResponseFuture`] of a [`Retry`](crate::Retry) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use towerguard_outcome::Classify;

use crate::layer::Settings;
use crate::policy::{OnGiveUp, OnRetry, RecordAttempts};
use crate::service::Handle;

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
    pub struct ResponseFuture<S, Req, C, R, G, A>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        // The request kept for retries (none when no retry is allowed).
        request: Option<Req>,
        // The inner service for retries: cloned from the handle at the first retry.
        service: Option<S>,
        handle: Arc<Handle<S, C, R, G, A>>,
        // Calls made so far.
        attempts: u32,
        // When the call began, if `max_elapsed` is set.
        started: Option<Instant>,
        prev_delay: Duration,
    }
}

impl<S, Req, C, R, G, A> ResponseFuture<S, Req, C, R, G, A>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        request: Option<Req>,
        handle: Arc<Handle<S, C, R, G, A>>,
    ) -> Self {
        let started = handle.config.settings.max_elapsed.map(|_| Instant::now());
        Self {
            state: State::Calling { future },
            request,
            service: None,
            handle,
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

impl<S, Req, C, R, G, A> Future for ResponseFuture<S, Req, C, R, G, A>
where
    S: Service<Req> + Clone,
    Req: Clone,
    C: Classify<S::Response, S::Error>,
    R: OnRetry<S::Response, S::Error>,
    G: OnGiveUp<S::Response, S::Error>,
    A: RecordAttempts<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let config = &this.handle.config;
        let settings = &config.settings;
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let mut result = ready!(future.poll(cx));
                    let verdict = config.classifier.classify(&result);
                    if !verdict.is_retryable() {
                        config.record.record_attempts(&mut result, *this.attempts);
                        return Poll::Ready(result);
                    }
                    let retry = *this.attempts; // 1-based index of the retry to make
                    let hint = verdict.retry_after();
                    let delay = settings.delay_before(retry, hint, *this.prev_delay, *this.started);
                    let delay = match delay {
                        Ok(delay) => delay,
                        Err(why) => {
                            give_up_event(why, *this.attempts);
                            config.on_give_up.on_give_up(&result, *this.attempts);
                            config.record.record_attempts(&mut result, *this.attempts);
                            return Poll::Ready(result);
                        }
                    };
                    tracing::warn!(
                        attempt = *this.attempts,
                        delay_ms = delay.as_millis() as u64,
                        "retrying after a retryable failure"
                    );
                    config.on_retry.on_retry(&result, retry, delay);
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
                    let service = this.service.get_or_insert_with(|| this.handle.service());
                    if let Err(e) = ready!(service.poll_ready(cx)) {
                        let mut result = Err(e);
                        config.record.record_attempts(&mut result, *this.attempts);
                        return Poll::Ready(result);
                    }
                    // keep a copy only if another retry may follow this one
                    let request = if *this.attempts < settings.max_retries {
                        this.request.clone()
                    } else {
                        this.request.take()
                    };
                    let Some(request) = request else {
                        unreachable!("a retry is only scheduled while the request is kept");
                    };
                    *this.attempts += 1;
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl Settings {
    /// The delay before retry number `retry` (1-based), or why it is not made.
    fn delay_before(
        &self,
        retry: u32,
        hint: Option<Duration>,
        prev: Duration,
        started: Option<Instant>,
    ) -> Result<Duration, GiveUp> {
        if retry > self.max_retries {
            return Err(GiveUp::RetriesExhausted);
        }
        let delay = match hint {
            Some(hint) if hint > self.max_retry_after => return Err(GiveUp::HintTooLong(hint)),
            Some(hint) => hint,
            None => self.backoff.next_delay(retry - 1, prev),
        };
        if let (Some(cap), Some(start)) = (self.max_elapsed, started)
            && start.elapsed().saturating_add(delay) > cap
        {
            return Err(GiveUp::ElapsedCap);
        }
        // the budget is asked last: a retry taken from it is made
        if let Some(budget) = &self.budget
            && !budget.withdraw()
        {
            return Err(GiveUp::Budget);
        }
        Ok(delay)
    }
}

fn give_up_event(why: GiveUp, attempts: u32) {
    match why {
        GiveUp::RetriesExhausted => tracing::warn!(attempts, "giving up: retries exhausted"),
        GiveUp::HintTooLong(hint) => tracing::warn!(
            attempts,
            retry_after_ms = hint.as_millis() as u64,
            "giving up: Retry-After is longer than max_retry_after"
        ),
        GiveUp::ElapsedCap => tracing::warn!(attempts, "giving up: max_elapsed reached"),
        GiveUp::Budget => tracing::warn!(attempts, "giving up: retry budget exhausted"),
    }
}
