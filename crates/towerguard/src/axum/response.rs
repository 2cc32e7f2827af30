//! Answers in either wire format: a complete answer as JSON, a streamed one as server-sent
//! events written as the client reads them.

use super::*;

/// An answer in OpenAI's format: a complete [`LlmResponse`] as a chat completion, a
/// streamed one as chat-completion chunks (server-sent events ending in `data: [DONE]`), an
/// [`LlmError`] as OpenAI's error body with the status of [`status_for`] and Retry-After.
#[derive(Debug)]
pub struct OpenAiResponse(pub Result<LlmResponse, LlmError>);

/// An answer in Anthropic's format: a complete [`LlmResponse`] as a message, a streamed one
/// as Messages stream events, an [`LlmError`] as Anthropic's error body with the status of
/// [`status_for`] and Retry-After.
#[derive(Debug)]
pub struct AnthropicResponse(pub Result<LlmResponse, LlmError>);

impl IntoResponse for OpenAiResponse {
    fn into_response(self) -> Response {
        response(Format::OpenAi, self.0)
    }
}

impl IntoResponse for AnthropicResponse {
    fn into_response(self) -> Response {
        response(Format::Anthropic, self.0)
    }
}

/// The answer to `result` in `format` (what [`OpenAiResponse`] and [`AnthropicResponse`]
/// answer): a streamed response as server-sent events, a complete one as JSON, an error with
/// [`error_response`].
///
/// A response without an id gets a fresh one (`chatcmpl-...`, `msg_...`), and an OpenAI
/// answer without a `created` time the current one. An answer that cannot be encoded is a
/// 502.
pub fn response(format: Format, result: Result<LlmResponse, LlmError>) -> Response {
    match result {
        Ok(resp) if resp.is_stream() => stream_response(format, resp),
        Ok(resp) => complete_response(format, resp),
        Err(err) => error_response(format, &err),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fresh_id(format: Format) -> String {
    match format {
        Format::OpenAi => format!("chatcmpl-{}", RequestId::generate()),
        Format::Anthropic => format!("msg_{}", RequestId::generate()),
    }
}

fn complete_response(format: Format, mut resp: LlmResponse) -> Response {
    if resp.id.is_none() {
        resp.id = Some(fresh_id(format));
    }
    let encoded = match format {
        Format::OpenAi => {
            if resp.created.is_none() {
                resp.created = Some(now_secs());
            }
            resp.to_openai_json()
        }
        Format::Anthropic => resp.to_anthropic_json(),
    };
    match encoded {
        Ok(body) => {
            let mut out = (StatusCode::OK, body).into_response();
            out.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            out
        }
        Err(err) => error_response_with_status(format, &err, StatusCode::BAD_GATEWAY),
    }
}

/// The format's SSE writer.
#[derive(Debug)]
enum Writer {
    OpenAi(openai_sse::StreamWriter),
    Anthropic(anthropic_sse::StreamWriter),
}

impl Writer {
    fn write(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        match self {
            Writer::OpenAi(w) => w.write(chunk, out),
            Writer::Anthropic(w) => w.write(chunk, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Writer::OpenAi(w) => w.finish(out),
            Writer::Anthropic(w) => w.finish(out),
        }
    }

    fn error(&mut self, err: &LlmError, out: &mut Vec<u8>) {
        match self {
            Writer::OpenAi(w) => w.error(err, out),
            Writer::Anthropic(w) => w.error(err, out),
        }
    }
}

/// The events of a stream, written as the client reads: one chunk is pulled from the
/// answer only when the body is polled.
struct SseBody {
    chunks: ChunkStream,
    writer: Writer,
    done: bool,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut this.chunks).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.writer.write(&chunk, &mut out);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    this.writer.error(&err, &mut out);
                    this.done = true;
                    return Poll::Ready(Some(Ok(Bytes::from(out))));
                }
                Poll::Ready(None) => {
                    this.writer.finish(&mut out);
                    this.done = true;
                    return Poll::Ready(Some(Ok(Bytes::from(out))));
                }
            }
        }
    }
}

fn stream_response(format: Format, mut resp: LlmResponse) -> Response {
    let chunks = match resp.stream.take() {
        Some(s) => s,
        None => ChunkStream::from_items(chunks_of(&mut resp)),
    };
    let id = resp.id.take().unwrap_or_else(|| fresh_id(format));
    let model = resp.model().to_owned();
    let writer = match format {
        Format::OpenAi => Writer::OpenAi(openai_sse::StreamWriter::new(
            id,
            model,
            resp.created.unwrap_or_else(now_secs),
        )),
        Format::Anthropic => Writer::Anthropic(anthropic_sse::StreamWriter::new(id, model)),
    };
    let body = SseBody {
        chunks,
        writer,
        done: false,
    };
    let mut out = Response::new(Body::from_stream(body));
    let headers = out.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out
}

/// `resp` in the shape the request asked for: for a client that asked to stream
/// (`stream`), a complete answer becomes a short stream of its chunks; for one that did not,
/// a streamed answer is read to its end (its error item, if it fails, is the error). An
/// answer already in that shape is returned as it is.
pub async fn as_requested(mut resp: LlmResponse, stream: bool) -> Result<LlmResponse, LlmError> {
    if stream && !resp.is_stream() {
        let chunks = chunks_of(&mut resp);
        resp.stream = Some(ChunkStream::from_items(chunks));
        Ok(resp)
    } else if !stream && resp.is_stream() {
        resp.into_complete().await
    } else {
        Ok(resp)
    }
}

/// The chunks of a complete answer, for a client that asked for a stream (its choices are
/// taken out of `resp`).
fn chunks_of(resp: &mut LlmResponse) -> Vec<Result<Chunk, LlmError>> {
    let mut out = vec![Ok(Chunk::Start {
        id: resp.id.clone(),
        model: Some(resp.model().to_owned()),
    })];
    for c in std::mem::take(&mut resp.choices) {
        let choice = c.index;
        for part in c.message.content.parts().iter() {
            match part {
                Part::Thinking {
                    thinking,
                    signature,
                } => {
                    out.push(Ok(Chunk::Reasoning {
                        choice,
                        text: thinking.clone(),
                    }));
                    if let Some(signature) = signature {
                        out.push(Ok(Chunk::Signature {
                            choice,
                            signature: signature.clone(),
                        }));
                    }
                }
                Part::RedactedThinking { data } => out.push(Ok(Chunk::RedactedThinking {
                    choice,
                    data: data.clone(),
                })),
                Part::Text { text, .. } if !text.is_empty() => out.push(Ok(Chunk::Text {
                    choice,
                    text: text.clone(),
                })),
                Part::Refusal { refusal } => out.push(Ok(Chunk::Refusal {
                    choice,
                    text: refusal.clone(),
                })),
                _ => {}
            }
        }
        for (index, call) in c.message.tool_calls.iter().enumerate() {
            out.push(Ok(Chunk::ToolCall(ToolCallDelta {
                choice,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                id: Some(call.id.clone()),
                name: Some(call.name.clone()),
                arguments: call.arguments.clone(),
            })));
        }
        out.push(Ok(Chunk::Finish {
            choice,
            reason: c.finish_reason,
        }));
    }
    out.push(Ok(Chunk::Usage(resp.usage)));
    out
}
