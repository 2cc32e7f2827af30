//! The recommended pipeline end to end: CostMeter -> Fallback over providers, each provider
//! Retry -> CircuitBreaker -> fake provider. Paused clock.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use towerguard_circuit_breaker::{CircuitBreakerLayer, State};
use towerguard_cost_meter::{CostMeterLayer, Ledger};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Usage};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::{Backoff, LlmAttempts, RetryLayer, attempts};
use towerguard_testkit::{FakeProvider, Outcome};

type Provider = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

fn stack(p: FakeProvider, breaker: &CircuitBreakerLayer) -> Provider {
    let retry = RetryLayer::builder()
        .max_retries(2)
        .backoff(Backoff::fixed(Duration::from_millis(100)))
        .record_attempts(LlmAttempts)
        .build()
        .unwrap();
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(retry)
            .layer(breaker.clone())
            .service(p),
    )
}

fn request() -> LlmRequest {
    LlmRequest::new("gpt-4o-mini", vec![Message::user("hello")]).with_max_tokens(100)
}

#[tokio::test(start_paused = true)]
async fn retries_fallbacks_and_exact_totals() {
    // deepseek: rate limited twice then fine; openai: always fine
    let deepseek = FakeProvider::builder("deepseek")
        .script([
            Outcome::fail(ErrorKind::RateLimited),
            Outcome::fail(ErrorKind::RateLimited),
            Outcome::fail(ErrorKind::RateLimited), // request 1 gives up after 3 attempts
            Outcome::fail(ErrorKind::Server),      // request 2: one retry
        ])
        .then(Outcome::ok_with_usage(Usage::new(100, 10)))
        .build();
    let openai = FakeProvider::always("openai", Outcome::ok_with_usage(Usage::new(200, 20)));
    let ds_breaker = CircuitBreakerLayer::named("deepseek");
    let oa_breaker = CircuitBreakerLayer::named("openai");
    let ledger = Ledger::builder().build().unwrap();
    let fallback = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", stack(openai.clone(), &oa_breaker))
        .model_for("deepseek", "deepseek-chat")
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(CostMeterLayer::new(ledger.clone()))
        .layer(fallback)
        .service(stack(deepseek.clone(), &ds_breaker));

    // 1: deepseek fails 3 times (1 + 2 retries), openai serves
    let r1 = svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(r1.provider(), "openai");
    // 2: deepseek fails once, its retry succeeds
    let r2 = svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(r2.provider(), "deepseek");
    assert_eq!(attempts(&r2.extensions), 2);
    // 3: deepseek at once
    svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(deepseek.calls(), 3 + 2 + 1);
    assert_eq!(openai.calls(), 1);
    assert_eq!(ds_breaker.handle().state(), State::Closed);

    // every billed attempt counted once: 1 openai answer, 2 deepseek answers
    let openai_cost = 200 * 150 + 20 * 600; // gpt-4o-mini prices
    let deepseek_cost = 100 * 270 + 10 * 1100; // deepseek-chat prices
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, 3);
    assert_eq!(snap.total.cost, openai_cost + 2 * deepseek_cost);
    let by = |name: &str| snap.providers.iter().find(|(p, _)| &**p == name).unwrap().1;
    assert_eq!(by("openai").cost, openai_cost);
    assert_eq!(by("deepseek").requests, 2);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_ends_the_retries_and_the_fallback_moves_on() {
    let deepseek = FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Overloaded));
    let openai = FakeProvider::new("openai");
    let breaker = CircuitBreakerLayer::builder()
        .name("deepseek")
        .consecutive_failures(3)
        .build()
        .unwrap();
    let fallback = FallbackLayer::builder()
        .primary("deepseek")
        .provider(
            "openai",
            stack(openai.clone(), &CircuitBreakerLayer::named("openai")),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(fallback)
        .service(stack(deepseek.clone(), &breaker));
    // three failures trip the breaker during the first request's retries
    assert_eq!(
        svc.clone().oneshot(request()).await.unwrap().provider(),
        "openai"
    );
    assert_eq!(deepseek.calls(), 3);
    assert_eq!(breaker.handle().state(), State::Open);
    // from now on deepseek is skipped (its CircuitOpen error carried a retry_after)
    for _ in 0..5 {
        assert_eq!(
            svc.clone().oneshot(request()).await.unwrap().provider(),
            "openai"
        );
    }
    assert_eq!(
        deepseek.calls(),
        3,
        "no call reached the provider behind the open breaker"
    );
}
