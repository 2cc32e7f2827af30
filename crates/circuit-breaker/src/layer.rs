//! [`CircuitBreakerLayer`] and its builder, which checks the configuration.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use towerguard_outcome::{ClassifyFn, Clock, ConfigError, DefaultClassify, TokioClock, Verdict};

use crate::handle::CircuitBreakerHandle;
use crate::service::{CircuitBreaker, Lanes, lanes};
use crate::shard;
use crate::state::{Breaker, Observer, Rules, State};
use crate::window::{Spec, Window};

/// The largest count window: 100,000 calls.
pub const MAX_COUNT_WINDOW: u32 = 100_000;
/// The most buckets a time window may have.
pub const MAX_TIME_BUCKETS: u32 = 1_000;
/// The most half-open permits, and the most probe successes asked to close.
pub const MAX_HALF_OPEN_PERMITS: u32 = 1_000;

/// Wraps services in a circuit breaker. Every service the layer makes, and every clone of
/// those, shares one breaker: make one layer per provider.
///
/// Defaults: trip on 5 consecutive failures, stay open 60 s (longer if the provider's
/// Retry-After says so, up to 5 minutes), then let 1 probe through; 1 success closes.
/// A result is a failure when its [`Verdict`] counts for the breaker; a refusal by another
/// of our layers is ignored; anything else is a success.
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
pub struct CircuitBreakerLayer<C = DefaultClassify> {
    lanes: Lanes<C>,
}

impl<C> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        Self {
            lanes: self.lanes.clone(),
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.lanes[0].breaker)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerLayer {
    /// A builder with the defaults.
    pub fn builder() -> CircuitBreakerLayerBuilder {
        CircuitBreakerLayerBuilder {
            config: Config::default(),
            classifier: DefaultClassify,
        }
    }

    /// A breaker with every default, named after the provider it guards.
    pub fn named(name: impl Into<Arc<str>>) -> Self {
        let config = Config {
            name: Some(name.into()),
            ..Config::default()
        };
        // the defaults need no check: consecutive failures only, no window
        assemble(config, Spec::None, 0, DefaultClassify)
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// A handle to read and control the shared breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            breaker: self.lanes[0].breaker.clone(),
        }
    }
}

impl<S, C> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.lanes.clone())
    }
}

#[derive(Debug, Clone, Copy)]
enum WindowSpec {
    None,
    Count(u32),
    Time { span: Duration, buckets: u32 },
}

/// Everything but the classifier.
struct Config {
    name: Option<Arc<str>>,
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    slow: Option<(Duration, f64)>,
    window: WindowSpec,
    min_calls: Option<u64>,
    open_duration: Duration,
    max_open_duration: Option<Duration>,
    grow_open_duration: bool,
    follow_retry_after: bool,
    half_open_permits: u32,
    half_open_successes: Option<u32>,
    clock: Option<Arc<dyn Clock>>,
    observer: Option<Observer>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: None,
            consecutive_failures: Some(5),
            failure_rate: None,
            slow: None,
            window: WindowSpec::None,
            min_calls: None,
            open_duration: Duration::from_secs(60),
            max_open_duration: None,
            grow_open_duration: false,
            follow_retry_after: true,
            half_open_permits: 1,
            half_open_successes: None,
            clock: None,
            observer: None,
        }
    }
}

impl Config {
    /// The rules, for a configuration already checked.
    fn rules(&self, min_calls: u64) -> Rules {
        let permits = self.half_open_permits;
        Rules {
            consecutive_failures: self.consecutive_failures,
            failure_rate: self.failure_rate,
            slow_rate: self.slow.map(|s| s.1),
            slow_threshold: self.slow.map(|s| s.0),
            min_calls,
            open_duration: self.open_duration,
            max_open_duration: self
                .max_open_duration
                .unwrap_or(self.open_duration.max(Duration::from_secs(300))),
            grow_open_duration: self.grow_open_duration,
            follow_retry_after: self.follow_retry_after,
            half_open_permits: u16::try_from(permits).unwrap_or(u16::MAX),
            half_open_successes: u16::try_from(self.half_open_successes.unwrap_or(permits))
                .unwrap_or(u16::MAX),
        }
    }

    /// Checks every field; returns the window and the effective `min_calls`.
    fn check(&mut self) -> Result<(Spec, u64), ConfigError> {
        let (open, positive) = (self.open_duration, "must be longer than zero");
        let run = self.consecutive_failures;
        ensure(run != Some(0), "consecutive_failures", "must be at least 1")?;
        check_rate("failure_rate", self.failure_rate)?;
        if let Some((threshold, rate)) = self.slow {
            ensure(!threshold.is_zero(), "slow_calls.threshold", positive)?;
            check_rate("slow_calls.rate", Some(rate))?;
        }
        ensure(!open.is_zero(), "open_duration", positive)?;
        if let Some(max) = self.max_open_duration {
            let below = format!("({max:?}) is below open_duration ({open:?})");
            ensure(max >= open, "max_open_duration", below)?;
        }
        let max = MAX_HALF_OPEN_PERMITS;
        ConfigError::check_range("half_open_permits", self.half_open_permits, 1, max)?;
        if let Some(n) = self.half_open_successes {
            ConfigError::check_range("half_open_successes", n, 1, max)?;
        }
        let rates = self.failure_rate.is_some() || self.slow.is_some();
        let window = match self.window {
            WindowSpec::None if rates => WindowSpec::Count(100),
            other => other,
        };
        let (spec, min_calls) = match window {
            WindowSpec::None => {
                let never = "is off and no failure rate or window is set: it could never trip";
                ensure(run.is_some(), "consecutive_failures", never)?;
                (Spec::None, 0)
            }
            WindowSpec::Count(n) => {
                ConfigError::check_range("count_window", n, 1, MAX_COUNT_WINDOW)?;
                let n = u64::from(n);
                let min_calls = self.min_calls.unwrap_or(n.min(10));
                let never = format!("({min_calls}) is above count_window ({n}): rates never trip");
                ensure(min_calls <= n, "min_calls", never)?;
                (Spec::Count(n), min_calls)
            }
            WindowSpec::Time { span, buckets } => {
                ensure(!span.is_zero(), "time_window", positive)?;
                ConfigError::check_range("time_window.buckets", buckets, 1, MAX_TIME_BUCKETS)?;
                let bucket = span / buckets;
                let short = format!("make buckets of {bucket:?}: at least 1 ms each");
                ensure(
                    bucket >= Duration::from_millis(1),
                    "time_window.buckets",
                    short,
                )?;
                let bucket_nanos = u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX);
                let buckets = u64::from(buckets);
                // the origin is set when the clock is known
                let time = Spec::Time {
                    buckets,
                    bucket_nanos,
                    origin: 0,
                };
                (time, self.min_calls.unwrap_or(10))
            }
        };
        // A window with neither rate set trips at 50 % failures, as resilience4j does.
        if spec != Spec::None && !rates {
            self.failure_rate = Some(0.5);
        }
        Ok((spec, min_calls))
    }
}

/// `Err` naming `field`, for `reason`, unless `ok`.
fn ensure(
    ok: bool,
    field: &'static str,
    reason: impl Into<Cow<'static, str>>,
) -> Result<(), ConfigError> {
    ok.then_some(())
        .ok_or_else(|| ConfigError::new(field, reason))
}

/// `Err` naming `field` unless `rate` is within (0, 1].
fn check_rate(field: &'static str, rate: Option<f64>) -> Result<(), ConfigError> {
    let outside = format!("must be within (0, 1], got {}", rate.unwrap_or_default());
    ensure(rate.is_none_or(|r| r > 0.0 && r <= 1.0), field, outside)
}

/// Builds a [`CircuitBreakerLayer`]; [`build`](Self::build) checks the configuration and
/// names the field at fault.
pub struct CircuitBreakerLayerBuilder<C = DefaultClassify> {
    config: Config,
    classifier: C,
}

impl<C> fmt::Debug for CircuitBreakerLayerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("CircuitBreakerLayerBuilder")
            .field("name", &c.name)
            .field("consecutive_failures", &c.consecutive_failures)
            .field("failure_rate", &c.failure_rate)
            .field("window", &c.window)
            .field("open_duration", &c.open_duration)
            .finish_non_exhaustive()
    }
}

impl<C> CircuitBreakerLayerBuilder<C> {
    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// The breaker's name (the provider's), shown in errors, logs and `CircuitOpen` errors.
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        self.with(|c| c.name = Some(name.into()))
    }

    /// Trip after this many failures in a row (default 5; at least 1).
    pub fn consecutive_failures(self, n: u32) -> Self {
        self.with(|c| c.consecutive_failures = Some(n))
    }

    /// Do not trip on consecutive failures (only on rates).
    pub fn no_consecutive_failures(self) -> Self {
        self.with(|c| c.consecutive_failures = None)
    }

    /// Trip when the share of failures in the window reaches `rate`, within (0, 1]. Without a
    /// window set, a count window of the last 100 calls is used.
    pub fn failure_rate(self, rate: f64) -> Self {
        self.with(|c| c.failure_rate = Some(rate))
    }

    /// Count calls taking `threshold` or longer as slow, and trip when their share in the
    /// window reaches `rate`, within (0, 1]. Reads the clock twice per call.
    pub fn slow_calls(self, threshold: Duration, rate: f64) -> Self {
        self.with(|c| c.slow = Some((threshold, rate)))
    }

    /// The window is the last `calls` calls (1 to [`MAX_COUNT_WINDOW`]).
    pub fn count_window(self, calls: u32) -> Self {
        self.with(|c| c.window = WindowSpec::Count(calls))
    }

    /// The window is the last `span`, kept in `buckets` buckets (1 to [`MAX_TIME_BUCKETS`],
    /// each at least 1 ms long); a call drops out when its bucket leaves the window. Reads
    /// the clock once per call.
    pub fn time_window(self, span: Duration, buckets: u32) -> Self {
        self.with(|c| c.window = WindowSpec::Time { span, buckets })
    }

    /// Rates count only once the window holds this many calls (default 10, or a smaller
    /// count window's size; at most the count window's size).
    pub fn min_calls(self, n: u64) -> Self {
        self.with(|c| c.min_calls = Some(n))
    }

    /// How long to stay open (default 60 s; longer than zero).
    pub fn open_duration(self, d: Duration) -> Self {
        self.with(|c| c.open_duration = d)
    }

    /// Grow the open time with each trip in a row (`open_duration * n`), capped at `max`.
    pub fn grow_open_duration(self, max: Duration) -> Self {
        self.with(|c| {
            c.grow_open_duration = true;
            c.max_open_duration = Some(max);
        })
    }

    /// Whether a failure's Retry-After hint, when longer, sets the open time (default true;
    /// capped at the maximum open duration).
    pub fn follow_retry_after(self, follow: bool) -> Self {
        self.with(|c| c.follow_retry_after = follow)
    }

    /// The cap on open time from growth or Retry-After hints (default: 5 minutes, or the
    /// open duration if that is longer).
    pub fn max_open_duration(self, max: Duration) -> Self {
        self.with(|c| c.max_open_duration = Some(max))
    }

    /// Probe calls allowed at once when half-open (default 1; at most
    /// [`MAX_HALF_OPEN_PERMITS`]).
    pub fn half_open_permits(self, n: u32) -> Self {
        self.with(|c| c.half_open_permits = n)
    }

    /// Probe successes needed to close (default: the number of permits).
    pub fn half_open_successes(self, n: u32) -> Self {
        self.with(|c| c.half_open_successes = Some(n))
    }

    /// Where the breaker reads the time (default: [`TokioClock`], which follows tokio's
    /// paused clock in tests).
    pub fn clock(self, clock: impl Clock) -> Self {
        self.with(|c| c.clock = Some(Arc::new(clock)))
    }

    /// Called on every state change with `(from, to)`, from the thread that made it.
    pub fn on_state_change(self, f: impl Fn(State, State) + Send + Sync + 'static) -> Self {
        self.with(|c| c.observer = Some(Box::new(f)))
    }

    /// Classify results with a closure over the whole result, returning its [`Verdict`].
    pub fn classify_with<F, Res, E>(self, f: F) -> CircuitBreakerLayerBuilder<ClassifyFn<F>>
    where
        F: Fn(&Result<Res, E>) -> Verdict,
    {
        self.classifier(ClassifyFn(f))
    }

    /// Any [`Classify`](towerguard_outcome::Classify) implementation.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayerBuilder<C2> {
        CircuitBreakerLayerBuilder {
            config: self.config,
            classifier,
        }
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, ConfigError>
    where
        C: Clone,
    {
        let mut config = self.config;
        let (spec, min_calls) = config.check()?;
        Ok(assemble(config, spec, min_calls, self.classifier))
    }
}

/// Makes the layer from a checked configuration.
fn assemble<C: Clone>(
    mut config: Config,
    spec: Spec,
    min_calls: u64,
    classifier: C,
) -> CircuitBreakerLayer<C> {
    let shards = shard::count();
    let clock = config
        .clock
        .take()
        .unwrap_or_else(|| Arc::new(TokioClock::new()));
    let spec = match spec {
        Spec::Time {
            buckets,
            bucket_nanos,
            ..
        } => Spec::Time {
            buckets,
            bucket_nanos,
            origin: clock.unix_nanos(),
        },
        other => other,
    };
    let breaker = Arc::new(Breaker::new(
        config.rules(min_calls),
        Window::new(spec, shards),
        shards,
        clock,
        config.name.take(),
        config.observer.take(),
    ));
    CircuitBreakerLayer {
        lanes: lanes(&breaker, classifier),
    }
}
