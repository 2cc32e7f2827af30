//! [`RetryLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use towerguard_outcome::{ClassifyFn, DefaultClassify, Verdict};

use crate::ConfigError;
use crate::backoff::Backoff;
use crate::budget::RetryBudget;
use crate::policy::{RetryIf, StopOn};
use crate::service::Retry;

/// Default cap on a Retry-After hint that is waited out (longer hints end the retries).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Default number of retries after the first call.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// The untyped part of the configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) backoff: Backoff,
    pub(crate) max_retries: u32,
    pub(crate) max_elapsed: Option<Duration>,
    pub(crate) max_retry_after: Duration,
    pub(crate) budget: Option<Arc<RetryBudget>>,
}

/// The configuration shared by every service a [`RetryLayer`] makes.
pub(crate) struct Config<C, R, G, A> {
    pub(crate) settings: Settings,
    pub(crate) classifier: C,
    pub(crate) on_retry: R,
    pub(crate) on_give_up: G,
    pub(crate) record: A,
}

/// Retries failed calls with backoff, honouring Retry-After, within a retry budget.
///
/// `max_retries` counts retries *after* the first call (Polly's meaning, not
/// resilience4j's `maxAttempts`): `max_retries(2)` makes at most 3 calls. What is retried is
/// the result's [`Verdict`]: by default the error's own
/// ([`ClassifyError`](towerguard_outcome::ClassifyError)), so our layers' refusals (open
/// breaker, throttled, budget exceeded) are never retried, in a `BoxError` pipeline too.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use towerguard_retry_backoff::{Backoff, Jitter, LlmAttempts, RetryBudget, RetryLayer};
/// use towerguard_testkit::FakeProvider;
///
/// let layer = RetryLayer::builder()
///     .max_retries(3)
///     .backoff(Backoff::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(8))
///         .with_jitter(Jitter::Full))
///     .budget(RetryBudget::default())
///     .record_attempts(LlmAttempts)
///     .build()
///     .expect("valid configuration");
/// let service = ServiceBuilder::new().layer(layer).service(FakeProvider::new("openai"));
/// # let _ = service;
/// ```
pub struct RetryLayer<C = DefaultClassify, R = (), G = (), A = ()> {
    config: Arc<Config<C, R, G, A>>,
}

impl<C, R, G, A> Clone for RetryLayer<C, R, G, A> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<C, R, G, A> fmt::Debug for RetryLayer<C, R, G, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryLayer")
            .field(&self.config.settings)
            .finish()
    }
}

impl RetryLayer {
    /// A builder with the defaults: 2 retries, the SDKs' backoff (exponential 0.5 s x 2 up to
    /// 8 s, full jitter), Retry-After obeyed up to 60 s, the default [`RetryBudget`], the
    /// error's own verdict ([`DefaultClassify`]), and no attempt count recorded.
    pub fn builder() -> RetryLayerBuilder {
        RetryLayerBuilder {
            settings: Settings {
                backoff: Backoff::default(),
                max_retries: DEFAULT_MAX_RETRIES,
                max_elapsed: None,
                max_retry_after: DEFAULT_MAX_RETRY_AFTER,
                budget: Some(Arc::new(RetryBudget::default())),
            },
            classifier: DefaultClassify,
            on_retry: (),
            on_give_up: (),
            record: (),
        }
    }

    /// A layer with every default (see [`builder`](Self::builder)).
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(layer) => layer,
            Err(_) => unreachable!("the default retry configuration is valid"),
        }
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, R, G, A> RetryLayer<C, R, G, A> {
    /// The budget in use, to read its state or share it with another layer.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.config.settings.budget.as_ref()
    }
}

impl<S: Clone, C, R, G, A> Layer<S> for RetryLayer<C, R, G, A> {
    type Service = Retry<S, C, R, G, A>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.config.clone())
    }
}

/// Builds a [`RetryLayer`]; [`build`](Self::build) checks the configuration.
pub struct RetryLayerBuilder<C = DefaultClassify, R = (), G = (), A = ()> {
    settings: Settings,
    classifier: C,
    on_retry: R,
    on_give_up: G,
    record: A,
}

impl<C, R, G, A> fmt::Debug for RetryLayerBuilder<C, R, G, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryLayerBuilder")
            .field(&self.settings)
            .finish()
    }
}

impl<C, R, G, A> RetryLayerBuilder<C, R, G, A> {
    /// Retries after the first call (so at most `n + 1` calls). Default 2.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.settings.max_retries = n;
        self
    }

    /// The backoff between retries.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// Stop retrying once this much time has passed since the call began (a retry whose delay
    /// would end past it is not made). Off by default: it costs a clock read per call.
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.settings.max_elapsed = Some(limit);
        self
    }

    /// The longest Retry-After hint waited out (default 60 s). A hint up to it replaces the
    /// backoff exactly; a longer one ends the retries at once, so a fallback can move on.
    pub fn max_retry_after(mut self, limit: Duration) -> Self {
        self.settings.max_retry_after = limit;
        self
    }

    /// A retry budget owned by this layer, shared by every service it makes and their clones.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = Some(Arc::new(budget));
        self
    }

    /// A retry budget shared with other layers (e.g. one budget across providers).
    pub fn shared_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.settings.budget = Some(budget);
        self
    }

    /// No retry budget: every retryable failure is retried up to `max_retries`.
    pub fn no_budget(mut self) -> Self {
        self.settings.budget = None;
        self
    }

    /// Retry the results `predicate` picks instead of the retryable ones (errors and
    /// successes alike; no Retry-After hint is read). See [`RetryIf`].
    pub fn retry_if<F>(self, predicate: F) -> RetryLayerBuilder<RetryIf<F>, R, G, A> {
        self.classifier(RetryIf(predicate))
    }

    /// Classify with a closure returning a [`Verdict`]: a result is retried iff its verdict
    /// [`is_retryable`](Verdict::is_retryable), after its
    /// [`retry_after`](Verdict::retry_after) hint if any.
    pub fn classify_with<F, Res, E>(self, f: F) -> RetryLayerBuilder<ClassifyFn<F>, R, G, A>
    where
        F: Fn(&Result<Res, E>) -> Verdict,
    {
        self.classifier(ClassifyFn(f))
    }

    /// Never retry the results `predicate` picks, whatever the classifier says.
    pub fn stop_on<F>(self, predicate: F) -> RetryLayerBuilder<StopOn<C, F>, R, G, A> {
        RetryLayerBuilder {
            classifier: StopOn::new(self.classifier, predicate),
            settings: self.settings,
            on_retry: self.on_retry,
            on_give_up: self.on_give_up,
            record: self.record,
        }
    }

    /// Any [`Classify`](towerguard_outcome::Classify) implementation.
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayerBuilder<C2, R, G, A> {
        RetryLayerBuilder {
            classifier,
            settings: self.settings,
            on_retry: self.on_retry,
            on_give_up: self.on_give_up,
            record: self.record,
        }
    }

    /// Call `hook(result, retry, delay)` before each retry ([`OnRetry`](crate::OnRetry)).
    pub fn on_retry<R2>(self, hook: R2) -> RetryLayerBuilder<C, R2, G, A> {
        RetryLayerBuilder {
            on_retry: hook,
            settings: self.settings,
            classifier: self.classifier,
            on_give_up: self.on_give_up,
            record: self.record,
        }
    }

    /// Call `hook(result, attempts)` when a retryable result is returned for lack of retries
    /// ([`OnGiveUp`](crate::OnGiveUp)).
    pub fn on_give_up<G2>(self, hook: G2) -> RetryLayerBuilder<C, R, G2, A> {
        RetryLayerBuilder {
            on_give_up: hook,
            settings: self.settings,
            classifier: self.classifier,
            on_retry: self.on_retry,
            record: self.record,
        }
    }

    /// Record the number of attempts on the result handed back
    /// ([`RecordAttempts`](crate::RecordAttempts); for LLM services,
    /// [`LlmAttempts`](crate::LlmAttempts)).
    pub fn record_attempts<A2>(self, record: A2) -> RetryLayerBuilder<C, R, G, A2> {
        RetryLayerBuilder {
            record,
            settings: self.settings,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_give_up: self.on_give_up,
        }
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<RetryLayer<C, R, G, A>, ConfigError> {
        self.settings.backoff.validate()?;
        if self.settings.max_elapsed == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "max_elapsed",
                "must be above zero (for no retries, use max_retries(0))",
            ));
        }
        Ok(RetryLayer {
            config: Arc::new(Config {
                settings: self.settings,
                classifier: self.classifier,
                on_retry: self.on_retry,
                on_give_up: self.on_give_up,
                record: self.record,
            }),
        })
    }
}
