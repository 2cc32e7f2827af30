//! `CostMeterLayer`: token and cost accounting, and budgets that concurrent requests cannot
//! overspend.
//!
//! - A [`PriceTable`] per model (input, output, cached-input and cache-write prices), with
//!   built-in prices for the common models and a loader for LiteLLM's
//!   `model_prices_and_context_window.json`. Unknown models are refused, free, or priced by
//!   a default ([`UnknownModel`]): never a silent wrong number.
//! - Money is integer nano-dollars ([`Nanos`]); prices are integer pico-dollars per token.
//! - A [`Ledger`] shared by every meter: totals per provider, model and client key
//!   ([`Ledger::stats`], [`Ledger::snapshot`]), `reset()` and `reset_provider()`.
//! - [`Budget`]s per request, and per window (daily, monthly, any duration) globally, per
//!   provider and per client key. Before the call the worst case is reserved (prompt
//!   estimate + `max_tokens` at the output price), after it the reservation is settled to the
//!   real usage, and released on error or cancellation. A refusal is a
//!   [`CostError::BudgetExceeded`] naming the budget, before any provider is called.
//! - Alerts at a share of a budget, once per window, through a callback and a `tracing`
//!   warn event; a [`Clock`] that tests can drive; a [`BudgetStore`] trait with an in-memory
//!   default.
//!
//! Works on any service whose requests implement [`CostRequest`] and responses
//! [`CostResponse`] (with the `llm` feature, `LlmRequest` and `LlmResponse` do).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use tower::{ServiceBuilder, ServiceExt};
//! use towerguard_cost_meter::{usd, Budget, CostMeterLayer, Ledger};
//! use towerguard_llm_core::{ErrorKind, LlmRequest, Message};
//! use towerguard_testkit::FakeProvider;
//!
//! let ledger = Ledger::builder()
//!     .budget(Budget::per_client(usd(0.001)).daily())
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(CostMeterLayer::new(ledger.clone()))
//!     .service(FakeProvider::new("openai"));
//! // gpt-4o at 1e-5 USD per output token: 4096 tokens reserved is more than $0.001
//! let req = LlmRequest::new("gpt-4o", vec![Message::user("hi")])
//!     .with_max_tokens(4096)
//!     .with_client_key("acme");
//! let err = svc.oneshot(req).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
//! assert!(err.detail().unwrap().contains("client acme daily"));
//! # });
//! ```

mod budget;
mod error;
mod lanes;
mod ledger;
mod meter;
mod prices;
mod service;

pub use budget::{
    Budget, BudgetKey, BudgetStore, Clock, CoarseClock, DEFAULT_MAX_CLIENTS, ManualClock,
    MemoryStore, Scope, SystemClock, Window,
};
pub use error::CostError;
pub use ledger::{
    BudgetAlert, ConfigError, Ledger, LedgerBuilder, LedgerSnapshot, Spend, StatsRow, UnknownModel,
    usd,
};
pub use meter::{CostRequest, CostResponse, WorstCase};
pub use prices::{ModelInfo, NANOS_PER_USD, Nanos, Price, PriceError, PriceTable, Tokens};
pub use service::{CostMeter, CostMeterLayer, MAX_BUDGETS, ResponseFuture};
