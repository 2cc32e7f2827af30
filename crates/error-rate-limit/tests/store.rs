//! The in-memory store under floods of keys: it forgets what no longer matters, keeps what
//! does, stays under its cap at a bounded cost per request, and keeps each key small.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tower::{BoxError, Layer, ServiceExt, service_fn};
use towerguard_error_rate_limit::{
    ErrorRateLimitLayer, LimiterStore, MemoryStore, Reason, Rules, ThrottledError,
};
use towerguard_outcome::ManualClock;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn rules(threshold: u32, max_keys: usize) -> Rules {
    Rules {
        threshold,
        window: secs(60),
        base_penalty: secs(10),
        max_penalty: secs(60),
        decay: secs(60),
        rpm: None,
        tpm: None,
        max_keys,
    }
}

fn store(rules: Rules) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::at(1_700_000_000_000_000_000);
    (
        MemoryStore::with_clock(rules, clock.clone()).unwrap(),
        clock,
    )
}

/// One request from `name`, and an error if it passed and `err`: did it pass, and the
/// penalty if the error throttled the key.
fn visit(store: &MemoryStore, name: &str, err: bool) -> (bool, Option<Duration>) {
    let key = store.key(name);
    let passed = store.admit(&key, name, 1).into_inner().is_ok();
    let penalty = (err && passed)
        .then(|| store.record_error(&key).into_inner())
        .flatten();
    (passed, penalty)
}

#[derive(Clone)]
struct Call {
    client: Arc<str>,
    fail: bool,
}

#[tokio::test(start_paused = true)]
async fn keys_that_behaved_are_forgotten_as_the_clock_moves() {
    // 10 times max_keys distinct clients over 100 windows, each causing one client error:
    // at most 100 of them are in any one window, far under the cap of 1,000
    let layer = ErrorRateLimitLayer::builder()
        .threshold(2)
        .window(secs(60))
        .max_keys(1_000)
        .key_with(|c: &Call| Some(&*c.client))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(service_fn(|c: Call| async move {
        if c.fail {
            Err(BoxError::from(std::io::Error::from(
                std::io::ErrorKind::InvalidData,
            )))
        } else {
            Ok(())
        }
    }));
    for i in 0..10_000 {
        let client: Arc<str> = Arc::from(format!("client-{i}"));
        let e = svc
            .clone()
            .oneshot(Call {
                client: client.clone(),
                fail: true,
            })
            .await
            .unwrap_err();
        assert!(
            e.downcast_ref::<ThrottledError>().is_none(),
            "client {i} throttled"
        );
        // a well-behaved newcomer gets a place of its own, never the overflow entry
        svc.clone()
            .oneshot(Call {
                client,
                fail: false,
            })
            .await
            .unwrap();
        if i % 500 == 0 {
            let s = handle.stats().await;
            assert!(s.keys <= 1_000, "{s:?}");
            assert_eq!(s.overflowed, 0, "{s:?}");
        }
        tokio::time::advance(Duration::from_millis(600)).await;
    }
    let s = handle.stats().await;
    assert_eq!(
        (s.overflowed, s.offences, s.throttled, s.errors),
        (0, 0, 0, 10_000)
    );
    assert!(s.keys <= 1_000 && s.evicted >= 9_000, "{s:?}");
}

#[test]
fn reset_clears_the_overflow_entry_too() {
    // one shard of 4 places, all taken by keys with an error in the window
    let (store, _clock) = store(rules(2, 4));
    for i in 0..4 {
        assert_eq!(visit(&store, &format!("held-{i}"), true), (true, None));
    }
    // newcomers share the overflow entry, whose errors throttle them together
    visit(&store, "bot-1", true);
    visit(&store, "bot-2", true);
    assert!(!visit(&store, "innocent", false).0);
    assert!(store.stats().into_inner().overflowed >= 3);
    let () = store.reset().into_inner();
    assert_eq!(visit(&store, "innocent", false), (true, None));
    let s = store.stats().into_inner();
    assert_eq!((s.keys, s.throttled), (1, 0));
}

#[test]
fn a_flood_of_new_keys_never_evicts_a_rate_limited_key() {
    // a 60-RPM key (a burst of 6), each of its 50 requests followed by 20,000 new keys
    let (store, _clock) = store(Rules {
        rpm: Some(60),
        ..rules(5, 1_000)
    });
    let mut passed = 0;
    for round in 0..50 {
        if visit(&store, "victim", false).0 {
            passed += 1;
        }
        for i in 0..20_000 {
            visit(&store, &format!("flood-{round}-{i}"), false);
        }
    }
    assert_eq!(passed, 6, "only its allowance");
    assert!(store.stats().into_inner().keys <= 1_000);
}

#[test]
fn a_flood_of_erring_keys_keeps_the_table_bounded() {
    let (store, clock) = store(rules(3, 1_000));
    // a throttled key and one with offences to decay: both must survive the flood
    for _ in 0..3 {
        visit(&store, "offender", true);
    }
    visit(&store, "watched", true);
    for i in 0..200_000u32 {
        visit(&store, &format!("bot-{i}"), true);
        if i % 1_000 == 0 {
            clock.advance(Duration::from_millis(10));
        }
    }
    let s = store.stats().into_inner();
    assert!(s.keys <= 1_000, "{s:?}");
    let throttled = store.throttled().into_inner();
    assert!(
        throttled.iter().any(|t| t.key == "offender"),
        "{throttled:?}"
    );
    // "watched" kept its error: two more throttle it
    visit(&store, "watched", true);
    assert!(visit(&store, "watched", true).1.is_some());
}

#[test]
fn a_tracked_key_costs_little_memory() {
    let (store, _clock) = store(Rules {
        rpm: Some(600),
        tpm: Some(100_000),
        ..rules(1_000, 10_000)
    });
    let names: Vec<String> = (0..10_000).map(|i| format!("tenant-{i:05}")).collect();
    let info = allocation_counter::measure(|| {
        for name in &names {
            visit(&store, name, true);
        }
    });
    let per_key = info.bytes_current / 10_000;
    eprintln!("{per_key} bytes per tracked key (map slack, queue, name, one error)");
    assert!(per_key <= 320, "{per_key} bytes per key");
    assert_eq!(store.stats().into_inner().keys, 10_000);
}

#[test]
fn threads_churning_keys_through_eviction_keep_every_count() {
    // 4 threads, each with 2 hot keys and a stream of fresh ones, on a store of 64 places;
    // each thread moves the clock 1 ms a request, so hot keys stay under 1,000 errors a second
    let (store, clock) = store(Rules {
        window: secs(1),
        ..rules(1_000, 64)
    });
    let store = Arc::new(store);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, clock) = (store.clone(), clock.clone());
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    clock.advance(Duration::from_millis(1));
                    let name = if i % 4 == 0 {
                        format!("fresh-{t}-{i}")
                    } else {
                        format!("hot-{t}-{}", i % 2)
                    };
                    assert_eq!(visit(&store, &name, i % 4 == 1), (true, None));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = store.stats().into_inner();
    assert!(s.keys <= 64, "{s:?}");
    assert_eq!(
        (s.errors, s.rejected),
        (4 * 5_000, 0),
        "every error counted once"
    );
    // the hot keys with errors on record were never evicted; the fresh ones made room
    assert!(s.evicted > 0 && s.keys >= 4, "{s:?}");
    assert_eq!(s.overflowed, 0, "{s:?}");
}

/// `reset()` forgets the overflow entry's state, not only the table's keys: after a reset,
/// with the table full again of keys that matter, a newcomer that goes through the overflow
/// entry is admitted, though the overflow entry was throttled before the reset.
#[test]
fn reset_clears_the_overflow_entry_even_for_the_next_overflowing_newcomer() {
    // one shard of 4 places; 2 errors in the window throttle
    let (store, _clock) = store(rules(2, 4));
    let fill = |round: &str| {
        for i in 0..4 {
            let held = format!("held-{round}-{i}");
            assert_eq!(visit(&store, &held, true), (true, None), "{held}");
        }
    };
    // the table is full of keys with an error in the window: newcomers overflow, and their
    // errors throttle the shared entry
    fill("before");
    assert_eq!(visit(&store, "bot-1", true), (true, None));
    assert_eq!(visit(&store, "bot-2", true), (true, Some(secs(10))));
    assert!(
        !visit(&store, "probe", false).0,
        "the overflow entry is throttled"
    );
    let before = store.stats().into_inner().overflowed;
    assert!(before >= 5, "bot-1, bot-2 and probe overflowed: {before}");

    let () = store.reset().into_inner();
    // the same situation again, the clock not moved: the table full of keys that matter
    fill("after");
    assert_eq!(store.stats().into_inner().keys, 4);
    assert_eq!(visit(&store, "newcomer", false), (true, None));
    let s = store.stats().into_inner();
    assert_eq!(
        s.overflowed,
        before + 1,
        "the newcomer went through the overflow entry"
    );
    assert_eq!((s.keys, s.throttled), (4, 0), "{s:?}");
}

/// A key that spent its tokens-per-minute allowance is never forgotten while the allowance
/// refills, however many new keys arrive (forgetting it would hand it a fresh allowance);
/// the newcomers, whose small allowances refill as the clock moves, make room instead.
#[test]
fn a_flood_of_new_keys_never_evicts_a_token_limited_key() {
    // 60,000 tokens a minute: 1 ms per token, a burst of 6,000 tokens (6 s)
    let (store, clock) = store(Rules {
        tpm: Some(60_000),
        ..rules(5, 1_000)
    });
    let victim = store.key("victim");
    assert!(store.admit(&victim, "victim", 6_000).into_inner().is_ok());
    let refusal = store
        .admit(&victim, "victim", 6_000)
        .into_inner()
        .unwrap_err();
    assert_eq!(refusal.reason(), Reason::TokenRate);
    // 20 times max_keys newcomers of one token each, over 200 ms
    for i in 0..20_000 {
        if i % 100 == 0 {
            clock.advance(Duration::from_millis(1));
        }
        visit(&store, &format!("flood-{i}"), false);
    }
    let s = store.stats().into_inner();
    assert!(s.keys <= 1_000, "{s:?}");
    assert!(s.evicted >= 18_000, "the newcomers were forgettable: {s:?}");
    // still owing almost 6 s of tokens
    let refusal = store
        .admit(&victim, "victim", 6_000)
        .into_inner()
        .unwrap_err();
    assert_eq!(refusal.reason(), Reason::TokenRate);
    assert!(refusal.retry_after() > secs(5), "{refusal:?}");
}

/// A key whose throttle has ended but whose offence has not decayed is never forgotten by a
/// flood of forgettable newcomers: its next offence is its second, and the penalty doubles.
#[test]
fn a_flood_of_new_keys_never_forgets_live_offences() {
    // one error throttles for 10 s; an offence is forgiven after 10 minutes
    let (store, clock) = store(Rules {
        decay: secs(600),
        ..rules(1, 1_000)
    });
    assert_eq!(visit(&store, "repeat", true), (true, Some(secs(10))));
    clock.advance(secs(11));
    assert!(
        store.throttled().into_inner().is_empty(),
        "the throttle ended"
    );
    // 20 times max_keys well-behaved newcomers: each is forgettable at once
    for i in 0..20_000 {
        assert_eq!(visit(&store, &format!("flood-{i}"), false), (true, None));
    }
    let s = store.stats().into_inner();
    assert!(s.keys <= 1_000 && s.evicted >= 19_000, "{s:?}");
    assert_eq!(s.overflowed, 0, "{s:?}");
    // the second offence within the decay period: twice the first penalty
    assert_eq!(visit(&store, "repeat", true), (true, Some(secs(20))));
    let t = store.throttled().into_inner();
    assert_eq!(
        (t.len(), t[0].key.as_str(), t[0].offences),
        (1, "repeat", 2)
    );
}
