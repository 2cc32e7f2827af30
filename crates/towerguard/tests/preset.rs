//! The preset's stack: retries per provider, breakers the handle shows, fallback, the
//! per-attempt timeout, budgets, unthrottling, aliases, and settings refused by field.

use std::time::Duration;

use tower::ServiceExt;
use towerguard::breaker::State;
use towerguard::llm::{ErrorKind, LlmRequest, Message};
use towerguard::preset::{
    BreakerSettings, BudgetSettings, LimitSettings, Preset, ProviderSpec, RateSettings,
};
use towerguard::retry::{Backoff, attempts};
use towerguard::testkit::{FakeProvider, Outcome, request};

fn tenant_request(model: &str, tenant: &str) -> LlmRequest {
    LlmRequest::new(model, vec![Message::user("hi")])
        .with_max_tokens(64)
        .with_client_key(tenant)
}

fn no_wait() -> Backoff {
    Backoff::fixed(Duration::from_millis(10))
}

#[tokio::test(start_paused = true)]
async fn retries_happen_per_provider_and_are_counted() {
    let flaky = FakeProvider::scripted("flaky", [Outcome::fail(ErrorKind::Server)]);
    let (pipeline, _) = Preset::new()
        .provider(
            ProviderSpec::new("flaky", flaky.clone())
                .max_retries(2)
                .backoff(no_wait()),
        )
        .build()
        .unwrap();
    let resp = pipeline.oneshot(request("gpt-4o-mini")).await.unwrap();
    assert_eq!(flaky.calls(), 2);
    assert_eq!(attempts(&resp.extensions), 2);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opens_the_handle_shows_it_and_the_fallback_serves() {
    let down = FakeProvider::always("down", Outcome::fail(ErrorKind::Server));
    let backup = FakeProvider::new("backup");
    let breaker = BreakerSettings {
        consecutive_failures: Some(2),
        open_duration: Duration::from_secs(30),
        ..BreakerSettings::default()
    };
    let (pipeline, handle) = Preset::new()
        .provider(
            ProviderSpec::new("down", down.clone())
                .max_retries(0)
                .breaker(breaker),
        )
        .provider(ProviderSpec::new("backup", backup.clone()).model("gpt-4o-mini"))
        .build()
        .unwrap();
    for _ in 0..3 {
        let resp = pipeline.clone().oneshot(request("gpt-4o")).await.unwrap();
        assert_eq!(resp.provider(), "backup");
    }
    assert_eq!(
        down.calls(),
        2,
        "the open breaker kept the third request away"
    );
    let health = handle.health();
    assert_eq!(health[0].name.as_ref(), "down");
    assert_eq!(health[0].state, State::Open);
    assert!(health[0].rejecting);
    assert_eq!(health[0].last_error, Some(ErrorKind::Server));
    assert_eq!(health[0].success_rate, Some(0.0));
    assert_eq!(health[1].state, State::Closed);
    assert_eq!(health[1].success_rate, Some(1.0));
    assert_eq!(health[1].last_error, None);

    let stats = handle.stats().await;
    let fallback = stats.fallback.unwrap();
    assert_eq!(fallback.requests, 3);
    assert!(fallback.fallbacks >= 2);
    assert_eq!(stats.ledger.total.requests, 3);
    assert_eq!(stats.rows[0].provider.as_ref(), "backup");

    assert!(handle.reset_provider("down"));
    assert_eq!(handle.health()[0].state, State::Closed);
    assert!(handle.force_open("backup"));
    assert_eq!(handle.health()[1].state, State::ForcedOpen);
    assert!(!handle.reset_provider("nobody"));
    assert!(!handle.force_open("nobody"));
}

#[tokio::test(start_paused = true)]
async fn the_per_attempt_timeout_fires_and_the_fallback_moves_on() {
    let hangs = FakeProvider::always("hangs", Outcome::hang());
    let backup = FakeProvider::new("backup");
    let (pipeline, handle) = Preset::new()
        .provider(
            ProviderSpec::new("hangs", hangs.clone())
                .timeout(Duration::from_secs(5))
                .max_retries(1)
                .backoff(no_wait()),
        )
        .provider(ProviderSpec::new("backup", backup))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let resp = pipeline.oneshot(request("gpt-4o-mini")).await.unwrap();
    assert_eq!(resp.provider(), "backup");
    assert_eq!(hangs.calls(), 2, "the timeout is retried like any timeout");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11));
    assert_eq!(handle.health()[0].last_error, Some(ErrorKind::Timeout));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_alone_is_an_llm_timeout_error_and_other_errors_pass_through() {
    let hangs = FakeProvider::always("hangs", Outcome::hang());
    let (pipeline, _) = Preset::new()
        .provider(
            ProviderSpec::new("hangs", hangs)
                .timeout(Duration::from_millis(300))
                .max_retries(0),
        )
        .build()
        .unwrap();
    let err = pipeline.oneshot(request("gpt-4o-mini")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.provider(), Some("hangs"));

    let bad = FakeProvider::always("bad", Outcome::fail(ErrorKind::Authentication));
    let (pipeline, _) = Preset::new()
        .provider(
            ProviderSpec::new("bad", bad)
                .timeout(Duration::from_secs(1))
                .max_retries(0),
        )
        .build()
        .unwrap();
    let err = pipeline.oneshot(request("gpt-4o-mini")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
}

#[tokio::test(start_paused = true)]
async fn budgets_refuse() {
    let openai = FakeProvider::new("openai");
    let (pipeline, _) = Preset::new()
        .provider(ProviderSpec::new("openai", openai.clone()))
        .budgets(BudgetSettings {
            max_per_request_usd: Some(0.000_001),
            ..BudgetSettings::default()
        })
        .build()
        .unwrap();
    let err = pipeline.oneshot(request("gpt-4o")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
    assert_eq!(openai.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_tenant_is_unthrottled() {
    let picky = FakeProvider::scripted("picky", [Outcome::fail(ErrorKind::InvalidRequest)]);
    let (pipeline, handle) = Preset::new()
        .provider(ProviderSpec::new("picky", picky.clone()).max_retries(0))
        .limits(LimitSettings {
            error_threshold: 1,
            ..LimitSettings::default()
        })
        .build()
        .unwrap();
    let bad = pipeline
        .clone()
        .oneshot(tenant_request("gpt-4o-mini", "t1"))
        .await;
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidRequest);
    let refused = pipeline
        .clone()
        .oneshot(tenant_request("gpt-4o-mini", "t1"))
        .await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Throttled);
    let stats = handle.stats().await;
    assert_eq!(stats.throttled.len(), 1);
    assert_eq!(stats.throttled[0].key, "t1");

    assert!(handle.unthrottle("t1").await);
    assert!(!handle.unthrottle("nobody").await);
    let ok = pipeline.oneshot(tenant_request("gpt-4o-mini", "t1")).await;
    assert!(ok.is_ok());
    assert_eq!(picky.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn errors_caused_outside_the_pipeline_throttle_in_its_limiter() {
    let openai = FakeProvider::new("openai");
    let (pipeline, handle) = Preset::new()
        .provider(ProviderSpec::new("openai", openai.clone()))
        .limits(LimitSettings {
            error_threshold: 2,
            ..LimitSettings::default()
        })
        .build()
        .unwrap();
    assert_eq!(handle.record_client_error("t1").await, None, "one error");
    let penalty = handle.record_client_error("t1").await;
    assert!(penalty.is_some_and(|p| p > Duration::ZERO), "{penalty:?}");
    // throttled already: refused, with the time left
    assert!(handle.record_client_error("t1").await.is_some());
    // the pipeline's own limiter refuses the tenant: one state, not two
    let refused = pipeline
        .clone()
        .oneshot(tenant_request("gpt-4o-mini", "t1"))
        .await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Throttled);
    assert_eq!(openai.calls(), 0);
    assert_eq!(handle.stats().await.limiter.errors, 2);
    assert!(handle.unthrottle("t1").await);
    let ok = pipeline.oneshot(tenant_request("gpt-4o-mini", "t1")).await;
    assert!(ok.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_tenant_with_its_own_limits_is_limited_by_them() {
    let openai = FakeProvider::new("openai");
    let (pipeline, handle) = Preset::new()
        .provider(ProviderSpec::new("openai", openai.clone()))
        .limits(LimitSettings {
            rpm: Some(600),
            ..LimitSettings::default()
        })
        .tenant_limits(
            "small",
            LimitSettings {
                rpm: Some(1),
                ..LimitSettings::default()
            },
        )
        .build()
        .unwrap();
    assert!(
        pipeline
            .clone()
            .oneshot(tenant_request("gpt-4o-mini", "small"))
            .await
            .is_ok()
    );
    let err = pipeline
        .clone()
        .oneshot(tenant_request("gpt-4o-mini", "small"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    for _ in 0..5 {
        let other = pipeline
            .clone()
            .oneshot(tenant_request("gpt-4o-mini", "big"))
            .await;
        assert!(other.is_ok());
    }
    assert_eq!(handle.stats().await.limiter.rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn a_provider_over_its_rate_hands_over_to_the_next() {
    let limited = FakeProvider::new("limited");
    let backup = FakeProvider::new("backup");
    let (pipeline, _) = Preset::new()
        .provider(
            ProviderSpec::new("limited", limited.clone()).rate_limit(RateSettings {
                rpm: Some(1),
                tpm: None,
            }),
        )
        .provider(ProviderSpec::new("backup", backup.clone()))
        .build()
        .unwrap();
    let first = pipeline
        .clone()
        .oneshot(request("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(first.provider(), "limited");
    let second = pipeline.oneshot(request("gpt-4o-mini")).await.unwrap();
    assert_eq!(second.provider(), "backup");
    assert_eq!(limited.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn aliases_map_and_unknown_names_pass() {
    let openai = FakeProvider::builder("openai").record_requests().build();
    let (pipeline, handle) = Preset::new()
        .provider(ProviderSpec::new("openai", openai.clone()))
        .alias("fast", "openai", "gpt-4o-mini")
        .build()
        .unwrap();
    pipeline.clone().oneshot(request("fast")).await.unwrap();
    pipeline.oneshot(request("gpt-4o")).await.unwrap();
    let models: Vec<String> = openai
        .recorded()
        .iter()
        .map(|r| r.model().to_owned())
        .collect();
    assert_eq!(models, ["gpt-4o-mini", "gpt-4o"]);
    assert_eq!(handle.aliases()[0].0.as_ref(), "fast");
}

#[tokio::test(start_paused = true)]
async fn an_alias_starts_at_its_provider_and_falls_back_from_there() {
    let openai = FakeProvider::builder("openai").record_requests().build();
    let anthropic = FakeProvider::builder("anthropic")
        .record_requests()
        .script([Outcome::ok(), Outcome::fail(ErrorKind::Overloaded)])
        .build();
    let (pipeline, _) = Preset::new()
        .provider(ProviderSpec::new("openai", openai.clone()))
        .provider(ProviderSpec::new("anthropic", anthropic.clone()).max_retries(0))
        .alias("smart", "anthropic", "claude-sonnet-4-5")
        .build()
        .unwrap();
    let resp = pipeline.clone().oneshot(request("smart")).await.unwrap();
    assert_eq!(resp.provider(), "anthropic", "the alias's provider first");
    assert_eq!(openai.calls(), 0);
    // the alias's provider is overloaded: the others follow in order
    let resp = pipeline.clone().oneshot(request("smart")).await.unwrap();
    assert_eq!(resp.provider(), "openai");
    assert_eq!(openai.recorded()[0].model(), "claude-sonnet-4-5");
    // a model no alias names keeps the strategy's order
    let resp = pipeline.oneshot(request("gpt-4o")).await.unwrap();
    assert_eq!(resp.provider(), "openai");
    assert_eq!(anthropic.calls(), 2);
}

#[test]
fn invalid_settings_name_their_field() {
    let p = || FakeProvider::new("p");
    let cases: Vec<(Preset, &str)> = vec![
        (Preset::new(), "providers"),
        (
            Preset::new().provider(ProviderSpec::new("a", p()).max_retries(11)),
            "providers.a.retry.max_retries",
        ),
        (
            Preset::new()
                .provider(ProviderSpec::new("a", p()))
                .provider(ProviderSpec::new("a", p())),
            "providers.a",
        ),
        (
            Preset::new().provider(ProviderSpec::new("a", p()).timeout(Duration::ZERO)),
            "providers.a.timeout",
        ),
        (
            Preset::new().provider(ProviderSpec::new("a", p()).breaker(BreakerSettings {
                failure_rate: Some(1.5),
                ..BreakerSettings::default()
            })),
            "providers.a.breaker.failure_rate",
        ),
        (
            Preset::new().provider(ProviderSpec::new("a", p()).rate_limit(RateSettings {
                rpm: Some(0),
                tpm: None,
            })),
            "providers.a.rate_limit.rpm",
        ),
        (
            Preset::new()
                .provider(ProviderSpec::new("a", p()))
                .budgets(BudgetSettings {
                    daily_usd: Some(-1.0),
                    ..BudgetSettings::default()
                }),
            "budgets.daily_usd",
        ),
        (
            Preset::new()
                .provider(ProviderSpec::new("a", p()))
                .limits(LimitSettings {
                    error_threshold: 0,
                    ..LimitSettings::default()
                }),
            "limits.error_threshold",
        ),
        (
            Preset::new()
                .provider(ProviderSpec::new("a", p()))
                .alias("fast", "b", "m"),
            "aliases.fast.provider",
        ),
        (
            Preset::new()
                .provider(ProviderSpec::new("a", p()).model("x"))
                .alias("fast", "a", "y"),
            "aliases.fast.model",
        ),
        (
            Preset::new()
                .provider(ProviderSpec::new("a", p()))
                .provider(ProviderSpec::new("b", p()))
                .alias("fast", "a", "m")
                .alias("quick", "b", "m"),
            "aliases.quick.provider",
        ),
    ];
    for (preset, field) in cases {
        let err = preset.build().map(|_| ()).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
}
