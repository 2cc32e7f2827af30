//! Streams through the whole pipeline (ErrorRateLimit -> CostMeter -> Fallback over three
//! providers, each Retry -> CircuitBreaker -> fake): before the first chunk a failure is
//! retried and falls back; after it, it ends the stream with one error item and no other
//! provider is called; every stream is accounted for, and nothing stays reserved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::StreamExt;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{
    Chunk, ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, Message, Usage,
};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::{Backoff, RetryLayer};
use towerguard_testkit::{FakeProvider, FaultPlan, Outcome};

type Provider = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

fn stack(p: &FakeProvider) -> Provider {
    let retry = RetryLayer::builder()
        .max_retries(1)
        .backoff(Backoff::fixed(Duration::from_millis(100)))
        .build()
        .unwrap();
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(retry)
            .layer(CircuitBreakerLayer::named(p.name().to_owned()))
            .service(p.clone()),
    )
}

fn pipeline(providers: &[&FakeProvider], ledger: &Ledger) -> Provider {
    let mut fallback = FallbackLayer::builder().primary(providers[0].name().to_owned());
    for p in &providers[1..] {
        fallback = fallback.provider(p.name().to_owned(), stack(p));
    }
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(
                ErrorRateLimitLayer::builder()
                    .requests_per_minute(1_000_000)
                    .build()
                    .unwrap(),
            )
            .layer(CostMeterLayer::new(ledger.clone()))
            .layer(fallback.build().unwrap())
            .service(stack(providers[0])),
    )
}

fn streamed(tenant: usize) -> LlmRequest {
    let mut req = LlmRequest::new("gpt-4o-mini", vec![Message::user("Tell me a story.")])
        .with_max_tokens(200)
        .with_client_key(format!("tenant-{}", tenant % 10));
    req.options_mut().stream = true;
    req
}

fn text(t: &str) -> Chunk {
    Chunk::Text {
        choice: 0,
        text: t.into(),
    }
}

fn story() -> Vec<Chunk> {
    vec![
        text("Once"),
        text(" upon"),
        text(" a time."),
        Chunk::Finish {
            choice: 0,
            reason: FinishReason::Stop,
        },
        Chunk::Usage(Usage::new(40, 6)),
    ]
}

/// The `Ok` chunks read, and the error item if the stream ended with one.
async fn read(resp: LlmResponse) -> (Vec<Chunk>, Option<LlmError>) {
    let mut stream = resp.stream.expect("a stream");
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "nothing after the error item"
                );
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

/// What the global budget holds, and what the ledger says was spent.
async fn reserved_is_spent(ledger: &Ledger) -> (u64, u64) {
    (
        ledger.budget_spent(0, None).await,
        ledger.snapshot().total.cost,
    )
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_the_first_chunk_is_retried_then_falls_back() {
    let primary = FakeProvider::always(
        "deepseek",
        Outcome::stream(story()).error_after(0, ErrorKind::Overloaded),
    );
    let second = FakeProvider::always("openai", Outcome::stream(story()));
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(10.0)))
        .build()
        .unwrap();
    let mut svc = pipeline(&[&primary, &second], &ledger);
    let resp = svc.ready().await.unwrap().call(streamed(0)).await.unwrap();
    assert_eq!(resp.provider(), "openai");
    let (chunks, error) = read(resp).await;
    assert!(error.is_none());
    assert_eq!(chunks.len(), 5);
    assert_eq!(primary.calls(), 2, "the first call and its retry");
    assert_eq!(second.streams_completed(), 1);
    let (held, spent) = reserved_is_spent(&ledger).await;
    assert_eq!(
        held, spent,
        "billed at the stream's usage, nothing left reserved"
    );
    assert_eq!(spent, 40 * 150 + 6 * 600);
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_first_chunk_ends_the_stream_and_calls_no_one_else() {
    let primary = FakeProvider::always(
        "deepseek",
        Outcome::stream(story()).error_after(2, ErrorKind::Server),
    );
    let second = FakeProvider::always("openai", Outcome::stream(story()));
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(10.0)))
        .build()
        .unwrap();
    let mut svc = pipeline(&[&primary, &second], &ledger);
    let resp = svc.ready().await.unwrap().call(streamed(0)).await.unwrap();
    let (chunks, error) = read(resp).await;
    assert_eq!(chunks, story()[..2].to_vec(), "what arrived, never spliced");
    let error = error.expect("an error item");
    assert_eq!(error.kind(), ErrorKind::Server);
    assert_eq!(error.provider(), Some("deepseek"));
    assert_eq!(primary.calls(), 1, "never retried after the commit point");
    assert_eq!(second.calls(), 0, "never sent to another provider");
    let snap = ledger.snapshot();
    assert_eq!(
        snap.total.unmetered, 1,
        "no usage arrived: charged the reservation"
    );
    let (held, spent) = reserved_is_spent(&ledger).await;
    assert_eq!(held, spent);
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_is_an_error_not_a_success() {
    let primary = FakeProvider::always("deepseek", Outcome::stream(story()).cut_after(3));
    let ledger = Ledger::builder().build().unwrap();
    let idle = FakeProvider::new("openai");
    let mut svc = pipeline(&[&primary, &idle], &ledger);
    let resp = svc.ready().await.unwrap().call(streamed(0)).await.unwrap();
    let (chunks, error) = read(resp).await;
    assert_eq!(chunks.len(), 3);
    assert_eq!(error.unwrap().kind(), ErrorKind::Connection);
    assert_eq!(primary.streams_failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_releases_its_reservation() {
    let primary = FakeProvider::always(
        "deepseek",
        Outcome::stream(story()).chunk_latency(Duration::from_millis(50)),
    );
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(10.0)))
        .build()
        .unwrap();
    let idle = FakeProvider::new("openai");
    let mut svc = pipeline(&[&primary, &idle], &ledger);
    let resp = svc.ready().await.unwrap().call(streamed(0)).await.unwrap();
    let mut stream = resp.stream.unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    assert!(
        ledger.budget_spent(0, None).await > 0,
        "held while it streams"
    );
    drop(stream);
    assert_eq!(primary.streams_dropped(), 1);
    let (held, spent) = reserved_is_spent(&ledger).await;
    assert_eq!(
        held, spent,
        "the reservation settled when the caller dropped it"
    );
    assert_eq!(ledger.snapshot().total.unmetered, 1);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_streams_are_all_accounted_for() {
    let chaotic = |name: &str, seed: u64| {
        FakeProvider::chaotic(
            name,
            FaultPlan::seeded(seed)
                .fail(ErrorKind::RateLimited, 0.05)
                .fail(ErrorKind::Server, 0.05)
                .cut(0.05)
                .error_event(ErrorKind::Overloaded, 0.05)
                .garbage(0.03)
                .chunk_latency(Duration::from_millis(5))
                .build()
                .unwrap(),
        )
    };
    let providers = [
        chaotic("deepseek", 1),
        chaotic("openai", 2),
        chaotic("anthropic", 3),
    ];
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(1000.0)))
        .budget(Budget::per_client(usd(100.0)))
        .build()
        .unwrap();
    let svc = pipeline(&[&providers[0], &providers[1], &providers[2]], &ledger);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                match svc.ready().await?.call(streamed(i)).await {
                    Ok(resp) => Ok(read(resp).await),
                    Err(e) => Err(e),
                }
            })
        })
        .collect();
    let (mut completed, mut broken, mut refused) = (0u64, 0u64, 0u64);
    for t in tasks {
        match t.await.unwrap() {
            Ok((_, None)) => completed += 1,
            Ok((_, Some(_))) => broken += 1,
            Err(_) => refused += 1,
        }
    }
    assert_eq!(
        completed + broken + refused,
        1000,
        "every request got one answer"
    );
    // a burst of failures opens breakers, so some requests are refused: what matters is that
    // each one got exactly one answer and that both kinds of stream end were exercised
    assert!(
        completed > 50 && broken > 0,
        "{completed} completed, {broken} broken, {refused} refused"
    );
    let started: u64 = providers.iter().map(|p| p.streams_started()).sum();
    let ended: u64 = providers
        .iter()
        .map(|p| p.streams_completed() + p.streams_failed() + p.streams_dropped())
        .sum();
    assert_eq!(started, ended, "no stream left open");
    assert_eq!(
        started,
        completed + broken,
        "each answered stream came from one provider"
    );
    let snap = ledger.snapshot();
    assert_eq!(
        snap.total.requests,
        completed + broken,
        "every served stream billed once"
    );
    let (held, spent) = reserved_is_spent(&ledger).await;
    assert_eq!(held, spent, "no reservation left open");
}
