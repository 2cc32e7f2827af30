//! Fallback scenarios on fake providers, with tokio's paused clock.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse};
use towerguard_provider_fallback::{AllDown, FallbackLayer, Strategy};
use towerguard_testkit::{FakeProvider, Outcome, request};

async fn send<S>(svc: &mut S) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    send_for(svc, "gpt-4o").await
}

async fn send_for<S>(svc: &mut S, model: &str) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    svc.ready().await?.call(request(model)).await
}

fn down(name: &str, kind: ErrorKind) -> FakeProvider {
    FakeProvider::always(name, Outcome::fail(kind))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn primary_down_after_its_retries_next_provider_succeeds() {
    // the primary's own retry layer gave up: the fallback sees one final error
    let primary = FakeProvider::scripted("deepseek", [Outcome::fail(ErrorKind::RateLimited)]);
    let backup = FakeProvider::new("openai");
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", backup.clone())
        .on_fallback(move |e: &LlmError, from, to| {
            l.lock()
                .unwrap()
                .push(format!("{from} -> {to} on {}", e.kind()))
        })
        .build()
        .unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(primary.clone());
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.provider(), "openai", "the response says who served it");
    assert_eq!((primary.calls(), backup.calls()), (1, 1));
    assert_eq!(*log.lock().unwrap(), ["deepseek -> openai on rate_limited"]);
    // the next request goes to the primary again (no Retry-After, so no cooldown)
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.provider(), "deepseek");
    let s = stats.stats();
    assert_eq!((s.requests, s.fallbacks, s.exhausted), (2, 1, 0));
    assert_eq!((s.served_by_first, s.served_after_failure), (1, 1));
    assert_eq!(s.providers[0].served, 1);
    assert_eq!(s.providers[0].failed, 1);
    assert_eq!(s.providers[0].last_error, Some("rate_limited"));
    assert_eq!(s.providers[1].served, 1);
}

#[tokio::test(start_paused = true)]
async fn all_down_lists_every_error_in_order() {
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", down("openai", ErrorKind::Server))
        .provider("anthropic", down("anthropic", ErrorKind::Overloaded))
        .build()
        .unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(down("deepseek", ErrorKind::Timeout));
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AllProvidersFailed);
    let tried: Vec<_> = err
        .attempts()
        .iter()
        .map(|e| (e.provider().unwrap().to_owned(), e.kind()))
        .collect();
    assert_eq!(
        tried,
        [
            ("deepseek".to_owned(), ErrorKind::Timeout),
            ("openai".to_owned(), ErrorKind::Server),
            ("anthropic".to_owned(), ErrorKind::Overloaded)
        ]
    );
    for name in ["deepseek", "openai", "anthropic"] {
        assert!(!err.client_message().contains(name));
    }
    assert_eq!(stats.stats().exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn an_error_that_does_not_fall_back_is_returned_as_is() {
    let backup = FakeProvider::new("openai");
    let layer = FallbackLayer::builder()
        .provider("openai", backup.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(down("deepseek", ErrorKind::InvalidRequest));
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(backup.calls(), 0);
}

fn recording(name: &str, outcome: Outcome) -> FakeProvider {
    FakeProvider::builder(name)
        .then(outcome)
        .record_requests()
        .build()
}

/// A provider that writes its name to a shared log when called.
#[derive(Clone)]
struct Logged {
    inner: FakeProvider,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service<LlmRequest> for Logged {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = towerguard_testkit::FakeFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        self.log.lock().unwrap().push(self.inner.name().to_owned());
        self.inner.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn each_strategy_has_its_order() {
    // every provider fails, so each request walks its whole plan
    let run = |strategy: Strategy, requests: usize| async move {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mk = |name: &str| Logged {
            inner: down(name, ErrorKind::Server),
            log: log.clone(),
        };
        let layer = FallbackLayer::builder()
            .primary("a")
            .provider("b", mk("b"))
            .provider("c", mk("c"))
            .price_for("a", 15.0)
            .price_for("b", 0.6)
            .price_for("c", 2.0)
            .health_aware(false)
            .strategy(strategy)
            .build()
            .unwrap();
        let mut svc = layer.layer(mk("a"));
        for _ in 0..requests {
            let _ = send(&mut svc).await;
        }
        log.lock().unwrap().clone()
    };
    assert_eq!(run(Strategy::Priority, 1).await, ["a", "b", "c"]);
    assert_eq!(run(Strategy::CheapestFirst, 1).await, ["b", "c", "a"]);
    assert_eq!(run(Strategy::FailFast, 1).await, ["a"]);
    assert_eq!(
        run(Strategy::RoundRobin, 3).await,
        ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    );
}

#[tokio::test(start_paused = true)]
async fn providers_that_are_down_are_skipped_and_tried_last() {
    let breaker_open = Arc::new(AtomicBool::new(true));
    let open = breaker_open.clone();
    let primary = FakeProvider::new("deepseek");
    let backup = FakeProvider::new("openai");
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", backup.clone())
        .health_check("deepseek", move || !open.load(Ordering::SeqCst))
        .build()
        .unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(primary.clone());
    assert_eq!(send(&mut svc).await.unwrap().provider(), "openai");
    assert_eq!(
        primary.calls(),
        0,
        "the open breaker's provider is not called"
    );
    assert!(stats.stats().providers[0].down);
    breaker_open.store(false, Ordering::SeqCst);
    assert_eq!(send(&mut svc).await.unwrap().provider(), "deepseek");

    // every provider down: still tried, in order
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", backup.clone())
        .health_check("deepseek", || false)
        .health_check("openai", || false)
        .build()
        .unwrap();
    let mut svc = layer.layer(primary.clone());
    assert_eq!(send(&mut svc).await.unwrap().provider(), "deepseek");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_still_in_the_future_skips_the_provider() {
    let primary = FakeProvider::builder("deepseek")
        .script([Outcome::fail(ErrorKind::RateLimited).with_retry_after(secs(30))])
        .build();
    let backup = FakeProvider::new("openai");
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", backup.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(primary.clone());
    assert_eq!(send(&mut svc).await.unwrap().provider(), "openai");
    tokio::time::advance(secs(10)).await;
    assert_eq!(send(&mut svc).await.unwrap().provider(), "openai");
    assert_eq!(primary.calls(), 1, "cooling down for 30 s");
    tokio::time::advance(secs(21)).await;
    assert_eq!(send(&mut svc).await.unwrap().provider(), "deepseek");
}

#[tokio::test(start_paused = true)]
async fn when_all_are_down_the_request_can_wait_for_the_first_to_recover() {
    let primary = FakeProvider::builder("deepseek")
        .script([Outcome::fail(ErrorKind::RateLimited).with_retry_after(secs(20))])
        .build();
    let backup = FakeProvider::builder("openai")
        .script([Outcome::fail(ErrorKind::RateLimited).with_retry_after(secs(5))])
        .build();
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", backup.clone())
        .when_all_down(AllDown::WaitForRecovery(secs(60)))
        .build()
        .unwrap();
    let mut svc = layer.layer(primary.clone());
    assert_eq!(
        send(&mut svc).await.unwrap_err().kind(),
        ErrorKind::AllProvidersFailed
    );
    let start = Instant::now();
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.provider(), "openai", "the first to recover serves");
    assert_eq!(start.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn each_provider_gets_its_own_model() {
    let primary = recording("openai", Outcome::fail(ErrorKind::Server));
    let anthropic = recording("anthropic", Outcome::fail(ErrorKind::Overloaded));
    let ollama = recording("ollama", Outcome::ok());
    let layer = FallbackLayer::builder()
        .primary("openai")
        .provider("anthropic", anthropic.clone())
        .provider("ollama", ollama.clone())
        .model_for("anthropic", "claude-sonnet-4-5")
        .model_for("ollama", "llama3")
        .build()
        .unwrap();
    let mut svc = layer.layer(primary.clone());
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.model(), "llama3");
    assert_eq!(primary.recorded()[0].model(), "gpt-4o");
    assert_eq!(anthropic.recorded()[0].model(), "claude-sonnet-4-5");
    assert_eq!(ollama.recorded()[0].model(), "llama3");
    let ids: Vec<_> = [&primary, &anthropic, &ollama]
        .iter()
        .map(|p| p.recorded()[0].request_id().clone())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one logical request");
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_answers_gets_its_own_model_and_the_original_stays_whole() {
    let primary = recording("openai", Outcome::ok());
    let layer = FallbackLayer::builder()
        .primary("openai")
        .provider("ollama", recording("ollama", Outcome::ok()))
        .model_for("openai", "gpt-4o-2024-08-06")
        .build()
        .unwrap();
    let mut svc = layer.layer(primary.clone());
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.provider(), "openai");
    assert_eq!(primary.recorded()[0].model(), "gpt-4o-2024-08-06");
    // without a model of its own the primary gets the request as it came
    let primary = recording("openai", Outcome::ok());
    let layer = FallbackLayer::builder()
        .primary("openai")
        .provider("ollama", recording("ollama", Outcome::ok()))
        .model_for("ollama", "llama3")
        .build()
        .unwrap();
    send(&mut layer.layer(primary.clone())).await.unwrap();
    assert_eq!(primary.recorded()[0].model(), "gpt-4o");
    assert_eq!(layer.handle().stats().served_by_first, 1);
}

#[tokio::test(start_paused = true)]
async fn per_condition_chains() {
    let big = FakeProvider::new("gpt-4-turbo-128k");
    let backup = FakeProvider::new("openai");
    let layer = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", backup.clone())
        .provider("gpt-4-turbo-128k", big.clone())
        .chain_when(
            |e: &LlmError| e.kind() == ErrorKind::ContextLengthExceeded,
            ["gpt-4-turbo-128k"],
        )
        .chain_when(
            |e: &LlmError| e.kind() == ErrorKind::ContentPolicy,
            Vec::<&str>::new(),
        )
        .build()
        .unwrap();
    let mut svc = layer.layer(down("deepseek", ErrorKind::ContextLengthExceeded));
    assert_eq!(send(&mut svc).await.unwrap().provider(), "gpt-4-turbo-128k");
    assert_eq!(
        backup.calls(),
        0,
        "the context chain skips the ordinary backup"
    );

    let mut svc = layer.layer(down("deepseek", ErrorKind::ContentPolicy));
    assert_eq!(
        send(&mut svc).await.unwrap_err().kind(),
        ErrorKind::ContentPolicy
    );
    assert_eq!((backup.calls(), big.calls()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn nested_fallbacks_context_length_first_then_api_errors() {
    // inner: API errors across two providers; outer: context length to the big model
    let inner = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", down("openai", ErrorKind::ContextLengthExceeded))
        .build()
        .unwrap()
        .layer(down("deepseek", ErrorKind::Server));
    let big = FakeProvider::new("claude-200k");
    let outer = FallbackLayer::<
        tower::util::BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>,
        _,
        _,
    >::builder()
    .primary("api-chain")
    .provider(
        "claude-200k",
        tower::util::BoxCloneSyncService::new(big.clone()),
    )
    .fallback_if(|e: &LlmError| {
        e.kind() == ErrorKind::ContextLengthExceeded
            || e.attempts()
                .iter()
                .any(|a| a.kind() == ErrorKind::ContextLengthExceeded)
    })
    .build()
    .unwrap();
    let mut svc = outer.layer(inner);
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.provider(), "claude-200k");
    assert_eq!(big.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn at_most_max_providers_and_each_once() {
    let b = down("b", ErrorKind::Server);
    let c = down("c", ErrorKind::Server);
    let d = FakeProvider::new("d");
    let layer = FallbackLayer::builder()
        .primary("a")
        .provider("b", b.clone())
        .provider("c", c.clone())
        .provider("d", d.clone())
        .max_providers(3)
        .build()
        .unwrap();
    let a = down("a", ErrorKind::Server);
    let mut svc = layer.layer(a.clone());
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(err.attempts().len(), 3);
    assert_eq!((a.calls(), b.calls(), c.calls(), d.calls()), (1, 1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn hedging_first_success_wins_and_the_rest_are_cancelled() {
    let slow = FakeProvider::always("slow", Outcome::ok().after(secs(10)));
    let fast = FakeProvider::always("fast", Outcome::ok().after(Duration::from_millis(100)));
    let layer = FallbackLayer::builder()
        .primary("slow")
        .provider("fast", fast.clone())
        .hedge_after(secs(1))
        .build()
        .unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(slow.clone());
    let start = Instant::now();
    let resp = send(&mut svc).await.unwrap();
    assert_eq!(resp.provider(), "fast");
    assert_eq!(start.elapsed(), Duration::from_millis(1100));
    assert_eq!(slow.calls(), 1);
    assert_eq!(slow.in_flight(), 0, "the slow attempt was dropped");
    assert_eq!(slow.successes(), 0);
    assert_eq!(stats.stats().providers[1].served, 1);

    // a primary that answers before the hedge delay is the only one called
    let quick = FakeProvider::always("quick", Outcome::ok().after(Duration::from_millis(200)));
    let other = FakeProvider::new("other");
    let layer = FallbackLayer::builder()
        .primary("quick")
        .provider("other", other.clone())
        .hedge_after(secs(1))
        .build()
        .unwrap();
    let mut svc = layer.layer(quick);
    assert_eq!(send(&mut svc).await.unwrap().provider(), "quick");
    assert_eq!(other.calls(), 0);

    // a failure while hedging moves on at once
    let failing = FakeProvider::always(
        "failing",
        Outcome::fail(ErrorKind::Server).after(Duration::from_millis(300)),
    );
    let backup = FakeProvider::new("backup");
    let layer = FallbackLayer::builder()
        .primary("failing")
        .provider("backup", backup.clone())
        .hedge_after(secs(1))
        .build()
        .unwrap();
    let mut svc = layer.layer(failing);
    let start = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap().provider(), "backup");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

/// A provider that is never ready.
#[derive(Clone)]
struct NeverReady;

impl Service<LlmRequest> for NeverReady {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = std::future::Ready<Result<LlmResponse, LlmError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Pending
    }

    fn call(&mut self, _: LlmRequest) -> Self::Future {
        std::future::ready(Err(LlmError::new(ErrorKind::Server)))
    }
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_is_not_ready_does_not_block_the_others() {
    let backup = FakeProvider::new("openai");
    let layer = FallbackLayer::builder()
        .provider("openai", backup.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(NeverReady);
    let resp = tokio::time::timeout(secs(1), send(&mut svc))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.provider(), "openai");
}

#[tokio::test(start_paused = true)]
async fn a_backup_that_is_not_ready_does_not_block_the_next_one() {
    type Boxed = tower::util::BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;
    let third = FakeProvider::new("third");
    let layer = FallbackLayer::<Boxed, _, _>::builder()
        .primary("first")
        .provider("stuck", Boxed::new(NeverReady))
        .provider("third", Boxed::new(third.clone()))
        .build()
        .unwrap();
    let mut svc = layer.layer(Boxed::new(down("first", ErrorKind::Server)));
    let resp = tokio::time::timeout(secs(1), send(&mut svc))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.provider(), "third");
    assert_eq!(third.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_routed_model_starts_at_its_provider_and_falls_back_in_order() {
    let (primary, second, third) = (
        FakeProvider::new("openai"),
        FakeProvider::scripted("anthropic", [Outcome::fail(ErrorKind::Overloaded)]),
        FakeProvider::new("groq"),
    );
    let layer = FallbackLayer::builder()
        .primary("openai")
        .provider("anthropic", second.clone())
        .provider("groq", third.clone())
        .start_with("claude-sonnet-4-5", "anthropic")
        .build()
        .unwrap();
    let stats = layer.handle();
    let mut svc = layer.layer(primary.clone());
    // routed: anthropic first; it is overloaded, so the strategy's order goes on (openai)
    let resp = send_for(&mut svc, "claude-sonnet-4-5").await.unwrap();
    assert_eq!(resp.provider(), "openai");
    assert_eq!((primary.calls(), second.calls(), third.calls()), (1, 1, 0));
    let resp = send_for(&mut svc, "claude-sonnet-4-5").await.unwrap();
    assert_eq!(resp.provider(), "anthropic", "served by its route when up");
    // other models keep the strategy's order
    assert_eq!(send(&mut svc).await.unwrap().provider(), "openai");
    let s = stats.stats();
    assert_eq!(
        (s.requests, s.served_by_first, s.served_after_failure),
        (3, 2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn fail_fast_tries_a_routed_model_on_its_provider_alone() {
    let (primary, second) = (
        FakeProvider::new("openai"),
        down("anthropic", ErrorKind::Server),
    );
    let mut svc = FallbackLayer::builder()
        .primary("openai")
        .provider("anthropic", second.clone())
        .strategy(Strategy::FailFast)
        .start_with("claude-sonnet-4-5", "anthropic")
        .build()
        .unwrap()
        .layer(primary.clone());
    let err = send_for(&mut svc, "claude-sonnet-4-5").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "its one error, as it is");
    assert_eq!((primary.calls(), second.calls()), (0, 1));
}
