//! [`CircuitBreakerLayer`], its builder and its [`CircuitBreakerHandle`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;

use crate::classify::{ClassifyFn, DefaultClassifier};
use crate::core::{Core, Outcome, Rules, State, Stats, Window};
use crate::service::CircuitBreaker;
use crate::window::{CountWindow, TimeWindow};

/// Invalid breaker configuration, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The field at fault (e.g. `"failure_rate"`).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid circuit breaker configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// The breaker every clone of the service shares: the state machine and its clock origin.
#[derive(Debug)]
pub(crate) struct Breaker {
    pub(crate) core: Core,
    start: Instant,
}

impl Breaker {
    /// Nanoseconds since the breaker was made, on tokio's clock (pausable in tests).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos();
        nanos.min(u128::from(u64::MAX)) as u64
    }
}

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
    breaker: Arc<Breaker>,
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("name", &self.breaker.core.name())
            .field("state", &self.state())
            .finish()
    }
}

pub(crate) fn handle_of(breaker: &Arc<Breaker>) -> CircuitBreakerHandle {
    CircuitBreakerHandle {
        breaker: breaker.clone(),
    }
}

impl CircuitBreakerHandle {
    /// The current state.
    pub fn state(&self) -> State {
        self.breaker.core.state()
    }

    /// The breaker's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.breaker.core.name().map(|n| &**n)
    }

    /// State, window contents and lifetime counts.
    pub fn stats(&self) -> Stats {
        self.breaker.core.stats(self.breaker.now())
    }

    /// Half-open probes in flight now.
    pub fn probes_in_flight(&self) -> u64 {
        self.breaker.core.probes_in_flight()
    }

    /// Closes the breaker and clears its window and failure run (lifetime counts stay).
    pub fn reset(&self) {
        self.breaker.core.force(State::Closed);
    }

    /// Clears the lifetime counts.
    pub fn clear_counts(&self) {
        self.breaker.core.clear_counters();
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.breaker.core.force(State::ForcedOpen);
    }

    /// Lets every call through and records nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.breaker.core.force(State::Disabled);
    }

    /// Records outcomes but never trips, until [`reset`](Self::reset).
    pub fn metrics_only(&self) {
        self.breaker.core.force(State::MetricsOnly);
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

/// Wraps services in a circuit breaker. Every service the layer makes, and every clone of
/// those, shares one breaker: make one layer per provider.
///
/// Defaults (the seeds'): trip on 5 consecutive failures, stay open 60 s (longer if the
/// provider's Retry-After says so, up to 5 minutes), then let 1 probe through; 1 success
/// closes.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use towerguard_circuit_breaker::CircuitBreakerLayer;
/// use towerguard_testkit::FakeProvider;
///
/// let breaker = CircuitBreakerLayer::builder()
///     .name("openai")
///     .failure_rate(0.5)
///     .count_window(100)
///     .min_calls(20)
///     .open_duration(Duration::from_secs(30))
///     .half_open_permits(3)
///     .build()
///     .expect("valid configuration");
/// let handle = breaker.handle();
/// let service = ServiceBuilder::new().layer(breaker).service(FakeProvider::new("openai"));
/// # let _ = (service, handle);
/// ```
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    breaker: Arc<Breaker>,
    classifier: C,
}

impl<C: Clone> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker.core)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerLayer {
    /// A builder with the defaults.
    pub fn builder() -> CircuitBreakerLayerBuilder {
        CircuitBreakerLayerBuilder::default()
    }

    /// A breaker with every default, named after the provider it guards.
    pub fn named(name: impl Into<Arc<str>>) -> Self {
        match Self::builder().name(name).build() {
            Ok(layer) => layer,
            Err(_) => unreachable!("the default breaker configuration is valid"),
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// A handle to read and control the shared breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            breaker: self.breaker.clone(),
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.breaker.clone(), self.classifier.clone())
    }
}

#[derive(Debug, Clone, Copy)]
enum WindowSpec {
    None,
    Count(u32),
    Time { span: Duration, buckets: u32 },
}

/// Builds a [`CircuitBreakerLayer`]; [`build`](Self::build) checks the configuration.
pub struct CircuitBreakerLayerBuilder<C = DefaultClassifier> {
    name: Option<Arc<str>>,
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    slow: Option<(Duration, f64)>,
    window: WindowSpec,
    min_calls: u64,
    open_duration: Duration,
    max_open_duration: Option<Duration>,
    grow_open_duration: bool,
    follow_retry_after: bool,
    half_open_permits: u32,
    half_open_successes: Option<u32>,
    observer: Option<crate::core::Observer>,
    classifier: C,
}

impl Default for CircuitBreakerLayerBuilder {
    fn default() -> Self {
        Self {
            name: None,
            consecutive_failures: Some(5),
            failure_rate: None,
            slow: None,
            window: WindowSpec::None,
            min_calls: 10,
            open_duration: Duration::from_secs(60),
            max_open_duration: None,
            grow_open_duration: false,
            follow_retry_after: true,
            half_open_permits: 1,
            half_open_successes: None,
            observer: None,
            classifier: DefaultClassifier,
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayerBuilder")
            .field("name", &self.name)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("failure_rate", &self.failure_rate)
            .field("window", &self.window)
            .field("open_duration", &self.open_duration)
            .finish_non_exhaustive()
    }
}

impl<C> CircuitBreakerLayerBuilder<C> {
    /// The breaker's name (the provider's), shown in errors, logs and `CircuitOpen` errors.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Trip after this many failures in a row (default 5).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// Do not trip on consecutive failures (only on rates).
    pub fn no_consecutive_failures(mut self) -> Self {
        self.consecutive_failures = None;
        self
    }

    /// Trip when the share of failures in the window reaches `rate` (0 to 1). Without a
    /// window set, a count window of the last 100 calls is used.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// Count calls slower than `threshold` as slow, and trip when their share in the window
    /// reaches `rate` (0 to 1). Costs two clock reads per call.
    pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        self.slow = Some((threshold, rate));
        self
    }

    /// The window is the last `calls` calls.
    pub fn count_window(mut self, calls: u32) -> Self {
        self.window = WindowSpec::Count(calls);
        self
    }

    /// The window is the last `span`, kept in `buckets` buckets (a call drops out when its
    /// bucket leaves the window). Costs a clock read per call.
    pub fn time_window(mut self, span: Duration, buckets: u32) -> Self {
        self.window = WindowSpec::Time { span, buckets };
        self
    }

    /// Rates count only once the window holds this many calls (default 10).
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = n;
        self
    }

    /// How long to stay open (default 60 s).
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.open_duration = d;
        self
    }

    /// Grow the open time with each trip in a row (`open_duration * n`), capped at `max`.
    pub fn grow_open_duration(mut self, max: Duration) -> Self {
        self.grow_open_duration = true;
        self.max_open_duration = Some(max);
        self
    }

    /// Whether a failure's Retry-After hint, when longer, sets the open time (default true;
    /// capped at the maximum open duration, 5 minutes unless grown).
    pub fn follow_retry_after(mut self, follow: bool) -> Self {
        self.follow_retry_after = follow;
        self
    }

    /// The cap on open time from growth or Retry-After hints (default: 5 minutes, or the
    /// open duration if that is longer).
    pub fn max_open_duration(mut self, max: Duration) -> Self {
        self.max_open_duration = Some(max);
        self
    }

    /// Probe calls allowed at once when half-open (default 1).
    pub fn half_open_permits(mut self, n: u32) -> Self {
        self.half_open_permits = n;
        self
    }

    /// Probe successes needed to close (default: the number of permits).
    pub fn half_open_successes(mut self, n: u32) -> Self {
        self.half_open_successes = Some(n);
        self
    }

    /// Called on every state change with `(from, to)`, from the thread that made it.
    pub fn on_state_change(mut self, f: impl Fn(State, State) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(f));
        self
    }

    /// Classify results with a closure over the whole result.
    pub fn classify_with<F, Res, E>(self, f: F) -> CircuitBreakerLayerBuilder<ClassifyFn<F>>
    where
        F: Fn(&Result<Res, E>) -> Outcome,
    {
        self.classifier(ClassifyFn(f))
    }

    /// Any [`Classify`](crate::Classify) implementation.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayerBuilder<C2> {
        CircuitBreakerLayerBuilder {
            name: self.name,
            consecutive_failures: self.consecutive_failures,
            failure_rate: self.failure_rate,
            slow: self.slow,
            window: self.window,
            min_calls: self.min_calls,
            open_duration: self.open_duration,
            max_open_duration: self.max_open_duration,
            grow_open_duration: self.grow_open_duration,
            follow_retry_after: self.follow_retry_after,
            half_open_permits: self.half_open_permits,
            half_open_successes: self.half_open_successes,
            observer: self.observer,
            classifier,
        }
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, ConfigError> {
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                "consecutive_failures",
                "must be at least 1",
            ));
        }
        check_rate(self.failure_rate, "failure_rate")?;
        check_rate(self.slow.map(|s| s.1), "slow_calls.rate")?;
        if self.half_open_permits == 0 || self.half_open_permits > 0xffff {
            return Err(ConfigError::new(
                "half_open_permits",
                format!("must be within 1..=65535, got {}", self.half_open_permits),
            ));
        }
        let successes = self.half_open_successes.unwrap_or(self.half_open_permits);
        if successes == 0 || successes > 0xffff {
            return Err(ConfigError::new(
                "half_open_successes",
                format!("must be within 1..=65535, got {successes}"),
            ));
        }
        let max_open_duration = match self.max_open_duration {
            Some(max) if max < self.open_duration => {
                return Err(ConfigError::new(
                    "max_open_duration",
                    format!(
                        "({max:?}) is below open_duration ({:?})",
                        self.open_duration
                    ),
                ));
            }
            Some(max) => max,
            None => self.open_duration.max(Duration::from_secs(300)),
        };
        let wants_rates = self.failure_rate.is_some() || self.slow.is_some();
        let spec = match self.window {
            WindowSpec::None if wants_rates => WindowSpec::Count(100),
            other => other,
        };
        let window = match spec {
            WindowSpec::None => None,
            WindowSpec::Count(0) => {
                return Err(ConfigError::new(
                    "count_window",
                    "must hold at least 1 call",
                ));
            }
            WindowSpec::Count(n) => Some(Window::Count(CountWindow::new(n))),
            WindowSpec::Time { span, buckets } => {
                if span.is_zero() {
                    return Err(ConfigError::new("time_window", "must be longer than zero"));
                }
                if buckets == 0 || buckets > 10_000 {
                    return Err(ConfigError::new(
                        "time_window.buckets",
                        format!("must be within 1..=10000, got {buckets}"),
                    ));
                }
                let nanos = (span.as_nanos() / u128::from(buckets)).min(u128::from(u64::MAX));
                if nanos == 0 {
                    return Err(ConfigError::new(
                        "time_window.buckets",
                        "more buckets than nanoseconds in the window",
                    ));
                }
                Some(Window::Time(TimeWindow::new(buckets, nanos as u64)))
            }
        };
        // A window with neither rate set trips at 50 % failures, as resilience4j does.
        let failure_rate = match (&window, self.failure_rate, self.slow) {
            (Some(_), None, None) => Some(0.5),
            (_, rate, _) => rate,
        };
        if window.is_none() && self.consecutive_failures.is_none() {
            return Err(ConfigError::new(
                "consecutive_failures",
                "is off and no failure rate or window is set: the breaker could never trip",
            ));
        }
        let rules = Rules {
            consecutive_failures: self.consecutive_failures,
            failure_rate,
            slow_rate: self.slow.map(|s| s.1),
            slow_threshold: self.slow.map(|s| s.0),
            min_calls: self.min_calls,
            open_duration: self.open_duration,
            max_open_duration,
            grow_open_duration: self.grow_open_duration,
            follow_retry_after: self.follow_retry_after,
            half_open_permits: self.half_open_permits,
            half_open_successes: successes,
        };
        Ok(CircuitBreakerLayer {
            breaker: Arc::new(Breaker {
                core: Core::new(rules, window, self.name, self.observer),
                start: Instant::now(),
            }),
            classifier: self.classifier,
        })
    }
}

fn check_rate(rate: Option<f64>, field: &'static str) -> Result<(), ConfigError> {
    match rate {
        Some(r) if !(0.0..=1.0).contains(&r) => Err(ConfigError::new(
            field,
            format!("must be within 0..=1, got {r}"),
        )),
        _ => Ok(()),
    }
}
