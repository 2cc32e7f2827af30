//! [`FakeProvider`]: a `Service<LlmRequest>` that plays a script or injects random faults.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use towerguard_llm_core::stream::{Collector, Ended, StreamEnd};
use towerguard_llm_core::{ChunkStream, LlmError, LlmRequest, LlmResponse, Usage};

use crate::faults::Faults;
use crate::outcome::{Action, Outcome, StreamPlan};
use crate::stream::{Chunks, FakeStream, default_chunks, fault_error};

/// Output tokens reported by a default success.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 16;

/// A fake LLM provider. Clones share the script, the fault generator and the counters.
///
/// Each call takes the next [`Outcome`] of its script; when the script is used up it draws
/// from its [`Faults`] if it has any, else plays its `then` outcome (success by default).
/// A request that asks for a stream (`options().stream`) gets a success as a streamed
/// answer (see [`Outcome`]); the stream counters ([`streams_started`](Self::streams_started)
/// and how they ended) account for every one.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use tower::{Service, ServiceExt};
/// use towerguard_llm_core::ErrorKind;
/// use towerguard_testkit::{FakeProvider, Outcome, request};
///
/// let mut provider = FakeProvider::scripted("openai", [Outcome::fail(ErrorKind::Server), Outcome::ok()]);
/// let first = provider.ready().await.unwrap().call(request("gpt-4o")).await;
/// assert_eq!(first.unwrap_err().kind(), ErrorKind::Server);
/// let second = provider.ready().await.unwrap().call(request("gpt-4o")).await.unwrap();
/// assert_eq!(second.provider(), "openai");
/// assert_eq!(provider.calls(), 2);
/// # });
/// ```
#[derive(Clone)]
pub struct FakeProvider {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    script: Mutex<VecDeque<Outcome>>,
    faults: Option<Mutex<Faults>>,
    then: Outcome,
    record: bool,
    recorded: Mutex<Vec<LlmRequest>>,
    calls: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_failed: AtomicU64,
    streams_dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not cascade: the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds a [`FakeProvider`].
#[derive(Debug)]
pub struct FakeProviderBuilder {
    name: Arc<str>,
    script: VecDeque<Outcome>,
    faults: Option<Faults>,
    then: Outcome,
    record: bool,
}

impl FakeProviderBuilder {
    /// Outcomes to play, in order, one per call.
    pub fn script(mut self, outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        self.script.extend(outcomes);
        self
    }

    /// What every call after the script does (when there are no faults). Default: success.
    pub fn then(mut self, outcome: Outcome) -> Self {
        self.then = outcome;
        self
    }

    /// Draw outcomes from seeded random faults once the script is used up.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Keep a clone of every request received (see [`FakeProvider::recorded`]).
    pub fn record_requests(mut self) -> Self {
        self.record = true;
        self
    }

    /// The provider.
    pub fn build(self) -> FakeProvider {
        FakeProvider {
            shared: Arc::new(Shared {
                name: self.name,
                script: Mutex::new(self.script),
                faults: self.faults.map(Mutex::new),
                then: self.then,
                record: self.record,
                recorded: Mutex::new(Vec::new()),
                calls: AtomicU64::new(0),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                max_in_flight: AtomicU64::new(0),
                streams_started: AtomicU64::new(0),
                streams_completed: AtomicU64::new(0),
                streams_failed: AtomicU64::new(0),
                streams_dropped: AtomicU64::new(0),
            }),
        }
    }
}

impl FakeProvider {
    /// A builder for a provider named `name`.
    pub fn builder(name: impl Into<Arc<str>>) -> FakeProviderBuilder {
        FakeProviderBuilder {
            name: name.into(),
            script: VecDeque::new(),
            faults: None,
            then: Outcome::ok(),
            record: false,
        }
    }

    /// A provider that always succeeds at once.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::builder(name).build()
    }

    /// A provider that plays `outcomes`, then succeeds.
    pub fn scripted(
        name: impl Into<Arc<str>>,
        outcomes: impl IntoIterator<Item = Outcome>,
    ) -> Self {
        Self::builder(name).script(outcomes).build()
    }

    /// A provider that always plays `outcome` (e.g. `Outcome::fail(ErrorKind::Server)`).
    pub fn always(name: impl Into<Arc<str>>, outcome: Outcome) -> Self {
        Self::builder(name).then(outcome).build()
    }

    /// A provider driven by seeded random faults.
    pub fn chaotic(name: impl Into<Arc<str>>, faults: Faults) -> Self {
        Self::builder(name).faults(faults).build()
    }

    /// The provider's name, as it appears on responses and errors.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Calls answered with a success (a streamed answer counts once its call answered,
    /// however its stream then ends).
    pub fn successes(&self) -> u64 {
        self.shared.successes.load(Ordering::SeqCst)
    }

    /// Calls answered with an error (a stream that fails before its first chunk included).
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::SeqCst)
    }

    /// Calls started and neither answered nor dropped.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most calls that were in flight at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Streamed answers handed to callers.
    pub fn streams_started(&self) -> u64 {
        self.shared.streams_started.load(Ordering::SeqCst)
    }

    /// Streams that ended cleanly (their last chunk read, then their end).
    pub fn streams_completed(&self) -> u64 {
        self.shared.streams_completed.load(Ordering::SeqCst)
    }

    /// Streams that ended with an error item (cut, error event, garbage).
    pub fn streams_failed(&self) -> u64 {
        self.shared.streams_failed.load(Ordering::SeqCst)
    }

    /// Streams the caller dropped before their end (a stall ended by a timeout included).
    pub fn streams_dropped(&self) -> u64 {
        self.shared.streams_dropped.load(Ordering::SeqCst)
    }

    /// Streams started and not ended yet: `streams_started() - completed - failed - dropped`.
    pub fn streams_open(&self) -> u64 {
        self.streams_started().saturating_sub(
            self.streams_completed() + self.streams_failed() + self.streams_dropped(),
        )
    }

    /// Script outcomes not played yet.
    pub fn remaining_script(&self) -> usize {
        lock(&self.shared.script).len()
    }

    /// Appends outcomes to the script (e.g. to make a healthy provider fail mid-test).
    pub fn push_script(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        lock(&self.shared.script).extend(outcomes);
    }

    /// The requests received, if built with [`FakeProviderBuilder::record_requests`].
    pub fn recorded(&self) -> Vec<LlmRequest> {
        lock(&self.shared.recorded).clone()
    }

    fn next_outcome(&self) -> Outcome {
        if let Some(o) = lock(&self.shared.script).pop_front() {
            return o;
        }
        match &self.shared.faults {
            Some(f) => lock(f).draw(),
            None => self.shared.then.clone(),
        }
    }
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("name", &self.shared.name)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl tower_service::Service<LlmRequest> for FakeProvider {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = FakeFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let s = &self.shared;
        s.calls.fetch_add(1, Ordering::SeqCst);
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if s.record {
            lock(&s.recorded).push(req.clone());
        }
        let outcome = self.next_outcome();
        let streamed = req.options().stream;
        let result = match outcome.action {
            Action::Hang => None,
            Action::Success {
                usage,
                content,
                finish_reason,
                tool_calls,
            } => {
                let usage = usage.unwrap_or_else(|| {
                    Usage::new(req.estimated_input_tokens(), DEFAULT_OUTPUT_TOKENS)
                });
                let text = match content {
                    Some(c) => String::from(&*c),
                    None => format!("fake answer from {} ({})", s.name, req.model()),
                };
                if streamed {
                    let chunks =
                        default_chunks(req.model(), &text, &tool_calls, finish_reason, usage);
                    return self.answer_stream(
                        Chunks::Owned(chunks.into_iter()),
                        outcome.stream,
                        &req,
                        outcome.latency,
                    );
                }
                let mut resp = LlmResponse::new(text, req.model_arc().clone(), s.name.clone())
                    .with_usage(usage)
                    .with_finish_reason(finish_reason);
                if let Some(choice) = resp.choices.first_mut() {
                    choice.message.tool_calls = tool_calls.to_vec();
                }
                Some(Ok(resp))
            }
            Action::Stream(chunks) if streamed => {
                return self.answer_stream(
                    Chunks::Shared(chunks, 0),
                    outcome.stream,
                    &req,
                    outcome.latency,
                );
            }
            Action::Stream(chunks) => {
                let mut collector = Collector::default();
                for chunk in chunks.iter() {
                    collector.push(chunk);
                }
                Some(Ok(collector.finish(s.name.clone(), req.model_arc().clone())))
            }
            Action::Failure(err) => Some(Err(err.or_provider(&s.name))),
        };
        self.future(result, outcome.latency)
    }
}

impl FakeProvider {
    fn future(
        &self,
        result: Option<Result<LlmResponse, LlmError>>,
        latency: Duration,
    ) -> FakeFuture {
        let sleep = (!latency.is_zero()).then(|| tokio::time::sleep(latency));
        FakeFuture {
            sleep,
            result,
            guard: Some(InFlight(self.shared.clone())),
        }
    }

    /// Answers with `chunks` streamed as `plan` says, or, when its fault strikes before the
    /// first chunk (the commit point), fails (or hangs, for a stall) instead.
    fn answer_stream(
        &self,
        chunks: Chunks,
        plan: StreamPlan,
        req: &LlmRequest,
        latency: Duration,
    ) -> FakeFuture {
        let name = &self.shared.name;
        let fault = plan.fault.map(|(at, f)| (at.resolve(chunks.len()), f));
        let result = match fault {
            Some((n, f)) if n.min(chunks.len()) == 0 => fault_error(f, name).map(Err),
            _ => {
                let stream = FakeStream::new(chunks, fault, name.clone(), plan.chunk_latency);
                Some(Ok(LlmResponse::streaming(
                    ChunkStream::new(stream),
                    req.model_arc().clone(),
                    name.clone(),
                )))
            }
        };
        self.future(result, latency)
    }
}

struct InFlight(Arc<Shared>);

impl InFlight {
    fn finish(self, result: &mut Result<LlmResponse, LlmError>) {
        let counter = match result {
            Ok(resp) => {
                if let Some(stream) = resp.stream.as_mut() {
                    self.0.streams_started.fetch_add(1, Ordering::SeqCst);
                    let shared = self.0.clone();
                    stream.on_end(move |end: &StreamEnd<'_>| {
                        let counter = match end.how {
                            Ended::Complete => &shared.streams_completed,
                            Ended::Failed(_) => &shared.streams_failed,
                            Ended::Dropped => &shared.streams_dropped,
                        };
                        counter.fetch_add(1, Ordering::SeqCst);
                    });
                }
                &self.0.successes
            }
            Err(_) => &self.0.failures,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project! {
    /// The future of a [`FakeProvider`] call.
    pub struct FakeFuture {
        #[pin]
        sleep: Option<Sleep>,
        result: Option<Result<LlmResponse, LlmError>>,
        guard: Option<InFlight>,
    }
}

impl Future for FakeFuture {
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            if sleep.poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep.set(None);
        }
        match this.result.take() {
            Some(mut result) => {
                if let Some(guard) = this.guard.take() {
                    guard.finish(&mut result);
                }
                Poll::Ready(result)
            }
            // A hang (or a future polled again after it finished) never completes.
            None => Poll::Pending,
        }
    }
}
