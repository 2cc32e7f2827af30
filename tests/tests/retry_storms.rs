//! Retry storms, simulated on tokio's paused clock through the real `RetryLayer`.
//!
//! Contention, as in the "Exponential Backoff and Jitter" study: many clients race to do one
//! piece of work on a shared resource; work takes one slot of time, and two clients working
//! in the same slot conflict and both fail (optimistic concurrency). Each client retries with
//! the layer's backoff until it succeeds (or gives up after many retries). Printed per
//! strategy: total calls and the time until the last client finished. Pinned: full jitter
//! needs at least two times fewer calls than exponential backoff without jitter.
//!
//! Outage: a provider that fails every call for 100 s while requests keep coming. Plain
//! retries (three, no budget, no breaker) multiply the upstream traffic by four; the
//! recommended stack (retry with its budget, circuit breaker) must not exceed 1.2 times.
//!
//! `cargo test -p towerguard-tests --test retry_storms -- --nocapture` prints the tables.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, ServiceExt, service_fn};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, Message};
use towerguard_retry_backoff::{Backoff, Jitter, RetryLayer};
use towerguard_testkit::{FakeProvider, Outcome};

const SLOT: Duration = Duration::from_millis(10);
const CLIENTS: usize = 100;
const MAX_RETRIES: u32 = 40;

/// The shared resource: a call works for the rest of its slot and succeeds only if no other
/// call worked in that slot.
#[derive(Clone, Default)]
struct Resource {
    slots: Arc<Mutex<HashMap<u128, u32>>>,
    calls: Arc<AtomicU64>,
}

impl Resource {
    fn slot_now(start: tokio::time::Instant) -> u128 {
        start.elapsed().as_nanos() / SLOT.as_nanos()
    }
}

struct Run {
    calls: u64,
    done: usize,
    last: Duration,
}

async fn contend(backoff: Option<Backoff>) -> Run {
    let resource = Resource::default();
    let start = tokio::time::Instant::now();
    let svc = {
        let resource = resource.clone();
        service_fn(move |_: LlmRequest| {
            let resource = resource.clone();
            async move {
                resource.calls.fetch_add(1, Ordering::SeqCst);
                let slot = Resource::slot_now(start);
                *resource.slots.lock().unwrap().entry(slot).or_default() += 1;
                // work until the slot ends
                let end = start + SLOT * (slot as u32 + 1);
                tokio::time::sleep_until(end).await;
                let alone = resource.slots.lock().unwrap()[&slot] == 1;
                if alone {
                    Ok(())
                } else {
                    Err(LlmError::new(ErrorKind::Overloaded))
                }
            }
        })
    };
    let retry = match backoff {
        Some(b) => RetryLayer::builder()
            .max_retries(MAX_RETRIES)
            .backoff(b)
            .no_budget()
            .max_elapsed(Duration::from_secs(3600))
            .build()
            .unwrap(),
        None => RetryLayer::builder()
            .max_retries(MAX_RETRIES)
            .backoff(Backoff::none())
            .no_budget()
            .build()
            .unwrap(),
    };
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let svc = retry.layer(svc.clone());
            tokio::spawn(async move {
                let req = LlmRequest::new("m", vec![Message::user("write")]);
                let ok = svc.oneshot(req).await.is_ok();
                (ok, start.elapsed())
            })
        })
        .collect();
    let mut run = Run {
        calls: 0,
        done: 0,
        last: Duration::ZERO,
    };
    for t in tasks {
        let (ok, at) = t.await.unwrap();
        run.done += usize::from(ok);
        run.last = run.last.max(at);
    }
    run.calls = resource.calls.load(Ordering::SeqCst);
    run
}

#[tokio::test(start_paused = true)]
async fn full_jitter_needs_far_fewer_calls_than_none() {
    let exp = || Backoff::exponential(SLOT, 2.0, Duration::from_secs(10));
    let cases = [
        ("no backoff", None),
        ("exponential, no jitter", Some(exp())),
        ("full jitter", Some(exp().with_jitter(Jitter::Full))),
        ("equal jitter", Some(exp().with_jitter(Jitter::Equal))),
        (
            "decorrelated jitter",
            Some(exp().with_jitter(Jitter::Decorrelated)),
        ),
    ];
    println!("{CLIENTS} clients contending for one resource ({SLOT:?} slots):");
    println!(
        "{:<24} {:>8} {:>10} {:>12}",
        "strategy", "calls", "completed", "last done"
    );
    let mut calls = HashMap::new();
    for (name, backoff) in cases {
        let run = contend(backoff).await;
        println!(
            "{name:<24} {:>8} {:>10} {:>12?}",
            run.calls, run.done, run.last
        );
        calls.insert(name, (run.calls, run.done));
    }
    let (none_calls, _) = calls["exponential, no jitter"];
    let (full_calls, full_done) = calls["full jitter"];
    assert_eq!(full_done, CLIENTS, "every client finishes with full jitter");
    assert!(
        none_calls >= 2 * full_calls,
        "full jitter {full_calls} calls against {none_calls} without jitter"
    );
}

/// Requests every 100 ms for 100 s into a provider that is down the whole time; the upstream
/// calls per request.
async fn outage_amplification(recommended: bool) -> f64 {
    let provider = FakeProvider::always("openai", Outcome::fail(ErrorKind::Server));
    let svc = if recommended {
        tower::util::BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                .layer(RetryLayer::builder().max_retries(2).build().unwrap())
                .layer(CircuitBreakerLayer::named("openai"))
                .service(provider.clone()),
        )
    } else {
        tower::util::BoxCloneSyncService::new(
            RetryLayer::builder()
                .max_retries(3)
                .backoff(Backoff::fixed(Duration::from_millis(10)))
                .no_budget()
                .build()
                .unwrap()
                .layer(provider.clone()),
        )
    };
    let requests = 1000u64;
    let mut tasks = Vec::new();
    for _ in 0..requests {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("hi")]);
            svc.oneshot(req).await.is_err()
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        assert!(
            t.await.unwrap(),
            "the provider is down: every request fails"
        );
    }
    provider.calls() as f64 / requests as f64
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_not_amplified_by_the_recommended_stack() {
    let plain = outage_amplification(false).await;
    let recommended = outage_amplification(true).await;
    println!("a 100 % outage, 1,000 requests over 100 s: upstream calls per request");
    println!("  three plain retries:              {plain:.2}x");
    println!("  retry with budget + breaker:      {recommended:.2}x");
    assert!((plain - 4.0).abs() < 1e-9, "plain retries: {plain}");
    assert!(recommended <= 1.2, "recommended stack: {recommended}");
}
