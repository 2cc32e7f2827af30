//! The [`Ledger`]: prices, budgets and the running totals, shared by every meter.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::budget::{
    Budget, BudgetKey, BudgetStore, Clock, CoarseClock, MemoryStore, Period, Scope, Store,
};
use crate::error::CostError;
use crate::lanes::RowTotals;
use crate::prices::{Nanos, Price, PriceTable, Tokens};

/// Nano-dollars from US dollars (for configuration; amounts are integers from here on).
pub fn usd(dollars: f64) -> Nanos {
    if dollars.is_finite() && dollars > 0.0 {
        (dollars * 1e9).round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// What to do with a model the price table does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownModel {
    /// Refuse the request with [`CostError::UnknownModel`] (default: never a silent wrong
    /// number).
    #[default]
    Reject,
    /// Count its tokens at zero cost.
    Free,
    /// Use this price.
    Price(Price),
}

/// Totals of one row of the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    /// Billed calls.
    pub requests: u64,
    /// Tokens by part.
    pub tokens: Tokens,
    /// Cost, in nano-dollars.
    pub cost: Nanos,
}

impl Spend {
    pub(crate) fn add(&mut self, o: &Spend) {
        self.requests += o.requests;
        self.tokens.input += o.tokens.input;
        self.tokens.output += o.tokens.output;
        self.tokens.cached_input += o.tokens.cached_input;
        self.tokens.cache_write += o.tokens.cache_write;
        self.cost += o.cost;
    }

    /// The cost in US dollars (for display only).
    pub fn cost_usd(&self) -> f64 {
        self.cost as f64 / 1e9
    }
}

/// One set of running totals.
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    input: AtomicU64,
    output: AtomicU64,
    cached_input: AtomicU64,
    cache_write: AtomicU64,
    cost: AtomicU64,
}

impl Counts {
    fn all(&self) -> [&AtomicU64; 6] {
        [
            &self.requests,
            &self.input,
            &self.output,
            &self.cached_input,
            &self.cache_write,
            &self.cost,
        ]
    }

    fn read(&self) -> Spend {
        Spend {
            requests: self.requests.load(Ordering::Relaxed),
            tokens: Tokens {
                input: self.input.load(Ordering::Relaxed),
                output: self.output.load(Ordering::Relaxed),
                cached_input: self.cached_input.load(Ordering::Relaxed),
                cache_write: self.cache_write.load(Ordering::Relaxed),
            },
            cost: self.cost.load(Ordering::Relaxed),
        }
    }
}

/// What one call adds to each of [`Counts::all`].
#[inline]
fn parts(t: Tokens, cost: Nanos) -> [u64; 6] {
    [1, t.input, t.output, t.cached_input, t.cache_write, cost]
}

/// Adds to a counter only its lock holder (or its lane's thread) writes: a plain load and
/// store, no atomic read-modify-write.
#[inline(always)]
pub(crate) fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The totals of one ledger row. A call takes the row's flag (one compare-and-swap) and
/// adds to `owned` with plain stores; a call that finds the flag taken does not wait but
/// adds to `spill` with atomic adds. Reads sum both, so every call counts exactly once.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    busy: AtomicBool,
    owned: Counts,
    spill: Counts,
}

impl Totals {
    #[inline]
    pub(crate) fn add(&self, t: Tokens, cost: Nanos) {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            for (a, n) in self.owned.all().into_iter().zip(parts(t, cost)) {
                bump(a, n);
            }
            self.busy.store(false, Ordering::Release);
        } else {
            self.add_contended(t, cost);
        }
    }

    #[cold]
    fn add_contended(&self, t: Tokens, cost: Nanos) {
        for (a, n) in self.spill.all().into_iter().zip(parts(t, cost)) {
            if n != 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn read(&self) -> Spend {
        // under the flag, so no call is half-way through its stores (calls meanwhile spill)
        self.lock();
        let mut spend = self.owned.read();
        self.busy.store(false, Ordering::Release);
        spend.add(&self.spill.read());
        spend
    }

    pub(crate) fn clear(&self) {
        self.lock();
        for a in self.owned.all() {
            a.store(0, Ordering::Relaxed);
        }
        self.busy.store(false, Ordering::Release);
        for a in self.spill.all() {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Takes the flag, waiting for a call holding it (a handful of stores).
    fn lock(&self) {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }
}

/// Rows keyed by (provider, model), appended without locks; a row is found by scanning,
/// which is cheap for the handful of pairs a service uses.
const ROWS: usize = 256;

/// Cache-line aligned, so rows busy on two threads never share a line.
#[repr(align(64))]
pub(crate) struct Row {
    key: OnceLock<(Arc<str>, Arc<str>)>,
    totals: RowTotals,
}

/// One line of [`Ledger::stats`]: the seeds' `get_stats` (provider, model, tokens, cost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    /// The provider that served.
    pub provider: Arc<str>,
    /// The model that answered.
    pub model: Arc<str>,
    /// Its totals.
    pub spend: Spend,
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
    /// Per client key.
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

const CLIENT_SHARDS: usize = 16;

/// Client key -> totals, one map per shard.
/// ahash with a random key: fast, and clients cannot craft keys that collide.
type ClientShard = RwLock<HashMap<Arc<str>, Arc<Totals>, ahash::RandomState>>;

/// What a call for one price-table model needs, in one place: its price, the output it
/// reserves when the request sets no cap, its budgets, and its ledger row (for the first
/// provider that serves it; others get rows of their own).
pub(crate) struct ModelSlot {
    pub(crate) name: Arc<str>,
    pub(crate) price: Price,
    /// Whether every part of the price is below 2^31 (so [`ModelSlot::cost`] need only
    /// check the token counts).
    small_price: bool,
    /// The table's output maximum, else the ledger's default.
    pub(crate) max_output: u64,
    /// The global budgets and the budgets of its provider (bits).
    pub(crate) mask: u8,
    /// The table's provider, for a response that names none.
    pub(crate) provider: Option<Arc<str>>,
    pub(crate) row: Row,
}

impl ModelSlot {
    /// [`Price::cost`], with the price's half of the overflow check done once at build.
    #[inline(always)]
    pub(crate) fn cost(&self, t: Tokens) -> Nanos {
        if self.small_price && t.fit_64_bits() {
            return self.price.cost_64(t);
        }
        self.cost_wide(t.input, t.output, t.cached_input, t.cache_write)
    }

    /// [`Price::cost`] (the counts come one by one: a `Tokens` is passed through memory).
    #[cold]
    #[inline(never)]
    fn cost_wide(&self, input: u64, output: u64, cached_input: u64, cache_write: u64) -> Nanos {
        self.price.cost(Tokens {
            input,
            output,
            cached_input,
            cache_write,
        })
    }
}

/// The ledger's clock: the default one called directly (so its read inlines), or any other
/// behind the trait.
pub(crate) enum LedgerClock {
    Coarse(CoarseClock),
    Custom(Box<dyn Clock>),
}

impl LedgerClock {
    #[inline]
    pub(crate) fn unix_nanos(&self) -> u64 {
        match self {
            LedgerClock::Coarse(c) => c.unix_nanos(),
            LedgerClock::Custom(c) => c.unix_nanos(),
        }
    }
}

/// A budget's limit and window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) limit: Nanos,
    pub(crate) period: Period,
}

pub(crate) struct Inner {
    pub(crate) prices: PriceTable,
    pub(crate) unknown: UnknownModel,
    pub(crate) default_max_output: u64,
    pub(crate) max_request_cost: Option<Nanos>,
    pub(crate) budgets: Vec<Budget>,
    /// Each budget's limit and window, as the hot path reads them.
    pub(crate) plans: [Plan; crate::service::MAX_BUDGETS],
    pub(crate) needs_clock: bool,
    pub(crate) store: Store,
    /// Per price-table model, in the table's order: what a call for it needs.
    pub(crate) models: Box<[ModelSlot]>,
    /// The global budgets (for models the table does not know).
    pub(crate) global_mask: u8,
    /// The per-client budgets.
    pub(crate) client_mask: u8,
    /// The budgets with an alert share.
    pub(crate) alert_mask: u8,
    pub(crate) clock: LedgerClock,
    on_alert: Option<AlertHook>,
    rows: Box<[Row]>,
    rows_len: AtomicUsize,
    overflow: RowTotals,
    clients: Box<[ClientShard]>,
    clients_per_shard: usize,
    other_clients: Totals,
}

/// Prices, budgets and totals, shared by every [`CostMeterLayer`](crate::CostMeterLayer)
/// made from it (one per provider stack, or one over a fallback: the totals are the same).
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
#[derive(Clone)]
pub struct Ledger {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("models", &self.inner.prices.len())
            .field("budgets", &self.inner.budgets)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Ledger`].
pub struct LedgerBuilder {
    prices: PriceTable,
    unknown: UnknownModel,
    default_max_output: u64,
    max_request_cost: Option<Nanos>,
    budgets: Vec<Budget>,
    store: Option<Box<dyn BudgetStore>>,
    clock: LedgerClock,
    on_alert: Option<AlertHook>,
    max_clients: usize,
}

impl fmt::Debug for LedgerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerBuilder")
            .field("models", &self.prices.len())
            .field("budgets", &self.budgets)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// A builder with the built-in prices, unknown models refused, no budgets.
    pub fn builder() -> LedgerBuilder {
        LedgerBuilder {
            prices: PriceTable::builtin(),
            unknown: UnknownModel::Reject,
            default_max_output: 4096,
            max_request_cost: None,
            budgets: Vec::new(),
            store: None,
            clock: LedgerClock::Coarse(CoarseClock::new()),
            on_alert: None,
            max_clients: crate::budget::DEFAULT_MAX_CLIENTS,
        }
    }

    /// The price of `model`, or the unknown-model price; `None` if it would be refused.
    pub fn price_of(&self, model: &str) -> Option<Price> {
        match self.inner.prices.get(model) {
            Some(info) => Some(info.price),
            None => match self.inner.unknown {
                UnknownModel::Reject => None,
                UnknownModel::Free => Some(Price::FREE),
                UnknownModel::Price(p) => Some(p),
            },
        }
    }

    /// Rows of (provider, model, tokens, cost), the seeds' `get_stats`.
    pub fn stats(&self) -> Vec<StatsRow> {
        let mut rows: Vec<StatsRow> = Vec::new();
        let n = self.inner.rows_len.load(Ordering::Acquire).min(ROWS);
        for row in self.model_rows().chain(&self.inner.rows[..n]) {
            let Some((provider, model)) = row.key.get() else {
                continue;
            };
            let spend = row.totals.read();
            match rows
                .iter_mut()
                .find(|r| r.provider == *provider && r.model == *model)
            {
                Some(r) => r.spend.add(&spend),
                None => rows.push(StatsRow {
                    provider: provider.clone(),
                    model: model.clone(),
                    spend,
                }),
            }
        }
        let overflow = self.inner.overflow.read();
        if overflow.requests > 0 {
            rows.push(StatsRow {
                provider: Arc::from("(other)"),
                model: Arc::from("(other)"),
                spend: overflow,
            });
        }
        rows.retain(|r| r.spend.requests > 0 || r.spend.cost > 0);
        rows
    }

    /// Totals: overall, per provider, per model and per client key.
    pub fn snapshot(&self) -> LedgerSnapshot {
        let rows = self.stats();
        let mut snap = LedgerSnapshot::default();
        for r in &rows {
            snap.total.add(&r.spend);
            add_to(&mut snap.providers, &r.provider, &r.spend);
            add_to(&mut snap.models, &r.model, &r.spend);
        }
        for shard in self.inner.clients.iter() {
            for (k, t) in shard.read().unwrap_or_else(|p| p.into_inner()).iter() {
                let s = t.read();
                if s.requests > 0 {
                    snap.clients.push((k.clone(), s));
                }
            }
        }
        snap.clients.sort_by(|a, b| a.0.cmp(&b.0));
        let other = self.inner.other_clients.read();
        if other.requests > 0 {
            snap.clients.push((Arc::from("(other)"), other));
        }
        snap
    }

    /// Spent (and reserved) in the current window of budget `index` (for `member`, a client
    /// key, with per-client budgets).
    pub fn budget_spent(&self, index: usize, member: Option<&str>) -> Nanos {
        let window = match self.inner.budgets.get(index) {
            Some(b) => b.window.id(self.inner.clock.unix_nanos()),
            None => return 0,
        };
        self.inner.store.get().spent(BudgetKey {
            budget: index,
            member,
            window,
        })
    }

    /// Clears every total and budget counter.
    pub fn reset(&self) {
        for row in self.inner.rows.iter().chain(self.model_rows()) {
            row.totals.clear();
        }
        self.inner.overflow.clear();
        self.inner.other_clients.clear();
        for shard in self.inner.clients.iter() {
            shard.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
        for i in 0..self.inner.budgets.len() {
            self.inner.store.get().reset(i);
        }
    }

    /// Clears the totals of one provider, and its provider budgets.
    pub fn reset_provider(&self, provider: &str) {
        let n = self.inner.rows_len.load(Ordering::Acquire).min(ROWS);
        for row in self.model_rows().chain(&self.inner.rows[..n]) {
            if row.key.get().is_some_and(|(p, _)| &**p == provider) {
                row.totals.clear();
            }
        }
        for (i, b) in self.inner.budgets.iter().enumerate() {
            if matches!(&b.scope, Scope::Provider(p) if &**p == provider) {
                self.inner.store.get().reset(i);
            }
        }
    }

    /// The rows of the price-table models.
    fn model_rows(&self) -> impl Iterator<Item = &Row> {
        self.inner.models.iter().map(|m| &m.row)
    }

    /// Records one billed call. `table_index` is the model's price-table entry, if any.
    #[inline]
    pub(crate) fn record(
        &self,
        provider: &str,
        model: &str,
        table_index: Option<usize>,
        client: Option<&str>,
        t: Tokens,
        cost: Nanos,
    ) {
        let totals = match table_index.and_then(|i| self.inner.models.get(i)) {
            Some(slot) => self.model_row(slot, provider),
            None => self.row(provider, model),
        };
        totals.add(t, cost);
        if let Some(c) = client {
            self.record_client(c, t, cost);
        }
    }

    /// The totals of a price-table model served by `provider`: its own row if `provider`
    /// was the first to serve it, else a row found by scanning.
    #[inline]
    pub(crate) fn model_row<'a>(&'a self, slot: &'a ModelSlot, provider: &str) -> &'a RowTotals {
        let (first, _) = slot
            .row
            .key
            .get_or_init(|| (Arc::from(provider), slot.name.clone()));
        if **first == *provider {
            &slot.row.totals
        } else {
            self.row(provider, &slot.name)
        }
    }

    /// Records a billed call directly (for callers outside a meter, e.g. streaming).
    pub fn record_usage(
        &self,
        provider: &str,
        model: &str,
        client: Option<&str>,
        t: Tokens,
    ) -> Result<Nanos, CostError> {
        let price = self
            .price_of(model)
            .ok_or_else(|| CostError::UnknownModel(model.to_owned()))?;
        let cost = price.cost(t);
        let index = self.inner.prices.index_of(model);
        let model = match index {
            Some(i) => &*self.inner.prices.entry(i).0,
            None => model,
        };
        self.record(provider, model, index, client, t, cost);
        Ok(cost)
    }

    fn row(&self, provider: &str, model: &str) -> &RowTotals {
        let inner = &*self.inner;
        let n = inner.rows_len.load(Ordering::Acquire).min(ROWS);
        for row in &inner.rows[..n] {
            if let Some((p, m)) = row.key.get()
                && **p == *provider
                && **m == *model
            {
                return &row.totals;
            }
        }
        let i = inner.rows_len.fetch_add(1, Ordering::AcqRel);
        match inner.rows.get(i) {
            Some(row) => {
                // a racing thread may add the same pair: the snapshot merges duplicates
                let _ = row.key.set((Arc::from(provider), Arc::from(model)));
                &row.totals
            }
            None => &inner.overflow,
        }
    }

    /// Adds one call to a client's totals.
    #[inline(never)]
    pub(crate) fn record_client(&self, client: &str, t: Tokens, cost: Nanos) {
        self.client_totals(client, |totals| totals.add(t, cost));
    }

    fn client_totals(&self, client: &str, f: impl FnOnce(&Totals)) {
        let shard = &self.inner.clients[shard_of(client)];
        {
            let map = shard.read().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = map.get(client) {
                f(t);
                return;
            }
        }
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.inner.clients_per_shard {
            // bounded: clients past the cap are totalled together as "(other)"
            f(&self.inner.other_clients);
            return;
        }
        f(map.entry(Arc::from(client)).or_default());
    }

    /// Fires the alert of budget `i` if its share is reached, once per window.
    pub(crate) fn check_alert(&self, i: usize, member: Option<&str>, window: u64, spent: Nanos) {
        let b = &self.inner.budgets[i];
        let Some(share) = b.alert_at else {
            return;
        };
        if (spent as f64) < share * b.limit as f64 {
            return;
        }
        let key = BudgetKey {
            budget: i,
            member,
            window,
        };
        if !self.inner.store.get().first_alert(key) {
            return;
        }
        let alert = BudgetAlert {
            budget: b.describe(member),
            spent,
            limit: b.limit,
        };
        tracing::warn!(
            budget = alert.budget.as_str(),
            spent_usd = spent as f64 / 1e9,
            limit_usd = b.limit as f64 / 1e9,
            "budget alert threshold reached"
        );
        if let Some(hook) = &self.inner.on_alert {
            hook(&alert);
        }
    }
}

fn add_to(list: &mut Vec<(Arc<str>, Spend)>, key: &Arc<str>, s: &Spend) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some((_, t)) => t.add(s),
        None => list.push((key.clone(), *s)),
    }
}

fn shard_of(s: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % CLIENT_SHARDS
}

/// Invalid ledger configuration, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    /// The field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid cost meter configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

impl LedgerBuilder {
    /// The price table (default [`PriceTable::builtin`]).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// What to do with unknown models (default: refuse).
    pub fn unknown_model(mut self, policy: UnknownModel) -> Self {
        self.unknown = policy;
        self
    }

    /// Output tokens reserved for a request that sets no `max_tokens`, when the price table
    /// does not know the model's maximum (default 4096).
    pub fn default_max_output_tokens(mut self, n: u64) -> Self {
        self.default_max_output = n;
        self
    }

    /// Refuse any single request whose worst case costs more than this.
    pub fn max_request_cost(mut self, limit: Nanos) -> Self {
        self.max_request_cost = Some(limit);
        self
    }

    /// Most client keys tracked (default 100,000): past it, new clients' totals are kept
    /// together as `"(other)"` and their budget counters share one overflow set (limited
    /// together), so memory stays bounded whatever keys arrive.
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// Adds a budget.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Where budget counters live (default: [`MemoryStore`]).
    pub fn store(mut self, store: impl BudgetStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The clock budget windows roll over by (default: [`CoarseClock`], the system clock read cheaply).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = LedgerClock::Custom(Box::new(clock));
        self
    }

    /// Called once per window when a budget reaches its alert share.
    pub fn on_budget_alert(mut self, f: impl Fn(&BudgetAlert) + Send + Sync + 'static) -> Self {
        self.on_alert = Some(Box::new(f));
        self
    }

    /// Checks the configuration and makes the ledger.
    pub fn build(self) -> Result<Ledger, ConfigError> {
        if self.budgets.len() > crate::service::MAX_BUDGETS {
            return Err(ConfigError {
                field: "budget",
                reason: format!("at most {} budgets", crate::service::MAX_BUDGETS),
            });
        }
        for b in &self.budgets {
            if b.limit == 0 {
                return Err(ConfigError {
                    field: "budget.limit",
                    reason: format!("of the {} budget must be above zero", b.describe(None)),
                });
            }
            if let Some(a) = b.alert_at
                && !(0.0..=1.0).contains(&a)
            {
                return Err(ConfigError {
                    field: "budget.alert_at",
                    reason: format!("must be within 0..=1, got {a}"),
                });
            }
            if let crate::Window::Every(d) = b.window
                && d.is_zero()
            {
                return Err(ConfigError {
                    field: "budget.window",
                    reason: "must be longer than zero".into(),
                });
            }
        }
        if self.max_request_cost == Some(0) {
            return Err(ConfigError {
                field: "max_request_cost",
                reason: "must be above zero".into(),
            });
        }
        if self.max_clients == 0 {
            return Err(ConfigError {
                field: "max_clients",
                reason: "must be at least 1".into(),
            });
        }
        if self.default_max_output == 0 {
            return Err(ConfigError {
                field: "default_max_output_tokens",
                reason: "must be above zero".into(),
            });
        }
        let needs_clock = self.budgets.iter().any(Budget::needs_clock);
        let models = self.prices.len();
        let store = match self.store {
            Some(s) => Store::Custom(s),
            None => Store::Memory(MemoryStore::with_max_clients(
                self.budgets.len(),
                self.max_clients,
            )),
        };
        let mask_of = |keep: &dyn Fn(&Budget) -> bool| -> u8 {
            self.budgets
                .iter()
                .enumerate()
                .filter(|(_, b)| keep(b))
                .fold(0, |m, (i, _)| m | (1 << i))
        };
        let global_mask = mask_of(&|b| b.scope == Scope::Global);
        let client_mask = mask_of(&|b| b.scope == Scope::PerClient);
        let alert_mask = mask_of(&|b| b.alert_at.is_some());
        let models: Box<[ModelSlot]> = (0..models)
            .map(|i| {
                let (name, info) = self.prices.entry(i);
                let provider = info.provider.as_deref();
                ModelSlot {
                    name: name.clone(),
                    price: info.price,
                    small_price: info.price.fits_64_bits(),
                    max_output: info.max_output_tokens.unwrap_or(self.default_max_output),
                    mask: global_mask
                        | mask_of(
                            &|b| matches!(&b.scope, Scope::Provider(p) if Some(&**p) == provider),
                        ),
                    provider: info.provider.clone(),
                    row: Row {
                        key: OnceLock::new(),
                        totals: RowTotals::default(),
                    },
                }
            })
            .collect();
        let mut plans = [Plan {
            limit: 0,
            period: Period::Total,
        }; crate::service::MAX_BUDGETS];
        for (plan, b) in plans.iter_mut().zip(&self.budgets) {
            *plan = Plan {
                limit: b.limit,
                period: b.window.period(),
            };
        }
        Ok(Ledger {
            inner: Arc::new(Inner {
                plans,
                prices: self.prices,
                unknown: self.unknown,
                default_max_output: self.default_max_output,
                max_request_cost: self.max_request_cost,
                budgets: self.budgets,
                needs_clock,
                store,
                models,
                global_mask,
                client_mask,
                alert_mask,
                clock: self.clock,
                on_alert: self.on_alert,
                rows: (0..ROWS)
                    .map(|_| Row {
                        key: OnceLock::new(),
                        totals: RowTotals::default(),
                    })
                    .collect(),
                rows_len: AtomicUsize::new(0),
                overflow: RowTotals::default(),
                clients: (0..CLIENT_SHARDS)
                    .map(|_| RwLock::new(HashMap::with_hasher(ahash::RandomState::new())))
                    .collect(),
                clients_per_shard: (self.max_clients / CLIENT_SHARDS).max(1),
                other_clients: Totals::default(),
            }),
        })
    }
}
