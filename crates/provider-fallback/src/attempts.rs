//! One request's attempts once it left the fast path: which providers were tried, their
//! errors, and the attempts in flight.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use futures_util::stream::FuturesUnordered;
use tower_service::Service;
use towerguard_outcome::{AttemptCheck, AttemptRefusal, AttemptRefused};

use crate::error::AllProvidersFailed;
use crate::health::AllDown;
use crate::plan::Plan;
use crate::shared::{Shared, SharedLane};
use crate::stats::Ended;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How one attempt ended: answered, or refused by the meter above (the provider was not
/// called).
type Attempt<Res, E> = BoxFuture<(usize, Result<Result<Res, E>, AttemptRefused>)>;

/// Where a request's attempts start.
pub(crate) enum Start<Req, E> {
    /// Nothing tried yet; `primary_ready` says whether the primary was ready.
    Fresh { primary_ready: bool },
    /// The primary's attempt waits for the meter's answer (`attempt` is its request).
    Checking { check: AttemptCheck, attempt: Req },
    /// The primary failed.
    Failed(E),
    /// The meter refused the primary's model as unpriced.
    Unpriced(AttemptRefused),
}

/// Stands in for the primary once it has been tried (never made, never called).
pub(crate) struct Tried<Res, E>(Infallible, PhantomData<fn() -> (Res, E)>);

impl<Req, Res, E> Service<Req> for Tried<Res, E> {
    type Response = Res;
    type Error = E;
    type Future = std::future::Pending<Result<Res, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        match self.0 {}
    }

    fn call(&mut self, _: Req) -> Self::Future {
        match self.0 {}
    }
}

struct Attempts<'a, S, F, Req, E, Res> {
    shared: &'a Shared<F, Req, E>,
    primary: Option<S>,
    req: Req,
    plan: Plan,
    /// The strategy's first provider for this request.
    first_choice: Option<usize>,
    /// Bit `i`: provider `i` was started.
    tried: u32,
    /// Bit `i`: provider `i` was not ready, so it was put off once.
    deferred: u32,
    /// Failures worth a fallback, `(provider, error)` in order.
    errors: Vec<(usize, E)>,
    /// A failure came since the last attempt started (it is `errors`' last).
    fresh_error: bool,
    /// An attempt failed, or was overtaken by a hedge.
    overtaken: bool,
    /// The error that ends the request; attempts already in flight may still serve.
    stop: Option<(E, Ended)>,
    inflight: FuturesUnordered<Attempt<Res, E>>,
}

/// Tries the providers for one request, one after the other (or, hedging, the next one too
/// once the hedge delay passes), until one serves or none is left.
pub(crate) async fn run<S, F, Req, E>(
    shared: SharedLane<F, Req, E>,
    primary: Option<S>,
    req: Req,
    start: Start<Req, E>,
) -> Result<F::Response, E>
where
    S: Service<Req, Response = F::Response, Error = E> + Send + 'static,
    S::Future: Send + 'static,
    F: Service<Req, Error = E> + Clone + Send + 'static,
    F::Future: Send + 'static,
    F::Response: Send + 'static,
    Req: Clone + Send + 'static,
    E: From<AllProvidersFailed<E>> + From<AttemptRefused> + Send + 'static,
{
    let base = shared.base_order(&req);
    let plan = match start {
        Start::Fresh { primary_ready } => initial_plan(&shared, base, !primary_ready).await,
        _ => shared.by_health(base).0,
    };
    let mut a = Attempts {
        shared: &shared,
        primary,
        req,
        plan,
        first_choice: base.first(),
        tried: 0,
        deferred: 0,
        errors: Vec::new(),
        fresh_error: false,
        overtaken: false,
        stop: None,
        inflight: FuturesUnordered::new(),
    };
    match start {
        Start::Fresh { .. } => {}
        Start::Checking { check, attempt } => {
            a.tried |= 1;
            if let Some(primary) = a.primary.take() {
                a.inflight
                    .push(attempt_on(0, primary, attempt, Some(check)));
            }
        }
        Start::Failed(error) => {
            a.tried |= 1;
            a.failed(0, error);
        }
        Start::Unpriced(refused) => {
            a.tried |= 1;
            a.refused(0, refused);
        }
    }
    loop {
        if a.inflight.is_empty() && (a.stop.is_some() || !a.start_next().await) {
            return Err(a.finish());
        }
        let done = match shared.config.hedge_after {
            None => a.inflight.next().await,
            Some(delay) => {
                let timer = std::pin::pin!(tokio::time::sleep(delay));
                match select(a.inflight.next(), timer).await {
                    Either::Left((done, _)) => done,
                    Either::Right(_) => None, // no answer in time: start the next too
                }
            }
        };
        let timed_out = done.is_none();
        match done {
            // dropping the other attempts in flight cancels them
            Some((i, Ok(Ok(res)))) => return Ok(a.served(i, res)),
            Some((i, Ok(Err(error)))) => a.failed(i, error),
            Some((i, Err(refused))) => a.refused(i, refused),
            None => {}
        }
        // hedging: a failure or the delay starts the next provider, whatever is in flight
        let moves_on = timed_out || a.fresh_error;
        if moves_on && a.stop.is_none() && !a.inflight.is_empty() {
            a.start_next().await;
        }
    }
}

/// The attempts after the primary failed with `error` on the fast path.
pub(crate) fn after_primary<Res, F, Req, E>(
    shared: SharedLane<F, Req, E>,
    req: Req,
    error: E,
) -> BoxFuture<Result<Res, E>>
where
    Res: Send + 'static,
    F: Service<Req, Response = Res, Error = E> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    E: From<AllProvidersFailed<E>> + From<AttemptRefused> + Send + Sync + 'static,
{
    let start = Start::Failed(error);
    Box::pin(run::<Tried<Res, E>, _, _, _>(shared, None, req, start))
}

/// The plan for a new request: strategy order, providers known to be down last, the primary
/// last if it was not ready; when every provider is down, waits for the first to recover if
/// configured.
async fn initial_plan<F, Req, E>(
    shared: &Shared<F, Req, E>,
    base: Plan,
    primary_last: bool,
) -> Plan {
    let order = || {
        let (plan, any_up) = shared.by_health(base);
        let plan = if primary_last {
            plan.partition(|i| i != 0)
        } else {
            plan
        };
        (plan, any_up)
    };
    let (plan, any_up) = order();
    let AllDown::WaitForRecovery(max) = shared.config.all_down else {
        return plan;
    };
    let clock = &*shared.config.clock;
    let recovers_in = plan
        .iter()
        .map(|i| shared.providers[i].health.recovers_in(clock));
    let Some(wait) = recovers_in
        .filter(|d| !d.is_zero())
        .min()
        .filter(|_| !any_up)
    else {
        return plan;
    };
    let wait = wait.min(max);
    tracing::info!(
        wait_ms = wait.as_millis() as u64,
        "every provider is down; waiting for the first to recover"
    );
    tokio::time::sleep(wait).await;
    order().0 // the one that recovered goes first
}

impl<S, F, Req, E> Attempts<'_, S, F, Req, E, F::Response>
where
    S: Service<Req, Response = F::Response, Error = E> + Send + 'static,
    S::Future: Send + 'static,
    F: Service<Req, Error = E> + Clone + Send + 'static,
    F::Future: Send + 'static,
    F::Response: Send + 'static,
    Req: Clone + Send + 'static,
    E: From<AllProvidersFailed<E>> + From<AttemptRefused> + Send + 'static,
{
    fn open(&self, i: usize) -> bool {
        self.tried & (1 << i) == 0
    }

    fn undeferred(&self, i: usize) -> bool {
        self.open(i) && self.deferred & (1 << i) == 0
    }

    /// Starts the next provider of the plan, if any is left: one that is ready before one
    /// that is not (a provider found not ready is put off once, so it never holds up the
    /// others). Its attempt first asks the meter above, if the request carries its hook.
    async fn start_next(&mut self) -> bool {
        loop {
            if self.tried.count_ones() as usize >= self.shared.config.max_providers {
                return false;
            }
            let plan = self.plan;
            let Some(i) = (plan.iter().find(|&i| self.undeferred(i)))
                .or_else(|| plan.iter().find(|&i| self.open(i)))
            else {
                return false;
            };
            if i == 0 && self.primary.is_none() {
                self.tried |= 1;
                continue;
            }
            let mut backup = (i > 0).then(|| self.shared.backups[i - 1].clone());
            if self.undeferred(i) && plan.iter().any(|j| j != i && self.undeferred(j)) {
                let ready = match (&mut backup, &mut self.primary) {
                    (Some(svc), _) => ready_now(svc).await,
                    (None, Some(svc)) => ready_now(svc).await,
                    (None, None) => true,
                };
                if !ready {
                    self.deferred |= 1 << i;
                    continue;
                }
            }
            self.tried |= 1 << i;
            self.announce(i);
            let attempt = self.shared.request_for(i, &self.req);
            let check = (self.shared.hook(i, &attempt))
                .map(|(hook, model)| hook.before_attempt(self.shared.name(i), model));
            let future = match (backup, &mut self.primary) {
                (Some(svc), _) => attempt_on(i, svc, attempt, check),
                (None, primary) => match primary.take() {
                    Some(svc) => attempt_on(i, svc, attempt, check),
                    None => return false,
                },
            };
            self.inflight.push(future);
            return true;
        }
    }

    /// Says why provider `i` starts: a fallback after the last failure, or a hedge.
    fn announce(&mut self, i: usize) {
        if std::mem::take(&mut self.fresh_error)
            && let Some((from, error)) = self.errors.last()
        {
            self.shared.announce(error, *from, i);
        } else if !self.inflight.is_empty() {
            self.overtaken = true;
            self.shared.counters.fell_back(true);
            let to = self.shared.name(i);
            tracing::info!(to, "hedging: starting the next provider too");
        }
    }

    fn failed(&mut self, i: usize, error: E) {
        self.overtaken = true;
        let next = self.shared.failed(i, &error, self.plan);
        if self.stop.is_some() {
            return;
        }
        match next {
            Some(plan) => {
                self.plan = plan;
                self.errors.push((i, error));
                self.fresh_error = true;
            }
            None => self.stop = Some((error, Ended::Stopped)),
        }
    }

    /// An exhausted budget ends the request (no new attempt starts); an unpriced model is
    /// provider `i`'s failure, and the next provider is tried.
    fn refused(&mut self, i: usize, refused: AttemptRefused) {
        if refused.reason() != AttemptRefusal::Unpriced {
            self.stop.get_or_insert((E::from(refused), Ended::Refused));
            return;
        }
        self.overtaken = true;
        let error = E::from(refused);
        let label = (self.shared.config.label)(&error);
        self.shared.counters.attempt_failed(i, label);
        self.errors.push((i, error));
        self.fresh_error = true;
    }

    fn served(&self, i: usize, #[allow(unused_mut)] mut res: F::Response) -> F::Response {
        let how = match () {
            () if Some(i) == self.first_choice => Ended::First,
            () if self.overtaken => Ended::AfterFailure,
            () => Ended::AfterSkip,
        };
        self.shared.providers[i].health.answered();
        self.shared.counters.served(i, how);
        #[cfg(feature = "llm")]
        self.record_tried(&mut res);
        res
    }

    /// An `LlmResponse` served after failures carries the providers that failed before it,
    /// with their errors' labels ([`towerguard_llm_core::Tried`]).
    #[cfg(feature = "llm")]
    fn record_tried(&self, res: &mut F::Response) {
        if self.errors.is_empty() {
            return;
        }
        let any: &mut dyn std::any::Any = res;
        if let Some(resp) = any.downcast_mut::<towerguard_llm_core::LlmResponse>() {
            let tried = self
                .errors
                .iter()
                .map(|(j, e)| {
                    (
                        self.shared.providers[*j].name.clone(),
                        (self.shared.config.label)(e),
                    )
                })
                .collect();
            resp.extensions.insert(towerguard_llm_core::Tried(tried));
        }
    }

    /// The error once no attempt is left.
    fn finish(mut self) -> E {
        let counters = &self.shared.counters;
        if let Some((error, how)) = self.stop.take() {
            counters.ended(how);
            return error;
        }
        counters.ended(Ended::Exhausted);
        if self.errors.len() == 1
            && let Some((_, error)) = self.errors.pop()
        {
            return error;
        }
        tracing::error!(providers = self.errors.len(), "every provider failed");
        let names = |(i, e): (usize, E)| (self.shared.providers[i].name.clone(), e);
        E::from(AllProvidersFailed::new(
            self.errors.into_iter().map(names).collect(),
        ))
    }
}

/// One attempt on a provider: the meter's answer first (if asked), then the call once the
/// provider is ready.
fn attempt_on<T, Req, Res, E>(
    i: usize,
    mut svc: T,
    req: Req,
    check: Option<AttemptCheck>,
) -> Attempt<Res, E>
where
    T: Service<Req, Response = Res, Error = E> + Send + 'static,
    T::Future: Send + 'static,
    Req: Send + 'static,
    Res: Send + 'static,
    E: Send + 'static,
{
    Box::pin(async move {
        if let Some(check) = check
            && let Err(refused) = check.await
        {
            return (i, Err(refused));
        }
        let result = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
            Ok(()) => svc.call(req).await,
            Err(e) => Err(e),
        };
        (i, Ok(result))
    })
}

/// Polls a provider's readiness once: true if it is ready (or failed, which its call will
/// report), false if it would have to be waited for.
async fn ready_now<T: Service<Req>, Req>(svc: &mut T) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(!svc.poll_ready(cx).is_pending())).await
}
