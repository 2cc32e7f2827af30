//! [`CostMeterLayer`], the [`CostMeter`] service and its future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::budget::{BudgetKey, Period, Store};
use crate::error::CostError;
use crate::ledger::{Ledger, UnknownModel};
use crate::meter::{CostRequest, CostResponse};
use crate::prices::{Nanos, Price, Tokens};

/// Most budgets a ledger can hold.
pub const MAX_BUDGETS: usize = 8;

/// Meters every call: refuses it before the provider is called if a budget would be
/// exceeded (reserving the worst case), then settles the reservation to the real usage and
/// records tokens and cost in the [`Ledger`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use tower::{ServiceBuilder, ServiceExt};
/// use towerguard_cost_meter::{usd, Budget, CostMeterLayer, Ledger};
/// use towerguard_llm_core::{LlmRequest, Message, Usage};
/// use towerguard_testkit::{FakeProvider, Outcome};
///
/// let ledger = Ledger::builder().budget(Budget::global(usd(10.0)).daily()).build().unwrap();
/// let provider = FakeProvider::always("openai", Outcome::ok_with_usage(Usage::new(1000, 500)));
/// let svc = ServiceBuilder::new()
///     .layer(CostMeterLayer::new(ledger.clone()))
///     .service(provider);
/// let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("hi")]).with_max_tokens(500);
/// svc.oneshot(req).await.unwrap();
/// let stats = ledger.stats();
/// assert_eq!((&*stats[0].provider, &*stats[0].model), ("openai", "gpt-4o-mini"));
/// assert_eq!(stats[0].spend.cost, 1000 * 150 + 500 * 600); // nano-dollars
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct CostMeterLayer {
    ledger: Ledger,
}

impl CostMeterLayer {
    /// A meter writing to `ledger` (clone the ledger to share it between meters).
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

impl<S> Layer<S> for CostMeterLayer {
    type Service = CostMeter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CostMeter {
            inner,
            ledger: Arc::new(self.ledger.clone()),
            owned: Owned::Yes,
            last_model: LastModel::default(),
        }
    }
}

/// A service whose calls are metered. Made by [`CostMeterLayer`].
///
/// A clone that serves more than one request holds its own handle on the ledger, so the
/// reference count its calls bump is not shared with other threads' clones; a clone made
/// for a single request shares its parent's and does not allocate.
#[derive(Debug)]
pub struct CostMeter<S> {
    inner: S,
    ledger: Arc<Ledger>,
    owned: Owned,
    last_model: LastModel,
}

/// Whether a service clone has a ledger handle of its own. A clone first shares its
/// parent's, so a clone made for a single request (as axum makes one per request) never
/// allocates; a clone that serves a second request makes its own, so long-lived clones on
/// different threads do not share one reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owned {
    Yes,
    Shared,
    SharedUsed,
}

/// The last model name this clone priced and its price-table entry: a request for the same
/// model skips the table's hash lookup. Inline bytes, so keeping it never allocates.
#[derive(Debug, Clone, Copy)]
struct LastModel {
    len: u8,
    name: [u8; LastModel::CAP],
    index: usize,
}

impl Default for LastModel {
    fn default() -> Self {
        Self {
            len: u8::MAX, // matches no name
            name: [0; Self::CAP],
            index: 0,
        }
    }
}

impl LastModel {
    const CAP: usize = 46;

    #[inline]
    fn get(&self, model: &str) -> Option<usize> {
        let b = model.as_bytes();
        (b.len() == usize::from(self.len) && self.name.get(..b.len()) == Some(b))
            .then_some(self.index)
    }

    /// Finds `model` in the price table, and remembers it.
    #[cold]
    #[inline(never)]
    fn look_up(&mut self, inner: &crate::ledger::Inner, model: &str) -> Option<usize> {
        let found = inner.prices.index_of(model);
        if let Some(i) = found {
            self.set(model, i);
        }
        found
    }

    #[inline]
    fn set(&mut self, model: &str, index: usize) {
        let b = model.as_bytes();
        if let Some(dst) = self.name.get_mut(..b.len()) {
            dst.copy_from_slice(b);
            self.len = b.len() as u8;
            self.index = index;
        }
    }
}

impl<S> CostMeter<S> {
    /// A call on a clone still sharing its parent's handle: the second one takes its own.
    #[cold]
    #[inline(never)]
    fn on_shared_call(&mut self) {
        if self.owned == Owned::Shared {
            self.owned = Owned::SharedUsed;
            return;
        }
        self.ledger = Arc::new(Ledger::clone(&self.ledger));
        self.owned = Owned::Yes;
    }
}

impl<S: Clone> Clone for CostMeter<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ledger: self.ledger.clone(),
            owned: Owned::Shared,
            last_model: self.last_model,
        }
    }
}

/// The reservations one call holds: which budgets, when (their windows follow from it), and
/// the amount (the same worst case on each). Small, so the future stays small. Every field
/// is a full word: a byte written and then copied as part of a word stalls the processor's
/// store forwarding.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    budgets: u64,
    at: u64,
    amount: Nanos,
}

/// The model a call was priced as: an entry of the price table, or a name it does not know.
#[derive(Debug)]
enum ModelRef {
    Table(usize),
    Unknown(Arc<str>),
}

impl Ledger {
    /// Reserves the worst case of a request on every budget in `mask`, all or nothing.
    #[inline]
    fn reserve(
        &self,
        worst: Nanos,
        mask: u8,
        client: Option<&str>,
    ) -> Result<Held, Box<CostError>> {
        let inner = &*self.inner;
        if let Some(max) = inner.max_request_cost
            && worst > max
        {
            return Err(too_costly(max, worst));
        }
        if mask == 0 {
            return Ok(Held::default());
        }
        let now = if inner.needs_clock {
            inner.clock.unix_nanos()
        } else {
            0
        };
        match &inner.store {
            // the in-memory store's global and provider counters, reached directly
            Store::Memory(m) if mask & inner.client_mask == 0 => {
                let mut got = 0;
                let mut bits = mask;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let plan = &inner.plans[i & (MAX_BUDGETS - 1)];
                    let Some(c) = m.fixed.get(i) else {
                        continue;
                    };
                    // an all-time counter never rolls over: no window to check
                    let reserved = match plan.period {
                        Period::Total => c.add_within(worst, plan.limit),
                        period => c.try_reserve(period.id(now), worst, plan.limit),
                    };
                    match reserved {
                        Ok(_) => got |= 1 << i,
                        Err(spent) => {
                            let held = Held {
                                budgets: got,
                                at: now,
                                amount: worst,
                            };
                            return Err(self.refuse(&held, client, i, None, spent));
                        }
                    }
                }
                Ok(Held {
                    budgets: got,
                    at: now,
                    amount: worst,
                })
            }
            _ => self.reserve_each(
                Held {
                    budgets: 0,
                    at: now,
                    amount: worst,
                },
                mask,
                client,
            ),
        }
    }

    /// [`Ledger::reserve`] through the store's trait (per-client budgets, custom stores).
    #[inline(never)]
    fn reserve_each(
        &self,
        mut held: Held,
        mask: u8,
        client: Option<&str>,
    ) -> Result<Held, Box<CostError>> {
        let inner = &*self.inner;
        let mut bits = mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(plan) = inner.plans.get(i) else {
                continue;
            };
            let member = (inner.client_mask & (1 << i) != 0)
                .then_some(client)
                .flatten();
            let key = BudgetKey {
                budget: i,
                member,
                window: plan.period.id(held.at),
            };
            match inner.store.try_reserve(key, held.amount, plan.limit) {
                Ok(_) => held.budgets |= 1 << i,
                Err(spent) => return Err(self.refuse(&held, client, i, member, spent)),
            }
        }
        Ok(held)
    }

    /// Gives back what a refused request had reserved, and says which budget refused it.
    #[cold]
    #[inline(never)]
    fn refuse(
        &self,
        held: &Held,
        client: Option<&str>,
        i: usize,
        member: Option<&str>,
        spent: Nanos,
    ) -> Box<CostError> {
        self.settle_all(held, client, 0);
        let b = &self.inner.budgets[i];
        tracing::warn!(
            budget = b.describe(member).as_str(),
            "request refused: budget exceeded"
        );
        Box::new(CostError::BudgetExceeded {
            budget: b.describe(member),
            limit: b.limit,
            spent,
            requested: held.amount,
        })
    }

    /// Settles every reservation a call holds to `actual` (0 releases them).
    #[inline(always)]
    fn settle_all(&self, held: &Held, client: Option<&str>, actual: Nanos) {
        if held.budgets == 0 {
            return;
        }
        let inner = &*self.inner;
        match &inner.store {
            // the in-memory store's global and provider counters, without alerts: directly
            Store::Memory(m)
                if held.budgets & u64::from(inner.client_mask | inner.alert_mask) == 0 =>
            {
                let mut bits = held.budgets as u8;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let plan = &inner.plans[i & (MAX_BUDGETS - 1)];
                    if let Some(c) = m.fixed.get(i) {
                        match plan.period {
                            Period::Total => c.replace(held.amount, actual),
                            period => c.settle(period.id(held.at), held.amount, actual),
                        };
                    }
                }
            }
            _ => self.settle_each(held, client, actual),
        }
    }

    /// [`Ledger::settle_all`] through the store's trait, with alerts.
    #[inline(never)]
    fn settle_each(&self, held: &Held, client: Option<&str>, actual: Nanos) {
        let inner = &*self.inner;
        let mut bits = held.budgets as u8;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(plan) = inner.plans.get(i) else {
                continue;
            };
            let window = plan.period.id(held.at);
            let member = (inner.client_mask & (1 << i) != 0)
                .then_some(client)
                .flatten();
            let key = BudgetKey {
                budget: i,
                member,
                window,
            };
            let total = inner.store.settle(key, held.amount, actual);
            if actual > 0 && inner.alert_mask & (1 << i) != 0 {
                self.check_alert(i, member, window, total);
            }
        }
    }
}

/// The per-request limit's refusal.
#[cold]
#[inline(never)]
fn too_costly(max: Nanos, worst: Nanos) -> Box<CostError> {
    Box::new(CostError::BudgetExceeded {
        budget: "per-request".into(),
        limit: max,
        spent: 0,
        requested: worst,
    })
}

impl<S, Req> Service<Req> for CostMeter<S>
where
    S: Service<Req>,
    S::Response: CostResponse,
    S::Error: From<CostError>,
    Req: CostRequest,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        if self.owned != Owned::Yes {
            self.on_shared_call();
        }
        let inner = &*self.ledger.inner;
        let name = req.model();
        let index = match self.last_model.get(name) {
            Some(i) => Some(i),
            None => self.last_model.look_up(inner, name),
        };
        let worst = req.worst_case();
        let (model, worst_cost, mask) =
            match index.and_then(|i| inner.models.get(i).map(|m| (i, m))) {
                Some((i, slot)) => {
                    let max_output = worst.max_output_tokens.unwrap_or(slot.max_output);
                    (
                        ModelRef::Table(i),
                        slot.cost(Tokens::new(worst.input_tokens, max_output)),
                        slot.mask,
                    )
                }
                None => match unknown_model(inner, name, worst) {
                    Ok(found) => found,
                    Err(e) => return ResponseFuture::rejected(e),
                },
            };
        let client = req.client().cloned();
        let mask = match client {
            Some(_) => mask | inner.client_mask,
            None => mask,
        };
        // the handle's count and the reservation are updated back to back, so the
        // processor waits for pending stores once for both
        let ledger = self.ledger.clone();
        let held = match ledger.reserve(worst_cost, mask, client.as_deref()) {
            Ok(held) => held,
            Err(e) => return ResponseFuture::rejected(e),
        };
        let future = self.inner.call(req);
        ResponseFuture {
            kind: Kind::Metered {
                future,
                guard: Some(Guard {
                    ledger,
                    held,
                    model,
                    client,
                    done: false,
                }),
            },
        }
    }
}

/// How a model the price table does not know is priced (or refused), and its worst case.
#[cold]
#[inline(never)]
fn unknown_model(
    inner: &crate::ledger::Inner,
    name: &str,
    worst: crate::meter::WorstCase,
) -> Result<(ModelRef, Nanos, u8), Box<CostError>> {
    let price = match inner.unknown {
        UnknownModel::Reject => return Err(Box::new(CostError::UnknownModel(name.to_owned()))),
        UnknownModel::Free => Price::FREE,
        UnknownModel::Price(p) => p,
    };
    let max_output = worst.max_output_tokens.unwrap_or(inner.default_max_output);
    Ok((
        ModelRef::Unknown(Arc::from(name)),
        price.cost(Tokens::new(worst.input_tokens, max_output)),
        inner.global_mask,
    ))
}

/// Settles a call's reservations: to the real cost when it answers, to zero when it fails
/// or is dropped.
struct Guard {
    ledger: Arc<Ledger>,
    held: Held,
    model: ModelRef,
    client: Option<Arc<str>>,
    done: bool,
}

impl Guard {
    #[inline]
    fn finish<R: CostResponse>(&mut self, response: Option<&R>) {
        self.done = true;
        let ledger = &*self.ledger;
        let client = self.client.as_deref();
        let Some(resp) = response else {
            ledger.settle_all(&self.held, client, 0);
            return;
        };
        let inner = &*ledger.inner;
        let tokens = resp.tokens();
        let slot = match &self.model {
            ModelRef::Table(i) => inner.models.get(*i),
            ModelRef::Unknown(_) => None,
        };
        match (slot, resp.model()) {
            // the model asked for answered (the usual case)
            (Some(slot), m) if m.is_none_or(|m| *m == *slot.name) => {
                let cost = slot.cost(tokens);
                let provider = match resp.provider() {
                    Some(p) => p,
                    None => slot.provider.as_deref().unwrap_or("unknown"),
                };
                ledger.model_row(slot, provider).add(tokens, cost);
                if let Some(c) = client {
                    ledger.record_client(c, tokens, cost);
                }
                // last, just before the handle is let go: the two atomic updates back to back
                ledger.settle_all(&self.held, client, cost);
            }
            _ => self.finish_other(resp, slot),
        }
    }

    /// Records a call whose answer came from another model than the one asked for (after a
    /// fallback), or for a model the table does not know.
    #[cold]
    #[inline(never)]
    fn finish_other<R: CostResponse>(&self, resp: &R, asked: Option<&crate::ledger::ModelSlot>) {
        let tokens = resp.tokens();
        let ledger = &*self.ledger;
        let inner = &*ledger.inner;
        // the price for a name the table does not know (never `Reject`: refused at the call)
        let unknown = match inner.unknown {
            UnknownModel::Price(p) => p,
            UnknownModel::Free | UnknownModel::Reject => Price::FREE,
        };
        let (index, model_name, price, table_provider): (Option<usize>, &str, Price, Option<&str>) =
            match (resp.model(), asked, &self.model) {
                (Some(m), Some(asked), _) => match inner.prices.index_of(m) {
                    Some(j) => {
                        let (name, info) = inner.prices.entry(j);
                        (Some(j), name, info.price, info.provider.as_deref())
                    }
                    // not in the table (e.g. a dated variant): the requested model's price
                    None => (None, m, asked.price, None),
                },
                (None, Some(asked), ModelRef::Table(i)) => (
                    Some(*i),
                    &asked.name,
                    asked.price,
                    asked.provider.as_deref(),
                ),
                (_, _, ModelRef::Unknown(name)) => (None, name, unknown, None),
                (_, None, ModelRef::Table(_)) => (None, "(unknown)", unknown, None),
            };
        let cost = price.cost(tokens);
        ledger.settle_all(&self.held, self.client.as_deref(), cost);
        let provider = resp.provider().or(table_provider).unwrap_or("unknown");
        ledger.record(
            provider,
            model_name,
            index,
            self.client.as_deref(),
            tokens,
            cost,
        );
    }
}

impl Guard {
    /// Gives back the reservations of a call that was cancelled.
    #[cold]
    #[inline(never)]
    fn release(&self) {
        self.ledger
            .settle_all(&self.held, self.client.as_deref(), 0);
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.release();
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Rejected { error: Option<E> },
        Metered { #[pin] future: F, guard: Option<Guard> },
    }
}

pin_project! {
    /// The future of a [`CostMeter`] call.
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

impl<F, E: From<CostError>> ResponseFuture<F, E> {
    /// A call refused before the inner service was called. (Refusals travel boxed, so the
    /// `Result`s on the hot path stay small.)
    #[cold]
    #[inline(never)]
    #[allow(clippy::boxed_local)]
    fn rejected(error: Box<CostError>) -> Self {
        Self {
            kind: Kind::Rejected {
                error: Some(E::from(*error)),
            },
        }
    }
}

impl<F, R, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<R, E>>,
    R: CostResponse,
{
    type Output = Result<R, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { error } => match error.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            KindProj::Metered { future, guard } => {
                let result = ready!(future.poll(cx));
                if let Some(g) = guard {
                    g.finish(result.as_ref().ok());
                    // lets go of the ledger handle now, next to the last atomic update
                    *guard = None;
                }
                Poll::Ready(result)
            }
        }
    }
}
