//! What each fuzz target checks, shared by the targets in `fuzz_targets/`. Every check is
//! "no panic" plus what must hold for any input: what we encode in a format, we decode again
//! (and encode to the same bytes); what a stream writer writes, the same format's stream
//! decoder reads without a malformed event.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use towerguard_llm_core::wire::{Step, anthropic_sse, openai_sse};
use towerguard_llm_core::{Chunk, LlmError, LlmRequest, LlmResponse};

/// A request body read as a client of that format would send it: decoded, then encoded in
/// both formats (what the gateway sends a provider). Its own format's encoding decodes again
/// to the same request. (The other format's may not decode: a field the source format does
/// not name is sent on unchanged, and may be one the other format names with a value it
/// refuses; see `crates/llm-core/tests/fuzz_regressions.rs`.)
pub fn request(body: &[u8], anthropic: bool) {
    let decoded = if anthropic {
        LlmRequest::from_anthropic_json(body)
    } else {
        LlmRequest::from_openai_json(body)
    };
    let Ok(req) = decoded else { return };
    let openai = req.to_openai_json();
    let anthropic_json = req.to_anthropic_json(1024);
    let (own, again) = if anthropic {
        let Ok(json) = anthropic_json else { return };
        let again = LlmRequest::from_anthropic_json(&json);
        (json, again.map(|r| r.to_anthropic_json(1024)))
    } else {
        let Ok(json) = openai else { return };
        let again = LlmRequest::from_openai_json(&json);
        (json, again.map(|r| r.to_openai_json()))
    };
    match again {
        Ok(Ok(twice)) => assert_same(&own, &twice),
        Ok(Err(e)) => panic!("a request decoded from our encoding does not encode: {e}"),
        Err(e) => panic!(
            "our encoding does not decode: {e}: {}",
            String::from_utf8_lossy(&own)
        ),
    }
}

/// A provider's answer: decoded, then encoded in both formats (what the gateway answers its
/// client); its own format's encoding decodes again to the same answer.
pub fn response(body: &[u8], anthropic: bool) {
    let provider: Arc<str> = Arc::from("p");
    let model: Arc<str> = Arc::from("m");
    let decoded = if anthropic {
        LlmResponse::from_anthropic_json(body, &provider, &model)
    } else {
        LlmResponse::from_openai_json(body, &provider, &model)
    };
    let Ok(resp) = decoded else { return };
    let openai = resp.to_openai_json();
    let anthropic_json = resp.to_anthropic_json();
    let (own, again) = if anthropic {
        let Ok(json) = anthropic_json else { return };
        let again = LlmResponse::from_anthropic_json(&json, &provider, &model);
        (json, again.map(|r| r.to_anthropic_json()))
    } else {
        let Ok(json) = openai else { return };
        let again = LlmResponse::from_openai_json(&json, &provider, &model);
        (json, again.map(|r| r.to_openai_json()))
    };
    match again {
        Ok(Ok(twice)) => assert_same(&own, &twice),
        Ok(Err(e)) => panic!("an answer decoded from our encoding does not encode: {e}"),
        Err(e) => panic!(
            "our encoding does not decode: {e}: {}",
            String::from_utf8_lossy(&own)
        ),
    }
}

/// Our encoding, decoded and encoded again, is the same JSON: numbers may differ in their
/// last digit (serde_json parses floats best-effort unless its `float_roundtrip` feature is
/// on, so a float of 17 digits can come back one unit of its last place off).
fn assert_same(own: &[u8], twice: &[u8]) {
    let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<Value>(own),
        serde_json::from_slice::<Value>(twice),
    ) else {
        panic!("our encoding is not JSON");
    };
    assert!(
        same(&a, &b),
        "encoding what our own encoding decodes to changes it:\n{a}\n{b}"
    );
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Splits a server-sent event stream into events: `(event name, data lines joined)`, for
/// each block up to a blank line. (The providers' own parser is behind their HTTP clients;
/// this one is the decoders' harness and reads what our writers write.)
pub fn events(text: &str) -> Vec<(&str, String)> {
    text.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let (mut event, mut data) = ("", Vec::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (event, data.join("\n"))
        })
        .collect()
}

/// A stream decoder of either format.
trait Decoder: Default {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<Step, LlmError>;
}

impl Decoder for openai_sse::StreamDecoder {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<Step, LlmError> {
        openai_sse::StreamDecoder::decode(self, event, data, out)
    }
}

impl Decoder for anthropic_sse::StreamDecoder {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<Step, LlmError> {
        anthropic_sse::StreamDecoder::decode(self, event, data, out)
    }
}

/// A provider's event stream (`bytes`, read as text) decoded, and the chunks written back in
/// both formats (as the gateway serves a stream to either kind of client); what each writer
/// wrote is decoded again by that format's decoder, which must read every event.
pub fn stream(bytes: &[u8], anthropic: bool) {
    let text = String::from_utf8_lossy(bytes);
    let events = events(&text);
    let chunks = if anthropic {
        decode_all::<anthropic_sse::StreamDecoder>(&events)
    } else {
        decode_all::<openai_sse::StreamDecoder>(&events)
    };
    let (chunks, error) = chunks;
    let mut openai = openai_sse::StreamWriter::new("chatcmpl-1", "m", 0);
    let mut anthropic = anthropic_sse::StreamWriter::new("msg_1", "m");
    let (mut o, mut a) = (Vec::new(), Vec::new());
    for c in &chunks {
        openai.write(c, &mut o);
        anthropic.write(c, &mut a);
    }
    match &error {
        Some(e) => {
            openai.error(e, &mut o);
            anthropic.error(e, &mut a);
        }
        None => {
            openai.finish(&mut o);
            anthropic.finish(&mut a);
        }
    }
    reread::<openai_sse::StreamDecoder>(&o, error.is_some());
    reread::<anthropic_sse::StreamDecoder>(&a, error.is_some());
}

/// The chunks of `events` up to the terminator or the first error, and that error.
fn decode_all<D: Decoder>(events: &[(&str, String)]) -> (Vec<Chunk>, Option<LlmError>) {
    let mut decoder = D::default();
    let mut out = Vec::new();
    for (event, data) in events {
        match decoder.decode(event, data, &mut out) {
            Ok(Step::Continue) => {}
            Ok(Step::Done) => return (out, None),
            Err(err) => return (out, Some(err)),
        }
    }
    (out, None)
}

/// Splits what a writer wrote into events and decodes them: every event reads, except the
/// error event written for `ended_in_error`.
fn reread<D: Decoder>(bytes: &[u8], ended_in_error: bool) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        panic!("a stream writer wrote bytes that are not UTF-8");
    };
    let mut decoder = D::default();
    let mut out = Vec::new();
    for (event, data) in events(text) {
        match decoder.decode(event, &data, &mut out) {
            Ok(Step::Done) => return,
            Ok(Step::Continue) => {}
            Err(_) if ended_in_error => return,
            Err(e) => {
                panic!("a stream writer wrote an event its decoder refuses: {e}: {event} {data}")
            }
        }
    }
}

/// Headers read from `Name: value` lines, those `http` refuses left out (a server cannot
/// send them).
pub fn header_map(lines: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// A moment from the input: any second from 1970 to about year 36,000.
pub fn moment(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs % (1 << 40))
}

/// The first line of `bytes` as a number (0 if it is not one) and the rest.
fn first_line_number(bytes: &[u8]) -> (u64, &[u8]) {
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let n = std::str::from_utf8(&bytes[..end])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    (n, bytes.get(end + 1..).unwrap_or_default())
}

/// An HTTP error answer as text: the status on the first line, the time now (Unix seconds)
/// on the second, header lines, a blank line, the body. Classified: an error of some kind
/// whose messages can be shown.
pub fn classify(bytes: &[u8]) {
    let (status, rest) = first_line_number(bytes);
    let (now, rest) = first_line_number(rest);
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let headers = header_map(head);
    let status = u16::try_from(status).unwrap_or(u16::MAX);
    let err = towerguard_llm_core::classify_http_error_at(status, &headers, body, moment(now));
    let _ = (
        err.to_string(),
        err.client_message(),
        err.verdict(),
        err.retry_after(),
    );
    let _ = towerguard_llm_core::parse_error_body(body);
}

/// Header parsers on text: the time now (Unix seconds) on the first line, a Go duration
/// (`1m30s`, as OpenAI's reset headers write them) on the second, then header lines
/// (Retry-After, `retry-after-ms`, OpenAI's and Anthropic's rate-limit headers).
pub fn headers(bytes: &[u8]) {
    let (now, rest) = first_line_number(bytes);
    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let duration = String::from_utf8_lossy(&rest[..end]);
    let headers = header_map(rest.get(end + 1..).unwrap_or_default());
    let now = moment(now);
    let _ = towerguard_llm_core::parse_retry_after_at(&headers, now);
    if let Some(info) = towerguard_providers::RateLimitInfo::from_headers(&headers, now) {
        let _ = info.retry_hint();
    }
    let _ = towerguard_providers::parse_go_duration(&duration);
}
