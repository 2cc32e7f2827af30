//! The chunks a fake provider streams: [`FakeStream`], read through a
//! [`ChunkStream`](towerguard_llm_core::ChunkStream).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use towerguard_llm_core::{
    Chunk, ErrorKind, FinishReason, LlmError, ToolCall, ToolCallDelta, Usage,
};

use crate::outcome::StreamFault;

/// The chunks of one stream: scripted ones shared with the [`Outcome`](crate::Outcome) (each
/// cloned as it is sent), or built for this call (moved out as they are sent).
pub(crate) enum Chunks {
    Shared(Arc<[Chunk]>, usize),
    Owned(std::vec::IntoIter<Chunk>),
}

impl Chunks {
    pub(crate) fn len(&self) -> usize {
        match self {
            Chunks::Shared(all, next) => all.len().saturating_sub(*next),
            Chunks::Owned(rest) => rest.len(),
        }
    }

    fn next(&mut self) -> Option<Chunk> {
        match self {
            Chunks::Shared(all, next) => {
                let chunk = all.get(*next).cloned();
                *next += 1;
                chunk
            }
            Chunks::Owned(rest) => rest.next(),
        }
    }
}

/// The chunks a default success streams: its text in a few pieces (one per word) between a
/// `Start` and a `Finish`, its tool calls (the first piece of each with its id and name, the
/// second with its arguments), then its usage.
pub(crate) fn default_chunks(
    model: &str,
    text: &str,
    tool_calls: &[ToolCall],
    finish: FinishReason,
    usage: Usage,
) -> Vec<Chunk> {
    let mut chunks = Vec::with_capacity(3 + text.len() / 4 + 2 * tool_calls.len());
    chunks.push(Chunk::Start {
        id: None,
        model: Some(model.to_owned()),
    });
    chunks.extend(text.split_inclusive(' ').map(|word| Chunk::Text {
        choice: 0,
        text: word.to_owned(),
    }));
    for (index, call) in (0u32..).zip(tool_calls) {
        chunks.push(Chunk::ToolCall(ToolCallDelta {
            choice: 0,
            index,
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments: String::new(),
        }));
        chunks.push(Chunk::ToolCall(ToolCallDelta {
            choice: 0,
            index,
            arguments: call.arguments.clone(),
            ..ToolCallDelta::default()
        }));
    }
    chunks.push(Chunk::Finish {
        choice: 0,
        reason: finish,
    });
    chunks.push(Chunk::Usage(usage));
    chunks
}

/// The error a stream fault ends a stream with (or fails the call with, before the first
/// chunk). `None` for a stall, which never ends.
pub(crate) fn fault_error(fault: StreamFault, provider: &Arc<str>) -> Option<LlmError> {
    let err = match fault {
        StreamFault::Cut => LlmError::new(ErrorKind::Connection)
            .with_detail("the stream ended without its terminator"),
        StreamFault::Error(kind) => LlmError::new(kind).with_detail("an error event"),
        StreamFault::Garbage => LlmError::new(ErrorKind::Server)
            .with_detail("malformed stream event: not JSON (testkit garbage)"),
        StreamFault::Stall => return None,
    };
    Some(err.with_provider(provider.clone()))
}

pin_project! {
    /// A scripted stream: its chunks, each after the chunk latency, then a clean end or its
    /// fault. Holds one timer, reset for each chunk, so sending a chunk allocates nothing
    /// beyond the chunk; dropping it stops it at once (nothing runs in the background).
    pub(crate) struct FakeStream {
        chunks: Chunks,
        // how many chunks to send before the fault (all of them when there is none)
        left: usize,
        fault: Option<StreamFault>,
        provider: Arc<str>,
        latency: Duration,
        #[pin]
        sleep: Option<Sleep>,
        waiting: bool,
        done: bool,
    }
}

impl FakeStream {
    /// `chunks`, each after `latency`; after `fault`'s chunk count the fault, if any.
    pub(crate) fn new(
        chunks: Chunks,
        fault: Option<(usize, StreamFault)>,
        provider: Arc<str>,
        latency: Duration,
    ) -> Self {
        let (left, fault) = match fault {
            Some((n, f)) => (n, Some(f)),
            None => (usize::MAX, None),
        };
        Self {
            chunks,
            left,
            fault,
            provider,
            latency,
            sleep: None,
            waiting: false,
            done: false,
        }
    }
}

enum Next {
    Chunk,
    Fail,
    End,
}

impl Stream for FakeStream {
    type Item = Result<Chunk, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let next = if *this.left > 0 && this.chunks.len() > 0 {
            Next::Chunk
        } else {
            match this.fault {
                // never another item: nothing to wake us, the caller's timeout ends it
                Some(StreamFault::Stall) => return Poll::Pending,
                Some(_) => Next::Fail,
                None => Next::End,
            }
        };
        if matches!(next, Next::End) {
            *this.done = true;
            return Poll::Ready(None);
        }
        if !this.latency.is_zero() {
            if !*this.waiting {
                let deadline = Instant::now() + *this.latency;
                match this.sleep.as_mut().as_pin_mut() {
                    Some(sleep) => sleep.reset(deadline),
                    None => this.sleep.set(Some(tokio::time::sleep_until(deadline))),
                }
                *this.waiting = true;
            }
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                ready!(sleep.poll(cx));
            }
            *this.waiting = false;
        }
        match next {
            Next::Chunk => {
                *this.left -= 1;
                Poll::Ready(this.chunks.next().map(Ok))
            }
            _ => {
                *this.done = true;
                Poll::Ready(
                    this.fault
                        .and_then(|f| fault_error(f, this.provider))
                        .map(Err),
                )
            }
        }
    }
}
