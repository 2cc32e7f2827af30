//! [`ErrorRateLimit`]: the service behind the limiter.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tower_service::Service;
use towerguard_outcome::{Classify, DefaultClassify, Lanes};

use crate::error::ThrottledError;
use crate::future::{ResponseFuture, State, Wait};
use crate::key::{DefaultKey, GLOBAL_KEY, RateKey};
use crate::layer::Shared;
use crate::store::{LimiterStore, MemoryStore};

/// A service behind the limiter. Made by [`ErrorRateLimitLayer`](crate::ErrorRateLimitLayer).
///
/// `poll_ready` is the inner service's. `call` asks the store at once: a pass calls the inner
/// service, a refusal answers a [`ThrottledError`] (or, in delay mode, waits). Only when the
/// store's answer is not ready at once, or the request must wait, does the call take the
/// inner service (leaving a clone in its place) into its future.
pub struct ErrorRateLimit<S, K = DefaultKey, C = DefaultClassify, St: LimiterStore = MemoryStore> {
    inner: S,
    shared: Arc<Lanes<Shared<K, C, St>>>,
}

impl<S, K, C, St: LimiterStore> ErrorRateLimit<S, K, C, St> {
    pub(crate) fn new(inner: S, shared: Arc<Lanes<Shared<K, C, St>>>) -> Self {
        Self { inner, shared }
    }
}

impl<S: Clone, K, C, St: LimiterStore> Clone for ErrorRateLimit<S, K, C, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, K, C, St: LimiterStore> fmt::Debug for ErrorRateLimit<S, K, C, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, C, St, Req> Service<Req> for ErrorRateLimit<S, K, C, St>
where
    S: Service<Req> + Clone,
    S::Response: 'static,
    S::Error: From<ThrottledError>,
    K: RateKey<Req> + Send + Sync + 'static,
    C: Classify<S::Response, S::Error> + Send + Sync + 'static,
    St: LimiterStore + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, K, C, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = self.shared.shared();
        let name = shared.key.key(&req).unwrap_or(GLOBAL_KEY);
        let key = shared.store.key(name);
        let tokens = match shared.store.weighs_tokens() {
            true => shared.key.tokens(&req),
            false => 0,
        };
        let mut admit = shared.store.admit(&key, name, tokens);
        // a store that answers at once has answered by now; the waker is never used then
        let answer = match Pin::new(&mut admit).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => Some(answer),
            Poll::Pending => None,
        };
        let state = match answer {
            Some(Ok(())) => {
                let future = self.inner.call(req);
                let (state, shared) = (State::Called { future }, self.shared.this_thread());
                return ResponseFuture { state, shared, key };
            }
            Some(Err(refusal)) if shared.delay.is_none() => State::rejected(refusal),
            answer => {
                // the service made ready goes with the request; its clone stays
                let name = Box::from(name);
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                let wait = Wait::new(svc, req, name, tokens);
                match answer {
                    Some(answer) => State::answered(shared, &key, answer, wait),
                    None => State::Asking {
                        admit,
                        wait: Some(wait),
                    },
                }
            }
        };
        let shared = self.shared.this_thread();
        ResponseFuture { state, shared, key }
    }
}
