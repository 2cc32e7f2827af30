//! Errors of the retry layer.
//!
//! The layer refuses nothing at call time (it has no refusal error of its own): it returns
//! the inner service's result. Its only error is a configuration refused when it is built.

/// Invalid configuration, naming the field at fault (e.g. `"backoff.multiplier"`,
/// `"budget.percent"`). Every builder and constructor of this crate returns it.
pub use towerguard_outcome::ConfigError;
