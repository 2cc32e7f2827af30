//! [`LedgerBuilder`]: a ledger's configuration, checked in full when it is built.

use std::fmt;

use towerguard_outcome::{Clock, ConfigError, TokioClock};

use crate::budget::{Budget, MAX_BUDGETS};
use crate::ledger::{
    BudgetAlert, Config, DEFAULT_MAX_CLIENTS, Ledger, MAX_MAX_CLIENTS, UnknownModel,
};
use crate::prices::{Nanos, PriceTable};
use crate::store::{BudgetStore, MemoryStore};

impl Ledger {
    /// A builder with the built-in prices, unknown models refused, no budgets, the
    /// in-memory store and [`TokioClock`].
    pub fn builder() -> LedgerBuilder {
        LedgerBuilder {
            config: Config {
                prices: PriceTable::builtin(),
                unknown: UnknownModel::Reject,
                default_max_output: 4096,
                max_request_cost: None,
                budgets: Vec::new(),
                clock: Box::new(TokioClock::new()),
                on_alert: None,
                max_clients: DEFAULT_MAX_CLIENTS,
            },
            store: MemoryStore::default(),
        }
    }
}

/// Builds a [`Ledger`]; [`build`](Self::build) refuses nonsense, naming the field.
pub struct LedgerBuilder<St: BudgetStore = MemoryStore> {
    config: Config,
    store: St,
}

impl<St: BudgetStore> fmt::Debug for LedgerBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerBuilder")
            .field("models", &self.config.prices.len())
            .field("budgets", &self.config.budgets)
            .finish_non_exhaustive()
    }
}

impl<St: BudgetStore> LedgerBuilder<St> {
    /// The price table (default [`PriceTable::builtin`]).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.config.prices = prices;
        self
    }

    /// What to do with unknown models (default: refuse).
    pub fn unknown_model(mut self, policy: UnknownModel) -> Self {
        self.config.unknown = policy;
        self
    }

    /// Output tokens reserved for a request that sets no `max_tokens`, when the price table
    /// does not know the model's maximum (default 4096).
    pub fn default_max_output_tokens(mut self, n: u64) -> Self {
        self.config.default_max_output = n;
        self
    }

    /// Refuse any single request (and any fallback attempt) whose worst case costs more.
    pub fn max_request_cost(mut self, limit: Nanos) -> Self {
        self.config.max_request_cost = Some(limit);
        self
    }

    /// Most client keys tracked (default 100,000; at most 100,000,000). A client is
    /// forgotten when nothing of it is spent or reserved in its per-client budgets' current
    /// windows and no request of it is in flight; while every tracked client still matters,
    /// new ones share one `"(other)"` entry (totals and per-client budget, limited together).
    pub fn max_clients(mut self, n: usize) -> Self {
        self.config.max_clients = n;
        self
    }

    /// Adds a budget (at most [`MAX_BUDGETS`], no two alike).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.config.budgets.push(budget);
        self
    }

    /// Where budget counters live (default: [`MemoryStore`]).
    pub fn store<S2: BudgetStore>(self, store: S2) -> LedgerBuilder<S2> {
        LedgerBuilder {
            config: self.config,
            store,
        }
    }

    /// The clock budget windows roll over by (default: [`TokioClock`], which follows
    /// tokio's paused clock in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Box::new(clock);
        self
    }

    /// Called once per window when a budget reaches its alert share.
    pub fn on_budget_alert(mut self, f: impl Fn(&BudgetAlert) + Send + Sync + 'static) -> Self {
        self.config.on_alert = Some(Box::new(f));
        self
    }

    /// Checks the configuration and makes the ledger.
    pub fn build(self) -> Result<Ledger<St>, ConfigError> {
        let Self { config, mut store } = self;
        let budgets = &config.budgets;
        if budgets.len() > MAX_BUDGETS {
            return Err(ConfigError::new(
                "budgets",
                format!("at most {MAX_BUDGETS} budgets, got {}", budgets.len()),
            ));
        }
        for (i, b) in budgets.iter().enumerate() {
            b.check(i)?;
            if let Some(j) = budgets[..i]
                .iter()
                .position(|o| o.scope == b.scope && o.window == b.window)
            {
                return Err(ConfigError::new(
                    format!("budgets[{i}]"),
                    format!("is a second {} budget (budgets[{j}])", b.describe(None)),
                ));
            }
        }
        if config.max_request_cost == Some(0) {
            return Err(ConfigError::new("max_request_cost", "must be above zero"));
        }
        ConfigError::check_range("max_clients", config.max_clients, 1, MAX_MAX_CLIENTS)?;
        if config.default_max_output == 0 {
            return Err(ConfigError::new(
                "default_max_output_tokens",
                "must be above zero",
            ));
        }
        store.prepare(budgets)?;
        Ok(Ledger::new(config, store))
    }
}
