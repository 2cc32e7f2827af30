//! Budgets: windows, the clock they roll over by, and the store that keeps their spend.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::prices::Nanos;

/// Wall-clock time for budget windows (a day is a UTC day). Tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch.
    fn unix_nanos(&self) -> u64;
}

/// The system clock, read precisely on every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
    }
}

/// Wall-clock time from the kernel's coarse monotonic clock, set against the system clock
/// once a second: accurate to a few milliseconds (plenty for budget windows) and several
/// times cheaper to read than [`SystemClock`] (on some VMs the precise clock costs ~30 ns a
/// read). The ledger's default.
#[derive(Debug)]
pub struct CoarseClock {
    /// Unix nanoseconds minus coarse monotonic nanoseconds (wrapping), as of the last sync.
    offset: AtomicU64,
    /// Coarse monotonic nanoseconds at the last sync.
    synced_at: AtomicU64,
}

const RESYNC_NANOS: u64 = 1_000_000_000;

impl CoarseClock {
    /// A clock set against the system clock now.
    pub fn new() -> Self {
        let clock = Self {
            offset: AtomicU64::new(0),
            synced_at: AtomicU64::new(0),
        };
        clock.sync(coarse_nanos());
        clock
    }

    #[cold]
    fn sync(&self, mono: u64) {
        let unix = SystemClock.unix_nanos();
        self.offset
            .store(unix.wrapping_sub(mono), Ordering::Relaxed);
        self.synced_at.store(mono, Ordering::Relaxed);
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Nanoseconds on the kernel's coarse monotonic clock.
#[inline]
fn coarse_nanos() -> u64 {
    let ticks = coarsetime::Instant::now_without_cache_update().as_ticks();
    coarsetime::Duration::from_ticks(ticks).as_nanos()
}

impl Clock for CoarseClock {
    #[inline]
    fn unix_nanos(&self) -> u64 {
        let mono = coarse_nanos();
        if mono.wrapping_sub(self.synced_at.load(Ordering::Relaxed)) > RESYNC_NANOS {
            self.sync(mono);
        }
        mono.wrapping_add(self.offset.load(Ordering::Relaxed))
    }
}

/// A clock that moves only when told to (for tests and simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `unix_nanos`.
    pub fn at(unix_nanos: u64) -> Self {
        Self(AtomicU64::new(unix_nanos))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            by.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::SeqCst,
        );
    }

    /// Sets the clock.
    pub fn set(&self, unix_nanos: u64) {
        self.0.store(unix_nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn unix_nanos(&self) -> u64 {
        (**self).unix_nanos()
    }
}

/// The period a budget's spend is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Forever (until reset).
    Total,
    /// A UTC calendar day.
    Daily,
    /// A UTC calendar month.
    Monthly,
    /// Fixed periods of this length since the Unix epoch.
    Every(Duration),
}

const DAY_NANOS: u64 = 86_400 * 1_000_000_000;

impl Window {
    /// The window's number at `unix_nanos` (windows with the same number share a spend).
    #[inline]
    pub fn id(&self, unix_nanos: u64) -> u64 {
        self.period().id(unix_nanos)
    }

    /// The window in the form the hot path reads.
    pub(crate) fn period(&self) -> Period {
        match self {
            Window::Total => Period::Total,
            Window::Daily => Period::Day,
            Window::Monthly => Period::Monthly,
            Window::Every(d) => match d.as_nanos().clamp(1, u128::from(u64::MAX)) as u64 {
                DAY_NANOS => Period::Day,
                n => Period::Every(n),
            },
        }
    }

    fn needs_clock(&self) -> bool {
        !matches!(self, Window::Total)
    }

    fn name(&self) -> String {
        match self {
            Window::Total => "total".into(),
            Window::Daily => "daily".into(),
            Window::Monthly => "monthly".into(),
            Window::Every(d) => format!("every {d:?}"),
        }
    }
}

/// A [`Window`] with its length in nanoseconds worked out once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Total,
    /// A UTC day: divided by a constant, which compiles to a multiplication.
    Day,
    Every(u64),
    Monthly,
}

impl Period {
    #[inline]
    pub(crate) fn id(self, unix_nanos: u64) -> u64 {
        // two tests rather than a jump table: the common windows cost a compare each
        match self {
            Period::Total => 0,
            Period::Day => unix_nanos / DAY_NANOS,
            other => other.id_other(unix_nanos),
        }
    }

    #[cold]
    #[inline(never)]
    fn id_other(self, unix_nanos: u64) -> u64 {
        match self {
            Period::Every(n) => unix_nanos / n.max(1),
            Period::Monthly => month_id(unix_nanos),
            Period::Total | Period::Day => self.id(unix_nanos),
        }
    }
}

/// The number of the UTC calendar month of `unix_nanos`.
fn month_id(unix_nanos: u64) -> u64 {
    let (y, m) = year_month(unix_nanos / DAY_NANOS);
    y * 12 + m
}

/// (year, month 0..=11) of a day count since 1970-01-01, by the days-to-civil algorithm.
fn year_month(days: u64) -> (u64, u64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // 1..=12
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y.max(0) as u64, (m - 1) as u64)
}

/// Whose spend a budget limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything through the ledger.
    Global,
    /// One provider (by the provider its model belongs to in the price table, and the
    /// provider named on the response).
    Provider(Arc<str>),
    /// Each client key separately (requests without a key are not limited by it).
    PerClient,
}

/// A spending limit over a window.
///
/// ```
/// use towerguard_cost_meter::{usd, Budget};
/// let daily = Budget::global(usd(100.0)).daily().alert_at(0.8);
/// let per_client = Budget::per_client(usd(5.0)).monthly();
/// # let _ = (daily, per_client);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub(crate) scope: Scope,
    pub(crate) limit: Nanos,
    pub(crate) window: Window,
    pub(crate) alert_at: Option<f64>,
}

impl Budget {
    /// A limit on all spending (in nano-dollars; see [`usd`](crate::usd)), over all time
    /// unless a window is set.
    pub fn global(limit: Nanos) -> Self {
        Self {
            scope: Scope::Global,
            limit,
            window: Window::Total,
            alert_at: None,
        }
    }

    /// A limit on one provider's spending.
    pub fn provider(name: impl Into<Arc<str>>, limit: Nanos) -> Self {
        Self {
            scope: Scope::Provider(name.into()),
            ..Self::global(limit)
        }
    }

    /// A limit on each client key's spending.
    pub fn per_client(limit: Nanos) -> Self {
        Self {
            scope: Scope::PerClient,
            ..Self::global(limit)
        }
    }

    /// Counted per UTC day.
    pub fn daily(mut self) -> Self {
        self.window = Window::Daily;
        self
    }

    /// Counted per UTC calendar month.
    pub fn monthly(mut self) -> Self {
        self.window = Window::Monthly;
        self
    }

    /// Counted over any window.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Alert once per window when spending reaches this share of the limit (0 to 1).
    pub fn alert_at(mut self, share: f64) -> Self {
        self.alert_at = Some(share);
        self
    }

    pub(crate) fn needs_clock(&self) -> bool {
        self.window.needs_clock()
    }

    /// A name for errors and alerts: `"global daily"`, `"provider openai monthly"`, ...
    pub fn describe(&self, member: Option<&str>) -> String {
        let scope = match (&self.scope, member) {
            (Scope::Global, _) => "global".to_owned(),
            (Scope::Provider(p), _) => format!("provider {p}"),
            (Scope::PerClient, Some(c)) => format!("client {c}"),
            (Scope::PerClient, None) => "per-client".to_owned(),
        };
        format!("{scope} {}", self.window.name())
    }
}

/// Which counter a store operation is about.
#[derive(Debug, Clone, Copy)]
pub struct BudgetKey<'a> {
    /// The budget's position in the ledger's list (dense: a store may index by it).
    pub budget: usize,
    /// The client key, for per-client budgets.
    pub member: Option<&'a str>,
    /// The window number ([`Window::id`]).
    pub window: u64,
}

/// Where budget spend lives. Every operation is atomic on its counter, so concurrent
/// requests can never together reserve past a limit. The in-memory default is
/// [`MemoryStore`]; a shared store (Redis, for fleets of gateways) implements the same three
/// operations with one atomic script each.
pub trait BudgetStore: Send + Sync + 'static {
    /// Adds `amount` to the counter if the result stays within `limit`: `Ok(new total)`, or
    /// `Err(current total)` and nothing changes. A counter of an older window starts over.
    fn try_reserve(&self, key: BudgetKey<'_>, amount: Nanos, limit: Nanos) -> Result<Nanos, Nanos>;

    /// Replaces a reservation of `reserved` by the `actual` spend (0 to release it); returns
    /// the new total. If the window has moved on since the reservation, the actual spend
    /// counts in the current window.
    fn settle(&self, key: BudgetKey<'_>, reserved: Nanos, actual: Nanos) -> Nanos;

    /// The counter's total (spent and reserved) in the key's window.
    fn spent(&self, key: BudgetKey<'_>) -> Nanos;

    /// True the first time it is called for a budget, member and window (alerts fire once).
    fn first_alert(&self, key: BudgetKey<'_>) -> bool;

    /// Clears every counter of one budget (all members, all windows).
    fn reset(&self, budget: usize);
}

#[derive(Debug, Default)]
pub(crate) struct Counter {
    window: AtomicU64,
    used: AtomicU64,
    alerted: AtomicU64,
    rollover: Mutex<()>,
}

impl Counter {
    /// Moves the counter to `window` if it is behind.
    #[inline]
    fn roll(&self, window: u64) {
        if self.window.load(Ordering::Acquire) < window {
            self.roll_to(window);
        }
    }

    /// Moves the counter to `window` (once, under the rollover lock).
    #[cold]
    #[inline(never)]
    fn roll_to(&self, window: u64) {
        let _guard = self.rollover.lock().unwrap_or_else(|p| p.into_inner());
        if self.window.load(Ordering::Acquire) < window {
            self.used.store(0, Ordering::Release);
            self.window.store(window, Ordering::Release);
        }
    }

    #[inline]
    pub(crate) fn try_reserve(
        &self,
        window: u64,
        amount: Nanos,
        limit: Nanos,
    ) -> Result<Nanos, Nanos> {
        self.roll(window);
        self.add_within(amount, limit)
    }

    /// Adds `amount` if the total stays within `limit` (the window is the counter's).
    #[inline]
    pub(crate) fn add_within(&self, amount: Nanos, limit: Nanos) -> Result<Nanos, Nanos> {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(amount);
            if next > limit {
                return Err(cur);
            }
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(next),
                Err(actual) => cur = actual,
            }
        }
    }

    #[inline]
    pub(crate) fn settle(&self, window: u64, reserved: Nanos, actual: Nanos) -> Nanos {
        if self.window.load(Ordering::Acquire) != window {
            return self.settle_elsewhere(actual);
        }
        self.replace(reserved, actual)
    }

    /// Replaces a reservation of `reserved` by `actual` (the window is the counter's).
    #[inline]
    pub(crate) fn replace(&self, reserved: Nanos, actual: Nanos) -> Nanos {
        if actual >= reserved {
            let d = actual - reserved;
            self.used.fetch_add(d, Ordering::AcqRel).saturating_add(d)
        } else {
            let d = reserved - actual;
            let mut cur = self.used.load(Ordering::Acquire);
            loop {
                let next = cur.saturating_sub(d);
                match self.used.compare_exchange_weak(
                    cur,
                    next,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return next,
                    Err(a) => cur = a,
                }
            }
        }
    }

    /// Settles a reservation whose window has gone (the counter only moves forward, and the
    /// reservation moved it to its own window): the spend counts in the current one.
    #[cold]
    fn settle_elsewhere(&self, actual: Nanos) -> Nanos {
        self.used
            .fetch_add(actual, Ordering::AcqRel)
            .saturating_add(actual)
    }

    fn spent(&self, window: u64) -> Nanos {
        if self.window.load(Ordering::Acquire) == window {
            self.used.load(Ordering::Acquire)
        } else {
            0
        }
    }

    fn first_alert(&self, window: u64) -> bool {
        // window + 1 so that window 0 (Total) can be marked too
        let mark = window + 1;
        let prev = self.alerted.load(Ordering::Acquire);
        prev < mark
            && self
                .alerted
                .compare_exchange(prev, mark, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn clear(&self) {
        let _guard = self.rollover.lock().unwrap_or_else(|p| p.into_inner());
        self.used.store(0, Ordering::Release);
        self.alerted.store(0, Ordering::Release);
    }
}

const CLIENT_SHARDS: usize = 16;

/// Client key -> one counter per budget.
/// ahash with a random key: fast, and clients cannot craft keys that collide.
type ClientMap = RwLock<HashMap<Box<str>, Box<[Counter]>, ahash::RandomState>>;

/// Budget counters in this process's memory: lock-free atomics for global and provider
/// budgets, sharded maps for per-client ones, bounded: past `max_clients` a new client
/// replaces one with nothing spent or reserved, and when there is none it shares one
/// overflow set of counters with the other newcomers (they are limited together, which errs
/// on the side of spending less).
pub struct MemoryStore {
    pub(crate) fixed: Vec<Counter>,
    clients: Box<[ClientMap]>,
    per_shard: usize,
    overflow: Box<[Counter]>,
}

/// Clients tracked by a [`MemoryStore`] unless told otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("budgets", &self.fixed.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store for up to `budgets` budgets.
    pub fn new(budgets: usize) -> Self {
        Self::with_max_clients(budgets, DEFAULT_MAX_CLIENTS)
    }

    /// A store for up to `budgets` budgets tracking at most about `max_clients` clients.
    pub fn with_max_clients(budgets: usize, max_clients: usize) -> Self {
        Self {
            fixed: (0..budgets).map(|_| Counter::default()).collect(),
            clients: (0..CLIENT_SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(ahash::RandomState::new())))
                .collect(),
            per_shard: (max_clients / CLIENT_SHARDS).max(1),
            overflow: (0..budgets).map(|_| Counter::default()).collect(),
        }
    }

    /// Clients tracked now.
    pub fn clients(&self) -> usize {
        self.clients
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    #[inline]
    fn with<T>(&self, key: BudgetKey<'_>, f: impl FnOnce(&Counter) -> T) -> Option<T> {
        let Some(member) = key.member else {
            return self.fixed.get(key.budget).map(f);
        };
        self.with_client(key.budget, member, f)
    }

    #[inline(never)]
    fn with_client<T>(
        &self,
        budget: usize,
        member: &str,
        f: impl FnOnce(&Counter) -> T,
    ) -> Option<T> {
        let shard = &self.clients[shard_of(member)];
        {
            let map = shard.read().unwrap_or_else(|p| p.into_inner());
            if let Some(counters) = map.get(member) {
                return counters.get(budget).map(f);
            }
        }
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(member) && map.len() >= self.per_shard {
            // make room: forget a client with nothing spent or reserved in its windows
            let idle = map
                .iter()
                .find(|(_, cs)| cs.iter().all(|c| c.used.load(Ordering::Acquire) == 0))
                .map(|(k, _)| k.clone());
            match idle {
                Some(k) => {
                    map.remove(&k);
                }
                None => return self.overflow.get(budget).map(f),
            }
        }
        let budgets = self.fixed.len();
        let counters = map
            .entry(Box::from(member))
            .or_insert_with(|| (0..budgets).map(|_| Counter::default()).collect());
        counters.get(budget).map(f)
    }
}

/// The ledger's store: the in-memory one, called directly so the hot path inlines, or any
/// other behind the trait.
pub(crate) enum Store {
    Memory(MemoryStore),
    Custom(Box<dyn BudgetStore>),
}

impl Store {
    #[inline]
    pub(crate) fn try_reserve(
        &self,
        key: BudgetKey<'_>,
        amount: Nanos,
        limit: Nanos,
    ) -> Result<Nanos, Nanos> {
        match self {
            Store::Memory(m) => m.try_reserve(key, amount, limit),
            Store::Custom(c) => c.try_reserve(key, amount, limit),
        }
    }

    #[inline]
    pub(crate) fn settle(&self, key: BudgetKey<'_>, reserved: Nanos, actual: Nanos) -> Nanos {
        match self {
            Store::Memory(m) => m.settle(key, reserved, actual),
            Store::Custom(c) => c.settle(key, reserved, actual),
        }
    }

    /// The store as the trait, for the cold operations.
    pub(crate) fn get(&self) -> &dyn BudgetStore {
        match self {
            Store::Memory(m) => m,
            Store::Custom(c) => &**c,
        }
    }
}

fn shard_of(member: &str) -> usize {
    // FNV-1a: cheap and good enough to spread client keys over shards
    let mut h: u32 = 0x811c_9dc5;
    for b in member.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % CLIENT_SHARDS
}

impl BudgetStore for MemoryStore {
    #[inline]
    fn try_reserve(&self, key: BudgetKey<'_>, amount: Nanos, limit: Nanos) -> Result<Nanos, Nanos> {
        self.with(key, |c| c.try_reserve(key.window, amount, limit))
            .unwrap_or(Err(0))
    }

    #[inline]
    fn settle(&self, key: BudgetKey<'_>, reserved: Nanos, actual: Nanos) -> Nanos {
        self.with(key, |c| c.settle(key.window, reserved, actual))
            .unwrap_or(0)
    }

    fn spent(&self, key: BudgetKey<'_>) -> Nanos {
        self.with(key, |c| c.spent(key.window)).unwrap_or(0)
    }

    fn first_alert(&self, key: BudgetKey<'_>) -> bool {
        self.with(key, |c| c.first_alert(key.window))
            .unwrap_or(false)
    }

    fn reset(&self, budget: usize) {
        if let Some(c) = self.fixed.get(budget) {
            c.clear();
        }
        for shard in self.clients.iter() {
            for counters in shard.read().unwrap_or_else(|p| p.into_inner()).values() {
                if let Some(c) = counters.get(budget) {
                    c.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_agrees_with_the_system_clock() {
        let coarse = CoarseClock::new();
        for _ in 0..1000 {
            let (a, b) = (coarse.unix_nanos(), SystemClock.unix_nanos());
            // within the coarse clock's resolution (a few ms), far under a window
            assert!(a.abs_diff(b) < 50_000_000, "{a} vs {b}");
        }
    }

    #[test]
    fn calendar_windows() {
        // 2026-01-31 23:59:59 UTC and a second later
        let jan31 = 1_769_903_999u64 * 1_000_000_000;
        let feb1 = jan31 + 1_000_000_000;
        assert_eq!(Window::Monthly.id(jan31) + 1, Window::Monthly.id(feb1));
        assert_eq!(Window::Daily.id(jan31) + 1, Window::Daily.id(feb1));
        assert_eq!(year_month(0), (1970, 0));
        assert_eq!(year_month(19_783), (2024, 2)); // 2024-03-01
        assert_eq!(year_month(19_782), (2024, 1)); // 2024-02-29
        assert_eq!(
            Window::Every(Duration::from_secs(60)).id(125 * 1_000_000_000),
            2
        );
    }

    #[test]
    fn counters_reserve_settle_and_roll_over() {
        let c = Counter::default();
        assert_eq!(c.try_reserve(1, 60, 100), Ok(60));
        assert_eq!(c.try_reserve(1, 50, 100), Err(60));
        assert_eq!(c.settle(1, 60, 20), 20);
        assert_eq!(c.try_reserve(1, 80, 100), Ok(100));
        assert_eq!(c.settle(1, 80, 0), 20);
        // a new window starts from zero; an old reservation settles into it
        assert_eq!(c.try_reserve(2, 100, 100), Ok(100));
        assert_eq!(c.settle(1, 30, 5), 105);
        assert!(c.first_alert(2));
        assert!(!c.first_alert(2));
        assert!(c.first_alert(3));
    }
}
