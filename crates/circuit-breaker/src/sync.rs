//! Atomics and the mutex, from loom when model checking (`--cfg towerguard_loom`), else std.

#[cfg(towerguard_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(towerguard_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(towerguard_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(towerguard_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `m`; a panic elsewhere while holding it leaves data that is still consistent (every
/// critical section writes whole values), so a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
