//! Clients that answer at once with an error: the failing side of the failure-path cases.
//! (The succeeding side is [`towerguard_testkit::ReadyClient`].)

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tower_service::Service;
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse};

/// Answers every request at once with an `LlmError` of its kind.
#[derive(Debug, Clone, Copy)]
pub struct FailingClient(pub ErrorKind);

impl FailingClient {
    /// An upstream outage (`Server`): retried, counted by breakers, falls back.
    pub const DOWN: Self = Self(ErrorKind::Server);
    /// The client's own fault (`InvalidRequest`): what throttles a client.
    pub const BAD_REQUEST: Self = Self(ErrorKind::InvalidRequest);
}

impl Service<LlmRequest> for FailingClient {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Ready<Result<LlmResponse, LlmError>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: LlmRequest) -> Self::Future {
        ready(Err(LlmError::new(self.0)))
    }
}

/// The error of one call through `svc`, driven as [`call_now`](crate::call_now) does;
/// `None` when it answered `Ok` or did not answer on its first poll. For checking, when a
/// failure case is built, that it fails the way it should.
pub fn error_now<S>(svc: &mut S, req: LlmRequest) -> Option<S::Error>
where
    S: Service<LlmRequest>,
{
    use std::future::Future;
    use std::task::Waker;
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Some(e),
        Poll::Pending => return None,
    }
    let mut fut = std::pin::pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => Some(e),
        _ => None,
    }
}
