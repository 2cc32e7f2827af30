//! [`CircuitBreakerHandle`]: reading and controlling a breaker from outside the call path.

use std::fmt;
use std::sync::Arc;

use crate::state::{Breaker, State};
use crate::stats::Stats;

/// Reads and controls a breaker from outside the call path (health endpoints, admin tools).
///
/// ```
/// use towerguard_circuit_breaker::{CircuitBreakerLayer, State};
///
/// let layer = CircuitBreakerLayer::builder().name("openai").build().unwrap();
/// let handle = layer.handle();
/// handle.force_open();
/// assert_eq!(handle.state(), State::ForcedOpen);
/// handle.reset();
/// assert_eq!(handle.stats().state, State::Closed);
/// ```
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    pub(crate) breaker: Arc<Breaker>,
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("name", &self.breaker.name())
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreakerHandle {
    /// The current state.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// The breaker's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.breaker.name().map(|n| &**n)
    }

    /// State, window contents and lifetime counts.
    pub fn stats(&self) -> Stats {
        self.breaker.stats()
    }

    /// Half-open probes in flight now.
    pub fn probes_in_flight(&self) -> u64 {
        self.breaker.probes_in_flight()
    }

    /// Closes the breaker and clears its window and failure run (lifetime counts stay).
    pub fn reset(&self) {
        self.breaker.force(State::Closed);
    }

    /// Clears the lifetime counts.
    pub fn clear_counts(&self) {
        self.breaker.clear_counts();
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.breaker.force(State::ForcedOpen);
    }

    /// Lets every call through and records nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.breaker.force(State::Disabled);
    }

    /// Records outcomes but never trips, until [`reset`](Self::reset).
    pub fn metrics_only(&self) {
        self.breaker.force(State::MetricsOnly);
    }

    /// Whether calls would be rejected right now (open and not yet due to probe, or forced
    /// open). The fallback layer's health-aware strategy asks this.
    pub fn is_rejecting(&self) -> bool {
        match self.state() {
            State::ForcedOpen => true,
            State::Open => self.stats().open_for.is_some_and(|d| !d.is_zero()),
            _ => false,
        }
    }
}
