//! `CostMeterLayer`: token and cost accounting, and budgets that concurrent requests cannot
//! overspend, charged to the provider and model that actually served.
//!
//! - A [`PriceTable`] per model, built in or loaded from LiteLLM's price file; models it does
//!   not know are refused, free or priced by a default ([`UnknownModel`]). Money is integer
//!   nano-dollars ([`Nanos`]).
//! - A [`Ledger`] shared by every meter: totals per provider, model and client key, and
//!   [`Budget`]s (global, per provider, per client; daily, monthly or any window).
//! - Before the call the request's worst case is reserved on every budget that applies;
//!   before each fallback attempt below, the request's
//!   [`AttemptHook`](towerguard_outcome::AttemptHook) raises it to that attempt's worst case
//!   (or refuses the attempt); when the call ends, the response is priced at the provider and
//!   model it names and the rest released. A response without usage is charged its worst
//!   case and counted as [unmetered](Spend::unmetered).
//! - Budget spend lives in a [`BudgetStore`] (asynchronous, so a fleet can share one; the
//!   in-memory [`MemoryStore`] by default), windows follow a [`Clock`] ([`TokioClock`]).
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
//!
//! # Features
//!
//! - `llm` (default): [`CostRequest`] and [`CostResponse`] for `LlmRequest` / `LlmResponse`
//!   (usage, client keys), `From<CostError> for LlmError`, and a streamed answer billed when
//!   its stream ends.
//!
//! Without it (`default-features = false`) the crate works on any `Service<Req>` and does not
//! depend on `towerguard-llm-core`.
//!
//! # MSRV
//!
//! Rust 1.88 (the workspace's `rust-version`, edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod builder;
mod clients;
mod error;
mod future;
mod layer;
mod ledger;
#[cfg(all(test, towerguard_loom))]
mod loom_tests;
mod prices;
mod request;
mod reservation;
mod service;
mod store;
mod totals;

pub use budget::{Budget, MAX_BUDGETS, Scope, Window};
pub use builder::LedgerBuilder;
pub use error::CostError;
pub use future::ResponseFuture;
pub use layer::CostMeterLayer;
pub use ledger::{BudgetAlert, DEFAULT_MAX_CLIENTS, Ledger, LedgerSnapshot, UnknownModel};
pub use prices::{ModelInfo, NANOS_PER_USD, Nanos, Price, PriceError, PriceTable, Tokens, usd};
pub use request::{CostRequest, CostResponse, WorstCase};
pub use service::CostMeter;
pub use store::{
    Alerted, BudgetStore, ClientRef, CounterRef, Hold, MemoryClient, MemoryStore, Settlement,
    Shortfall,
};
pub use totals::{Spend, StatsRow};
pub use towerguard_outcome::{Clock, ConfigError, ManualClock, SystemClock, TokioClock};
