//! The limiter on fake LLM providers, with tokio's paused clock.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use towerguard_error_rate_limit::{
    ErrorRateLimitLayer, ErrorRateLimitLayerBuilder, LimiterStore, MemoryStore, Rules,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message};
use towerguard_testkit::{FakeProvider, Outcome};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn req(client: &str) -> LlmRequest {
    LlmRequest::new("gpt-4o", vec![Message::user("hi")]).with_client_key(client)
}

fn limiter(b: ErrorRateLimitLayerBuilder) -> ErrorRateLimitLayer {
    b.build().unwrap()
}

fn base() -> ErrorRateLimitLayerBuilder {
    ErrorRateLimitLayer::builder()
        .threshold(3)
        .window(secs(60))
        .penalty(secs(10), secs(50))
        .decay(secs(300))
}

async fn send<S>(svc: &mut S, client: &str) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    svc.ready().await?.call(req(client)).await
}

#[tokio::test(start_paused = true)]
async fn throttles_past_the_threshold_without_reaching_the_service() {
    let layer = limiter(base());
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::InvalidRequest));
    let mut svc = layer.layer(provider.clone());
    for _ in 0..2 {
        assert_eq!(
            send(&mut svc, "mallory").await.unwrap_err().kind(),
            ErrorKind::InvalidRequest
        );
    }
    assert!(
        handle.throttled().is_empty(),
        "2 errors: below the threshold"
    );
    send(&mut svc, "mallory").await.unwrap_err();
    let e = send(&mut svc, "mallory").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.retry_after(), Some(secs(10)));
    assert_eq!(provider.calls(), 3);
    // other clients are not affected
    assert_eq!(
        send(&mut svc, "alice").await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    let t = handle.throttled();
    assert_eq!(
        (t.len(), t[0].key.as_str(), t[0].remaining),
        (1, "mallory", secs(10))
    );
    // the penalty ends
    tokio::time::advance(secs(10)).await;
    assert_eq!(
        send(&mut svc, "mallory").await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    let s = handle.stats();
    assert_eq!((s.throttled, s.rejected, s.offences), (0, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn errors_older_than_the_window_no_longer_count() {
    let layer = limiter(base());
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::InvalidRequest));
    let mut svc = layer.layer(provider.clone());
    for _ in 0..2 {
        send(&mut svc, "bob").await.unwrap_err();
    }
    tokio::time::advance(secs(61)).await;
    for _ in 0..2 {
        send(&mut svc, "bob").await.unwrap_err();
    }
    assert_eq!(
        send(&mut svc, "bob").await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    assert_eq!(
        provider.calls(),
        5,
        "never throttled: never 3 errors within 60 s"
    );
}

#[tokio::test(start_paused = true)]
async fn penalties_double_up_to_the_cap_and_decay() {
    let layer = limiter(base());
    let handle = layer.handle();
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::ContentPolicy));
    let mut svc = layer.layer(provider);
    let mut penalties = Vec::new();
    for _ in 0..4 {
        for _ in 0..3 {
            send(&mut svc, "eve").await.unwrap_err();
        }
        let p = send(&mut svc, "eve")
            .await
            .unwrap_err()
            .retry_after()
            .unwrap();
        penalties.push(p);
        tokio::time::advance(p).await;
    }
    assert_eq!(penalties, [secs(10), secs(20), secs(40), secs(50)]);
    assert_eq!(handle.throttled().len(), 0);

    // good behaviour: 2 decay periods forgive 2 of the 4 offences, so the next is the 3rd
    tokio::time::advance(secs(600)).await;
    for _ in 0..3 {
        send(&mut svc, "eve").await.unwrap_err();
    }
    let p = send(&mut svc, "eve")
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert_eq!(p, secs(40));
    assert!(handle.unthrottle("eve"));
    assert_eq!(
        send(&mut svc, "eve").await.unwrap_err().kind(),
        ErrorKind::ContentPolicy
    );
    assert!(!handle.unthrottle("nobody"));
}

#[tokio::test(start_paused = true)]
async fn upstream_failures_count_only_when_asked() {
    let provider = FakeProvider::always("p", Outcome::fail(ErrorKind::Server));
    let mut svc = limiter(base()).layer(provider.clone());
    for _ in 0..5 {
        send(&mut svc, "carol").await.unwrap_err();
    }
    assert_eq!(provider.calls(), 5, "an outage is not the client's fault");
    let mut svc = limiter(base().count_upstream_errors(true)).layer(provider.clone());
    for _ in 0..4 {
        let _ = send(&mut svc, "carol").await;
    }
    assert_eq!(provider.calls(), 8);
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute() {
    let layer = limiter(ErrorRateLimitLayer::builder().requests_per_minute(60));
    let mut svc = layer.layer(FakeProvider::new("p"));
    for _ in 0..6 {
        send(&mut svc, "dave").await.unwrap();
    }
    let e = send(&mut svc, "dave").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.retry_after(), Some(secs(1)));
    send(&mut svc, "erin").await.unwrap();
    tokio::time::advance(secs(1)).await;
    send(&mut svc, "dave").await.unwrap();
    // over a minute, 60 requests fit
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < secs(60) {
        match send(&mut svc, "frank").await {
            Ok(_) => sent += 1,
            Err(e) => tokio::time::advance(e.retry_after().unwrap()).await,
        }
    }
    assert!((60..=66).contains(&sent), "{sent}");
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_weigh_each_request() {
    let layer = limiter(ErrorRateLimitLayer::builder().tokens_per_minute(10_000));
    let mut svc = layer.layer(FakeProvider::new("p"));
    let big = || {
        LlmRequest::new("gpt-4o", vec![Message::user("hi")])
            .with_client_key("grace")
            .with_max_tokens(800)
    };
    // each weighs ~805 tokens (6 ms per token at 10,000 per minute); the burst allowance is
    // a tenth of the minute (1,000 tokens), so the second must wait for its share
    svc.ready().await.unwrap().call(big()).await.unwrap();
    let e = svc.ready().await.unwrap().call(big()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    let wait = e.retry_after().unwrap();
    assert!(wait > secs(3) && wait < secs(4), "{wait:?}");
    tokio::time::advance(wait).await;
    svc.ready().await.unwrap().call(big()).await.unwrap();
    // a light request from another client is unaffected
    send(&mut svc, "heidi").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_rejection_message_is_generic() {
    let layer = limiter(base().requests_per_minute(600));
    let provider =
        FakeProvider::always("secret-upstream", Outcome::fail(ErrorKind::InvalidRequest));
    let mut svc = layer.layer(provider);
    for _ in 0..3 {
        send(&mut svc, "ivan").await.unwrap_err();
    }
    let e = send(&mut svc, "ivan").await.unwrap_err();
    let shown = format!("{} | {}", e.client_message(), e);
    for leak in ["ivan", "secret-upstream", "gpt-4o", "errors"] {
        assert!(!shown.contains(leak), "{shown}");
    }
    assert_eq!(
        e.client_message(),
        LlmError::throttled(None).client_message()
    );
}

#[tokio::test(start_paused = true)]
async fn delay_instead_of_reject() {
    let layer = limiter(base().delay_instead(1));
    let provider = FakeProvider::scripted("p", vec![Outcome::fail(ErrorKind::InvalidRequest); 3]);
    let svc = layer.layer(provider.clone());
    for _ in 0..3 {
        svc.clone().oneshot(req("judy")).await.unwrap_err();
    }
    let start = Instant::now();
    let waiting = tokio::spawn(svc.clone().oneshot(req("judy")));
    tokio::task::yield_now().await;
    // only one may wait: the next is rejected
    let e = svc.clone().oneshot(req("judy")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    waiting.await.unwrap().unwrap();
    assert_eq!(
        start.elapsed(),
        secs(10),
        "the delayed request ran when the penalty ended"
    );
    assert_eq!(provider.calls(), 4);
}

#[test]
fn a_flood_of_distinct_keys_stays_under_the_cap() {
    let rules = Rules {
        threshold: 2,
        window: secs(60),
        buckets: 6,
        base_penalty: secs(10),
        max_penalty: secs(60),
        decay: secs(60),
        rpm: Some(100),
        tpm: None,
        max_keys: 10_000,
    };
    let store = MemoryStore::new(rules);
    let now = std::sync::atomic::AtomicU64::new(1);
    let clock = || now.load(std::sync::atomic::Ordering::Relaxed);
    // warm: the store at its cap of 10,000 keys, half of them with an error on record
    for i in 0..10_000u64 {
        let key = format!("client-{i}");
        let id = store.key_id(&key);
        store.admit(id, &key, 1, &clock);
        if i % 2 == 0 {
            store.record_error(id, 1);
        }
    }
    let info = allocation_counter::measure(|| {
        let mut key = String::with_capacity(32);
        for i in 0..1_000_000u64 {
            use std::fmt::Write;
            key.clear();
            let _ = write!(key, "flood-{i}");
            store.admit(store.key_id(&key), &key, 1, &clock);
            now.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let stats = store.stats(clock());
    assert!(stats.keys <= 10_000, "{} keys tracked", stats.keys);
    // entries are replaced, not added: what the flood leaves behind is bounded by the cap
    // (longer key strings and map rehashing), far from the ~150 MB of a million entries
    assert!(
        info.bytes_current < 4 * 1024 * 1024,
        "{} bytes kept",
        info.bytes_current
    );
    eprintln!(
        "flood of 1,000,000 keys: {} tracked, {} evicted, peak extra memory {} bytes, kept {} bytes",
        stats.keys, stats.evicted, info.bytes_max, info.bytes_current
    );
    assert!(
        info.bytes_max < 16 * 1024 * 1024,
        "peak {} bytes",
        info.bytes_max
    );
    assert!(stats.evicted > 500_000, "idle keys make room for new ones");
    // the keys with an error on record were kept over idle newcomers: a second error
    // within the window throttles them
    assert!(
        store
            .record_error(store.key_id("client-0"), clock())
            .is_some()
    );
    assert!(
        store
            .record_error(store.key_id("client-1"), clock())
            .is_none(),
        "idle, so it was evicted"
    );
}

#[test]
fn invalid_configuration_is_rejected_naming_the_field() {
    let b = ErrorRateLimitLayer::builder;
    let field = |x: ErrorRateLimitLayerBuilder| x.build().unwrap_err().field();
    assert_eq!(field(b().threshold(0)), "threshold");
    assert_eq!(field(b().window(Duration::ZERO)), "window");
    assert_eq!(field(b().window_buckets(0)), "window_buckets");
    assert_eq!(field(b().penalty(Duration::ZERO, secs(1))), "penalty.first");
    assert_eq!(field(b().penalty(secs(10), secs(1))), "penalty.max");
    assert_eq!(field(b().decay(Duration::ZERO)), "decay");
    assert_eq!(field(b().requests_per_minute(0)), "requests_per_minute");
    assert_eq!(field(b().tokens_per_minute(0)), "tokens_per_minute");
    assert_eq!(field(b().max_keys(0)), "max_keys");
    assert_eq!(field(b().delay_instead(0)), "delay_instead");
    assert!(
        b().threshold(0)
            .build()
            .unwrap_err()
            .to_string()
            .contains("`threshold`")
    );
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_wait_gives_its_place_back() {
    let layer = limiter(base().delay_instead(1));
    let provider = FakeProvider::scripted("p", vec![Outcome::fail(ErrorKind::InvalidRequest); 3]);
    let svc = layer.layer(provider.clone());
    for _ in 0..3 {
        svc.clone().oneshot(req("kim")).await.unwrap_err();
    }
    // the caller gives up while waiting
    let gave_up = tokio::time::timeout(secs(1), svc.clone().oneshot(req("kim"))).await;
    assert!(gave_up.is_err());
    // its place is free again: the next one may wait, and then runs
    let start = Instant::now();
    svc.clone().oneshot(req("kim")).await.unwrap();
    assert_eq!(start.elapsed(), secs(9));
}

/// Store rules with no rate limits: `threshold` errors a minute, at most `max_keys` keys.
fn store_rules(threshold: u32, max_keys: usize) -> Rules {
    Rules {
        threshold,
        window: secs(60),
        buckets: 6,
        base_penalty: secs(10),
        max_penalty: secs(60),
        decay: secs(60),
        rpm: None,
        tpm: None,
        max_keys,
    }
}

#[test]
fn a_flood_of_fresh_erring_keys_is_throttled_together() {
    let store = MemoryStore::new(store_rules(3, 32));
    let clock = || 1_000u64;
    // every key makes one error, so none is idle and none can be evicted
    let mut denied = 0;
    for i in 0..200 {
        let key = format!("bot-{i}");
        let id = store.key_id(&key);
        match store.admit(id, &key, 1, &clock) {
            towerguard_error_rate_limit::Admit::Pass => {
                store.record_error(id, clock());
            }
            towerguard_error_rate_limit::Admit::Deny { .. } => denied += 1,
        }
    }
    assert!(store.stats(clock()).keys <= 32);
    // past the cap the newcomers share the overflow entry, whose errors throttle them all
    assert!(denied > 150, "{denied} denied");
}

#[test]
fn threads_churning_keys_through_eviction_keep_every_count() {
    // 4 threads, each with 2 hot keys and a stream of fresh ones, on a store of 64 slots:
    // slots are evicted and reused under the lock-free lookups of the other threads
    let store = std::sync::Arc::new(MemoryStore::new(store_rules(1_000_000, 64)));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let clock = || 1_000u64;
                for i in 0..20_000u64 {
                    let key = if i % 4 == 0 {
                        format!("fresh-{t}-{i}")
                    } else {
                        format!("hot-{t}-{}", i % 2)
                    };
                    let id = store.key_id(&key);
                    assert_eq!(
                        store.admit(id, &key, 1, &clock),
                        towerguard_error_rate_limit::Admit::Pass
                    );
                    if i % 4 == 1 {
                        assert_eq!(store.record_error(id, 1_000), None);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = store.stats(1_000);
    assert!(stats.keys <= 64, "{} keys", stats.keys);
    assert_eq!(stats.errors, 4 * 5_000, "every error counted once");
    assert_eq!(stats.rejected, 0);
    // the hot keys, with errors on record, were never evicted; the fresh ones made room
    assert!(stats.evicted > 0);
    assert!(stats.keys >= 8, "{} keys", stats.keys);
}
