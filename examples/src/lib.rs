//! Runnable examples for towerguard. See the binaries in `src/bin/`:
//!
//! - `demo`: requests through a seeded flaky fake provider, and how real provider error
//!   answers are classified. Run it with `cargo run -p towerguard-examples`.
