//! [`RetryLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::backoff::Backoff;
use crate::budget::RetryBudget;
use crate::classify::{ClassifyFn, Decision, DefaultClassifier, RetryIf, StopOn};
use crate::service::Retry;

/// Default cap on a Retry-After hint that is waited out (longer hints end the retries).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Default number of retries after the first call.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// Called before each retry with the failed result, the 1-based index of the retry about to
/// be made, and the delay before it. Implemented for `()` (nothing) and for closures
/// `Fn(&Result<Res, E>, u32, Duration)`.
pub trait OnRetry<Res, E> {
    /// The hook.
    fn on_retry(&self, result: &Result<Res, E>, attempt: u32, delay: Duration);
}

impl<Res, E> OnRetry<Res, E> for () {
    #[inline]
    fn on_retry(&self, _: &Result<Res, E>, _: u32, _: Duration) {}
}

impl<Res, E, F> OnRetry<Res, E> for F
where
    F: Fn(&Result<Res, E>, u32, Duration),
{
    fn on_retry(&self, result: &Result<Res, E>, attempt: u32, delay: Duration) {
        self(result, attempt, delay)
    }
}

/// Called when a retryable result is returned because no more retries are allowed (retries
/// used up, budget empty, hint too long, time cap reached), with the total attempts made.
/// Implemented for `()` and for closures `Fn(&Result<Res, E>, u32)`.
pub trait OnGiveUp<Res, E> {
    /// The hook.
    fn on_give_up(&self, result: &Result<Res, E>, attempts: u32);
}

impl<Res, E> OnGiveUp<Res, E> for () {
    #[inline]
    fn on_give_up(&self, _: &Result<Res, E>, _: u32) {}
}

impl<Res, E, F> OnGiveUp<Res, E> for F
where
    F: Fn(&Result<Res, E>, u32),
{
    fn on_give_up(&self, result: &Result<Res, E>, attempts: u32) {
        self(result, attempts)
    }
}

/// Invalid retry configuration, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The field at fault (e.g. `"backoff.multiplier"`).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid retry configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// The settings shared by every clone of a [`Retry`] service.
pub(crate) struct Shared<C, R, G> {
    pub(crate) classifier: C,
    pub(crate) backoff: Backoff,
    pub(crate) max_retries: u32,
    pub(crate) max_elapsed: Option<Duration>,
    pub(crate) max_retry_after: Duration,
    pub(crate) budget: Option<Arc<RetryBudget>>,
    pub(crate) on_retry: R,
    pub(crate) on_give_up: G,
}

/// Retries failed calls with backoff, honouring Retry-After, within a retry budget.
///
/// `max_retries` counts retries *after* the first call (Polly's meaning, not
/// resilience4j's `maxAttempts`): `max_retries(2)` makes at most 3 calls.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use towerguard_retry_backoff::{Backoff, Jitter, RetryBudget, RetryLayer};
/// use towerguard_testkit::FakeProvider;
///
/// let layer = RetryLayer::builder()
///     .max_retries(3)
///     .backoff(Backoff::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(8))
///         .with_jitter(Jitter::Full))
///     .budget(RetryBudget::default())
///     .build()
///     .expect("valid configuration");
/// let service = ServiceBuilder::new().layer(layer).service(FakeProvider::new("openai"));
/// # let _ = service;
/// ```
pub struct RetryLayer<C = DefaultClassifier, R = (), G = ()> {
    shared: Arc<Shared<C, R, G>>,
}

impl<C, R, G> Clone for RetryLayer<C, R, G> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C, R, G> fmt::Debug for RetryLayer<C, R, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("RetryLayer")
            .field("max_retries", &s.max_retries)
            .field("backoff", &s.backoff)
            .field("max_elapsed", &s.max_elapsed)
            .field("max_retry_after", &s.max_retry_after)
            .field("budget", &s.budget.is_some())
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A builder with the defaults: 2 retries, the SDKs' backoff (exponential 0.5 s x 2 up to
    /// 8 s, full jitter), Retry-After obeyed up to 60 s, the default [`RetryBudget`], and the
    /// [`DefaultClassifier`].
    pub fn builder() -> RetryLayerBuilder {
        RetryLayerBuilder {
            classifier: DefaultClassifier,
            backoff: Backoff::default(),
            max_retries: DEFAULT_MAX_RETRIES,
            max_elapsed: None,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            budget: Some(Budget::Own(RetryBudget::default())),
            on_retry: (),
            on_give_up: (),
        }
    }

    /// A layer with every default (see [`builder`](Self::builder)).
    pub fn new() -> Self {
        // The defaults are valid; build() only fails on user-supplied values.
        match Self::builder().build() {
            Ok(layer) => layer,
            Err(_) => unreachable!("default retry configuration is valid"),
        }
    }
}

impl RetryLayerBuilder<(), (), ()> {
    /// Puts typed parts back on the rest of a builder.
    fn join<C, R, G>(
        self,
        classifier: C,
        on_retry: R,
        on_give_up: G,
    ) -> RetryLayerBuilder<C, R, G> {
        RetryLayerBuilder {
            classifier,
            backoff: self.backoff,
            max_retries: self.max_retries,
            max_elapsed: self.max_elapsed,
            max_retry_after: self.max_retry_after,
            budget: self.budget,
            on_retry,
            on_give_up,
        }
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, R, G> RetryLayer<C, R, G> {
    /// The budget in use, to read its state or share it with another layer.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.shared.budget.as_ref()
    }
}

impl<S, C, R, G> Layer<S> for RetryLayer<C, R, G> {
    type Service = Retry<S, C, R, G>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.shared.clone())
    }
}

#[derive(Debug)]
enum Budget {
    Own(RetryBudget),
    Shared(Arc<RetryBudget>),
}

/// Builds a [`RetryLayer`]; [`build`](Self::build) checks the configuration.
pub struct RetryLayerBuilder<C = DefaultClassifier, R = (), G = ()> {
    classifier: C,
    backoff: Backoff,
    max_retries: u32,
    max_elapsed: Option<Duration>,
    max_retry_after: Duration,
    budget: Option<Budget>,
    on_retry: R,
    on_give_up: G,
}

impl<C, R, G> fmt::Debug for RetryLayerBuilder<C, R, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayerBuilder")
            .field("backoff", &self.backoff)
            .field("max_retries", &self.max_retries)
            .field("max_elapsed", &self.max_elapsed)
            .field("max_retry_after", &self.max_retry_after)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<C, R, G> RetryLayerBuilder<C, R, G> {
    /// Retries after the first call (so at most `n + 1` calls). Default 2.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The backoff between retries.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Stop retrying once this much time has passed since the call began (a retry whose delay
    /// would end past it is not made). Off by default: it costs a clock read per call.
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(limit);
        self
    }

    /// The longest Retry-After hint waited out (default 60 s). A hint up to it replaces the
    /// backoff exactly; a longer one ends the retries at once, so a fallback can move on.
    pub fn max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after = limit;
        self
    }

    /// A retry budget owned by this layer, shared by every service it makes and their clones.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(Budget::Own(budget));
        self
    }

    /// A retry budget shared with other layers (e.g. one budget across providers).
    pub fn shared_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(Budget::Shared(budget));
        self
    }

    /// No retry budget: every retryable failure is retried up to `max_retries`.
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Retry the results `predicate` picks instead of the default ones (errors and successes
    /// alike; no Retry-After hint is read).
    pub fn retry_if<F>(self, predicate: F) -> RetryLayerBuilder<RetryIf<F>, R, G> {
        self.classifier(RetryIf(predicate))
    }

    /// Classify with a closure returning a [`Decision`] (to retry on your own terms and still
    /// pass a Retry-After hint).
    pub fn classify_with<F, Res, E>(self, f: F) -> RetryLayerBuilder<ClassifyFn<F>, R, G>
    where
        F: Fn(&Result<Res, E>) -> Decision,
    {
        self.classifier(ClassifyFn(f))
    }

    /// Never retry the results `predicate` picks, whatever the classifier says.
    pub fn stop_on<F>(self, predicate: F) -> RetryLayerBuilder<StopOn<C, F>, R, G> {
        let (classifier, on_retry, on_give_up, rest) = self.split();
        rest.join(StopOn::new(classifier, predicate), on_retry, on_give_up)
    }

    /// Any [`Classify`](crate::Classify) implementation.
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayerBuilder<C2, R, G> {
        let (_, on_retry, on_give_up, rest) = self.split();
        rest.join(classifier, on_retry, on_give_up)
    }

    /// Call `hook(result, attempt, delay)` before each retry.
    pub fn on_retry<R2>(self, hook: R2) -> RetryLayerBuilder<C, R2, G> {
        let (classifier, _, on_give_up, rest) = self.split();
        rest.join(classifier, hook, on_give_up)
    }

    /// Call `hook(result, attempts)` when a retryable result is returned for lack of retries.
    pub fn on_give_up<G2>(self, hook: G2) -> RetryLayerBuilder<C, R, G2> {
        let (classifier, on_retry, _, rest) = self.split();
        rest.join(classifier, on_retry, hook)
    }

    /// The builder's typed parts, and the rest (for methods that change a type parameter).
    fn split(self) -> (C, R, G, RetryLayerBuilder<(), (), ()>) {
        let rest = RetryLayerBuilder {
            classifier: (),
            backoff: self.backoff,
            max_retries: self.max_retries,
            max_elapsed: self.max_elapsed,
            max_retry_after: self.max_retry_after,
            budget: self.budget,
            on_retry: (),
            on_give_up: (),
        };
        (self.classifier, self.on_retry, self.on_give_up, rest)
    }

    /// Checks the configuration and makes the layer.
    pub fn build(self) -> Result<RetryLayer<C, R, G>, ConfigError> {
        self.backoff.validate()?;
        let budget = match self.budget {
            None => None,
            Some(Budget::Own(b)) => Some(Arc::new(b)),
            Some(Budget::Shared(b)) => Some(b),
        };
        Ok(RetryLayer {
            shared: Arc::new(Shared {
                classifier: self.classifier,
                backoff: self.backoff,
                max_retries: self.max_retries,
                max_elapsed: self.max_elapsed,
                max_retry_after: self.max_retry_after,
                budget,
                on_retry: self.on_retry,
                on_give_up: self.on_give_up,
            }),
        })
    }
}
