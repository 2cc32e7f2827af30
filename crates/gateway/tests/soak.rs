//! The chaos soak over loopback HTTP: a smaller count of requests, complete and streamed, in
//! both wire formats, through the gateway over the preset pipeline on chaotic fake providers
//! (errors, Retry-After, overloads, cut streams, error events, garbage). Checked: every
//! request got exactly one HTTP answer (a 200 whose stream ended with its terminator or with
//! the format's error event, or an error status with a body in the caller's format), and the
//! gateway's /stats add up: every served answer billed once, nothing left reserved.
//!
//! `TOWERGUARD_GATEWAY_SOAK_REQUESTS` sets the count (default 600).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use towerguard::llm::ErrorKind;
use towerguard::preset::{BudgetSettings, LimitSettings, Preset, ProviderSpec};
use towerguard::retry::Backoff;
use towerguard::testkit::{FakeProvider, FaultPlan};
use towerguard_gateway::{Gateway, PipelineOps, Settings};

fn chaotic(name: &str, seed: u64) -> FakeProvider {
    FakeProvider::chaotic(
        name,
        FaultPlan::seeded(seed)
            .fail(ErrorKind::RateLimited, 0.05)
            .retry_after(Duration::from_millis(200))
            .fail(ErrorKind::Server, 0.05)
            .fail(ErrorKind::Overloaded, 0.05)
            .cut(0.05)
            .error_event(ErrorKind::Overloaded, 0.03)
            .garbage(0.02)
            .build()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_one_answer_and_the_stats_add_up() {
    let requests: usize = std::env::var("TOWERGUARD_GATEWAY_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let limits = LimitSettings {
        rpm: None,
        ..LimitSettings::default()
    };
    let mut preset = Preset::new()
        .budgets(BudgetSettings {
            daily_usd: Some(1_000.0),
            ..BudgetSettings::default()
        })
        .limits(limits);
    for (i, (name, model)) in [
        ("deepseek", "deepseek-chat"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
    ]
    .into_iter()
    .enumerate()
    {
        preset = preset.provider(
            ProviderSpec::new(name, chaotic(name, 11 + i as u64))
                .model(model)
                .max_retries(1)
                .backoff(Backoff::fixed(Duration::from_millis(10))),
        );
    }
    let (pipeline, handle) = preset.build().unwrap();
    let ops = PipelineOps::new(handle.clone());
    let gw = start(Gateway::new(pipeline, Arc::new(ops), Settings::default())).await;

    let addr = Arc::new(gw.addr.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    for i in 0..requests {
        let addr = addr.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let stream = i % 2 == 0;
            let (path, body) = if i % 4 < 2 {
                (
                    "/v1/chat/completions",
                    openai_request("gpt-4o-mini", stream),
                )
            } else {
                ("/v1/messages", anthropic_request("gpt-4o-mini", stream))
            };
            (path, stream, post(&addr, path, &body).await)
        });
    }
    let (mut served, mut failed_streams, mut errors) = (0u64, 0u64, 0u64);
    while let Some(done) = tasks.join_next().await {
        let (path, stream, r) = done.unwrap();
        let openai = path == "/v1/chat/completions";
        if r.status != 200 {
            errors += 1;
            let json = r.json();
            assert!(
                if openai {
                    json["error"]["message"].is_string()
                } else {
                    json["type"] == "error"
                },
                "{path} {}: {}",
                r.status,
                r.body
            );
            continue;
        }
        served += 1;
        if !stream {
            assert!(r.json().is_object(), "{}", r.body);
            continue;
        }
        let ev = events(&r.body);
        let last = ev.last().expect("a stream has events");
        let ended_well = if openai {
            last.1 == "[DONE]"
        } else {
            last.0 == "message_stop"
        };
        let ended_in_error = if openai {
            last.1.contains("\"error\"")
        } else {
            last.0 == "error"
        };
        assert!(
            ended_well || ended_in_error,
            "a stream ends with its terminator or an error event: {last:?}"
        );
        failed_streams += u64::from(ended_in_error);
    }
    assert_eq!(served + errors, requests as u64, "one answer per request");
    assert!(
        served > 0 && failed_streams > 0,
        "{served} served, {failed_streams} broken"
    );

    // the streams are billed as they end: give the last ones a moment to settle
    let mut stats = handle.stats().await;
    for _ in 0..50 {
        if stats.ledger.total.requests == served {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = handle.stats().await;
    }
    assert_eq!(
        stats.ledger.total.requests, served,
        "every served answer billed once"
    );
    let spent = handle.ledger().budget_spent(0, None).await;
    assert_eq!(spent, stats.ledger.total.cost, "nothing left reserved");
    let json = get(&gw.addr, "/stats").await.json();
    assert_eq!(json["total"]["requests"], served, "{json}");
}
