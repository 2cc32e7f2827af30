//! Streamed answers: the response body read as server-sent events (`eventsource-stream`
//! behind a guard that caps the bytes of one event and checks UTF-8), each event decoded into
//! chunks by the provider's stream decoder, with the idle timeout between chunks.
//!
//! Nothing reads ahead of the caller: the body is read only when the caller asks for the next
//! chunk, so a slow reader slows the upstream read (TCP flow control does the rest).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStream, EventStreamError};
use futures_core::Stream;
use http::HeaderValue;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};
use towerguard_llm_core::wire::{Step, anthropic_sse, openai_sse};
use towerguard_llm_core::{Chunk, ErrorKind, LlmError};

use crate::key::Secrets;

/// A provider format's stream decoder.
pub(crate) trait Decode: Default + Send + Unpin + 'static {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<Step, LlmError>;
}

impl Decode for openai_sse::StreamDecoder {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<Step, LlmError> {
        openai_sse::StreamDecoder::decode(self, event, data, out)
    }
}

impl Decode for anthropic_sse::StreamDecoder {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<Step, LlmError> {
        anthropic_sse::StreamDecoder::decode(self, event, data, out)
    }
}

/// Why the guarded byte stream stopped.
#[derive(Debug)]
pub(crate) enum GuardError {
    /// The body failed (connection reset, cut off mid-chunk, ...).
    Body(hyper::Error),
    /// One event grew past the cap.
    Oversized,
    /// The bytes are not UTF-8, which an event stream must be.
    NotUtf8,
}

/// The body's bytes, passed on unchanged while each event (the bytes since the last blank
/// line) stays within `max` bytes and the text is UTF-8. Without it the SSE parser would
/// buffer a line with no end, or bytes that never become text, without bound.
pub(crate) struct Guard<S> {
    inner: S,
    max: usize,
    /// Bytes of the event so far (line ends not counted).
    event: usize,
    /// Bytes of the line so far.
    line: usize,
    /// The last byte was `\r` (so a `\n` right after it ends no further line).
    cr: bool,
    /// An incomplete UTF-8 character at the end of the last piece.
    carry: [u8; 4],
    carry_len: usize,
    failed: bool,
}

impl<S> Guard<S> {
    pub(crate) fn new(inner: S, max: usize) -> Self {
        Self {
            inner,
            max,
            event: 0,
            line: 0,
            cr: false,
            carry: [0; 4],
            carry_len: 0,
            failed: false,
        }
    }

    fn count(&mut self, bytes: &[u8]) -> Result<(), GuardError> {
        for &b in bytes {
            if b == b'\n' && self.cr {
                self.cr = false;
                continue;
            }
            self.cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                if self.line == 0 {
                    self.event = 0;
                }
                self.line = 0;
            } else {
                self.line += 1;
                self.event += 1;
                if self.event > self.max {
                    return Err(GuardError::Oversized);
                }
            }
        }
        Ok(())
    }

    fn check_utf8(&mut self, mut bytes: &[u8]) -> Result<(), GuardError> {
        if self.carry_len > 0 {
            let need = match self.carry[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = (need - self.carry_len).min(bytes.len());
            if bytes[..take].iter().any(|b| !(0x80..=0xBF).contains(b)) {
                return Err(GuardError::NotUtf8);
            }
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&bytes[..take]);
            self.carry_len += take;
            bytes = &bytes[take..];
            if self.carry_len < need {
                return Ok(());
            }
            if std::str::from_utf8(&self.carry[..need]).is_err() {
                return Err(GuardError::NotUtf8);
            }
            self.carry_len = 0;
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            if e.error_len().is_some() {
                return Err(GuardError::NotUtf8);
            }
            let tail = &bytes[e.valid_up_to()..];
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carry_len = tail.len();
        }
        Ok(())
    }
}

impl<S> Stream for Guard<S>
where
    S: Stream<Item = Result<Bytes, hyper::Error>> + Unpin,
{
    type Item = Result<Bytes, GuardError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            Some(Ok(bytes)) => {
                let checked = this.count(&bytes).and_then(|()| this.check_utf8(&bytes));
                match checked {
                    Ok(()) => Poll::Ready(Some(Ok(bytes))),
                    Err(e) => {
                        this.failed = true;
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
            Some(Err(e)) => {
                this.failed = true;
                Poll::Ready(Some(Err(GuardError::Body(e))))
            }
            None => Poll::Ready(None),
        }
    }
}

type Events = EventStream<Guard<BodyDataStream<Incoming>>>;

/// What a stream needs besides its body: its provider's name, limits and the request's
/// secrets (to scrub them from error details).
pub(crate) struct StreamParts {
    pub(crate) provider: Arc<str>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_event_bytes: usize,
    /// The request's sensitive headers (cheap clones of their values).
    pub(crate) secrets: Vec<(&'static str, HeaderValue)>,
}

/// The chunks of a streamed answer, read from its body on demand.
///
/// Ends with `None` only after the format's terminator; every failure (body error, oversized
/// or malformed event, error event, idle timeout, the body ending early) is one `Err` item
/// (provider set), after which it ends and the body is dropped, which closes the connection.
pub(crate) struct SseChunks<D> {
    events: Option<Events>,
    decoder: D,
    /// Decoded chunks not yet delivered, last first (popped from the end).
    pending: Vec<Chunk>,
    parts: StreamParts,
    idle: Pin<Box<Sleep>>,
    /// Whether the idle timer runs (from the first chunk on, and only while the caller waits).
    idle_on: bool,
    waiting: bool,
    done: bool,
}

impl<D: Decode> SseChunks<D> {
    pub(crate) fn new(body: Incoming, parts: StreamParts) -> Self {
        use http_body_util::BodyExt;
        let guarded = Guard::new(body.into_data_stream(), parts.max_event_bytes);
        let idle = Box::pin(tokio::time::sleep(parts.idle_timeout));
        Self {
            events: Some(EventStream::new(guarded)),
            decoder: D::default(),
            pending: Vec::new(),
            parts,
            idle,
            idle_on: false,
            waiting: false,
            done: false,
        }
    }

    /// Puts a chunk back at the front (the first chunk, read before the caller took the
    /// stream), and starts the idle timer: from now on a gap between chunks is bounded.
    pub(crate) fn unread(&mut self, chunk: Chunk) {
        self.pending.push(chunk);
        self.idle_on = true;
    }

    fn fail(&mut self, err: LlmError) -> Poll<Option<Result<Chunk, LlmError>>> {
        self.done = true;
        self.events = None;
        self.pending.clear();
        Poll::Ready(Some(Err(err.with_provider(self.parts.provider.clone()))))
    }

    /// The decoder's error for an event; if the event quotes one of the request's keys, the
    /// error is made again from the event with the keys replaced.
    fn event_error(&self, event: &str, data: &str, err: LlmError) -> LlmError {
        let secrets = Secrets::of(&self.parts.secrets);
        match secrets.scrub(data) {
            std::borrow::Cow::Borrowed(_) => err,
            std::borrow::Cow::Owned(clean) => {
                match D::default().decode(event, &clean, &mut Vec::new()) {
                    Err(e) => e,
                    Ok(_) => LlmError::new(ErrorKind::Server)
                        .with_detail("malformed stream event: it quoted the request's key"),
                }
            }
        }
    }

    fn transport_error(&self, err: EventStreamError<GuardError>) -> LlmError {
        let secrets = Secrets::of(&self.parts.secrets);
        match err {
            EventStreamError::Transport(GuardError::Body(e)) => {
                LlmError::new(ErrorKind::Connection).with_detail(secrets.scrub(&format!(
                    "the stream was cut off: {}",
                    crate::transport::chain(&e)
                )))
            }
            EventStreamError::Transport(GuardError::Oversized) => LlmError::new(ErrorKind::Server)
                .with_detail(format!(
                    "malformed stream event: an event larger than {} bytes",
                    self.parts.max_event_bytes
                )),
            EventStreamError::Transport(GuardError::NotUtf8) | EventStreamError::Utf8(_) => {
                LlmError::new(ErrorKind::Server)
                    .with_detail("malformed stream event: the stream is not UTF-8")
            }
            EventStreamError::Parser(_) => LlmError::new(ErrorKind::Server)
                .with_detail("malformed stream event: not server-sent events"),
        }
    }
}

impl<D: Decode> Stream for SseChunks<D> {
    type Item = Result<Chunk, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop() {
                this.waiting = false;
                return Poll::Ready(Some(Ok(chunk)));
            }
            let Some(events) = this.events.as_mut() else {
                return Poll::Ready(None);
            };
            if this.done {
                // The terminator came: one look for the body's end, which lets the connection
                // go back to the pool; whatever else there is, is not read.
                let _ = Pin::new(events).poll_next(cx);
                this.events = None;
                return Poll::Ready(None);
            }
            match Pin::new(events).poll_next(cx) {
                Poll::Ready(Some(Ok(ev))) => {
                    // The SSE default event name: the event had none.
                    let name = if ev.event == "message" { "" } else { &ev.event };
                    match this.decoder.decode(name, &ev.data, &mut this.pending) {
                        Ok(step) => {
                            this.pending.reverse();
                            this.done = step == Step::Done;
                        }
                        Err(e) => {
                            let e = this.event_error(name, &ev.data, e);
                            return this.fail(e);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let e = this.transport_error(e);
                    return this.fail(e);
                }
                Poll::Ready(None) => {
                    return this.fail(
                        LlmError::new(ErrorKind::Connection)
                            .with_detail("the stream ended before its end"),
                    );
                }
                Poll::Pending => {
                    if !this.idle_on {
                        return Poll::Pending;
                    }
                    if !this.waiting {
                        this.waiting = true;
                        let deadline = Instant::now() + this.parts.idle_timeout;
                        this.idle.as_mut().reset(deadline);
                    }
                    ready!(this.idle.as_mut().poll(cx));
                    let idle = this.parts.idle_timeout;
                    return this.fail(
                        LlmError::new(ErrorKind::Timeout)
                            .with_detail(format!("no stream chunk for {idle:?}")),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: usize) -> Guard<()> {
        Guard::new((), max)
    }

    #[test]
    fn an_event_is_counted_up_to_its_blank_line_whatever_the_line_ends() {
        for end in ["\n", "\r\n", "\r"] {
            let mut g = guard(10);
            let event = format!("data: 1234{end}{end}");
            // each event alone fits; together they would not
            for _ in 0..5 {
                assert!(g.count(event.as_bytes()).is_ok(), "{end:?}");
            }
            let mut g = guard(10);
            let lines = format!("data: 12{end}data: 34{end}");
            assert!(
                g.count(lines.as_bytes()).is_err(),
                "{end:?}: one event of two lines"
            );
        }
        // a CRLF split across two reads ends one line, not two (no false event end)
        let mut g = guard(16);
        assert!(g.count(b"data: 1\r").is_ok());
        assert!(g.count(b"\ndata: 2").is_ok());
        assert!(g.count(b"xx").is_ok());
        assert!(g.count(b"x").is_err());
        // a line with no end at all is caught at the cap
        let mut g = guard(1000);
        for _ in 0..99 {
            assert!(g.count(b"0123456789").is_ok());
        }
        assert!(g.count(b"0123456789x").is_err());
    }

    #[test]
    fn utf8_is_checked_across_reads() {
        let text = "h\u{e9}llo \u{1f44d}".as_bytes();
        for cut in 0..=text.len() {
            let mut g = guard(100);
            assert!(g.check_utf8(&text[..cut]).is_ok(), "{cut}");
            assert!(g.check_utf8(&text[cut..]).is_ok(), "{cut}");
            assert_eq!(g.carry_len, 0, "{cut}");
        }
        // byte by byte
        let mut g = guard(100);
        for b in text {
            assert!(g.check_utf8(std::slice::from_ref(b)).is_ok());
        }
        assert!(guard(100).check_utf8(&[b'a', 0xff]).is_err());
        let mut g = guard(100);
        assert!(g.check_utf8(&[0xf0, 0x9f]).is_ok());
        assert!(g.check_utf8(b"a").is_err(), "an interrupted character");
    }
}
