//! The [`Ledger`]: prices, budgets and the running totals, shared by every meter.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;

use towerguard_outcome::{Clock, Lane, Lanes};

use crate::budget::{Budget, MAX_BUDGETS, Scope};
use crate::clients::{ClientEntry, Clients};
use crate::error::CostError;
use crate::prices::{Nanos, Price, PriceTable, Tokens};
use crate::request::WorstCase;
use crate::store::{Alerted, BudgetStore, ClientRef, CounterRef, MemoryStore, Settlement};
use crate::totals::{Charge, Rows, Spend, StatsRow};

/// Clients a ledger tracks unless told otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// The most `max_clients` can be.
pub(crate) const MAX_MAX_CLIENTS: usize = 100_000_000;

/// What to do with a model the price table does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownModel {
    /// Refuse (default: never a silent wrong number). A request for it is refused with
    /// [`CostError::Unpriced`], an attempt on it with `AttemptRefusal::Unpriced`. A response
    /// that names it anyway (it was served) is charged what was reserved for the request
    /// and counted in [`Spend::unpriced`].
    #[default]
    Reject,
    /// Count its tokens at zero cost (local models).
    Free,
    /// Use this price.
    Price(Price),
}

/// A copy of the ledger's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerSnapshot {
    /// Everything.
    pub total: Spend,
    /// Per provider, by name.
    pub providers: Vec<(Arc<str>, Spend)>,
    /// Per model, by name.
    pub models: Vec<(Arc<str>, Spend)>,
    /// Per client key, by name; clients forgotten or past the cap are summed as `"(other)"`.
    pub clients: Vec<(Arc<str>, Spend)>,
}

/// A budget alert: spending reached the budget's alert share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetAlert {
    /// Which budget (`"global daily"`, `"client tenant-42 monthly"`, ...).
    pub budget: String,
    /// Spent (and reserved) so far in the window.
    pub spent: Nanos,
    /// The limit.
    pub limit: Nanos,
}

type AlertHook = Box<dyn Fn(&BudgetAlert) + Send + Sync>;

/// What a request holds on each budget (by the budget's place in the ledger's list).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Held {
    pub(crate) amounts: [Nanos; MAX_BUDGETS],
    /// The clock's time when the request was admitted: each budget's window then is where
    /// the request's holds and cost count.
    pub(crate) at: u64,
    /// The largest worst case quoted for the request (what an unmetered or unpriced answer
    /// is charged).
    pub(crate) worst: Nanos,
}

impl Held {
    /// Adds a granted raise.
    pub(crate) fn grant(&mut self, add: &Held) {
        for (held, add) in self.amounts.iter_mut().zip(add.amounts) {
            *held = held.saturating_add(add);
        }
        self.worst = self.worst.max(add.worst);
    }
}

/// How a model is priced under the ledger's unknown-model policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quote {
    /// Its price-table entry.
    pub(crate) index: Option<usize>,
    /// Its price; `None` if it has none and unknown models are refused.
    pub(crate) price: Option<Price>,
    /// The output a request without `max_tokens` may use.
    pub(crate) max_output: u64,
}

impl Quote {
    /// The worst case of a request at this price (`None`: refused).
    pub(crate) fn worst(&self, w: WorstCase) -> Option<Nanos> {
        let output = w.max_output_tokens.unwrap_or(self.max_output);
        self.price
            .map(|p| p.cost(Tokens::new(w.input_tokens, output)))
    }
}

/// What a response (or [`Ledger::record_usage`]) says was served.
pub(crate) struct Served<'a> {
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
    /// How `model` is priced.
    pub(crate) quote: Quote,
    pub(crate) tokens: Option<Tokens>,
    /// The request's worst case, priced at the serving model if the usage is missing.
    pub(crate) worst: Option<WorstCase>,
}

/// A ledger's settings, as the builder collects them.
pub(crate) struct Config {
    pub(crate) prices: PriceTable,
    pub(crate) unknown: UnknownModel,
    pub(crate) default_max_output: u64,
    pub(crate) max_request_cost: Option<Nanos>,
    pub(crate) budgets: Vec<Budget>,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) on_alert: Option<AlertHook>,
    pub(crate) max_clients: usize,
}

pub(crate) struct Inner<St: BudgetStore> {
    pub(crate) config: Config,
    pub(crate) store: St,
    needs_clock: bool,
    /// Whether a budget limits one provider (an attempt elsewhere may then need more held).
    pub(crate) provider_budgets: bool,
    rows: Rows,
    clients: Clients<St::Client>,
}

/// Prices, budgets and totals, shared by every [`CostMeterLayer`](crate::CostMeterLayer)
/// made from it. Cheap to clone: clones share everything.
///
/// Generic over where budget spend lives ([`BudgetStore`], default [`MemoryStore`]).
///
/// ```
/// use towerguard_cost_meter::{usd, Budget, Ledger, PriceTable, Tokens};
///
/// let ledger = Ledger::builder()
///     .prices(PriceTable::builtin())
///     .budget(Budget::global(usd(50.0)).daily().alert_at(0.8))
///     .budget(Budget::per_client(usd(2.0)).daily())
///     .build()
///     .unwrap();
/// let cost = ledger.price_of("gpt-4o-mini").unwrap().cost(Tokens::new(1_000_000, 0));
/// assert_eq!(cost, usd(0.15));
/// ```
pub struct Ledger<St: BudgetStore = MemoryStore> {
    /// Each metered call holds its thread's lane for as long as it runs, so calls on
    /// different threads never write one reference count.
    lanes: Lanes<Inner<St>>,
}

impl<St: BudgetStore> Clone for Ledger<St> {
    fn clone(&self) -> Self {
        Self {
            lanes: self.lanes.clone(),
        }
    }
}

impl<St: BudgetStore> fmt::Debug for Ledger<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("models", &self.inner().config.prices.len())
            .field("budgets", &self.inner().config.budgets)
            .finish_non_exhaustive()
    }
}

impl<St: BudgetStore> Ledger<St> {
    /// The ledger of a checked configuration and a prepared store.
    pub(crate) fn new(config: Config, store: St) -> Self {
        let budgets = &config.budgets;
        let inner = Inner {
            needs_clock: budgets.iter().any(|b| b.window != crate::Window::Total),
            provider_budgets: budgets
                .iter()
                .any(|b| matches!(b.scope, Scope::Provider(_))),
            clients: Clients::new(config.max_clients, store.client("(other)")),
            rows: Rows::new(config.prices.len()),
            config,
            store,
        };
        Self {
            lanes: Lanes::new(Arc::new(inner)),
        }
    }

    /// The shared state.
    pub(crate) fn inner(&self) -> &Inner<St> {
        self.lanes.shared()
    }

    /// The current thread's handle on the shared state, for a call to hold.
    pub(crate) fn lane(&self) -> Arc<Lane<Inner<St>>> {
        self.lanes.this_thread()
    }

    /// The price of `model`, or the unknown-model price; `None` if it would be refused.
    pub fn price_of(&self, model: &str) -> Option<Price> {
        self.inner().quote(model).price
    }

    /// Rows of (provider, model, totals), sorted by provider and model.
    pub fn stats(&self) -> Vec<StatsRow> {
        self.inner().rows.rows()
    }

    /// Totals: overall, per provider, per model and per client key.
    pub fn snapshot(&self) -> LedgerSnapshot {
        let mut snap = LedgerSnapshot::default();
        for r in self.stats() {
            snap.total.add(&r.spend);
            add_to(&mut snap.providers, &r.provider, &r.spend);
            add_to(&mut snap.models, &r.model, &r.spend);
        }
        for c in self.inner().clients.all() {
            let spend = c.totals.read();
            if spend.requests > 0 {
                add_to(&mut snap.clients, &c.key, &spend);
            }
        }
        snap.clients.sort_by(|a, b| a.0.cmp(&b.0));
        snap
    }

    /// Client keys tracked now (at most `max_clients`; those past it share `"(other)"`).
    pub fn tracked_clients(&self) -> usize {
        self.inner().clients.len()
    }

    /// Spent and reserved in the current window of budget `index` (for `member`, a client
    /// key, with a per-client budget); 0 for no such budget.
    pub async fn budget_spent(&self, index: usize, member: Option<&str>) -> Nanos {
        let Some(b) = self.inner().config.budgets.get(index) else {
            return 0;
        };
        let window = b.window.id(self.inner().now());
        let entry = match member {
            Some(key) if b.scope == Scope::PerClient => {
                Some(self.inner().clients.find(key).unwrap_or_else(|| {
                    Arc::new(ClientEntry::new(key, self.inner().store.client(key)))
                }))
            }
            _ => None,
        };
        let counter = CounterRef {
            budget: index,
            window,
            client: entry.as_deref().map(|e| ClientRef {
                key: &e.key,
                state: &e.budget,
            }),
        };
        self.inner().store.spent(counter).await
    }

    /// Clears every total, budget counter and tracked client (open reservations are still
    /// released when their requests end).
    pub async fn reset(&self) {
        let inner = self.inner();
        inner.rows.clear(None);
        inner.clients.clear(inner.store.client("(other)"));
        let all: Vec<usize> = (0..inner.config.budgets.len()).collect();
        inner.store.reset(&all).await;
    }

    /// Clears the totals of one provider, and its provider budgets.
    pub async fn reset_provider(&self, provider: &str) {
        self.inner().rows.clear(Some(provider));
        let budgets: Vec<usize> = (0..self.inner().config.budgets.len())
            .filter(
                |&i| matches!(&self.inner().config.budgets[i].scope, Scope::Provider(p) if **p == *provider),
            )
            .collect();
        self.inner().store.reset(&budgets).await;
    }

    /// Records a call billed outside a meter (e.g. a stream the caller metered itself): its
    /// cost goes to the rows and the budgets (global, the client's, the provider's) exactly
    /// as a metered call's, with alerts; it was spent, so it is charged even past a limit
    /// (later requests are refused). Returns the cost; a model without a price is
    /// [`CostError::Unpriced`] when unknown models are refused.
    pub async fn record_usage(
        &self,
        provider: &str,
        model: &str,
        client: Option<&str>,
        tokens: Tokens,
    ) -> Result<Nanos, CostError> {
        let quote = self.inner().quote(model);
        if quote.price.is_none() {
            return Err(CostError::Unpriced(model.to_owned()));
        }
        let client = client.map(|key| self.inner().client(key));
        let served = Served {
            provider,
            model,
            quote,
            tokens: Some(tokens),
            worst: None,
        };
        let held = Held {
            at: self.inner().now(),
            ..Held::default()
        };
        let (cost, settle) = self.inner().charge(&served, &held, client.as_deref());
        let alerts = settle.await;
        self.inner().alert(&alerts, client.as_deref());
        Ok(cost)
    }
}

impl<St: BudgetStore> Inner<St> {
    /// The clock's time, or 0 when no budget has a window.
    pub(crate) fn now(&self) -> u64 {
        if self.needs_clock {
            self.config.clock.unix_nanos()
        } else {
            0
        }
    }

    /// Each budget's window now.
    pub(crate) fn windows_now(&self) -> [u64; MAX_BUDGETS] {
        let now = self.now();
        let mut windows = [0; MAX_BUDGETS];
        for (w, b) in windows.iter_mut().zip(&self.config.budgets) {
            *w = b.window.id(now);
        }
        windows
    }

    /// Whether budget `i` limits a call served by `provider` (if known) for a request with
    /// or without a client key.
    pub(crate) fn applies(&self, i: usize, provider: Option<&str>, client: bool) -> bool {
        match &self.config.budgets[i].scope {
            Scope::Global => true,
            Scope::PerClient => client,
            Scope::Provider(p) => provider == Some(&**p),
        }
    }

    /// Whether a request can be refused by anything an attempt changes.
    pub(crate) fn has_limits(&self) -> bool {
        !self.config.budgets.is_empty() || self.config.max_request_cost.is_some()
    }

    /// Refuses a worst case above the per-request limit.
    pub(crate) fn check_request_cost(&self, worst: Nanos) -> Result<(), CostError> {
        match self.config.max_request_cost {
            Some(max) if worst > max => Err(CostError::BudgetExceeded {
                budget: "per-request".into(),
                limit: max,
                spent: 0,
                requested: worst,
            }),
            _ => Ok(()),
        }
    }

    /// How `model` is priced.
    pub(crate) fn quote(&self, model: &str) -> Quote {
        self.quote_entry(self.config.prices.lookup(model))
    }

    /// How the price-table entry `index` (or a model the table does not know) is priced.
    pub(crate) fn quote_entry(&self, index: Option<usize>) -> Quote {
        let config = &self.config;
        match index.and_then(|i| config.prices.entry(i)) {
            Some((_, info)) => Quote {
                index,
                price: Some(info.price),
                max_output: info.max_output_tokens.unwrap_or(config.default_max_output),
            },
            None => Quote {
                index: None,
                price: match config.unknown {
                    UnknownModel::Reject => None,
                    UnknownModel::Free => Some(Price::FREE),
                    UnknownModel::Price(p) => Some(p),
                },
                max_output: config.default_max_output,
            },
        }
    }

    /// The tracked entry of a client key (made if new; `"(other)"` past the cap).
    pub(crate) fn client(&self, key: &str) -> Arc<ClientEntry<St::Client>> {
        // the clock is read once, and only if a full shard must look for a client to forget
        let windows = OnceCell::new();
        self.clients.get(
            key,
            || self.store.client(key),
            |c| {
                let windows = windows.get_or_init(|| self.windows_now());
                self.store.client_is_idle(c, windows)
            },
        )
    }

    /// The client of budget `i`'s counter: `client` for a per-client budget.
    pub(crate) fn client_ref<'a>(
        &self,
        i: usize,
        client: Option<&'a ClientEntry<St::Client>>,
    ) -> Option<ClientRef<'a, St::Client>> {
        if !matches!(self.config.budgets[i].scope, Scope::PerClient) {
            return None;
        }
        client.map(|e| ClientRef {
            key: &e.key,
            state: &e.budget,
        })
    }

    /// The client key budget `i` counts `client` under: its key for a per-client budget.
    fn member<'a>(&self, i: usize, client: Option<&'a ClientEntry<St::Client>>) -> Option<&'a str> {
        self.client_ref(i, client).map(|c| c.key)
    }

    /// Budget `i`'s limit for `client`: its own limit there, if the budget gives it one.
    pub(crate) fn limit(&self, i: usize, client: Option<&ClientEntry<St::Client>>) -> Nanos {
        let b = &self.config.budgets[i];
        match client {
            // only per-client budgets have limits of their own (checked when built)
            Some(c) if !b.own_limits.is_empty() => b.limit_of(Some(&c.key)),
            _ => b.limit,
        }
    }

    /// Bills a served call: prices it at the model that served, adds it to its row and
    /// client, and settles every budget: those that apply to the serving provider and the
    /// client get the cost, the rest of what `held` reserved is released.
    pub(crate) fn charge(
        &self,
        served: &Served<'_>,
        held: &Held,
        client: Option<&ClientEntry<St::Client>>,
    ) -> (Nanos, St::Settle) {
        let quote = served.quote;
        let (cost, unmetered, unpriced) = match (served.tokens, quote.price) {
            (Some(t), Some(p)) => (p.cost(t), false, false),
            (None, Some(_)) => {
                let worst_here = served.worst.and_then(|w| quote.worst(w)).unwrap_or(0);
                (held.worst.max(worst_here), true, false)
            }
            (Some(_), None) => (held.worst, false, true),
            (None, None) => (held.worst, true, true),
        };
        let charge = Charge {
            tokens: served.tokens.unwrap_or_default(),
            cost,
            unmetered,
            unpriced,
        };
        self.rows
            .add(quote.index, served.provider, served.model, &charge);
        if let Some(c) = client {
            c.totals.add(&charge);
        }
        if unmetered || unpriced {
            tracing::warn!(
                provider = served.provider,
                model = served.model,
                cost_usd = cost as f64 / 1e9,
                "charged the reserved worst case: {}",
                if unmetered {
                    "no usage reported"
                } else {
                    "the model has no price"
                }
            );
        }
        let provider = Some(served.provider);
        let settle = self.settle(held, client, |i| {
            self.applies(i, provider, client.is_some()).then_some(cost)
        });
        (cost, settle)
    }

    /// Gives back everything `held` reserved.
    pub(crate) fn release(
        &self,
        held: &Held,
        client: Option<&ClientEntry<St::Client>>,
    ) -> St::Settle {
        self.settle(held, client, |_| None)
    }

    /// Settles each budget that `held` reserved on or that `charged` gives a cost for: to
    /// that cost, or to 0, in the windows the request was admitted in.
    fn settle(
        &self,
        held: &Held,
        client: Option<&ClientEntry<St::Client>>,
        charged: impl Fn(usize) -> Option<Nanos>,
    ) -> St::Settle {
        let budgets = &self.config.budgets;
        let items = budgets.iter().enumerate().filter_map(|(i, b)| {
            let actual = charged(i);
            (actual.is_some() || held.amounts[i] > 0).then(|| Settlement {
                counter: CounterRef {
                    budget: i,
                    window: b.window.id(held.at),
                    client: self.client_ref(i, client),
                },
                reserved: held.amounts[i],
                actual: actual.unwrap_or(0),
                alert_at: b
                    .alert_at
                    .map(|share| share_of(share, self.limit(i, client))),
            })
        });
        self.store.settle(items)
    }

    /// The refusal for budget `i` when it could not hold `requested`.
    pub(crate) fn exceeded(
        &self,
        i: usize,
        client: Option<&ClientEntry<St::Client>>,
        spent: Nanos,
        requested: Nanos,
    ) -> CostError {
        let b = &self.config.budgets[i];
        let member = self.member(i, client);
        let budget = b.describe(member);
        tracing::warn!(budget = budget.as_str(), "request refused: budget exceeded");
        CostError::BudgetExceeded {
            budget,
            limit: self.limit(i, client),
            spent,
            requested,
        }
    }

    /// Tells the alert hook and `tracing` about budgets that reached their alert share.
    pub(crate) fn alert(&self, alerts: &[Alerted], client: Option<&ClientEntry<St::Client>>) {
        for a in alerts {
            let Some(b) = self.config.budgets.get(a.budget) else {
                continue;
            };
            let member = self.member(a.budget, client);
            let alert = BudgetAlert {
                budget: b.describe(member),
                spent: a.spent,
                limit: self.limit(a.budget, client),
            };
            tracing::warn!(
                budget = alert.budget.as_str(),
                spent_usd = a.spent as f64 / 1e9,
                limit_usd = alert.limit as f64 / 1e9,
                "budget alert threshold reached"
            );
            if let Some(hook) = &self.config.on_alert {
                hook(&alert);
            }
        }
    }
}

/// The spend at which a budget of `limit` alerts at `share`.
fn share_of(share: f64, limit: Nanos) -> Nanos {
    (share * limit as f64).ceil().min(u64::MAX as f64) as Nanos
}

fn add_to(list: &mut Vec<(Arc<str>, Spend)>, key: &Arc<str>, s: &Spend) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some((_, t)) => t.add(s),
        None => list.push((key.clone(), *s)),
    }
}
