//! A client that answers at once, for measuring layers' own cost.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tower_service::Service;
use towerguard_llm_core::{LlmError, LlmRequest, LlmResponse, Usage};

/// Answers every request at once with a billed response (20 input, 10 output tokens). The
/// response names the request's own model as its model and its provider, so the client
/// itself allocates nothing and writes no shared reference count: what a benchmark or an
/// allocation test measures through it is the layers' own work.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadyClient;

impl Service<LlmRequest> for ReadyClient {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Ready<Result<LlmResponse, LlmError>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let model = req.model_arc().clone();
        ready(Ok(
            LlmResponse::new(String::new(), model.clone(), model).with_usage(Usage::new(20, 10))
        ))
    }
}
