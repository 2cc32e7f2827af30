//! The error model: [`ErrorKind`] with its default policy, and [`LlmError`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use towerguard_outcome::{
    AttemptRefusal, AttemptRefused, ClassifyError, Declared, Failure, Refusal, Verdict,
};

use crate::redact::redact_and_cut;

/// What went wrong, in the terms the layers act on.
///
/// Each kind carries a default policy (design section 3): [`is_retryable`](Self::is_retryable),
/// [`counts_for_breaker`](Self::counts_for_breaker) and
/// [`should_fallback`](Self::should_fallback). Every layer lets users override it.
///
/// | kind | retry | breaker counts it | fallback |
/// |---|---|---|---|
/// | RateLimited, Overloaded, Server, Timeout, Connection | yes | yes | yes |
/// | QuotaExceeded, Authentication, PermissionDenied, ModelNotFound | no | no | yes |
/// | ContextLengthExceeded | no | no | yes (to a larger context) |
/// | ContentPolicy | no | no | no by default (configurable in the fallback layer) |
/// | InvalidRequest, BudgetExceeded, Throttled, AllProvidersFailed | no | no | no |
/// | CircuitOpen | no | no | yes |
/// | Configuration (e.g. a model without a price) | no | no | yes |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// 429 that is not a quota problem.
    RateLimited,
    /// Anthropic 529 `overloaded_error`, or a 503 that says it is overloaded.
    Overloaded,
    /// 500, 502, 503, 504 and other server-side failures.
    Server,
    /// 408, or our own client-side timeout.
    Timeout,
    /// DNS, connection refused or reset, TLS failures: no HTTP status.
    Connection,
    /// 429 `insufficient_quota`, spend limits, 402 billing: waiting will not help.
    QuotaExceeded,
    /// 401: the key is wrong or missing.
    Authentication,
    /// 403: the key may not do this.
    PermissionDenied,
    /// 404 or an unknown model.
    ModelNotFound,
    /// 400 `context_length_exceeded`, Anthropic "prompt is too long".
    ContextLengthExceeded,
    /// The provider's content filter refused the request.
    ContentPolicy,
    /// Any other 400 / 413 / 422: the request itself is wrong.
    InvalidRequest,
    /// Our circuit breaker is open for this provider.
    CircuitOpen,
    /// Our cost meter refused: a budget would be exceeded.
    BudgetExceeded,
    /// Our rate limiter refused: this client is throttled.
    Throttled,
    /// Our fallback layer tried every provider and all failed.
    AllProvidersFailed,
    /// The gateway's own configuration cannot serve the request (e.g. a model the cost
    /// meter has no price for): the operator's fault, answered as a server-side error.
    Configuration,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::RateLimited,
        ErrorKind::Overloaded,
        ErrorKind::Server,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::QuotaExceeded,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::ModelNotFound,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ContentPolicy,
        ErrorKind::InvalidRequest,
        ErrorKind::CircuitOpen,
        ErrorKind::BudgetExceeded,
        ErrorKind::Throttled,
        ErrorKind::AllProvidersFailed,
        ErrorKind::Configuration,
    ];

    /// Is a transient failure that a retry (after a delay) may fix.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Overloaded
                | ErrorKind::Server
                | ErrorKind::Timeout
                | ErrorKind::Connection
        )
    }

    /// Says the provider is unhealthy, so a circuit breaker should count it as a failure.
    pub const fn counts_for_breaker(self) -> bool {
        self.is_retryable()
    }

    /// Is worth sending the same request to the next provider.
    pub const fn should_fallback(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Overloaded
                | ErrorKind::Server
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::QuotaExceeded
                | ErrorKind::Authentication
                | ErrorKind::PermissionDenied
                | ErrorKind::ModelNotFound
                | ErrorKind::ContextLengthExceeded
                | ErrorKind::CircuitOpen
                | ErrorKind::Configuration
        )
    }

    /// Is a refusal by one of our own layers (breaker, limiter, meter).
    pub const fn is_refusal(self) -> bool {
        matches!(
            self,
            ErrorKind::CircuitOpen | ErrorKind::BudgetExceeded | ErrorKind::Throttled
        )
    }

    /// Is the caller's own fault (a bad request), not the provider's.
    pub const fn is_client_fault(self) -> bool {
        matches!(
            self,
            ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy
        )
    }

    /// The kind's name in snake case (`"rate_limited"`), stable for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::ContentPolicy => "content_policy",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::Throttled => "throttled",
            ErrorKind::AllProvidersFailed => "all_providers_failed",
            ErrorKind::Configuration => "configuration",
        }
    }

    /// A message for this kind that is safe to show any client.
    pub const fn default_message(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "the model provider is rate limiting requests",
            ErrorKind::Overloaded => "the model provider is overloaded",
            ErrorKind::Server => "the model provider failed to answer",
            ErrorKind::Timeout => "the model provider did not answer in time",
            ErrorKind::Connection => "the model provider could not be reached",
            ErrorKind::QuotaExceeded => "the account's quota with the model provider is exhausted",
            ErrorKind::Authentication => {
                "the gateway could not authenticate with the model provider"
            }
            ErrorKind::PermissionDenied => "the gateway may not use this model",
            ErrorKind::ModelNotFound => "the requested model does not exist",
            ErrorKind::ContextLengthExceeded => "the request exceeds the model's context length",
            ErrorKind::ContentPolicy => "the request was refused by a content policy",
            ErrorKind::InvalidRequest => "the request is invalid",
            ErrorKind::CircuitOpen => "the model provider is temporarily unavailable",
            ErrorKind::BudgetExceeded => "the spending budget for this request is exhausted",
            ErrorKind::Throttled => "too many requests; slow down",
            ErrorKind::AllProvidersFailed => "no model provider could serve the request",
            ErrorKind::Configuration => "the gateway is not configured to serve this request",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest operator detail kept on an error, in bytes; the rest is cut.
pub const MAX_DETAIL_LEN: usize = 512;

/// The one error type of an LLM pipeline.
///
/// It carries the [`ErrorKind`], the provider's name, the HTTP status, the provider's
/// Retry-After hint, a message that is safe to show a client ([`client_message`]) and, for
/// operators, a short detail taken from the provider's answer with anything that looks like a
/// secret removed. [`Display`](fmt::Display) and [`Debug`](fmt::Debug) never contain API keys.
///
/// The error is boxed inside, so `Result<LlmResponse, LlmError>` stays small.
///
/// [`client_message`]: Self::client_message
///
/// ```
/// use std::time::Duration;
/// use towerguard_llm_core::{ErrorKind, LlmError};
///
/// let err = LlmError::new(ErrorKind::RateLimited)
///     .with_provider("openai")
///     .with_status(429)
///     .with_retry_after(Duration::from_secs(2));
/// assert!(err.is_retryable());
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(err.to_string(), "rate_limited from openai (HTTP 429): the model provider is rate limiting requests (retry after 2s)");
/// ```
#[derive(Clone)]
pub struct LlmError {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    provider: Option<Arc<str>>,
    status: Option<u16>,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    message: Cow<'static, str>,
    detail: Option<Box<str>>,
    attempts: Vec<LlmError>,
    extensions: http::Extensions,
    /// The verdict, kept in the source chain so a boxed `LlmError` is still classified.
    declared: Declared,
}

impl LlmError {
    /// An error of this kind with the kind's default client-safe message.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                provider: None,
                status: None,
                retry_after: None,
                should_retry: None,
                message: Cow::Borrowed(kind.default_message()),
                detail: None,
                attempts: Vec::new(),
                extensions: http::Extensions::new(),
                declared: Declared(verdict_of(kind, None, None)),
            }),
        }
    }

    fn refresh_verdict(&mut self) {
        let i = &mut *self.inner;
        i.declared = Declared(verdict_of(i.kind, i.should_retry, i.retry_after));
    }

    /// The fallback layer's final error: every provider tried, in order, with its error.
    ///
    /// Its client message names no provider; [`attempts`](Self::attempts) has the details.
    pub fn all_providers_failed(attempts: Vec<LlmError>) -> Self {
        let mut err = Self::new(ErrorKind::AllProvidersFailed);
        err.inner.attempts = attempts;
        err
    }

    /// Our circuit breaker rejected the call; `retry_after` is the time left open.
    pub fn circuit_open(retry_after: Option<Duration>) -> Self {
        let mut err = Self::new(ErrorKind::CircuitOpen);
        err.set_retry_after(retry_after);
        err
    }

    /// Our rate limiter rejected the call; `retry_after` is when the client may try again.
    pub fn throttled(retry_after: Option<Duration>) -> Self {
        let mut err = Self::new(ErrorKind::Throttled);
        err.set_retry_after(retry_after);
        err
    }

    /// Our cost meter rejected the call. `which` names the budget (operators see it in the
    /// detail; clients get the generic message).
    pub fn budget_exceeded(which: impl fmt::Display) -> Self {
        Self::new(ErrorKind::BudgetExceeded).with_detail(format!("budget exceeded: {which}"))
    }

    /// Sets the provider's name.
    pub fn with_provider(mut self, provider: impl Into<Arc<str>>) -> Self {
        self.inner.provider = Some(provider.into());
        self
    }

    /// Sets the provider's name only if none is set yet.
    pub fn or_provider(mut self, provider: &Arc<str>) -> Self {
        if self.inner.provider.is_none() {
            self.inner.provider = Some(provider.clone());
        }
        self
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Sets the Retry-After hint.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.set_retry_after(Some(retry_after));
        self
    }

    /// Sets or clears the Retry-After hint.
    pub fn set_retry_after(&mut self, retry_after: Option<Duration>) {
        self.inner.retry_after = retry_after;
        self.refresh_verdict();
    }

    /// Records the provider's explicit `x-should-retry` answer, which overrides the kind's
    /// default in [`is_retryable`](Self::is_retryable).
    pub fn with_should_retry(mut self, should_retry: bool) -> Self {
        self.inner.should_retry = Some(should_retry);
        self.refresh_verdict();
        self
    }

    /// Replaces the client-safe message. Only pass text you would show any client.
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.inner.message = message.into();
        self
    }

    /// Sets the operator detail (e.g. the provider's own message). Anything that looks like
    /// a secret is removed, then the text is cut to [`MAX_DETAIL_LEN`] bytes (plus a `…`).
    ///
    /// Redaction runs before the cut and judges the word crossing the cut whole, so a secret
    /// there is removed entirely rather than cut to a prefix too short to look like one.
    /// Secrets that do not look like one (a client's own key of any format) are the caller's
    /// to replace before: the provider clients replace the exact text of the keys they send.
    pub fn with_detail(mut self, detail: impl AsRef<str>) -> Self {
        let text = redact_and_cut(detail.as_ref(), MAX_DETAIL_LEN);
        self.inner.detail = Some(text.into_boxed_str());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The provider that failed, if known.
    pub fn provider(&self) -> Option<&str> {
        self.inner.provider.as_deref()
    }

    /// The HTTP status, if the failure had one.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// How long the provider (or our layer) asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The provider's explicit `x-should-retry` answer, if it sent one.
    pub fn should_retry_hint(&self) -> Option<bool> {
        self.inner.should_retry
    }

    /// A message safe to show any client: no keys, no provider bodies, no internals.
    pub fn client_message(&self) -> &str {
        &self.inner.message
    }

    /// The operator detail, already redacted.
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// For [`ErrorKind::AllProvidersFailed`]: each provider tried, in order, with its error.
    pub fn attempts(&self) -> &[LlmError] {
        &self.inner.attempts
    }

    /// Data added by layers (e.g. the retry layer's attempt count).
    pub fn extensions(&self) -> &http::Extensions {
        &self.inner.extensions
    }

    /// Mutable access to the extensions.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.inner.extensions
    }

    /// Default retry policy: the provider's `x-should-retry` answer if it gave one, else the
    /// kind's [`ErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.inner
            .should_retry
            .unwrap_or_else(|| self.inner.kind.is_retryable())
    }

    /// Default breaker policy: [`ErrorKind::counts_for_breaker`].
    pub fn counts_for_breaker(&self) -> bool {
        self.inner.kind.counts_for_breaker()
    }

    /// Whether the caller caused it: [`ErrorKind::is_client_fault`].
    pub fn is_client_fault(&self) -> bool {
        self.inner.kind.is_client_fault()
    }

    /// Default fallback policy: [`ErrorKind::should_fallback`].
    pub fn should_fallback(&self) -> bool {
        self.inner.kind.should_fallback()
    }

    /// What this error means to the layers: the design's table, with the provider's
    /// `x-should-retry` answer and Retry-After hint.
    pub fn verdict(&self) -> Verdict {
        self.inner.declared.0
    }
}

/// The design's table as a [`Verdict`].
fn verdict_of(
    kind: ErrorKind,
    should_retry: Option<bool>,
    retry_after: Option<Duration>,
) -> Verdict {
    let fallback = kind.should_fallback();
    let retryable = should_retry.unwrap_or_else(|| kind.is_retryable());
    if kind.is_refusal() {
        Verdict::Refused(Refusal {
            fallback,
            retry_after,
        })
    } else if kind.is_client_fault() && !retryable {
        Verdict::ClientFault { fallback }
    } else {
        Verdict::Upstream(Failure {
            retryable,
            unhealthy: kind.counts_for_breaker(),
            fallback,
            retry_after,
        })
    }
}

/// The design's table (see [`ErrorKind`]); `label` is the kind's name.
impl ClassifyError for LlmError {
    #[inline]
    fn verdict(&self) -> Verdict {
        self.inner.declared.0
    }

    fn label(&self) -> &'static str {
        self.inner.kind.as_str()
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.write_str(i.kind.as_str())?;
        if let Some(p) = &i.provider {
            write!(f, " from {p}")?;
        }
        if let Some(s) = i.status {
            write!(f, " (HTTP {s})")?;
        }
        write!(f, ": {}", i.message)?;
        if let Some(d) = i.retry_after {
            write!(f, " (retry after {d:?})")?;
        }
        if !i.attempts.is_empty() {
            f.write_str(" [")?;
            for (n, a) in i.attempts.iter().enumerate() {
                if n > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{}: {}", a.provider().unwrap_or("?"), a.kind())?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("LlmError");
        d.field("kind", &i.kind);
        if let Some(p) = &i.provider {
            d.field("provider", &&**p);
        }
        if let Some(s) = i.status {
            d.field("status", &s);
        }
        if let Some(r) = i.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(s) = i.should_retry {
            d.field("should_retry", &s);
        }
        d.field("message", &i.message);
        if let Some(detail) = &i.detail {
            d.field("detail", detail);
        }
        if !i.attempts.is_empty() {
            d.field("attempts", &i.attempts);
        }
        d.finish()
    }
}

/// The source chain holds the error's [`Declared`] verdict, so the layers' `BoxError`
/// defaults classify a boxed `LlmError` by the same table.
impl std::error::Error for LlmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner.declared)
    }
}

impl From<AttemptRefused> for LlmError {
    /// An exhausted budget becomes [`ErrorKind::BudgetExceeded`], an unpriced model
    /// [`ErrorKind::Configuration`]; the detail names the budget or model.
    fn from(e: AttemptRefused) -> Self {
        match e.reason() {
            AttemptRefusal::Unpriced => LlmError::new(ErrorKind::Configuration)
                .with_detail(format!("no price for {}", e.detail())),
            _ => LlmError::budget_exceeded(e.detail()),
        }
    }
}

impl From<ErrorKind> for LlmError {
    fn from(kind: ErrorKind) -> Self {
        LlmError::new(kind)
    }
}

impl From<std::io::Error> for LlmError {
    /// I/O failures have no HTTP status: timeouts become [`ErrorKind::Timeout`], everything
    /// else [`ErrorKind::Connection`].
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        LlmError::new(kind).with_detail(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_crossing_the_detail_cut_is_redacted_whole() {
        // A bearer-like token without a known prefix whose first 12 characters sit before the
        // cut: cut first, those 12 would be kept (too short to look like a secret).
        let token = "Zq8vK2mN4pR7tW1xY5bC9dF3gH6jL0sA";
        let head = "word ".repeat((MAX_DETAIL_LEN - 12) / 5);
        assert_eq!(head.len(), MAX_DETAIL_LEN - 12);
        let text = format!("{head}{token} tail");
        let err = LlmError::new(ErrorKind::Authentication).with_detail(&text);
        let detail = err.detail().unwrap_or_default();
        assert!(!detail.contains(&token[..6]), "{detail}");
        assert!(detail.starts_with(&head), "{detail}");
        assert!(detail.ends_with('…'));
        assert!(detail.len() <= MAX_DETAIL_LEN + '…'.len_utf8());
        for shown in [format!("{err:?}"), err.to_string()] {
            assert!(!shown.contains(&token[..6]), "{shown}");
        }
    }

    #[test]
    fn a_short_detail_is_only_redacted() {
        let err = LlmError::new(ErrorKind::Authentication)
            .with_detail("Incorrect API key provided: sk-proj-abc123def456.");
        assert_eq!(
            err.detail(),
            Some("Incorrect API key provided: [REDACTED].")
        );
    }
}
