//! A loopback HTTP server that replays provider payloads and records what it was sent,
//! shared by the provider tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the stub server does with one connection.
#[derive(Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Full(u16, Vec<(&'static str, String)>, String),
    /// Never answer.
    Hang,
    /// Promise a longer body than is sent, then close.
    CutOff(String),
    /// A chunked `text/event-stream` answer with this status, written part by part.
    Stream(u16, Vec<Part>),
}

/// One step of a [`Reply::Stream`].
#[derive(Clone)]
pub enum Part {
    /// Write this text as one HTTP chunk.
    Send(String),
    /// Write these bytes (not necessarily UTF-8) as one HTTP chunk.
    Bytes(Vec<u8>),
    /// Wait (on tokio's clock) before the next part.
    Pause(Duration),
    /// Send nothing more; wait until the client closes the connection.
    Stall,
    /// Close the connection at once, without the body's end.
    Cut,
}

/// A stream answer: each event (already framed, e.g. `data: {...}\n\n`) as one part, then the
/// body's clean end.
pub fn sse(events: &[&str]) -> Reply {
    Reply::Stream(
        200,
        events.iter().map(|e| Part::Send((*e).to_owned())).collect(),
    )
}

/// Splits a recorded event stream into its events (blank-line separated), each with its
/// blank line, so each goes out as its own HTTP chunk.
pub fn sse_text(text: &str) -> Vec<Part> {
    text.split_inclusive("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| Part::Send(e.to_owned()))
        .collect()
}

pub fn ok(body: &str) -> Reply {
    Reply::Full(200, vec![], body.to_owned())
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Starts a server on 127.0.0.1 that answers each connection with the next reply.
pub async fn stub(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let (base, seen, _) = stub_counting_closes(replies).await;
    (base, seen)
}

/// [`stub`], also counting the stream connections the client closed while the server waited
/// ([`Part::Stall`], or after a stream's end).
pub async fn stub_counting_closes(
    replies: Vec<Reply>,
) -> (String, Arc<Mutex<Vec<Seen>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let closes = Arc::new(AtomicUsize::new(0));
    let log = seen.clone();
    let closed = closes.clone();
    tokio::spawn(async move {
        for reply in replies {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        let mut body = buf[end + 4..].to_vec();
                        while body.len() < len {
                            let n = sock.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                        break (head, String::from_utf8_lossy(&body).to_string());
                    }
                };
                log.lock().unwrap().push(Seen { head, body });
                match reply {
                    Reply::Full(status, headers, body) => {
                        let mut out = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                            body.len()
                        );
                        for (k, v) in headers {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&body);
                        let _ = sock.write_all(out.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                    Reply::Hang => {
                        std::future::pending::<()>().await;
                    }
                    Reply::CutOff(body) => {
                        let out = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
                            body.len() + 500,
                            body
                        );
                        let _ = sock.write_all(out.as_bytes()).await;
                        // dropped: the connection closes mid-body
                    }
                    Reply::Stream(status, parts) => {
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
                        );
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for part in parts {
                            match part {
                                Part::Send(bytes) => {
                                    let framed = format!("{:x}\r\n{bytes}\r\n", bytes.len());
                                    if sock.write_all(framed.as_bytes()).await.is_err() {
                                        closed.fetch_add(1, Ordering::SeqCst);
                                        return;
                                    }
                                }
                                Part::Bytes(bytes) => {
                                    let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
                                    framed.extend_from_slice(&bytes);
                                    framed.extend_from_slice(b"\r\n");
                                    if sock.write_all(&framed).await.is_err() {
                                        closed.fetch_add(1, Ordering::SeqCst);
                                        return;
                                    }
                                }
                                Part::Pause(d) => tokio::time::sleep(d).await,
                                Part::Stall => {
                                    wait_for_close(&mut sock).await;
                                    closed.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                                Part::Cut => return,
                            }
                        }
                        let _ = sock.write_all(b"0\r\n\r\n").await;
                        wait_for_close(&mut sock).await;
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen, closes)
}

/// Reads (and drops) whatever comes until the peer closes.
async fn wait_for_close(sock: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = sock.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

impl Seen {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}
