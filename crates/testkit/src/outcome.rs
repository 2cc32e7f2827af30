//! What a fake provider does with one call: [`Outcome`].

use std::sync::Arc;
use std::time::Duration;

use towerguard_llm_core::{ErrorKind, FinishReason, LlmError, ToolCall, Usage};

/// One scripted answer: succeed, fail or hang, optionally after a latency.
///
/// ```
/// use std::time::Duration;
/// use towerguard_llm_core::{ErrorKind, Usage};
/// use towerguard_testkit::Outcome;
///
/// let script = [
///     Outcome::fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(1)),
///     Outcome::fail(ErrorKind::Server).after(Duration::from_millis(300)),
///     Outcome::ok_with_usage(Usage::new(100, 20)),
///     Outcome::hang(),
/// ];
/// assert!(script[3].is_hang());
/// ```
#[derive(Debug, Clone)]
pub struct Outcome {
    pub(crate) action: Action,
    pub(crate) latency: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum Action {
    Success {
        usage: Option<Usage>,
        content: Option<Arc<str>>,
        finish_reason: FinishReason,
        tool_calls: Arc<[ToolCall]>,
    },
    Failure(LlmError),
    Hang,
}

impl Outcome {
    /// Success with the default usage (the request's estimated input tokens, 16 output).
    pub fn ok() -> Self {
        Self::from_action(Action::Success {
            usage: None,
            content: None,
            finish_reason: FinishReason::Stop,
            tool_calls: Arc::new([]),
        })
    }

    /// Success reporting exactly this usage.
    pub fn ok_with_usage(usage: Usage) -> Self {
        Self::from_action(Action::Success {
            usage: Some(usage),
            content: None,
            finish_reason: FinishReason::Stop,
            tool_calls: Arc::new([]),
        })
    }

    /// Failure of this kind, with the status a real provider would send for it.
    pub fn fail(kind: ErrorKind) -> Self {
        let mut err = LlmError::new(kind);
        if let Some(status) = typical_status(kind) {
            err = err.with_status(status);
        }
        Self::from_action(Action::Failure(err))
    }

    /// Failure with exactly this error (the provider name is filled in if it has none).
    pub fn error(err: LlmError) -> Self {
        Self::from_action(Action::Failure(err))
    }

    /// A call that never answers (until the caller drops it, e.g. on a timeout).
    pub fn hang() -> Self {
        Self::from_action(Action::Hang)
    }

    fn from_action(action: Action) -> Self {
        Self {
            action,
            latency: Duration::ZERO,
        }
    }

    /// Answers only after `latency` (on tokio's clock, so paused-clock tests stay instant).
    pub fn after(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// For a failure: adds a Retry-After hint. No effect on other outcomes.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        if let Action::Failure(err) = self.action {
            self.action = Action::Failure(err.with_retry_after(retry_after));
        }
        self
    }

    /// For a success: the answer's text. No effect on other outcomes.
    pub fn with_content(mut self, text: impl Into<Arc<str>>) -> Self {
        if let Action::Success { content, .. } = &mut self.action {
            *content = Some(text.into());
        }
        self
    }

    /// For a success: the answer calls these tools (with no text, and the finish reason
    /// [`FinishReason::ToolCalls`]). No effect on other outcomes.
    pub fn with_tool_calls(mut self, calls: Vec<ToolCall>) -> Self {
        if let Action::Success {
            tool_calls,
            content,
            finish_reason,
            ..
        } = &mut self.action
        {
            *tool_calls = calls.into();
            *content = Some(Arc::from(""));
            *finish_reason = FinishReason::ToolCalls;
        }
        self
    }

    /// For a success: the finish reason. No effect on other outcomes.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        if let Action::Success { finish_reason, .. } = &mut self.action {
            *finish_reason = reason;
        }
        self
    }

    /// Whether this outcome is a success.
    pub fn is_ok(&self) -> bool {
        matches!(self.action, Action::Success { .. })
    }

    /// Whether this outcome never answers.
    pub fn is_hang(&self) -> bool {
        matches!(self.action, Action::Hang)
    }

    /// The error kind, if this outcome is a failure.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match &self.action {
            Action::Failure(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// The latency before the answer.
    pub fn latency(&self) -> Duration {
        self.latency
    }
}

/// The HTTP status a provider typically sends for a kind (None for transport failures and
/// our own layers' kinds).
pub fn typical_status(kind: ErrorKind) -> Option<u16> {
    Some(match kind {
        ErrorKind::RateLimited | ErrorKind::QuotaExceeded => 429,
        ErrorKind::Overloaded => 529,
        ErrorKind::Server => 500,
        ErrorKind::Timeout => 408,
        ErrorKind::Authentication => 401,
        ErrorKind::PermissionDenied => 403,
        ErrorKind::ModelNotFound => 404,
        ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy | ErrorKind::InvalidRequest => {
            400
        }
        _ => return None,
    })
}
