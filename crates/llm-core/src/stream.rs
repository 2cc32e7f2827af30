//! Streamed answers: the [`Chunk`]s of a stream, the [`ChunkStream`] a streamed
//! [`LlmResponse`] carries, and how layers learn how a stream ended ([`ChunkStream::on_end`]).
//!
//! The commit point: a provider client answers a `stream: true` request only once the first
//! chunk has arrived. Until then a failure (an error status, a connection error, an error event
//! as the first event, a timeout waiting for the first chunk) is an ordinary error, which the
//! retry and fallback layers handle like any other. After it, the caller holds the stream, and
//! a failure ends the stream with one `Err` item (kind and provider set) and nothing after it:
//! never retried, never spliced from another provider. A stream that stops without the
//! provider's terminator ends with such an error, never as a success.
//!
//! Layers that need the outcome (the circuit breaker, the error-rate limiter, the cost meter)
//! register with [`ChunkStream::on_end`]: they are told once, when the stream completes, fails,
//! or is dropped by the caller, with the last usage it reported.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::LlmError;
use crate::message::{Content, Message, Part, Role, ToolCall};
use crate::response::{Choice, FinishReason, LlmResponse, Usage};

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Chunk {
    /// What the stream is: the provider's id for the answer and the model answering (OpenAI's
    /// first chunk, Anthropic's `message_start`).
    Start {
        /// The provider's id (`chatcmpl-...`, `msg_...`).
        id: Option<String>,
        /// The model, as the provider names it.
        model: Option<String>,
    },
    /// Text of a choice.
    Text {
        /// The choice (0 unless `n` was asked).
        choice: u32,
        /// The new text.
        text: String,
    },
    /// Reasoning text (Anthropic `thinking_delta`, `reasoning_content` of OpenAI-compatible
    /// servers).
    Reasoning {
        /// The choice.
        choice: u32,
        /// The new reasoning text.
        text: String,
    },
    /// The signature of the reasoning so far (Anthropic `signature_delta`).
    Signature {
        /// The choice.
        choice: u32,
        /// The signature.
        signature: String,
    },
    /// Encrypted reasoning (Anthropic `redacted_thinking`).
    RedactedThinking {
        /// The choice.
        choice: u32,
        /// The opaque data.
        data: String,
    },
    /// A piece of a tool call.
    ToolCall(ToolCallDelta),
    /// Refusal text (OpenAI `refusal` deltas).
    Refusal {
        /// The choice.
        choice: u32,
        /// The new refusal text.
        text: String,
    },
    /// A choice is finished.
    Finish {
        /// The choice.
        choice: u32,
        /// Why it stopped.
        reason: FinishReason,
    },
    /// The usage so far: each one replaces the one before (Anthropic sends input usage first
    /// and output usage at the end; OpenAI one total in its last chunk when asked with
    /// `stream_options.include_usage`).
    Usage(Usage),
}

/// A piece of a tool call: the first piece of a call has its id and name, the later ones
/// only more argument text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCallDelta {
    /// The choice.
    pub choice: u32,
    /// Which call of the choice (0, 1, ...).
    pub index: u32,
    /// The call's id (first piece).
    pub id: Option<String>,
    /// The function's name (first piece).
    pub name: Option<String>,
    /// More of the JSON arguments.
    pub arguments: String,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy)]
pub enum Ended<'a> {
    /// The provider's terminator arrived.
    Complete,
    /// It ended with this error (its last item).
    Failed(&'a LlmError),
    /// The caller dropped it before its end.
    Dropped,
}

/// What a layer registered with [`ChunkStream::on_end`] is told.
#[derive(Debug, Clone, Copy)]
pub struct StreamEnd<'a> {
    /// How it ended.
    pub how: Ended<'a>,
    /// The last usage it reported, if any.
    pub usage: Option<Usage>,
    /// How many chunks it delivered.
    pub chunks: u64,
}

type Watcher = Box<dyn FnOnce(&StreamEnd<'_>) + Send>;
type Inner = Pin<Box<dyn Stream<Item = Result<Chunk, LlmError>> + Send>>;

/// The chunks of a streamed answer: a `Stream` of `Result<Chunk, LlmError>` that ends after
/// its first `Err`. Reading it reads the provider (nothing is buffered: a slow reader slows the
/// upstream read).
///
/// One pointer wide, so a response that may carry a stream stays small to move.
pub struct ChunkStream {
    state: Box<State>,
}

struct State {
    inner: Inner,
    watchers: Vec<Watcher>,
    usage: Option<Usage>,
    chunks: u64,
    ended: bool,
}

impl fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStream")
            .field("chunks", &self.state.chunks)
            .field("usage", &self.state.usage)
            .field("ended", &self.state.ended)
            .finish_non_exhaustive()
    }
}

impl ChunkStream {
    /// A stream of these items. It should end with `Ok` items only when the provider's
    /// terminator arrived (the provider clients and testkit's fakes do so).
    pub fn new(stream: impl Stream<Item = Result<Chunk, LlmError>> + Send + 'static) -> Self {
        Self {
            state: Box::new(State {
                inner: Box::pin(stream),
                watchers: Vec::new(),
                usage: None,
                chunks: 0,
                ended: false,
            }),
        }
    }

    /// A stream of these items, already known (tests, replays).
    pub fn from_items(items: Vec<Result<Chunk, LlmError>>) -> Self {
        Self::new(Iter(items.into_iter()))
    }

    /// Calls `f` once when the stream ends: completed, failed, or dropped by the caller.
    /// Watchers are told in the order they registered.
    pub fn on_end(&mut self, f: impl FnOnce(&StreamEnd<'_>) + Send + 'static) {
        let s = &mut self.state;
        if s.ended {
            // registered too late to see it: tell at once, as a completed stream
            f(&StreamEnd {
                how: Ended::Complete,
                usage: s.usage,
                chunks: s.chunks,
            });
        } else {
            s.watchers.push(Box::new(f));
        }
    }

    /// The last usage the stream reported so far.
    pub fn usage(&self) -> Option<Usage> {
        self.state.usage
    }

    /// How many chunks it has delivered.
    pub fn chunks(&self) -> u64 {
        self.state.chunks
    }
}

impl State {
    fn end(&mut self, how: Ended<'_>) {
        self.ended = true;
        let end = StreamEnd {
            how,
            usage: self.usage,
            chunks: self.chunks,
        };
        for w in self.watchers.drain(..) {
            w(&end);
        }
    }
}

impl Stream for ChunkStream {
    type Item = Result<Chunk, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let s = &mut self.state;
        if s.ended {
            return Poll::Ready(None);
        }
        match s.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Chunk::Usage(u) = &chunk {
                    s.usage = Some(*u);
                }
                s.chunks += 1;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                s.end(Ended::Failed(&e));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                s.end(Ended::Complete);
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        if !self.state.ended {
            self.state.end(Ended::Dropped);
        }
    }
}

struct Iter(std::vec::IntoIter<Result<Chunk, LlmError>>);

impl Stream for Iter {
    type Item = Result<Chunk, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
}

/// Whether `response` is a streamed [`LlmResponse`] whose stream has not been taken.
pub fn is_stream<Res: 'static>(response: &Res) -> bool {
    let any: &dyn std::any::Any = response;
    any.downcast_ref::<LlmResponse>()
        .is_some_and(LlmResponse::is_stream)
}

/// Registers `f` on `response`'s stream if it is a streamed [`LlmResponse`]; gives `f` back
/// otherwise (a complete answer, or a response of another type). This is how layers that are
/// generic over their response (the breaker, the limiter, the meter) learn how a stream
/// ended without a trait bound every response type would need.
pub fn on_stream_end<Res: 'static, F>(response: &mut Res, f: F) -> Result<(), F>
where
    F: FnOnce(&StreamEnd<'_>) + Send + 'static,
{
    let any: &mut dyn std::any::Any = response;
    match any
        .downcast_mut::<LlmResponse>()
        .and_then(|r| r.stream.as_mut())
    {
        Some(stream) => {
            stream.on_end(f);
            Ok(())
        }
        None => Err(f),
    }
}

/// Builds a complete answer from chunks (a gateway answering a client that did not ask for
/// a stream, tests): text, reasoning with its signature, tool calls by index, refusals, finish
/// reasons and the last usage.
#[derive(Debug, Default)]
pub struct Collector {
    id: Option<String>,
    model: Option<String>,
    choices: Vec<Draft>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct Draft {
    text: String,
    reasoning: String,
    signature: Option<String>,
    redacted: Vec<String>,
    refusal: String,
    calls: Vec<ToolCall>,
    finish: Option<FinishReason>,
}

impl Collector {
    /// Adds one chunk.
    pub fn push(&mut self, chunk: &Chunk) {
        match chunk {
            Chunk::Start { id, model } => {
                self.id = self.id.take().or_else(|| id.clone());
                self.model = self.model.take().or_else(|| model.clone());
            }
            Chunk::Text { choice, text } => self.draft(*choice).text.push_str(text),
            Chunk::Reasoning { choice, text } => self.draft(*choice).reasoning.push_str(text),
            Chunk::Signature { choice, signature } => {
                self.draft(*choice).signature = Some(signature.clone());
            }
            Chunk::RedactedThinking { choice, data } => {
                self.draft(*choice).redacted.push(data.clone());
            }
            Chunk::Refusal { choice, text } => self.draft(*choice).refusal.push_str(text),
            Chunk::Finish { choice, reason } => self.draft(*choice).finish = Some(reason.clone()),
            Chunk::Usage(u) => self.usage = Some(*u),
            Chunk::ToolCall(d) => {
                let calls = &mut self.draft(d.choice).calls;
                let i = d.index as usize;
                if calls.len() <= i {
                    calls.resize_with(i + 1, || ToolCall::new("", "", ""));
                }
                let call = &mut calls[i];
                if let Some(id) = &d.id {
                    call.id.clone_from(id);
                }
                if let Some(name) = &d.name {
                    call.name.push_str(name);
                }
                call.arguments.push_str(&d.arguments);
            }
        }
    }

    fn draft(&mut self, choice: u32) -> &mut Draft {
        let i = choice as usize;
        if self.choices.len() <= i {
            self.choices.resize_with(i + 1, Draft::default);
        }
        &mut self.choices[i]
    }

    /// The answer the chunks make, served by `provider` for a request of `asked_model` (used
    /// when the stream named no model).
    pub fn finish(self, provider: Arc<str>, asked_model: Arc<str>) -> LlmResponse {
        let choices = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let mut parts = Vec::new();
                if !d.reasoning.is_empty() || d.signature.is_some() {
                    parts.push(Part::Thinking {
                        thinking: d.reasoning,
                        signature: d.signature,
                    });
                }
                parts.extend(
                    d.redacted
                        .into_iter()
                        .map(|data| Part::RedactedThinking { data }),
                );
                if !d.text.is_empty() {
                    parts.push(Part::text(d.text));
                }
                if !d.refusal.is_empty() {
                    parts.push(Part::Refusal { refusal: d.refusal });
                }
                let content = match parts.as_slice() {
                    [Part::Text { .. }] => match parts.pop() {
                        Some(Part::Text { text, .. }) => Content::Text(text),
                        _ => Content::default(),
                    },
                    _ => Content::Parts(parts),
                };
                let mut message = Message::new(Role::Assistant, content);
                message.tool_calls = d.calls;
                Choice {
                    index: i as u32,
                    message,
                    finish_reason: d.finish.unwrap_or_default(),
                    stop_sequence: None,
                    logprobs: None,
                }
            })
            .collect();
        let model = match self.model {
            Some(m) if !m.is_empty() => Arc::from(m),
            _ => asked_model,
        };
        let mut resp = LlmResponse::with_choices(choices, model, provider);
        resp.id = self.id;
        if let Some(u) = self.usage {
            resp.usage = u;
        }
        resp
    }
}
