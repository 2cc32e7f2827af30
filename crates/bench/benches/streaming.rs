//! Streaming through the README's pipeline, beside reading the provider's stream directly:
//! the pipeline's cost per stream and per chunk, and heap allocations per stream.
//!
//! The client answers each request at once with a stream of `n` empty text chunks and a
//! usage chunk (all ready: no I/O), so what is measured is what the layers add: the breaker,
//! the limiter and the meter each watch the stream's end; chunks pass through untouched.
//! Per stream = pipeline minus direct at 1 chunk; per chunk = the growth of that difference
//! from 1 to 101 chunks, divided by 100.
//!
//! `cargo bench -p towerguard-bench --bench streaming`
#![allow(clippy::unwrap_used, missing_docs)]

use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_core::Stream;
use tower::{Service, ServiceExt};
use towerguard_llm_core::{Chunk, ChunkStream, LlmError, LlmRequest, LlmResponse, Usage};

use towerguard_bench::readme as common;

/// `n` empty text chunks, then the usage.
struct Chunks {
    left: u32,
    usage_sent: bool,
}

impl Stream for Chunks {
    type Item = Result<Chunk, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left > 0 {
            self.left -= 1;
            return Poll::Ready(Some(Ok(Chunk::Text {
                choice: 0,
                text: String::new(),
            })));
        }
        if !self.usage_sent {
            self.usage_sent = true;
            return Poll::Ready(Some(Ok(Chunk::Usage(Usage::new(20, 10)))));
        }
        Poll::Ready(None)
    }
}

/// A provider that streams `chunks` chunks at once.
#[derive(Clone)]
struct StreamingClient {
    chunks: u32,
    name: Arc<str>,
}

impl Service<LlmRequest> for StreamingClient {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Ready<Result<LlmResponse, LlmError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let stream = ChunkStream::new(Chunks {
            left: self.chunks,
            usage_sent: false,
        });
        ready(Ok(LlmResponse::streaming(
            stream,
            req.model_arc().clone(),
            self.name.clone(),
        )))
    }
}

/// Calls `svc` and reads the whole stream, all without a runtime's help (everything is ready).
fn stream_now<S: Service<LlmRequest, Response = LlmResponse>>(svc: &mut S, req: LlmRequest) -> u32 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut ready = svc.ready();
    let Poll::Ready(Ok(svc)) = Pin::new(&mut ready).poll(&mut cx) else {
        panic!("not ready")
    };
    let mut call = std::pin::pin!(svc.call(req));
    let Poll::Ready(Ok(mut resp)) = call.as_mut().poll(&mut cx) else {
        panic!("no answer")
    };
    let mut stream = resp.stream.take().unwrap();
    let mut n = 0;
    while let Poll::Ready(Some(item)) = Pin::new(&mut stream).poll_next(&mut cx) {
        black_box(item.is_ok());
        n += 1;
    }
    n
}

use std::future::Future;

fn request() -> LlmRequest {
    let mut req = common::request(0);
    req.options_mut().stream = true;
    req
}

fn allocations_per_stream<S: Service<LlmRequest, Response = LlmResponse>>(svc: &mut S) -> f64 {
    let req = request();
    for _ in 0..100 {
        stream_now(svc, req.clone());
    }
    const N: u64 = 2_000;
    let info = allocation_counter::measure(|| {
        for _ in 0..N {
            stream_now(svc, req.clone());
        }
    });
    info.count_total as f64 / N as f64
}

fn streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let req = request();
    let mut g = c.benchmark_group("streaming");
    for chunks in [1u32, 101] {
        let client = StreamingClient {
            chunks,
            name: Arc::from("deepseek"),
        };
        let mut direct = client.clone();
        let mut pipeline = common::ours(client, true);
        println!(
            "allocations per stream of {chunks} chunks: direct {:.2}, pipeline {:.2}",
            allocations_per_stream(&mut direct),
            allocations_per_stream(&mut pipeline)
        );
        g.bench_function(format!("direct/{chunks}_chunks"), |b| {
            b.iter(|| stream_now(&mut direct, black_box(req.clone())))
        });
        g.bench_function(format!("readme_pipeline/{chunks}_chunks"), |b| {
            b.iter(|| stream_now(&mut pipeline, black_box(req.clone())))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = streaming
}
criterion_main!(benches);
