//! Budgets: what they limit, the windows they count over, and the counter that keeps a
//! window's spend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

// the counters from loom when model checking (`--cfg towerguard_loom`)
#[cfg(towerguard_loom)]
use loom::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};
#[cfg(not(towerguard_loom))]
use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use towerguard_outcome::ConfigError;

use crate::prices::Nanos;

/// Most budgets a ledger can hold.
pub const MAX_BUDGETS: usize = 8;

/// The period a budget's spend is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Forever (until reset).
    Total,
    /// A UTC calendar day.
    Daily,
    /// A UTC calendar month.
    Monthly,
    /// Fixed periods of this length since the Unix epoch (at least one second).
    Every(Duration),
}

const SECOND_NANOS: u64 = 1_000_000_000;
const DAY_NANOS: u64 = 86_400 * SECOND_NANOS;

impl Window {
    /// The window's number at `unix_nanos`: times with the same number share a spend.
    pub fn id(&self, unix_nanos: u64) -> u64 {
        match self {
            Window::Total => 0,
            Window::Daily => unix_nanos / DAY_NANOS,
            Window::Monthly => month_id(unix_nanos),
            Window::Every(d) => unix_nanos / u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
        }
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

/// The number of the UTC calendar month of `unix_nanos` (year * 12 + month).
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything through the ledger.
    Global,
    /// One provider: the provider named on the response, and before that the provider of
    /// each attempt (through the attempt hook) or of the requested model in the price table.
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
    /// Per-client budgets: client keys with a limit of their own.
    pub(crate) own_limits: BTreeMap<Arc<str>, Nanos>,
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
            own_limits: BTreeMap::new(),
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

    /// A per-client budget's limit for client `key`, instead of the limit every other client
    /// has (a tenant's own budget: smaller or larger). Only for [`per_client`](Self::per_client)
    /// budgets; [`limit`](Self::limit) stays the others' limit.
    ///
    /// ```
    /// use towerguard_cost_meter::{usd, Budget};
    /// let budget = Budget::per_client(usd(5.0)).daily().limit_for("acme", usd(50.0));
    /// assert_eq!(budget.limit_of(Some("acme")), usd(50.0));
    /// assert_eq!(budget.limit_of(Some("someone-else")), usd(5.0));
    /// ```
    pub fn limit_for(mut self, key: impl Into<Arc<str>>, limit: Nanos) -> Self {
        self.own_limits.insert(key.into(), limit);
        self
    }

    /// The limit for `client` (a client key): its own with a per-client budget that gives it
    /// one, else [`limit`](Self::limit).
    pub fn limit_of(&self, client: Option<&str>) -> Nanos {
        match client {
            Some(key) if !self.own_limits.is_empty() => {
                self.own_limits.get(key).copied().unwrap_or(self.limit)
            }
            _ => self.limit,
        }
    }

    /// Counted per UTC day.
    pub fn daily(self) -> Self {
        self.window(Window::Daily)
    }

    /// Counted per UTC calendar month.
    pub fn monthly(self) -> Self {
        self.window(Window::Monthly)
    }

    /// Counted over any window.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Alert once per window when spending (and open reservations) reach this share of the
    /// limit, in (0, 1].
    pub fn alert_at(mut self, share: f64) -> Self {
        self.alert_at = Some(share);
        self
    }

    /// Whose spend it limits.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The limit, in nano-dollars.
    pub fn limit(&self) -> Nanos {
        self.limit
    }

    /// The window it counts over.
    pub fn period(&self) -> Window {
        self.window
    }

    /// A name for errors and alerts: `"global daily"`, `"provider openai monthly"`,
    /// `"client acme daily"` (with `member`), ...
    pub fn describe(&self, member: Option<&str>) -> String {
        let scope = match (&self.scope, member) {
            (Scope::Global, _) => "global".to_owned(),
            (Scope::Provider(p), _) => format!("provider {p}"),
            (Scope::PerClient, Some(c)) => format!("client {c}"),
            (Scope::PerClient, None) => "per-client".to_owned(),
        };
        format!("{scope} {}", self.window.name())
    }

    /// Refuses nonsense, naming the field under `budgets[index]`.
    pub(crate) fn check(&self, index: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("budgets[{index}].{name}");
        if self.limit == 0 {
            return Err(ConfigError::new(
                field("limit"),
                "must be above zero (usd() of a negative or NaN amount is 0)",
            ));
        }
        if let Some(a) = self.alert_at
            && !(a > 0.0 && a <= 1.0)
        {
            return Err(ConfigError::new(
                field("alert_at"),
                format!("must be a share in (0, 1], got {a}"),
            ));
        }
        if let Window::Every(d) = self.window
            && d < Duration::from_secs(1)
        {
            return Err(ConfigError::new(
                field("window"),
                format!("must be at least one second, got {d:?}"),
            ));
        }
        if let Scope::Provider(p) = &self.scope
            && p.is_empty()
        {
            return Err(ConfigError::new(field("scope"), "names no provider"));
        }
        if !self.own_limits.is_empty() && self.scope != Scope::PerClient {
            let reason = "only a per-client budget has limits of its own per client";
            return Err(ConfigError::new(field("limit_for"), reason));
        }
        for (key, limit) in &self.own_limits {
            if key.is_empty() {
                return Err(ConfigError::new(field("limit_for"), "names no client"));
            }
            if *limit == 0 {
                let reason = format!("`{key}`: must be above zero");
                return Err(ConfigError::new(field("limit_for"), reason));
            }
        }
        Ok(())
    }
}

/// The spend of one budget (or one client's share of a per-client budget) in its current
/// window. Reservations and settlements are single atomic updates; only the move to a new
/// window takes a lock, once per window.
///
/// `used` holds the open reservations plus the spend settled in `window`. Moving to a new
/// window subtracts the settled spend and keeps the open reservations, so a reservation made
/// before a window ends is still released exactly when it settles (its actual cost then
/// counts in the counter's current window).
#[derive(Debug, Default)]
pub(crate) struct Counter {
    window: AtomicU64,
    used: AtomicU64,
    settled: AtomicU64,
    /// One more than the window of the last alert (0: never alerted).
    alerted: AtomicU64,
    rollover: Mutex<()>,
}

impl Counter {
    /// Moves the counter to `window` if it is behind.
    fn roll(&self, window: u64) {
        if self.window.load(Ordering::Acquire) >= window {
            return;
        }
        let _guard = self.rollover.lock().unwrap_or_else(|p| p.into_inner());
        if self.window.load(Ordering::Acquire) < window {
            self.forget_settled();
            self.window.store(window, Ordering::Release);
        }
    }

    fn forget_settled(&self) {
        let settled = self.settled.swap(0, Ordering::AcqRel);
        sub(&self.used, settled);
    }

    /// Adds `amount` if the total stays within `limit`: `Ok(new total)`, or `Err(total)`
    /// and nothing changes.
    pub(crate) fn try_reserve(
        &self,
        window: u64,
        amount: Nanos,
        limit: Nanos,
    ) -> Result<Nanos, Nanos> {
        self.roll(window);
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

    /// Replaces a reservation of `reserved` by the `actual` spend, counted in `window` (the
    /// window now): returns the new total.
    pub(crate) fn settle(&self, window: u64, reserved: Nanos, actual: Nanos) -> Nanos {
        self.roll(window);
        // `used` first, so it never holds less than `settled`
        let total = if actual >= reserved {
            let add = actual - reserved;
            self.used
                .fetch_add(add, Ordering::AcqRel)
                .saturating_add(add)
        } else {
            sub(&self.used, reserved - actual)
        };
        self.settled.fetch_add(actual, Ordering::AcqRel);
        total
    }

    /// Spent and reserved in `window`.
    pub(crate) fn spent(&self, window: u64) -> Nanos {
        let used = self.used.load(Ordering::Acquire);
        if self.window.load(Ordering::Acquire) >= window {
            used
        } else {
            // only the open reservations carry over into a new window
            used.saturating_sub(self.settled.load(Ordering::Acquire))
        }
    }

    /// True the first time it is called for `window` (alerts fire once per window).
    pub(crate) fn first_alert(&self, window: u64) -> bool {
        let mark = window.saturating_add(1);
        let prev = self.alerted.load(Ordering::Acquire);
        prev < mark
            && self
                .alerted
                .compare_exchange(prev, mark, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Forgets the settled spend and the alert; open reservations stay until they settle.
    pub(crate) fn clear(&self) {
        let _guard = self.rollover.lock().unwrap_or_else(|p| p.into_inner());
        self.forget_settled();
        self.alerted.store(0, Ordering::Release);
    }
}

/// Subtracts, stopping at zero; returns the new value.
fn sub(a: &AtomicU64, n: u64) -> u64 {
    let prev = a
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some(v.saturating_sub(n))
        })
        .unwrap_or_else(|v| v);
    prev.saturating_sub(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_reserve_settle_and_roll_over() {
        let c = Counter::default();
        assert_eq!(c.try_reserve(1, 60, 100), Ok(60));
        assert_eq!(c.try_reserve(1, 50, 100), Err(60));
        assert_eq!(c.settle(1, 60, 20), 20);
        assert_eq!(c.try_reserve(1, 80, 100), Ok(100));
        // a new window forgets the settled 20 and keeps the open 80
        assert_eq!(c.spent(2), 80);
        assert_eq!(c.try_reserve(2, 20, 100), Ok(100));
        // the old reservation settles exactly: its 5 counts in the new window
        assert_eq!(c.settle(2, 80, 5), 25);
        assert_eq!(c.settle(2, 20, 0), 5);
        assert!(c.first_alert(2));
        assert!(!c.first_alert(2));
        assert!(c.first_alert(3));
        c.clear();
        assert_eq!(c.spent(2), 0);
    }
}
