//! The [`Retry`] service.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tower_service::Service;
use towerguard_outcome::Classify;

use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::policy::{OnGiveUp, OnRetry, RecordAttempts};

/// Retries the inner service's retryable failures. Made by [`RetryLayer`](crate::RetryLayer);
/// clones share the configuration and the retry budget.
///
/// The first attempt is sent to the inner service this one made ready, with no copy made;
/// the inner service is cloned only when a retry is needed. Each clone of a `Retry` (made
/// with one allocation) has its own small handle, which its response futures share: threads
/// calling their own clones write no common reference count and no common budget counter.
pub struct Retry<S, C, R, G, A> {
    inner: S,
    handle: Arc<Handle<S, C, R, G, A>>,
}

/// What the response futures of one clone of a [`Retry`] share.
pub(crate) struct Handle<S, C, R, G, A> {
    pub(crate) config: Arc<Config<C, R, G, A>>,
    /// A copy of the inner service that retries clone (a mutex so that `S` need not be
    /// `Sync`; taken only to retry). Shared by the clones of a `Retry`.
    spare: Arc<Mutex<S>>,
    /// This clone's counter in the retry budget.
    counter: usize,
}

impl<S: Clone, C, R, G, A> Handle<S, C, R, G, A> {
    fn new(config: Arc<Config<C, R, G, A>>, spare: Arc<Mutex<S>>) -> Arc<Self> {
        let counter = config.settings.budget.as_ref().map_or(0, |b| b.counter());
        Arc::new(Self {
            config,
            spare,
            counter,
        })
    }

    /// A fresh copy of the inner service, for a retry.
    pub(crate) fn service(&self) -> S {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S: Clone, C, R, G, A> Retry<S, C, R, G, A> {
    pub(crate) fn new(inner: S, config: Arc<Config<C, R, G, A>>) -> Self {
        let spare = Arc::new(Mutex::new(inner.clone()));
        Self {
            handle: Handle::new(config, spare),
            inner,
        }
    }
}

impl<S, C, R, G, A> Retry<S, C, R, G, A> {
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

impl<S: Clone, C, R, G, A> Clone for Retry<S, C, R, G, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            handle: Handle::new(self.handle.config.clone(), self.handle.spare.clone()),
        }
    }
}

impl<S: fmt::Debug, C, R, G, A> fmt::Debug for Retry<S, C, R, G, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("settings", &self.handle.config.settings)
            .finish()
    }
}

impl<S, Req, C, R, G, A> Service<Req> for Retry<S, C, R, G, A>
where
    S: Service<Req> + Clone,
    Req: Clone,
    C: Classify<S::Response, S::Error>,
    R: OnRetry<S::Response, S::Error>,
    G: OnGiveUp<S::Response, S::Error>,
    A: RecordAttempts<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C, R, G, A>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let settings = &self.handle.config.settings;
        if let Some(budget) = &settings.budget {
            budget.deposit_to(self.handle.counter);
        }
        let kept = (settings.max_retries > 0).then(|| req.clone());
        let future = self.inner.call(req);
        ResponseFuture::new(future, kept, self.handle.clone())
    }
}
