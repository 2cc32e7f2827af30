//! The meter's attempt hook is asked before every attempt, and its answer is obeyed.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt};
use towerguard_llm_core::outcome::{
    AttemptBudget, AttemptCheck, AttemptHook, AttemptRefusal, AttemptRefused,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_testkit::{FakeProvider, Outcome, request};

/// A fake meter: records what it was asked, and refuses the providers it is told to.
#[derive(Default)]
struct Meter {
    asked: Mutex<Vec<(String, String)>>,
    refuse: Mutex<HashMap<String, AttemptRefusal>>,
    /// Answer after a round trip instead of at once.
    slow: bool,
}

impl Meter {
    fn slow() -> Self {
        Self {
            slow: true,
            ..Self::default()
        }
    }

    fn refuse(&self, provider: &str, why: AttemptRefusal) {
        self.refuse.lock().unwrap().insert(provider.into(), why);
    }

    fn asked(&self) -> Vec<(String, String)> {
        self.asked.lock().unwrap().clone()
    }
}

impl AttemptBudget for Meter {
    fn before_attempt(&self, provider: &str, model: &str) -> AttemptCheck {
        self.asked
            .lock()
            .unwrap()
            .push((provider.into(), model.into()));
        let answer = match self.refuse.lock().unwrap().get(provider) {
            Some(&why) => Err(AttemptRefused::new(why, format!("{provider}/{model}"))),
            None => Ok(()),
        };
        if self.slow {
            AttemptCheck::pending(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                answer
            })
        } else {
            AttemptCheck::ready(answer)
        }
    }
}

fn metered(meter: &Arc<Meter>) -> LlmRequest {
    let mut req = request("deepseek-chat");
    req.set_attempt_hook(Some(AttemptHook::new(meter.clone())));
    req
}

async fn send<S>(svc: &mut S, req: LlmRequest) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    svc.ready().await?.call(req).await
}

struct Setup {
    primary: FakeProvider,
    openai: FakeProvider,
    anthropic: FakeProvider,
    layer: FallbackLayer<FakeProvider, LlmRequest, LlmError>,
}

/// deepseek (primary) -> openai (gpt-4o-mini) -> anthropic (claude-sonnet-4-5).
fn setup(primary: FakeProvider, openai: FakeProvider, hedge: Option<Duration>) -> Setup {
    let anthropic = FakeProvider::new("anthropic");
    let mut b = FallbackLayer::builder()
        .primary("deepseek")
        .provider("openai", openai.clone())
        .model_for("openai", "gpt-4o-mini")
        .provider("anthropic", anthropic.clone())
        .model_for("anthropic", "claude-sonnet-4-5");
    if let Some(delay) = hedge {
        b = b.hedge_after(delay);
    }
    Setup {
        primary,
        openai,
        anthropic,
        layer: b.build().unwrap(),
    }
}

fn pair(provider: &str, model: &str) -> (String, String) {
    (provider.into(), model.into())
}

#[tokio::test(start_paused = true)]
async fn the_hook_is_asked_before_each_attempt_with_the_model_it_will_request() {
    for meter in [Arc::new(Meter::default()), Arc::new(Meter::slow())] {
        let s = setup(
            FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Server)),
            FakeProvider::always("openai", Outcome::fail(ErrorKind::Overloaded)),
            None,
        );
        let mut svc = s.layer.layer(s.primary.clone());
        let resp = send(&mut svc, metered(&meter)).await.unwrap();
        assert_eq!(resp.provider(), "anthropic");
        assert_eq!(
            meter.asked(),
            [
                pair("deepseek", "deepseek-chat"),
                pair("openai", "gpt-4o-mini"),
                pair("anthropic", "claude-sonnet-4-5"),
            ],
            "slow meter: {}",
            meter.slow
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_ends_the_chain_without_calling_the_provider() {
    for meter in [Arc::new(Meter::default()), Arc::new(Meter::slow())] {
        // refused on a fallback step
        let s = setup(
            FakeProvider::always("deepseek", Outcome::fail(ErrorKind::Server)),
            FakeProvider::new("openai"),
            None,
        );
        let stats = s.layer.handle();
        meter.refuse("openai", AttemptRefusal::BudgetExceeded);
        let mut svc = s.layer.layer(s.primary.clone());
        let err = send(&mut svc, metered(&meter)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
        assert_eq!(
            (s.primary.calls(), s.openai.calls(), s.anthropic.calls()),
            (1, 0, 0)
        );
        assert_eq!(meter.asked().len(), 2, "anthropic is not even asked");

        // refused on the first attempt: no provider is called
        meter.refuse("deepseek", AttemptRefusal::BudgetExceeded);
        let err = send(&mut svc, metered(&meter)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
        assert_eq!(s.primary.calls(), 1, "the primary is not called again");
        let st = stats.stats();
        assert_eq!((st.requests, st.failed, st.refused), (2, 2, 2));
        assert_eq!(
            st.providers[1].failed, 0,
            "a refusal is not openai's failure"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_unpriced_model_is_that_providers_failure_and_the_next_is_tried() {
    for meter in [Arc::new(Meter::default()), Arc::new(Meter::slow())] {
        let s = setup(
            FakeProvider::new("deepseek"),
            FakeProvider::new("openai"),
            None,
        );
        let stats = s.layer.handle();
        meter.refuse("deepseek", AttemptRefusal::Unpriced);
        let mut svc = s.layer.layer(s.primary.clone());
        let resp = send(&mut svc, metered(&meter)).await.unwrap();
        assert_eq!(resp.provider(), "openai");
        assert_eq!((s.primary.calls(), s.openai.calls()), (0, 1));
        let st = stats.stats();
        assert_eq!(st.providers[0].failed, 1);
        assert_eq!(st.providers[0].last_error, Some("configuration"));
        assert_eq!((st.served_after_failure, st.fallbacks), (1, 1));

        // every model unpriced: each is a provider's failure, listed in order
        meter.refuse("openai", AttemptRefusal::Unpriced);
        meter.refuse("anthropic", AttemptRefusal::Unpriced);
        let err = send(&mut svc, metered(&meter)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AllProvidersFailed);
        let kinds: Vec<_> = err.attempts().iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, [ErrorKind::Configuration; 3]);
        assert_eq!(s.openai.calls() + s.anthropic.calls(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn hedged_attempts_ask_the_hook_too() {
    let meter = Arc::new(Meter::default());
    let s = setup(
        FakeProvider::always("deepseek", Outcome::ok().after(Duration::from_secs(10))),
        FakeProvider::always("openai", Outcome::ok().after(Duration::from_millis(100))),
        Some(Duration::from_secs(1)),
    );
    let mut svc = s.layer.layer(s.primary.clone());
    assert_eq!(
        send(&mut svc, metered(&meter)).await.unwrap().provider(),
        "openai"
    );
    assert_eq!(
        meter.asked(),
        [
            pair("deepseek", "deepseek-chat"),
            pair("openai", "gpt-4o-mini")
        ]
    );

    // a hedge the budget cannot cover is not started; the attempt in flight still serves
    meter.refuse("openai", AttemptRefusal::BudgetExceeded);
    let resp = send(&mut svc, metered(&meter)).await.unwrap();
    assert_eq!(resp.provider(), "deepseek");
    assert_eq!(s.openai.calls(), 1, "the refused hedge was not sent");
}
