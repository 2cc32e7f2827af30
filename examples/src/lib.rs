//! Runnable examples for towerguard. See the binaries in `src/bin/`:
//!
//! - `demo`: the recommended pipeline over seeded fake providers on a paused clock, then the
//!   breaker states, the cost ledger, and how real provider error answers are classified.
//!   Run it with `cargo run -p towerguard-examples`.
