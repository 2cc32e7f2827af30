//! What a fake provider does with one call: [`Outcome`].

use std::sync::Arc;
use std::time::Duration;

use towerguard_llm_core::{Chunk, ErrorKind, FinishReason, LlmError, ToolCall, Usage};

/// One scripted answer: succeed, fail or hang, optionally after a latency.
///
/// A success answers a request that asks for a stream (`options().stream`) with a streamed
/// [`LlmResponse`](towerguard_llm_core::LlmResponse): its text in a few
/// [`Chunk::Text`] pieces between a [`Chunk::Start`] and a [`Chunk::Finish`], then a
/// [`Chunk::Usage`] with the usage the complete answer would report, then a clean end.
/// [`Outcome::stream`] scripts the exact chunks, and [`chunk_latency`](Self::chunk_latency),
/// [`cut_after`](Self::cut_after), [`stall_after`](Self::stall_after),
/// [`error_after`](Self::error_after) and [`garbage_after`](Self::garbage_after) script how
/// the stream goes. These stream behaviours apply only to requests that ask for a stream: any
/// other request gets the complete answer.
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
    pub(crate) stream: StreamPlan,
}

/// How a streamed answer goes: the delay before each chunk and how it ends.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamPlan {
    pub(crate) chunk_latency: Duration,
    /// None: every chunk, then the clean end.
    pub(crate) fault: Option<(At, StreamFault)>,
}

/// Where a stream fault strikes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At {
    /// After this many chunks.
    Chunk(usize),
    /// After this fraction (0 to 1) of the stream's chunks (seeded chaos).
    Fraction(f64),
}

impl At {
    /// After how many of a stream's `len` chunks.
    pub(crate) fn resolve(self, len: usize) -> usize {
        match self {
            At::Chunk(n) => n,
            // 0..=len: before the first chunk, between two, or after the last
            At::Fraction(f) => ((f * (len as f64 + 1.0)) as usize).min(len),
        }
    }
}

/// How a stream ends when it does not end cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// Ends without its terminator: a `Connection` error item.
    Cut,
    /// Never sends another item.
    Stall,
    /// An error event of this kind.
    Error(ErrorKind),
    /// An event that does not parse: a `Server` "malformed stream event" error item.
    Garbage,
}

#[derive(Debug, Clone)]
pub(crate) enum Action {
    Success {
        usage: Option<Usage>,
        content: Option<Arc<str>>,
        finish_reason: FinishReason,
        tool_calls: Arc<[ToolCall]>,
    },
    Stream(Arc<[Chunk]>),
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

    /// Success answering a stream request with exactly these chunks, then a clean end. A
    /// request that did not ask for a stream gets the complete answer the chunks make
    /// (collected with [`stream::Collector`](towerguard_llm_core::stream::Collector)).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use tower::{Service, ServiceExt};
    /// use towerguard_llm_core::{Chunk, FinishReason, Usage};
    /// use towerguard_testkit::{FakeProvider, Outcome, request};
    ///
    /// let chunks = vec![
    ///     Chunk::Text { choice: 0, text: "Hel".into() },
    ///     Chunk::Text { choice: 0, text: "lo".into() },
    ///     Chunk::Finish { choice: 0, reason: FinishReason::Stop },
    ///     Chunk::Usage(Usage::new(5, 2)),
    /// ];
    /// let mut p = FakeProvider::always("openai", Outcome::stream(chunks));
    /// let mut req = request("gpt-4o");
    /// req.options_mut().stream = true;
    /// let resp = p.ready().await.unwrap().call(req).await.unwrap();
    /// assert!(resp.is_stream());
    /// let done = resp.into_complete().await.unwrap();
    /// assert_eq!((&*done.text(), done.usage), ("Hello", Usage::new(5, 2)));
    /// // Not asked for a stream: the same answer, complete.
    /// let resp = p.ready().await.unwrap().call(request("gpt-4o")).await.unwrap();
    /// assert_eq!((resp.is_stream(), &*resp.text()), (false, "Hello"));
    /// # });
    /// ```
    pub fn stream(chunks: Vec<Chunk>) -> Self {
        Self::from_action(Action::Stream(chunks.into()))
    }

    fn from_action(action: Action) -> Self {
        Self {
            action,
            latency: Duration::ZERO,
            stream: StreamPlan::default(),
        }
    }

    pub(crate) fn with_stream_fault(mut self, at: At, fault: StreamFault) -> Self {
        if self.is_ok() {
            self.stream.fault = Some((at, fault));
        }
        self
    }

    /// For a success answering a stream: waits `latency` (on tokio's clock) before each chunk,
    /// the first one included, and before an error item. The answer itself still comes
    /// after [`after`](Self::after)'s latency. No effect on other outcomes.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use tower::{Service, ServiceExt};
    /// use towerguard_testkit::{FakeProvider, Outcome, request};
    ///
    /// let outcome = Outcome::ok().after(Duration::from_millis(300)).chunk_latency(Duration::from_millis(20));
    /// let mut p = FakeProvider::always("openai", outcome);
    /// let mut req = request("gpt-4o");
    /// req.options_mut().stream = true;
    /// let start = Instant::now();
    /// let resp = p.ready().await.unwrap().call(req).await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_millis(300));
    /// resp.into_complete().await.unwrap();
    /// assert!(start.elapsed() > Duration::from_millis(300 + 3 * 20));
    /// # });
    /// ```
    pub fn chunk_latency(mut self, latency: Duration) -> Self {
        if self.is_ok() {
            self.stream.chunk_latency = latency;
        }
        self
    }

    /// For a success answering a stream: `n` chunks, then the stream stops without its
    /// terminator, which ends it with an `Err` item of kind
    /// [`Connection`](ErrorKind::Connection) (as the provider clients do). With `n = 0` the
    /// call itself fails with that error (nothing reached the caller: the commit point was
    /// not passed). No effect on other outcomes.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use tower::{Service, ServiceExt};
    /// use towerguard_llm_core::ErrorKind;
    /// use towerguard_testkit::{FakeProvider, Outcome, request};
    ///
    /// let mut p = FakeProvider::always("openai", Outcome::ok().cut_after(2));
    /// let mut req = request("gpt-4o");
    /// req.options_mut().stream = true;
    /// let resp = p.ready().await.unwrap().call(req).await.unwrap();
    /// let err = resp.into_complete().await.unwrap_err();
    /// assert_eq!((err.kind(), err.provider()), (ErrorKind::Connection, Some("openai")));
    /// # });
    /// ```
    pub fn cut_after(self, n: usize) -> Self {
        self.with_stream_fault(At::Chunk(n), StreamFault::Cut)
    }

    /// For a success answering a stream: `n` chunks, then never another item, so only the
    /// caller's idle timeout (or dropping the stream) ends it. With `n = 0` the call itself
    /// never answers, like [`Outcome::hang`]. No effect on other outcomes.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use tower::{Service, ServiceExt};
    /// use towerguard_testkit::{FakeProvider, Outcome, request};
    ///
    /// let mut p = FakeProvider::always("openai", Outcome::ok().stall_after(1));
    /// let mut req = request("gpt-4o");
    /// req.options_mut().stream = true;
    /// let resp = p.ready().await.unwrap().call(req).await.unwrap();
    /// let read = tokio::time::timeout(Duration::from_secs(60), resp.into_complete()).await;
    /// assert!(read.is_err(), "the stream stalls");
    /// assert_eq!(p.streams_dropped(), 1);
    /// # });
    /// ```
    pub fn stall_after(self, n: usize) -> Self {
        self.with_stream_fault(At::Chunk(n), StreamFault::Stall)
    }

    /// For a success answering a stream: `n` chunks, then an error event: one `Err` item of
    /// `kind` with the provider set. With `n = 0` the call itself fails with that error (an
    /// error event as the first event). No effect on other outcomes.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use tower::{Service, ServiceExt};
    /// use towerguard_llm_core::ErrorKind;
    /// use towerguard_testkit::{FakeProvider, Outcome, request};
    ///
    /// let mut p = FakeProvider::scripted("anthropic", [
    ///     Outcome::ok().error_after(0, ErrorKind::Overloaded),
    ///     Outcome::ok().error_after(3, ErrorKind::Overloaded),
    /// ]);
    /// let mut req = request("claude-sonnet-4-5");
    /// req.options_mut().stream = true;
    /// let err = p.ready().await.unwrap().call(req.clone()).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Overloaded);
    /// let resp = p.ready().await.unwrap().call(req).await.unwrap();
    /// assert_eq!(resp.into_complete().await.unwrap_err().kind(), ErrorKind::Overloaded);
    /// # });
    /// ```
    pub fn error_after(self, n: usize, kind: ErrorKind) -> Self {
        self.with_stream_fault(At::Chunk(n), StreamFault::Error(kind))
    }

    /// For a success answering a stream: `n` chunks, then an event that does not parse, which
    /// ends the stream with a [`Server`](ErrorKind::Server) "malformed stream event" `Err`
    /// item (as a provider client meeting one does). With `n = 0` the call itself fails with
    /// that error. No effect on other outcomes.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use tower::{Service, ServiceExt};
    /// use towerguard_llm_core::ErrorKind;
    /// use towerguard_testkit::{FakeProvider, Outcome, request};
    ///
    /// let mut p = FakeProvider::always("openai", Outcome::ok().garbage_after(1));
    /// let mut req = request("gpt-4o");
    /// req.options_mut().stream = true;
    /// let resp = p.ready().await.unwrap().call(req).await.unwrap();
    /// let err = resp.into_complete().await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Server);
    /// assert!(err.detail().unwrap().contains("malformed stream event"));
    /// # });
    /// ```
    pub fn garbage_after(self, n: usize) -> Self {
        self.with_stream_fault(At::Chunk(n), StreamFault::Garbage)
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

    /// Whether this outcome is a success (a scripted stream included, whatever its stream
    /// behaviours).
    pub fn is_ok(&self) -> bool {
        matches!(self.action, Action::Success { .. } | Action::Stream(_))
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
