//! The [`Retry`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::Classify;
use crate::future::ResponseFuture;
use crate::layer::{OnGiveUp, OnRetry, Shared};

/// Retries the inner service's retryable failures. Made by [`RetryLayer`](crate::RetryLayer);
/// clones share the configuration and the retry budget.
pub struct Retry<S, C, R, G> {
    inner: S,
    shared: Arc<Shared<C, R, G>>,
}

impl<S, C, R, G> Retry<S, C, R, G> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<C, R, G>>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, R, G> Clone for Retry<S, C, R, G> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C, R, G> fmt::Debug for Retry<S, C, R, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_retries", &self.shared.max_retries)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C, R, G> Service<Req> for Retry<S, C, R, G>
where
    S: Service<Req> + Clone,
    Req: Clone,
    C: Classify<S::Response, S::Error>,
    R: OnRetry<S::Response, S::Error>,
    G: OnGiveUp<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C, R, G>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The service that was made ready answers the first attempt; its clone (never made
        // ready) stays here, and later attempts poll the future's copy ready first.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        if let Some(budget) = &self.shared.budget {
            budget.deposit();
        }
        let kept = (self.shared.max_retries > 0).then(|| req.clone());
        let future = service.call(req);
        ResponseFuture::new(future, service, kept, self.shared.clone())
    }
}
