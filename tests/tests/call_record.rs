//! What a response says about its call, for a gateway's headers and a library user's logs:
//! the providers tried before the one that served (with their errors), the attempts, and
//! what the call was charged.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{CostMeterLayer, Ledger};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Tried, Usage};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::{Backoff, LlmAttempts, RetryLayer, attempts};
use towerguard_testkit::{FakeProvider, Outcome};

type Provider = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

fn stack(p: &FakeProvider) -> Provider {
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(
                RetryLayer::builder()
                    .max_retries(1)
                    .backoff(Backoff::fixed(Duration::from_millis(10)))
                    .record_attempts(LlmAttempts)
                    .build()
                    .unwrap(),
            )
            .layer(CircuitBreakerLayer::named(p.name().to_owned()))
            .service(p.clone()),
    )
}

#[tokio::test(start_paused = true)]
async fn a_response_names_what_was_tried_its_attempts_and_its_cost() {
    let deepseek = FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Overloaded));
    let openai = FakeProvider::scripted(
        "openai",
        [
            Outcome::fail(ErrorKind::Server),
            Outcome::ok_with_usage(Usage::new(1000, 100)),
        ],
    );
    let ledger = Ledger::builder().build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(CostMeterLayer::new(ledger.clone()))
        .layer(
            FallbackLayer::builder()
                .primary("deepseek")
                .provider("openai", stack(&openai))
                .build()
                .unwrap(),
        )
        .service(stack(&deepseek));
    let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("hi")]).with_max_tokens(100);
    let resp = svc.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(resp.provider(), "openai");
    let tried = resp.extensions.get::<Tried>().unwrap();
    assert_eq!(tried.0.len(), 1);
    assert_eq!(&*tried.0[0].0, "deepseek");
    assert_eq!(tried.0[0].1, ErrorKind::Overloaded.as_str());
    assert_eq!(attempts(&resp.extensions), 2, "openai's retry");
    // gpt-4o-mini: 150 and 600 nano-dollars per token
    assert_eq!(resp.cost_nanos, Some(1000 * 150 + 100 * 600));

    // a first-choice answer carries no trail (and allocates nothing for one)
    let healthy = FakeProvider::new("deepseek");
    let direct = CostMeterLayer::new(ledger.clone()).layer(stack(&healthy));
    let resp = direct.oneshot(req).await.unwrap();
    assert!(resp.extensions.get::<Tried>().is_none());
    assert_eq!(attempts(&resp.extensions), 1);
    assert!(resp.cost_nanos.is_some());
}
