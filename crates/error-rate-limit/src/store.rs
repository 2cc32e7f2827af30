//! The limiter store trait, what it answers, and the in-memory store.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use towerguard_outcome::{Clock, ConfigError, TokioClock};

use crate::error::ThrottledError;
use crate::key_state::{Limits, Now};
use crate::key_table::KeyTable;

/// Why a key may not pass right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It caused too many errors and is serving a penalty.
    Errors,
    /// Requests per minute exceeded.
    RequestRate,
    /// Tokens per minute exceeded.
    TokenRate,
}

impl Reason {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Errors => "errors",
            Reason::RequestRate => "rpm",
            Reason::TokenRate => "tpm",
        }
    }
}

/// The answer on one request: go ahead, or the refusal (why, and when to try again).
pub type Admit = Result<(), ThrottledError>;

/// A throttled key and the time it has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottledKey {
    /// The key.
    pub key: String,
    /// Time left.
    pub remaining: Duration,
    /// Its offences not yet forgiven (the penalty doubles with each).
    pub offences: u32,
}

/// Counts across all keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Keys tracked now.
    pub keys: usize,
    /// Keys throttled now.
    pub throttled: usize,
    /// Admissions refused so far (a delayed request that asks again counts again).
    pub rejected: u64,
    /// Errors counted so far.
    pub errors: u64,
    /// Times a key was throttled so far.
    pub offences: u64,
    /// Keys forgotten to make room for new ones.
    pub evicted: u64,
    /// Requests and errors of new keys that found no room and shared the overflow entry.
    pub overflowed: u64,
}

/// The rules a store applies. [`Rules::default`] holds the layer's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Errors within `window` that throttle a key (1..=1000).
    pub threshold: u32,
    /// The sliding window errors are counted over (up to 365 days).
    pub window: Duration,
    /// First penalty; each repeated offence doubles it.
    pub base_penalty: Duration,
    /// Longest penalty (up to 365 days).
    pub max_penalty: Duration,
    /// One offence is forgiven per this much time without a new one.
    pub decay: Duration,
    /// Requests per minute per key, if limited (at most 60,000,000,000: one a nanosecond).
    pub rpm: Option<u64>,
    /// Tokens per minute per key, weighted by the request's tokens, if limited.
    pub tpm: Option<u64>,
    /// Most keys tracked at once (1..=10,000,000; memory is taken as keys arrive).
    pub max_keys: usize,
}

/// 5 errors within 60 s throttle a key for 30 s, doubling per repeated offence up to 1 hour,
/// one offence forgiven per 10 minutes; no RPM/TPM limit; 100,000 keys.
impl Default for Rules {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(60),
            base_penalty: Duration::from_secs(30),
            max_penalty: Duration::from_secs(3600),
            decay: Duration::from_secs(600),
            rpm: None,
            tpm: None,
            max_keys: 100_000,
        }
    }
}

/// Where per-key limiter state lives: [`MemoryStore`] in this process, or a store shared by
/// a fleet of gateways (Redis).
///
/// Per request the layer calls [`key`](Self::key), [`admit`](Self::admit) (again after each
/// wait in delay mode) and, if the outcome counts against the client,
/// [`record_error`](Self::record_error). It polls each answer at once: a ready answer
/// ([`std::future::Ready`]) costs no allocation; a pending one makes the call move the
/// request and a clone of the inner service into its future and await, never blocking.
///
/// # Writing a shared store (Redis)
///
/// - `Key`: the Redis key, e.g. `format!("erl:{name}")`; `Future<T>`: a boxed future.
/// - `admit`: one round trip (a Lua script) that, on the key's hash, refuses while the
///   throttle's end is ahead, then applies the RPM and TPM allowances as GCRA (see
///   [`Rules`]; take both or neither) and answers [`Admit`].
/// - `record_error`: one round trip that pushes the time onto the key's list of recent
///   errors, drops those older than the window, and when `threshold` remain clears the list,
///   counts an offence (forgiving one per `decay` since the last) and sets the throttle's
///   end; it answers the penalty.
/// - Expire each key when it becomes forgettable (see [`MemoryStore`]), and read the time on
///   the server (`TIME`) so every gateway agrees on it.
pub trait LimiterStore: Send + Sync + 'static {
    /// A key as the store addresses it; each call's response future keeps one.
    type Key: Clone + Eq + Hash + Send + 'static;
    /// The future of every answer.
    type Future<T: Send + 'static>: Future<Output = T> + Send + Unpin + 'static;

    /// The store's key for the key named `name`.
    fn key(&self, name: &str) -> Self::Key;
    /// Does [`admit`](Self::admit) use the request's weight in tokens? If not, the layer
    /// does not weigh requests and passes 0. Default: true.
    fn weighs_tokens(&self) -> bool {
        true
    }
    /// May `key` (named `name`) send a request weighing `tokens` now? A pass takes the
    /// request's share of the RPM/TPM allowances.
    fn admit(&self, key: &Self::Key, name: &str, tokens: u64) -> Self::Future<Admit>;
    /// Counts an error caused by `key`; answers the penalty if it throttled the key.
    fn record_error(&self, key: &Self::Key) -> Self::Future<Option<Duration>>;
    /// Keys throttled now, sorted by key.
    fn throttled(&self) -> Self::Future<Vec<ThrottledKey>>;
    /// Lifts the throttle of the key named `name` and forgets its errors and offences;
    /// false if it was not tracked.
    fn unthrottle(&self, name: &str) -> Self::Future<bool>;
    /// Counts.
    fn stats(&self) -> Self::Future<LimiterStats>;
    /// Forgets every key (the overflow entry's state too); the totals of `stats` stay.
    fn reset(&self) -> Self::Future<()>;
}

/// Reads and controls a limiter's state: its store, shared with the layer. With
/// [`LimiterStore`] in scope: `handle.throttled().await`, `unthrottle(key)`, `stats()`,
/// `reset()`. A [`MemoryStore`] answers at once, so outside async code
/// `handle.stats().into_inner()` reads it without awaiting.
pub type LimiterHandle<St = MemoryStore> = Arc<St>;

/// A key's identity in a [`MemoryStore`]: a 64-bit hash of the key, keyed per store so
/// that nobody can craft two keys that collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u64);

/// Limiter state in this process's memory, for up to `max_keys` keys, in shards each a map
/// behind its own mutex. A key may be forgotten once nothing about it matters: no counted
/// error in the window, no throttle, every offence forgiven, its allowances refilled. When
/// the table is full, a new key takes the place of the first forgettable key among the next
/// 8 of its shard's eviction queue (one that still matters goes to the back), so a request
/// does bounded work under a flood. If none is forgettable, the table is full of keys that
/// matter: the newcomer shares one overflow entry with every such newcomer (limited and
/// throttled together; see [`LimiterStats::overflowed`]). A tracked key costs about 100
/// bytes, its name, and 8 bytes per counted error in the window.
pub struct MemoryStore {
    limits: Limits,
    clock: Box<dyn Clock>,
    hasher: ahash::RandomState,
    table: KeyTable,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store applying `rules` on tokio's clock ([`TokioClock`]); refuses nonsense rules,
    /// naming the field.
    pub fn new(rules: Rules) -> Result<Self, ConfigError> {
        Self::with_clock(rules, TokioClock::new())
    }

    /// A store applying `rules` on `clock`.
    pub fn with_clock(rules: Rules, clock: impl Clock) -> Result<Self, ConfigError> {
        let limits = Limits::new(&rules)?;
        Ok(Self {
            table: KeyTable::new(limits.max_keys),
            limits,
            clock: Box::new(clock),
            hasher: ahash::RandomState::new(),
        })
    }
}

impl LimiterStore for MemoryStore {
    type Key = KeyId;
    type Future<T: Send + 'static> = Ready<T>;

    fn key(&self, name: &str) -> KeyId {
        KeyId(self.hasher.hash_one(name))
    }

    /// Only with a tokens-per-minute limit.
    fn weighs_tokens(&self) -> bool {
        self.limits.weighs_tokens()
    }

    fn admit(&self, key: &KeyId, name: &str, tokens: u64) -> Ready<Admit> {
        let limits = &self.limits;
        let now = &mut Now::on(&*self.clock);
        let admit = self
            .table
            .with(key.0, Some(name), limits, now, |state, now| {
                state.admit(limits, tokens, now)
            });
        if admit.is_err() {
            self.table.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        ready(admit)
    }

    fn record_error(&self, key: &KeyId) -> Ready<Option<Duration>> {
        let counters = &self.table.counters;
        counters.errors.fetch_add(1, Ordering::Relaxed);
        let limits = &self.limits;
        let at = self.clock.unix_nanos();
        let penalty = self.table.with(
            key.0,
            None,
            limits,
            &mut Now::read(&*self.clock, at),
            |state, _| {
                let penalty = state.record_error(limits, at);
                if let Some(p) = penalty {
                    let key = state.name.as_deref().unwrap_or("<overflow or unnamed>");
                    tracing::warn!(
                        key,
                        penalty_ms = p.as_millis() as u64,
                        "client throttled after repeated errors"
                    );
                }
                penalty
            },
        );
        if penalty.is_some() {
            counters.offences.fetch_add(1, Ordering::Relaxed);
        }
        ready(penalty)
    }

    fn throttled(&self) -> Ready<Vec<ThrottledKey>> {
        let now = self.clock.unix_nanos();
        let mut out = Vec::new();
        self.table.for_each(|state| {
            if let Some(remaining) = state.penalty.left(now) {
                out.push(ThrottledKey {
                    key: state.name.as_deref().unwrap_or("<unnamed>").to_owned(),
                    remaining,
                    offences: state.penalty.offences(now, &self.limits),
                });
            }
        });
        out.sort_by(|a, b| a.key.cmp(&b.key));
        ready(out)
    }

    fn unthrottle(&self, name: &str) -> Ready<bool> {
        let done = self.table.get(self.key(name).0, |s| s.forgive()).is_some();
        tracing::info!(key = name, done, "client unthrottled by hand");
        ready(done)
    }

    fn stats(&self) -> Ready<LimiterStats> {
        let now = self.clock.unix_nanos();
        let (mut keys, mut throttled) = (0, 0);
        self.table.for_each(|state| {
            keys += 1;
            throttled += usize::from(state.penalty.left(now).is_some());
        });
        let c = &self.table.counters;
        let load = |n: &crate::key_table::AtomicU64| n.load(Ordering::Relaxed);
        ready(LimiterStats {
            keys,
            throttled,
            rejected: load(&c.rejected),
            errors: load(&c.errors),
            offences: load(&c.offences),
            evicted: load(&c.evicted),
            overflowed: load(&c.overflowed),
        })
    }

    fn reset(&self) -> Ready<()> {
        self.table.clear();
        ready(())
    }
}
