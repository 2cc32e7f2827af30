//! Atomics, from loom when model checking (`--cfg towerguard_loom`), else from std.

#[cfg(towerguard_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
#[cfg(not(towerguard_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
