//! The stateful layers judge a streamed answer by how its stream ends, not by its first
//! chunk (as tower-http's `ClassifyEos` does for bodies): the breaker counts a stream that
//! fails after some chunks, the limiter counts a client's fault that ends a stream, and the
//! meter bills a stream at its last reported usage, whether it completes, fails or is dropped.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tower::{Layer, Service, ServiceExt, service_fn};
use towerguard_circuit_breaker::{CircuitBreakerLayer, State};
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger};
use towerguard_error_rate_limit::{ErrorRateLimitLayer, LimiterStore};
use towerguard_llm_core::{
    Chunk, ChunkStream, ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, Message, Usage,
};

/// How the scripted streams end.
#[derive(Clone, Copy)]
enum End {
    Complete,
    Fails(ErrorKind),
}

/// A provider answering every request with a stream: two text chunks, the usage, and then its
/// end (clean, or one error item).
fn streaming(
    end: End,
    usage: Usage,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send> + Clone {
    service_fn(move |req: LlmRequest| {
        let mut items = vec![
            Ok(Chunk::Start {
                id: Some("chatcmpl-1".into()),
                model: Some(req.model().to_owned()),
            }),
            Ok(Chunk::Text {
                choice: 0,
                text: "Hel".into(),
            }),
            Ok(Chunk::Text {
                choice: 0,
                text: "lo".into(),
            }),
            Ok(Chunk::Usage(usage)),
        ];
        match end {
            End::Complete => items.push(Ok(Chunk::Finish {
                choice: 0,
                reason: FinishReason::Stop,
            })),
            End::Fails(kind) => items.push(Err(LlmError::new(kind).with_provider("openai"))),
        }
        let model = req.model_arc().clone();
        std::future::ready(Ok::<_, LlmError>(LlmResponse::streaming(
            ChunkStream::from_items(items),
            model,
            "openai",
        )))
    })
}

fn req() -> LlmRequest {
    let mut req = LlmRequest::new("gpt-4o-mini", vec![Message::user("Say hello.")])
        .with_max_tokens(100)
        .with_client_key("tenant-42");
    req.options_mut().stream = true;
    req
}

/// Reads a streamed answer to its end; the number of `Ok` chunks and whether it ended in error.
async fn drain(resp: LlmResponse) -> (usize, bool) {
    let mut stream = resp.stream.unwrap();
    let (mut ok, mut failed) = (0, false);
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => ok += 1,
            Err(_) => failed = true,
        }
    }
    (ok, failed)
}

#[tokio::test]
async fn the_breaker_counts_a_stream_that_fails_after_its_first_chunk() {
    let layer = CircuitBreakerLayer::builder()
        .name("openai")
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(streaming(End::Fails(ErrorKind::Server), Usage::new(9, 2)));
    for _ in 0..2 {
        let resp = svc.ready().await.unwrap().call(req()).await.unwrap();
        // answered: the first chunk was there, so not yet a failure
        assert_eq!(handle.state(), State::Closed);
        assert_eq!(drain(resp).await, (4, true));
    }
    assert_eq!(handle.state(), State::Open, "two failed streams trip it");
    let refused = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::CircuitOpen);
}

#[tokio::test]
async fn the_breaker_counts_completed_and_dropped_streams_as_successes() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut ok = layer
        .clone()
        .layer(streaming(End::Complete, Usage::new(9, 2)));
    let mut failing = layer.layer(streaming(End::Fails(ErrorKind::Server), Usage::new(9, 2)));
    // a caller that stops reading is not the provider's fault
    for _ in 0..3 {
        drop(failing.ready().await.unwrap().call(req()).await.unwrap());
    }
    assert_eq!(
        drain(ok.ready().await.unwrap().call(req()).await.unwrap()).await,
        (5, false)
    );
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_limiter_counts_a_clients_fault_that_ends_a_stream() {
    let layer = ErrorRateLimitLayer::builder()
        .threshold(2)
        .window(Duration::from_secs(60))
        .build()
        .unwrap();
    let limiter = layer.handle();
    let mut upstream_fails = layer
        .clone()
        .layer(streaming(End::Fails(ErrorKind::Server), Usage::new(9, 2)));
    for _ in 0..5 {
        let resp = upstream_fails
            .ready()
            .await
            .unwrap()
            .call(req())
            .await
            .unwrap();
        drain(resp).await;
    }
    assert!(
        limiter.throttled().await.is_empty(),
        "an upstream failure mid-stream is not the client's fault"
    );
    let mut client_fault = layer.layer(streaming(
        End::Fails(ErrorKind::ContextLengthExceeded),
        Usage::new(9, 2),
    ));
    for _ in 0..2 {
        let resp = client_fault
            .ready()
            .await
            .unwrap()
            .call(req())
            .await
            .unwrap();
        drain(resp).await;
    }
    assert_eq!(
        limiter.throttled().await.len(),
        1,
        "the client is throttled"
    );
    let refused = client_fault
        .ready()
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Throttled);
}

#[tokio::test]
async fn the_meter_bills_a_stream_at_its_end_and_never_leaves_a_reservation() {
    let ledger = Ledger::builder()
        .budget(Budget::global(u64::MAX / 4))
        .build()
        .unwrap();
    let usage = Usage::new(1000, 200);
    // gpt-4o-mini: 150 and 600 nano-dollars per token
    let cost = 1000 * 150 + 200 * 600;

    let mut done = CostMeterLayer::new(ledger.clone()).layer(streaming(End::Complete, usage));
    let resp = done.ready().await.unwrap().call(req()).await.unwrap();
    assert_eq!(
        ledger.snapshot().total.requests,
        0,
        "not billed before the stream ends"
    );
    assert!(ledger.budget_spent(0, None).await > 0, "but reserved");
    drain(resp).await;
    assert_eq!(ledger.snapshot().total.cost, cost);
    assert_eq!(
        ledger.budget_spent(0, None).await,
        cost,
        "the rest released"
    );

    // dropped after its usage arrived: billed at that usage
    let resp = done.ready().await.unwrap().call(req()).await.unwrap();
    let mut stream = resp.stream.unwrap();
    while let Some(Ok(chunk)) = stream.next().await {
        if matches!(chunk, Chunk::Usage(_)) {
            break;
        }
    }
    drop(stream);
    assert_eq!(ledger.snapshot().total.cost, 2 * cost);
    assert_eq!(ledger.budget_spent(0, None).await, 2 * cost);

    // failed before any usage: charged the reservation, counted as unmetered
    let mut early = CostMeterLayer::new(ledger.clone()).layer(service_fn(|req: LlmRequest| {
        let items = vec![
            Ok(Chunk::Text {
                choice: 0,
                text: "Hel".into(),
            }),
            Err(LlmError::new(ErrorKind::Connection).with_provider("openai")),
        ];
        let model = req.model_arc().clone();
        std::future::ready(Ok::<_, LlmError>(LlmResponse::streaming(
            ChunkStream::from_items(items),
            model,
            "openai",
        )))
    }));
    let resp = early.ready().await.unwrap().call(req()).await.unwrap();
    drain(resp).await;
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, 3);
    assert_eq!(snap.total.unmetered, 1);
    assert!(
        snap.total.cost > 2 * cost,
        "the worst case was charged, never nothing"
    );
    assert_eq!(
        ledger.budget_spent(0, None).await,
        snap.total.cost,
        "nothing left reserved"
    );
}

#[tokio::test]
async fn watchers_are_told_once_whatever_the_end() {
    let told = Arc::new(AtomicUsize::new(0));
    for end in [End::Complete, End::Fails(ErrorKind::Server)] {
        for read in [true, false] {
            let mut svc = streaming(end, Usage::new(1, 1));
            let mut resp = svc.ready().await.unwrap().call(req()).await.unwrap();
            let t = told.clone();
            resp.stream.as_mut().unwrap().on_end(move |_| {
                t.fetch_add(1, Ordering::SeqCst);
            });
            if read {
                drain(resp).await;
            } else {
                drop(resp);
            }
        }
    }
    assert_eq!(told.load(Ordering::SeqCst), 4);
}
