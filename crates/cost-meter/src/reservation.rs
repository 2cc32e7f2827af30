//! A request's reservation: what it holds on each budget, raised before each attempt
//! (the [`AttemptBudget`] a fallback below calls) and settled when the request ends.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

// the request's state lock from loom when model checking (`--cfg towerguard_loom`)
#[cfg(towerguard_loom)]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(towerguard_loom))]
use std::sync::{Mutex, MutexGuard};
use towerguard_outcome::{AttemptBudget, AttemptCheck, AttemptRefused, Lane};

use crate::budget::MAX_BUDGETS;
use crate::clients::ClientEntry;
use crate::error::CostError;
use crate::ledger::{Held, Inner, Ledger, Quote, Served};
use crate::prices::Nanos;
use crate::request::{CostRequest, CostResponse, WorstCase};
use crate::store::{Alerted, BudgetStore, CounterRef, Hold, Shortfall};

/// The model a request asked for.
#[derive(Debug)]
enum Requested {
    /// A price-table entry.
    Table(usize),
    /// A name the table does not know (priced by the unknown-model policy).
    Other(Arc<str>),
}

#[derive(Debug)]
struct State {
    held: Held,
    /// Until the request settles.
    open: bool,
}

/// One request's reservation.
pub(crate) struct Reservation<St: BudgetStore> {
    /// The ledger's shared state, through this thread's lane.
    ledger: Arc<Lane<Inner<St>>>,
    client: Option<Arc<ClientEntry<St::Client>>>,
    worst: WorstCase,
    requested: Requested,
    /// The worst case at the requested model.
    cost: Nanos,
    state: Mutex<State>,
    /// Itself, when shared behind an attempt hook (a raise that waits on the store then
    /// records what it was granted).
    me: Weak<Reservation<St>>,
}

/// A raise the store has not answered yet.
pub(crate) struct PendingRaise<St: BudgetStore> {
    future: St::Reserve,
    add: Held,
    cost: Nanos,
}

/// The answer to [`Reservation::raise`].
pub(crate) enum Raise<St: BudgetStore> {
    Done(Result<(), CostError>),
    Pending(PendingRaise<St>),
}

impl<St: BudgetStore> Reservation<St> {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> Option<&ClientEntry<St::Client>> {
        self.client.as_deref()
    }

    /// The requested model's name and its provider in the price table.
    fn requested(&self) -> (&str, Option<&str>) {
        match &self.requested {
            Requested::Table(i) => match self.ledger.config.prices.entry(*i) {
                Some((name, info)) => (name, info.provider.as_deref()),
                None => ("(unknown)", None),
            },
            Requested::Other(name) => (name, None),
        }
    }

    /// How `model` is priced: the request's own quote if it is the model asked for.
    fn quote(&self, model: &str) -> Quote {
        match &self.requested {
            Requested::Table(i) if self.requested().0 == model => self.ledger.quote_entry(Some(*i)),
            _ => self.ledger.quote(model),
        }
    }

    /// Reserves the request's worst case at the model asked for, on the budgets of that
    /// model's provider in the price table.
    pub(crate) fn reserve_requested(&self) -> Raise<St> {
        self.raise(self.requested().1, self.cost)
    }

    /// Raises what the request holds on every budget that applies to `provider` (global,
    /// the client's, that provider's) to at least `cost`; all or nothing. A raise that adds
    /// nothing asks no store.
    pub(crate) fn raise(&self, provider: Option<&str>, cost: Nanos) -> Raise<St> {
        let ledger = &self.ledger;
        let mut state = self.state();
        if !state.open {
            return Raise::Done(Ok(()));
        }
        let held = &state.held;
        let mut add = Held {
            at: held.at,
            worst: cost,
            ..Held::default()
        };
        for i in 0..ledger.config.budgets.len() {
            if held.amounts[i] < cost && ledger.applies(i, provider, self.client.is_some()) {
                add.amounts[i] = cost - held.amounts[i];
            }
        }
        if add.amounts == [0; MAX_BUDGETS] {
            state.held.grant(&add);
            return Raise::Done(Ok(()));
        }
        let budgets = &ledger.config.budgets;
        let holds = budgets
            .iter()
            .enumerate()
            .filter(|(i, _)| add.amounts[*i] > 0);
        let mut future = ledger.store.reserve(holds.map(|(i, b)| Hold {
            counter: CounterRef {
                budget: i,
                window: b.window.id(add.at),
                client: ledger.client_ref(i, self.client()),
            },
            amount: add.amounts[i],
            limit: ledger.limit(i, self.client()),
        }));
        match poll_now(&mut future) {
            Some(Ok(())) => {
                state.held.grant(&add);
                Raise::Done(Ok(()))
            }
            Some(Err(short)) => Raise::Done(Err(self.refusal(short, cost))),
            None => Raise::Pending(PendingRaise { future, add, cost }),
        }
    }

    /// Records the store's late answer to a raise.
    pub(crate) fn finish_raise(
        &self,
        raise: &PendingRaise<St>,
        answer: Result<(), Shortfall>,
    ) -> Result<(), CostError> {
        if let Err(short) = answer {
            return Err(self.refusal(short, raise.cost));
        }
        let mut state = self.state();
        if state.open {
            state.held.grant(&raise.add);
        } else {
            // the request ended while the store answered: give it back at once
            drop(state);
            drop(self.ledger.release(&raise.add, self.client()));
        }
        Ok(())
    }

    fn refusal(&self, short: Shortfall, cost: Nanos) -> CostError {
        self.ledger
            .exceeded(short.budget, self.client(), short.spent, cost)
    }

    /// Ends the reservation: what it held, or `None` if it had already ended.
    fn close(&self) -> Option<Held> {
        let mut state = self.state();
        let open = std::mem::replace(&mut state.open, false);
        open.then_some(state.held)
    }

    /// Ends the reservation without a response: releases everything it holds.
    pub(crate) fn release(&self) -> Option<St::Settle> {
        let held = self.close()?;
        Some(self.ledger.release(&held, self.client()))
    }

    /// Ends the reservation with a response: bills it at the provider and model it names
    /// and releases the rest. The store's work is started; the future reports the alerts.
    /// Also returns what was charged.
    pub(crate) fn bill<R: CostResponse>(&self, resp: &R) -> Option<(Nanos, St::Settle)> {
        let held = self.close()?;
        let (requested, table_provider) = self.requested();
        let model = resp.model().unwrap_or(requested);
        let served = Served {
            provider: resp.provider().or(table_provider).unwrap_or("unknown"),
            model,
            quote: self.quote(model),
            tokens: resp.tokens(),
            worst: Some(self.worst),
        };
        Some(self.ledger.charge(&served, &held, self.client()))
    }

    /// Reports the alerts a settlement set off.
    pub(crate) fn alert(&self, alerts: &[Alerted]) {
        if !alerts.is_empty() {
            self.ledger.alert(alerts, self.client());
        }
    }
}

/// The meter's part of an attempt below it: the attempt's worst case is the request's worst
/// case priced at the attempt's model.
impl<St: BudgetStore> AttemptBudget for Reservation<St> {
    fn before_attempt(&self, provider: &str, model: &str) -> AttemptCheck {
        // the model asked for and no provider budget: what is held already covers it
        if self.requested().0 == model && !self.ledger.provider_budgets {
            return AttemptCheck::ready(Ok(()));
        }
        let Some(cost) = self.quote(model).worst(self.worst) else {
            return AttemptCheck::ready(Err(CostError::Unpriced(model.to_owned()).into()));
        };
        if let Err(e) = self.ledger.check_request_cost(cost) {
            return AttemptCheck::ready(Err(e.into()));
        }
        match self.raise(Some(provider), cost) {
            Raise::Done(result) => AttemptCheck::ready(result.map_err(AttemptRefused::from)),
            Raise::Pending(mut raise) => {
                let Some(me) = self.me.upgrade() else {
                    return AttemptCheck::ready(Ok(()));
                };
                AttemptCheck::pending(async move {
                    let answer = Pin::new(&mut raise.future).await;
                    me.finish_raise(&raise, answer)
                        .map_err(AttemptRefused::from)
                })
            }
        }
    }
}

/// How a response future holds its reservation: in place, or shared with the request's
/// attempt hook. Dropping it (the request ended or was cancelled) releases what is still
/// held.
// inline on purpose: a request without an attempt hook allocates nothing
#[allow(clippy::large_enum_variant)]
pub(crate) enum Handle<St: BudgetStore> {
    Inline(Reservation<St>),
    Shared(Arc<Reservation<St>>),
}

impl<St: BudgetStore> Handle<St> {
    /// A request's reservation, holding nothing yet, in place or `shared` (behind an `Arc`
    /// an attempt hook can hold); its worst case priced at the model asked for. Refused if
    /// that model has no price (and unknown models are refused) or it costs more than the
    /// per-request limit.
    pub(crate) fn new<Req: CostRequest>(
        ledger: &Ledger<St>,
        req: &Req,
        shared: bool,
    ) -> Result<Handle<St>, CostError> {
        let lane = ledger.lane();
        let ledger = &**lane;
        let name = req.model();
        let quote = ledger.quote(name);
        let worst = req.worst_case();
        let Some(cost) = quote.worst(worst) else {
            return Err(CostError::Unpriced(name.to_owned()));
        };
        ledger.check_request_cost(cost)?;
        let requested = match quote.index {
            Some(i) => Requested::Table(i),
            None => Requested::Other(Arc::from(name)),
        };
        let client = req.client().map(|key| ledger.client(key));
        let at = ledger.now();
        let make = |me| Reservation {
            ledger: lane,
            client,
            worst,
            requested,
            cost,
            state: Mutex::new(State {
                held: Held {
                    at,
                    worst: cost,
                    ..Held::default()
                },
                open: true,
            }),
            me,
        };
        Ok(if shared {
            Handle::Shared(Arc::new_cyclic(|me| make(me.clone())))
        } else {
            Handle::Inline(make(Weak::new()))
        })
    }
}

impl<St: BudgetStore> Deref for Handle<St> {
    type Target = Reservation<St>;

    fn deref(&self) -> &Reservation<St> {
        match self {
            Handle::Inline(r) => r,
            Handle::Shared(r) => r,
        }
    }
}

impl<St: BudgetStore> Drop for Handle<St> {
    fn drop(&mut self) {
        // a settlement the store does later is still applied (see `BudgetStore`)
        drop(self.release());
    }
}

/// Polls a future once, without a task to wake: its answer if it has one now.
pub(crate) fn poll_now<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    match Pin::new(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

impl<St: BudgetStore> PendingRaise<St> {
    /// Polls the store's answer.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Shortfall>> {
        Pin::new(&mut self.future).poll(cx)
    }
}
