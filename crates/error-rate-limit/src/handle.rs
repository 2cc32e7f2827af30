//! [`LimiterHandle`]: read and act on a limiter's state.

use std::sync::Arc;

use crate::store::{LimiterStats, LimiterStore, MemoryStore, ThrottledKey};

/// Reads and controls a limiter's state: throttled keys, `unthrottle`, counts, `reset`.
/// Cheap to clone; every method asks the store. A [`MemoryStore`] answers at once, so
/// outside async code `handle.store().stats().into_inner()` (with [`LimiterStore`] in scope)
/// reads it without awaiting.
#[derive(Debug)]
pub struct LimiterHandle<St = MemoryStore> {
    store: Arc<St>,
}

impl<St> Clone for LimiterHandle<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<St: LimiterStore> LimiterHandle<St> {
    pub(crate) fn new(store: Arc<St>) -> Self {
        Self { store }
    }

    /// The store itself.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// Keys throttled now, with their remaining time, sorted by key.
    pub async fn throttled(&self) -> Vec<ThrottledKey> {
        self.store.throttled().await
    }

    /// Lifts a key's throttle and forgets its errors and offences; false if the key is not
    /// tracked.
    pub async fn unthrottle(&self, key: &str) -> bool {
        let done = self.store.unthrottle(key).await;
        if done {
            tracing::info!(key, "client unthrottled by hand");
        }
        done
    }

    /// Counts: keys tracked and throttled, refusals, errors, offences, evictions, overflow.
    pub async fn stats(&self) -> LimiterStats {
        self.store.stats().await
    }

    /// Forgets every key, the shared overflow entry included (the totals of
    /// [`stats`](Self::stats) stay).
    pub async fn reset(&self) {
        self.store.reset().await;
        tracing::info!("limiter state reset by hand");
    }
}
