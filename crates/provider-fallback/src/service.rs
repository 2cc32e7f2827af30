//! The [`Fallback`] service: a fast path for the primary, and the fallback loop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::hint::AllProvidersFailed;
use crate::layer::{AllDown, Plan, Shared};

/// A boxed fallback future (only used once the primary failed, or for hedging).
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Tries the primary, then the next providers as the configuration says. Made by
/// [`FallbackLayer`](crate::FallbackLayer).
///
/// `poll_ready` polls only the primary and never waits for it: if the primary is not ready,
/// the request is sent to the other providers first (the primary is tried last). Every other
/// provider is cloned and made ready when its turn comes, so one provider that is not ready
/// never blocks the others.
pub struct Fallback<S, F, Req, E> {
    primary: S,
    primary_ready: bool,
    shared: Arc<Shared<F, Req, E>>,
}

impl<S, F, Req, E> Fallback<S, F, Req, E> {
    pub(crate) fn new(primary: S, shared: Arc<Shared<F, Req, E>>) -> Self {
        Self {
            primary,
            primary_ready: false,
            shared,
        }
    }
}

impl<S: Clone, F, Req, E> Clone for Fallback<S, F, Req, E> {
    fn clone(&self) -> Self {
        Self {
            primary: self.primary.clone(),
            primary_ready: false,
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, F, Req, E> fmt::Debug for Fallback<S, F, Req, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("primary", &self.primary)
            .field("providers", &self.shared.slots.len())
            .finish_non_exhaustive()
    }
}

impl<S, F, Req, E> Service<Req> for Fallback<S, F, Req, E>
where
    S: Service<Req, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    F: Service<Req, Response = S::Response, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = E;
    type Future = ResponseFuture<S::Future, S::Response, F, Req, E>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        if !self.primary_ready {
            // Never wait for the primary: if it is not ready (or broken), the others go first.
            self.primary_ready = matches!(self.primary.poll_ready(cx), Poll::Ready(Ok(())));
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        let ready = std::mem::take(&mut self.primary_ready);
        if ready && shared.primary_first && (!shared.health_aware || shared.is_up(0)) {
            let first = if shared.primary_as_is {
                req.clone()
            } else {
                shared.request_for(0, &req)
            };
            let future = self.primary.call(first);
            return ResponseFuture {
                state: State::Primary {
                    future,
                    ctx: Some((shared.clone(), req)),
                },
            };
        }
        self.slow_call(ready, req)
    }
}

impl<S, F, Req, E> Fallback<S, F, Req, E>
where
    S: Service<Req, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    F: Service<Req, Response = S::Response, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + Send + Sync + 'static,
{
    /// Every call that does not start on the primary: boxed, off the fast path.
    #[cold]
    #[inline(never)]
    fn slow_call(
        &mut self,
        ready: bool,
        req: Req,
    ) -> ResponseFuture<S::Future, S::Response, F, Req, E> {
        let primary = self.primary.clone();
        let shared = self.shared.clone();
        let future: BoxFuture<Result<S::Response, E>> = match shared.hedge_after {
            Some(delay) => Box::pin(run_hedged(shared, primary, ready, req, delay)),
            None => Box::pin(run(shared, Some(primary), !ready, req, None)),
        };
        ResponseFuture {
            state: State::Boxed { future },
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, Res, F, Req, E> {
        Primary {
            #[pin]
            future: Fut,
            ctx: Option<(Arc<Shared<F, Req, E>>, Req)>,
        },
        Boxed {
            future: BoxFuture<Result<Res, E>>,
        },
    }
}

pin_project! {
    /// The future of a [`Fallback`] call. While the primary answers, nothing is boxed.
    pub struct ResponseFuture<Fut, Res, F, Req, E> {
        #[pin]
        state: State<Fut, Res, F, Req, E>,
    }
}

impl<Fut, Res, F, Req, E> Future for ResponseFuture<Fut, Res, F, Req, E>
where
    Fut: Future<Output = Result<Res, E>>,
    Res: Send + 'static,
    F: Service<Req, Response = Res, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + Send + Sync + 'static,
{
    type Output = Result<Res, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Primary { future, ctx } => {
                    let result = ready!(future.poll(cx));
                    let Some((shared, req)) = ctx.take() else {
                        return Poll::Ready(result);
                    };
                    match result {
                        Ok(res) => {
                            shared.served(0);
                            return Poll::Ready(Ok(res));
                        }
                        Err(e) => this.state.set(State::Boxed {
                            future: after_primary_failed(shared, req, e),
                        }),
                    }
                }
                StateProj::Boxed { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

/// The fallback loop after the primary failed on the fast path (boxed, off the fast path).
#[cold]
#[inline(never)]
fn after_primary_failed<Res, F, Req, E>(
    shared: Arc<Shared<F, Req, E>>,
    req: Req,
    error: E,
) -> BoxFuture<Result<Res, E>>
where
    Res: Send + 'static,
    F: Service<Req, Response = Res, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + Send + Sync + 'static,
{
    Box::pin(run::<NoPrimary<Res, E>, F, Req, E>(
        shared,
        None,
        false,
        req,
        Some(error),
    ))
}

/// Stands in for the primary once it has been tried (it is never called again).
#[allow(dead_code)] // uninhabited on purpose: never constructed
enum NoPrimary<Res, E> {
    Never(
        std::convert::Infallible,
        std::marker::PhantomData<fn() -> (Res, E)>,
    ),
}

impl<Req, Res, E> Service<Req> for NoPrimary<Res, E> {
    type Response = Res;
    type Error = E;
    type Future = std::future::Pending<Result<Res, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        let NoPrimary::Never(never, _) = self;
        match *never {}
    }

    fn call(&mut self, _: Req) -> Self::Future {
        let NoPrimary::Never(never, _) = self;
        match *never {}
    }
}

/// Polls a provider's readiness once: true if it is ready (or failed, which its call will
/// report), false if it would have to be waited for.
async fn poll_once<T, Req>(svc: &mut T) -> bool
where
    T: Service<Req>,
{
    std::future::poll_fn(|cx| Poll::Ready(!svc.poll_ready(cx).is_pending())).await
}

/// Calls one provider once it is ready.
async fn call_ready<T, Req>(svc: &mut T, req: Req) -> Result<T::Response, T::Error>
where
    T: Service<Req>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// What the loop does after a failure.
enum Next<E> {
    /// Try the next provider of this plan.
    Continue(Plan),
    /// Stop and return this error as it is.
    Stop(E),
}

/// Records a failure of provider `idx` and decides what comes next.
fn on_failure<F, Req, E>(
    shared: &Shared<F, Req, E>,
    idx: usize,
    err: E,
    plan: Plan,
    errors: &mut Vec<(usize, E)>,
) -> Next<E> {
    let (go, hint, label) = shared.judge(&err);
    let slot = &shared.slots[idx];
    slot.failed.fetch_add(1, Ordering::Relaxed);
    *slot.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(label);
    if let Some(h) = hint
        && shared.health_aware
        && !h.is_zero()
    {
        shared.cool_down(idx, h);
    }
    if let Some((_, chain)) = shared.chains.iter().find(|(cond, _)| cond(&err)) {
        if chain.is_empty() {
            shared.stopped.fetch_add(1, Ordering::Relaxed);
            return Next::Stop(err);
        }
        let mut p = Plan::default();
        chain.iter().for_each(|&i| p.push(usize::from(i)));
        errors.push((idx, err));
        return Next::Continue(p);
    }
    if !go {
        shared.stopped.fetch_add(1, Ordering::Relaxed);
        return Next::Stop(err);
    }
    errors.push((idx, err));
    Next::Continue(plan)
}

/// The final error once no provider is left to try.
fn exhausted<F, Req, E>(shared: &Shared<F, Req, E>, mut errors: Vec<(usize, E)>) -> E
where
    E: From<AllProvidersFailed<E>>,
{
    shared.exhausted.fetch_add(1, Ordering::Relaxed);
    if errors.len() == 1
        && let Some((_, e)) = errors.pop()
    {
        return e;
    }
    tracing::error!(providers = errors.len(), "every provider failed");
    E::from(AllProvidersFailed {
        attempts: errors
            .into_iter()
            .map(|(i, e)| (shared.slots[i].name.clone(), e))
            .collect(),
    })
}

fn announce<F, Req, E>(shared: &Shared<F, Req, E>, err: &E, from: usize, to: usize) {
    shared.fallbacks.fetch_add(1, Ordering::Relaxed);
    let (from, to) = (&*shared.slots[from].name, &*shared.slots[to].name);
    let (_, _, label) = (shared.hint)(err);
    tracing::info!(from, to, error = label, "falling back to the next provider");
    if let Some(f) = &shared.on_fallback {
        f(err, from, to);
    }
}

/// The plan for a new request: strategy order, providers that are down last, the primary
/// last if it was not ready; waits for recovery if configured and everyone is down.
async fn initial_plan<F, Req, E>(shared: &Shared<F, Req, E>, primary_last: bool) -> Plan {
    let base = shared.base_order();
    let order = |base: Plan| {
        let (plan, any_up) = shared.by_health(base);
        if !primary_last {
            return (plan, any_up);
        }
        let mut p = Plan::default();
        plan.iter().filter(|&i| i != 0).for_each(|i| p.push(i));
        if plan.iter().any(|i| i == 0) {
            p.push(0);
        }
        (p, any_up)
    };
    let (plan, any_up) = order(base);
    if !any_up
        && let AllDown::WaitForRecovery(max) = shared.all_down
        && let Some(ns) = plan
            .iter()
            .map(|i| shared.recovers_in(i))
            .filter(|&n| n > 0)
            .min()
    {
        let wait = Duration::from_nanos(ns).min(max);
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "every provider is down; waiting for the first to recover"
        );
        tokio::time::sleep(wait).await;
        // the one that recovered goes first
        return order(base).0;
    }
    plan
}

/// The sequential fallback loop. `first_error` is the primary's failure when the fast path
/// already tried it.
async fn run<S, F, Req, E>(
    shared: Arc<Shared<F, Req, E>>,
    mut primary: Option<S>,
    primary_last: bool,
    req: Req,
    first_error: Option<E>,
) -> Result<F::Response, E>
where
    S: Service<Req, Response = F::Response, Error = E>,
    F: Service<Req, Error = E> + Clone,
    Req: Clone,
    E: From<AllProvidersFailed<E>>,
{
    let mut errors: Vec<(usize, E)> = Vec::new();
    let mut tried: u32 = 0;
    let mut last: Option<usize> = None;
    let mut plan = if first_error.is_some() {
        shared.by_health(shared.base_order()).0
    } else {
        initial_plan(&shared, primary_last).await
    };
    if let Some(e) = first_error {
        tried |= 1;
        last = Some(0);
        match on_failure(&shared, 0, e, plan, &mut errors) {
            Next::Stop(e) => return Err(e),
            Next::Continue(p) => plan = p,
        }
    }
    // providers found not ready are put off once, so one slow-to-ready provider never holds
    // up the others
    let mut deferred: u32 = 0;
    loop {
        if tried.count_ones() as usize >= shared.max_providers {
            break;
        }
        let open = |i: usize| tried & (1 << i) == 0;
        let Some(idx) = plan
            .iter()
            .find(|&i| open(i) && deferred & (1 << i) == 0)
            .or_else(|| plan.iter().find(|&i| open(i)))
        else {
            break;
        };
        if idx == 0 && primary.is_none() {
            tried |= 1;
            continue;
        }
        let others_waiting = plan
            .iter()
            .any(|i| i != idx && open(i) && deferred & (1 << i) == 0);
        let mut other = (idx > 0).then(|| shared.others[idx - 1].clone());
        if deferred & (1 << idx) == 0 && others_waiting {
            let ready_now = match (other.as_mut(), primary.as_mut()) {
                (Some(svc), _) => poll_once(svc).await,
                (None, Some(p)) => poll_once(p).await,
                (None, None) => true,
            };
            if !ready_now {
                deferred |= 1 << idx;
                continue;
            }
        }
        tried |= 1 << idx;
        if let (Some(from), Some((_, err))) = (last, errors.last()) {
            announce(&shared, err, from, idx);
        }
        let attempt = shared.request_for(idx, &req);
        let result = match (other.as_mut(), primary.as_mut()) {
            (Some(svc), _) => call_ready(svc, attempt).await,
            (None, Some(p)) => call_ready(p, attempt).await,
            (None, None) => continue,
        };
        match result {
            Ok(res) => {
                shared.served(idx);
                return Ok(res);
            }
            Err(e) => {
                last = Some(idx);
                match on_failure(&shared, idx, e, plan, &mut errors) {
                    Next::Stop(e) => return Err(e),
                    Next::Continue(p) => plan = p,
                }
            }
        }
    }
    Err(exhausted(&shared, errors))
}

/// The hedged loop: after `delay` with no answer the next provider starts too; the first
/// success wins and the other attempts are dropped.
async fn run_hedged<S, F, Req, E>(
    shared: Arc<Shared<F, Req, E>>,
    primary: S,
    primary_ready: bool,
    req: Req,
    delay: Duration,
) -> Result<F::Response, E>
where
    S: Service<Req, Response = F::Response, Error = E> + Send + 'static,
    S::Future: Send + 'static,
    F: Service<Req, Error = E> + Clone + Send + 'static,
    F::Future: Send + 'static,
    F::Response: Send + 'static,
    Req: Clone + Send + 'static,
    E: From<AllProvidersFailed<E>> + Send + 'static,
{
    type Attempt<R, E> = BoxFuture<(usize, Result<R, E>)>;
    let mut primary = Some(primary);
    let mut plan = initial_plan(&shared, !primary_ready).await;
    let mut errors: Vec<(usize, E)> = Vec::new();
    let mut inflight: FuturesUnordered<Attempt<F::Response, E>> = FuturesUnordered::new();
    let mut tried: u32 = 0;
    let mut stopped: Option<E> = None;
    let mut last_started: Option<usize> = None;

    let mut start_next = |plan: &Plan,
                          tried: &mut u32,
                          inflight: &mut FuturesUnordered<Attempt<F::Response, E>>,
                          errors: &Vec<(usize, E)>,
                          last_started: &mut Option<usize>| {
        if tried.count_ones() as usize >= shared.max_providers {
            return false;
        }
        let Some(idx) = plan.iter().find(|&i| *tried & (1 << i) == 0) else {
            return false;
        };
        *tried |= 1 << idx;
        if let Some(from) = *last_started {
            match errors.last() {
                Some((_, err)) => announce(&shared, err, from, idx),
                None => {
                    shared.fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        from = &*shared.slots[from].name,
                        to = &*shared.slots[idx].name,
                        "hedging: starting the next provider too"
                    );
                }
            }
        }
        *last_started = Some(idx);
        let attempt = shared.request_for(idx, &req);
        let fut: Attempt<F::Response, E> = if idx == 0 {
            match primary.take() {
                Some(mut p) => Box::pin(async move { (0, call_ready(&mut p, attempt).await) }),
                None => return true,
            }
        } else {
            let mut svc = shared.others[idx - 1].clone();
            Box::pin(async move { (idx, call_ready(&mut svc, attempt).await) })
        };
        inflight.push(fut);
        true
    };

    start_next(&plan, &mut tried, &mut inflight, &errors, &mut last_started);
    loop {
        if inflight.is_empty() {
            if stopped.is_some()
                || !start_next(&plan, &mut tried, &mut inflight, &errors, &mut last_started)
            {
                break;
            }
            continue;
        }
        let timer = tokio::time::sleep(delay);
        tokio::pin!(timer);
        let next = inflight.next();
        match futures_util::future::select(next, timer).await {
            futures_util::future::Either::Left((Some((idx, Ok(res))), _)) => {
                shared.served(idx);
                return Ok(res); // dropping `inflight` cancels the other attempts
            }
            futures_util::future::Either::Left((Some((idx, Err(e))), _)) => {
                match on_failure(&shared, idx, e, plan, &mut errors) {
                    Next::Stop(e) => stopped = Some(e),
                    Next::Continue(p) => {
                        plan = p;
                        if stopped.is_none() {
                            start_next(
                                &plan,
                                &mut tried,
                                &mut inflight,
                                &errors,
                                &mut last_started,
                            );
                        }
                    }
                }
            }
            futures_util::future::Either::Left((None, _)) => {}
            futures_util::future::Either::Right(((), _)) => {
                if stopped.is_none() {
                    start_next(&plan, &mut tried, &mut inflight, &errors, &mut last_started);
                }
            }
        }
    }
    match stopped {
        Some(e) => Err(e),
        None => Err(exhausted(&shared, errors)),
    }
}
