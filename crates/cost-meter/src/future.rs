//! The [`CostMeter`](crate::CostMeter)'s response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::CostError;
use crate::request::CostResponse;
use crate::reservation::{Handle, PendingRaise, poll_now};
use crate::store::BudgetStore;

pin_project! {
    /// The future of a [`CostMeter`](crate::CostMeter) call: waits for the store's
    /// reservation if it answers later, calls the inner service, then settles.
    pub struct ResponseFuture<S, Req, St>
    where
        S: Service<Req>,
        St: BudgetStore,
    {
        #[pin]
        state: State<S, Req, St>,
        // dropping it releases what the request still holds
        handle: Option<Handle<St>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, St>
    where
        S: Service<Req>,
        St: BudgetStore,
    {
        Refused { error: Option<CostError> },
        Reserving { raise: PendingRaise<St>, service: Option<S>, request: Option<Req> },
        Calling { #[pin] future: S::Future },
        Settling { settle: St::Settle, response: Option<S::Response> },
    }
}

impl<S: Service<Req>, Req, St: BudgetStore> ResponseFuture<S, Req, St> {
    pub(crate) fn refused(error: CostError) -> Self {
        Self {
            state: State::Refused { error: Some(error) },
            handle: None,
        }
    }

    pub(crate) fn calling(future: S::Future, handle: Handle<St>) -> Self {
        Self {
            state: State::Calling { future },
            handle: Some(handle),
        }
    }

    pub(crate) fn reserving(
        raise: PendingRaise<St>,
        service: S,
        request: Req,
        handle: Handle<St>,
    ) -> Self {
        Self {
            state: State::Reserving {
                raise,
                service: Some(service),
                request: Some(request),
            },
            handle: Some(handle),
        }
    }
}

/// A streamed answer is billed when its stream ends, at its last reported usage: completed,
/// failed or dropped by the caller, what was used so far is charged (the reservation when no
/// usage arrived, counted as unmetered) and the rest released; no reservation outlives it.
#[cfg(feature = "llm")]
fn bill_at_stream_end<Res: 'static, St>(response: &mut Res, handle: &mut Option<Handle<St>>)
where
    St: BudgetStore + Send + Sync + 'static,
{
    use crate::request::llm::StreamBill;
    use towerguard_llm_core::LlmResponse;
    use towerguard_llm_core::stream::on_stream_end;
    let any: &mut dyn std::any::Any = response;
    let Some(streamed) = any.downcast_mut::<LlmResponse>() else {
        return;
    };
    if !streamed.is_stream() {
        return;
    }
    let (provider, model) = (streamed.provider.clone(), streamed.model.clone());
    let Some(handle) = handle.take() else { return };
    let _ = on_stream_end(streamed, move |end| {
        let bill = StreamBill {
            provider,
            model,
            usage: end.usage,
        };
        if let Some((_, mut settle)) = handle.bill(&bill) {
            // the in-memory store answers at once; a remote one settles on its own
            if let Some(alerts) = poll_now(&mut settle) {
                handle.alert(&alerts);
            }
        }
    });
}

impl<S, Req, St> Future for ResponseFuture<S, Req, St>
where
    S: Service<Req>,
    S::Response: CostResponse + 'static,
    S::Error: From<CostError>,
    St: BudgetStore + Send + Sync + 'static,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Refused { error } = this.state.as_mut().project() {
                return match error.take() {
                    Some(e) => Poll::Ready(Err(e.into())),
                    None => Poll::Pending,
                };
            }
            let Some(handle) = this.handle.as_ref() else {
                return Poll::Pending; // polled after it ended
            };
            match this.state.as_mut().project() {
                StateProj::Refused { .. } => return Poll::Pending,
                StateProj::Reserving {
                    raise,
                    service,
                    request,
                } => {
                    let answer = ready!(raise.poll(cx));
                    let next = match (
                        handle.finish_raise(raise, answer),
                        service.take(),
                        request.take(),
                    ) {
                        (Ok(()), Some(mut service), Some(request)) => State::Calling {
                            future: service.call(request),
                        },
                        (Err(e), ..) => State::Refused { error: Some(e) },
                        _ => return Poll::Pending,
                    };
                    this.state.set(next);
                }
                StateProj::Calling { future } => {
                    let mut response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(e) => {
                            // releases the reservation
                            *this.handle = None;
                            return Poll::Ready(Err(e));
                        }
                    };
                    #[cfg(feature = "llm")]
                    bill_at_stream_end(&mut response, this.handle);
                    let Some(handle) = this.handle.as_ref() else {
                        // a stream: billed when it ends
                        return Poll::Ready(Ok(response));
                    };
                    let Some((cost, mut settle)) = handle.bill(&response) else {
                        return Poll::Ready(Ok(response));
                    };
                    response.record_cost(cost);
                    match poll_now(&mut settle) {
                        Some(alerts) => {
                            handle.alert(&alerts);
                            return Poll::Ready(Ok(response));
                        }
                        None => this.state.set(State::Settling {
                            settle,
                            response: Some(response),
                        }),
                    }
                }
                StateProj::Settling { settle, response } => {
                    let alerts = ready!(Pin::new(settle).poll(cx));
                    handle.alert(&alerts);
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
