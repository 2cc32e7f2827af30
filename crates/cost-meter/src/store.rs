//! Where budget spend lives: the [`BudgetStore`] trait and the in-memory [`MemoryStore`].

use std::future::{Future, Ready, ready};

use towerguard_outcome::ConfigError;

use crate::budget::{Budget, Counter, MAX_BUDGETS, Scope};
use crate::prices::Nanos;

/// One budget counter: budget number `budget` (its place in the ledger's list), in window
/// `window` ([`Window::id`](crate::Window::id)), and for per-client budgets the client.
#[derive(Debug)]
pub struct CounterRef<'a, C> {
    /// The budget's place in the ledger's list of budgets.
    pub budget: usize,
    /// The window number.
    pub window: u64,
    /// The client, for a per-client budget.
    pub client: Option<ClientRef<'a, C>>,
}

/// A client of a per-client budget: its key and what the store keeps for it
/// ([`BudgetStore::Client`]).
#[derive(Debug)]
pub struct ClientRef<'a, C> {
    /// The client key.
    pub key: &'a str,
    /// The store's state for this client.
    pub state: &'a C,
}

/// Reserve `amount` on a counter if its total stays within `limit`.
#[derive(Debug)]
pub struct Hold<'a, C> {
    /// Which counter.
    pub counter: CounterRef<'a, C>,
    /// Added to the counter.
    pub amount: Nanos,
    /// The budget's limit: the counter's total (spent and reserved) may not pass it.
    pub limit: Nanos,
}

/// Replace a reservation by the actual spend.
#[derive(Debug)]
pub struct Settlement<'a, C> {
    /// Which counter; its window is the one the request was admitted (and reserved) in.
    /// The actual spend counts there, or in the counter's current window if it has moved on
    /// since.
    pub counter: CounterRef<'a, C>,
    /// What was reserved (0 for usage recorded without a reservation).
    pub reserved: Nanos,
    /// What was spent (0 releases the reservation).
    pub actual: Nanos,
    /// The total at which the budget alerts, once per window.
    pub alert_at: Option<Nanos>,
}

/// A reservation refused: the hold on budget `budget` would pass its limit; its counter's
/// total was `spent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// The budget (its place in the ledger's list) whose hold did not fit.
    pub budget: usize,
    /// That counter's total (spent and reserved).
    pub spent: Nanos,
}

/// A budget reached its alert share for the first time in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alerted {
    /// The budget's place in the ledger's list.
    pub budget: usize,
    /// Its counter's total after the settlement.
    pub spent: Nanos,
}

/// Where budget spend lives: [`MemoryStore`] in this process, or a store shared by a fleet
/// of gateways (e.g. Redis) behind the same trait.
///
/// A request makes one [`reserve`](Self::reserve) call before it is sent (all its budgets
/// at once: global, its client's, its provider's), one more for each fallback attempt that
/// costs more than what it holds, and one [`settle`](Self::settle) call when it ends. A
/// networked store answers each with one round trip: e.g. one Lua script that checks and
/// adds every hold or none (`INCRBY` per key `budget:{n}:{client}:{window}`, with an expiry
/// past the window's end), and one that applies every settlement (`INCRBY actual-reserved`
/// on the same key) and reports the alerts whose threshold the new total reached first (`SET NX` on an alert key per window).
///
/// Rules every store follows:
/// - [`reserve`](Self::reserve) is all or nothing: if one hold does not fit, none is kept.
///   Concurrent requests can never together reserve past a limit.
/// - Work starts when the method is called; the future only reports the answer. The meter
///   may drop a settle future without polling it (a cancelled request releases its
///   reservation from `Drop`), and it must still be applied. A reservation whose future is
///   dropped before it answers is not released by the meter (it cannot know whether it was
///   granted): a networked store should expire it.
/// - The in-memory answers are ready at once (`std::future::Ready`): the meter then neither
///   waits nor allocates.
pub trait BudgetStore: Send + Sync + 'static {
    /// What the ledger keeps for each client key it tracks, handed back in every
    /// [`CounterRef`] of that client (the memory store: the client's counters; a networked
    /// store: nothing). The ledger bounds how many it keeps, and forgets one only when
    /// [`client_is_idle`](Self::client_is_idle) says so and no request of it is in flight.
    type Client: Send + Sync + 'static;
    /// The answer to [`reserve`](Self::reserve).
    type Reserve: Future<Output = Result<(), Shortfall>> + Send + Unpin + 'static;
    /// The answer to [`settle`](Self::settle): the alerts it set off (an empty `Vec` does not
    /// allocate).
    type Settle: Future<Output = Vec<Alerted>> + Send + Unpin + 'static;
    /// The answer to [`spent`](Self::spent).
    type Spent: Future<Output = Nanos> + Send + 'static;
    /// The answer to [`reset`](Self::reset).
    type Reset: Future<Output = ()> + Send + 'static;

    /// Called once when the ledger is built, with its budgets (already checked).
    fn prepare(&mut self, budgets: &[Budget]) -> Result<(), ConfigError> {
        let _ = budgets;
        Ok(())
    }

    /// The state of a client key the ledger starts tracking.
    fn client(&self, key: &str) -> Self::Client;

    /// Whether a tracked client may be forgotten: nothing spent or reserved in the current
    /// window of any per-client budget (`windows[n]` is budget `n`'s window now).
    fn client_is_idle(&self, client: &Self::Client, windows: &[u64]) -> bool;

    /// Adds every hold (at most [`MAX_BUDGETS`], one per budget) to its counter if each
    /// stays within its limit, or none.
    fn reserve<'a>(&self, holds: impl IntoIterator<Item = Hold<'a, Self::Client>>)
    -> Self::Reserve;

    /// Applies every settlement; reports the budgets that reached their alert total for the
    /// first time in their window.
    fn settle<'a>(
        &self,
        settlements: impl IntoIterator<Item = Settlement<'a, Self::Client>>,
    ) -> Self::Settle;

    /// A counter's total (spent and reserved) in its window.
    fn spent(&self, counter: CounterRef<'_, Self::Client>) -> Self::Spent;

    /// Forgets the spend of these budgets (every client, every window). Open reservations
    /// stay until their requests settle.
    fn reset(&self, budgets: &[usize]) -> Self::Reset;
}

/// Budget counters in this process's memory: one atomic counter per global or provider
/// budget, each on its own cache line, and one per per-client budget in each tracked
/// client's state. A reservation is one compare-and-swap per counter.
#[derive(Debug, Default)]
pub struct MemoryStore {
    shared: Box<[Padded]>,
    /// Budget number -> its counter's place in a client's counters, for per-client budgets.
    client_slot: [Option<usize>; MAX_BUDGETS],
    client_budgets: usize,
}

/// A counter, alone on its cache line: requests on other threads (of any client) write
/// other lines.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(Counter);

/// A client's counters in a [`MemoryStore`], one per per-client budget, each on its own
/// cache line.
#[derive(Debug)]
pub struct MemoryClient(Box<[Padded]>);

impl MemoryStore {
    fn counter<'a>(&'a self, c: &CounterRef<'a, MemoryClient>) -> Option<&'a Counter> {
        match &c.client {
            Some(client) => client
                .state
                .0
                .get(self.client_slot.get(c.budget).copied()??)
                .map(|p| &p.0),
            None => self.shared.get(c.budget).map(|p| &p.0),
        }
    }
}

impl BudgetStore for MemoryStore {
    type Client = MemoryClient;
    type Reserve = Ready<Result<(), Shortfall>>;
    type Settle = Ready<Vec<Alerted>>;
    type Spent = Ready<Nanos>;
    type Reset = Ready<()>;

    fn prepare(&mut self, budgets: &[Budget]) -> Result<(), ConfigError> {
        self.shared = budgets.iter().map(|_| Padded::default()).collect();
        self.client_budgets = 0;
        for (i, b) in budgets.iter().enumerate() {
            if b.scope == Scope::PerClient
                && let Some(slot) = self.client_slot.get_mut(i)
            {
                *slot = Some(self.client_budgets);
                self.client_budgets += 1;
            }
        }
        Ok(())
    }

    fn client(&self, _key: &str) -> MemoryClient {
        MemoryClient(
            (0..self.client_budgets)
                .map(|_| Padded::default())
                .collect(),
        )
    }

    fn client_is_idle(&self, client: &MemoryClient, windows: &[u64]) -> bool {
        self.client_slot
            .iter()
            .zip(windows)
            .filter_map(|(slot, w)| Some((&client.0.get((*slot)?)?.0, *w)))
            .all(|(counter, window)| counter.spent(window) == 0)
    }

    fn reserve<'a>(
        &self,
        holds: impl IntoIterator<Item = Hold<'a, MemoryClient>>,
    ) -> Self::Reserve {
        // what this call took, to give back if a later hold does not fit
        let mut taken: [Option<(&Counter, u64, Nanos)>; MAX_BUDGETS] = [None; MAX_BUDGETS];
        for (i, h) in holds.into_iter().enumerate() {
            let Some(c) = self.counter(&h.counter) else {
                continue;
            };
            let window = h.counter.window;
            if let Err(spent) = c.try_reserve(window, h.amount, h.limit) {
                for (c, window, amount) in taken.into_iter().flatten() {
                    c.settle(window, amount, 0);
                }
                let budget = h.counter.budget;
                return ready(Err(Shortfall { budget, spent }));
            }
            if let Some(slot) = taken.get_mut(i) {
                *slot = Some((c, window, h.amount));
            }
        }
        ready(Ok(()))
    }

    fn settle<'a>(
        &self,
        settlements: impl IntoIterator<Item = Settlement<'a, MemoryClient>>,
    ) -> Self::Settle {
        let mut alerts = Vec::new();
        for s in settlements {
            let Some(c) = self.counter(&s.counter) else {
                continue;
            };
            let window = s.counter.window;
            let total = c.settle(window, s.reserved, s.actual);
            if s.actual > 0 && s.alert_at.is_some_and(|at| total >= at) && c.first_alert(window) {
                alerts.push(Alerted {
                    budget: s.counter.budget,
                    spent: total,
                });
            }
        }
        ready(alerts)
    }

    fn spent(&self, counter: CounterRef<'_, MemoryClient>) -> Self::Spent {
        ready(
            self.counter(&counter)
                .map_or(0, |c| c.spent(counter.window)),
        )
    }

    fn reset(&self, budgets: &[usize]) -> Self::Reset {
        for &b in budgets {
            if let Some(p) = self.shared.get(b) {
                p.0.clear();
            }
        }
        ready(())
    }
}
