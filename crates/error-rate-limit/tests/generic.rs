//! The limiter in front of something that is not an LLM: an HTTP-ish service keyed by IP
//! address; unknown errors; a store that answers later; and the success path allocating
//! nothing.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use towerguard_error_rate_limit::{
    Admit, ErrorRateLimitLayer, KeyId, Keyed, LimiterStats, LimiterStore, MemoryStore, Rules,
    ThrottledError, ThrottledKey,
};
use towerguard_outcome::Verdict;
use towerguard_testkit::call_now;

#[derive(Clone)]
struct Login {
    ip: Arc<str>,
    password_ok: bool,
}

fn login(ip: &str, password_ok: bool) -> Login {
    Login {
        ip: Arc::from(ip),
        password_ok,
    }
}

/// Bad passwords are the client's fault (an io `InvalidInput`), as `ClassifyError` says.
fn backend() -> impl Service<Login, Response = &'static str, Error = BoxError, Future: Send> + Clone
{
    service_fn(|l: Login| async move {
        if l.password_ok {
            Ok("welcome")
        } else {
            Err(BoxError::from(std::io::Error::from(
                std::io::ErrorKind::InvalidInput,
            )))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn throttles_an_ip_that_keeps_failing_logins() {
    let layer = ErrorRateLimitLayer::builder()
        .threshold(3)
        .penalty(Duration::from_secs(60), Duration::from_secs(3600))
        .key_with(|l: &Login| Some(&*l.ip))
        .build()
        .unwrap();
    let svc = layer.layer(backend());
    let attacker = login("203.0.113.9", false);
    for _ in 0..3 {
        assert!(svc.clone().oneshot(attacker.clone()).await.is_err());
    }
    let e = svc
        .clone()
        .oneshot(login("203.0.113.9", true))
        .await
        .unwrap_err();
    let t = e.downcast_ref::<ThrottledError>().unwrap();
    assert_eq!(t.retry_after(), Duration::from_secs(60));
    let user = login("198.51.100.7", true);
    assert_eq!(svc.oneshot(user).await.unwrap(), "welcome");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_boxed_error_is_never_the_clients_fault() {
    let upstream =
        service_fn(|_: Login| async { Err::<(), _>(BoxError::from("upstream exploded")) });
    let layer = ErrorRateLimitLayer::builder()
        .threshold(2)
        .key_with(|l: &Login| Some(&*l.ip))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(upstream);
    for _ in 0..20 {
        let e = svc
            .clone()
            .oneshot(login("192.0.2.5", true))
            .await
            .unwrap_err();
        assert!(e.downcast_ref::<ThrottledError>().is_none());
    }
    assert_eq!(handle.stats().await.errors, 0);
    // a closure overrides the verdict: here every error is the client's fault
    let upstream = service_fn(|_: Login| async { Err::<(), _>(BoxError::from("bad")) });
    let svc = ErrorRateLimitLayer::builder()
        .threshold(2)
        .key_with(|l: &Login| Some(&*l.ip))
        .classify_with(|r: &Result<(), BoxError>| match r {
            Ok(_) => Verdict::Success,
            Err(_) => Verdict::client_fault(),
        })
        .build()
        .unwrap()
        .layer(upstream);
    for _ in 0..2 {
        svc.clone()
            .oneshot(login("192.0.2.5", true))
            .await
            .unwrap_err();
    }
    let e = svc
        .clone()
        .oneshot(login("192.0.2.5", true))
        .await
        .unwrap_err();
    assert!(e.downcast_ref::<ThrottledError>().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_refusal_of_another_layer_never_counts() {
    // a limiter in front of another limiter: the inner one's refusals are not the client's
    // errors for the outer one
    let inner = ErrorRateLimitLayer::builder()
        .requests_per_minute(60)
        .key_with(|l: &Login| Some(&*l.ip))
        .build()
        .unwrap()
        .layer(backend());
    let outer = ErrorRateLimitLayer::builder()
        .threshold(1)
        .key_with(|l: &Login| Some(&*l.ip))
        .build()
        .unwrap();
    let handle = outer.handle();
    let svc = outer.layer(inner);
    for _ in 0..10 {
        let _ = svc.clone().oneshot(login("192.0.2.9", true)).await;
    }
    assert_eq!(handle.stats().await.errors, 0);
}

/// A store that answers every question one poll later, as a networked store would.
struct Later {
    inner: MemoryStore,
    asked: AtomicUsize,
}

/// Ready on the second poll.
struct OnePollLater<T>(Option<T>, bool);

// never pinned structurally: the answer is moved out by value
impl<T> Unpin for OnePollLater<T> {}

impl<T> Future for OnePollLater<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        if !this.1 {
            this.1 = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.0.take().map_or(Poll::Pending, Poll::Ready)
    }
}

fn later<T>(ready: std::future::Ready<T>) -> OnePollLater<T> {
    OnePollLater(Some(ready.into_inner()), false)
}

impl LimiterStore for Later {
    type Key = KeyId;
    type Future<T: Send + 'static> = OnePollLater<T>;

    fn key(&self, name: &str) -> KeyId {
        self.inner.key(name)
    }
    fn admit(&self, key: &KeyId, name: &str, tokens: u64) -> OnePollLater<Admit> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        later(self.inner.admit(key, name, tokens))
    }
    fn record_error(&self, key: &KeyId) -> OnePollLater<Option<Duration>> {
        later(self.inner.record_error(key))
    }
    fn throttled(&self) -> OnePollLater<Vec<ThrottledKey>> {
        later(self.inner.throttled())
    }
    fn unthrottle(&self, name: &str) -> OnePollLater<bool> {
        later(self.inner.unthrottle(name))
    }
    fn stats(&self) -> OnePollLater<LimiterStats> {
        later(self.inner.stats())
    }
    fn reset(&self) -> OnePollLater<()> {
        later(self.inner.reset())
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_answers_later_is_awaited() {
    let rules = Rules {
        threshold: 2,
        ..Rules::default()
    };
    let store = Later {
        inner: MemoryStore::new(rules).unwrap(),
        asked: AtomicUsize::new(0),
    };
    let called = Arc::new(AtomicUsize::new(0));
    let count = called.clone();
    let backend = backend();
    let counted = service_fn(move |l: Login| {
        count.fetch_add(1, Ordering::Relaxed);
        backend.clone().oneshot(l)
    });
    let layer = ErrorRateLimitLayer::builder()
        .key_with(|l: &Login| Some(&*l.ip))
        .store(store)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(counted);
    // the call does not reach the service before the store has answered
    let fut = svc.ready().await.unwrap().call(login("192.0.2.7", false));
    assert_eq!(called.load(Ordering::Relaxed), 0);
    fut.await.unwrap_err();
    assert_eq!(called.load(Ordering::Relaxed), 1);
    svc.ready()
        .await
        .unwrap()
        .call(login("192.0.2.7", false))
        .await
        .unwrap_err();
    let e = svc
        .ready()
        .await
        .unwrap()
        .call(login("192.0.2.7", true))
        .await
        .unwrap_err();
    assert!(e.downcast_ref::<ThrottledError>().is_some(), "{e}");
    assert_eq!(called.load(Ordering::Relaxed), 2);
    assert_eq!(handle.asked.load(Ordering::Relaxed), 3);
    let stats = handle.stats().await;
    assert_eq!((stats.errors, stats.offences, stats.throttled), (2, 1, 1));
}

#[test]
fn known_key_success_path_allocates_nothing() {
    let ok = service_fn(|_: Login| std::future::ready(Ok::<_, BoxError>(())));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    for rpm in [None, Some(60_000_000_000)] {
        let mut b = ErrorRateLimitLayer::builder().key_with(|l: &Login| Some(&*l.ip));
        if let Some(rpm) = rpm {
            b = b.requests_per_minute(rpm);
        }
        let mut svc = b.build().unwrap().layer(ok);
        let user = login("192.0.2.1", true);
        assert!(call_now(&mut svc, user.clone())); // the key is created here
        let info = allocation_counter::measure(|| {
            for _ in 0..1000 {
                assert!(call_now(&mut svc, user.clone()));
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
        // a clone per request, as axum makes, and a long-lived clone allocate nothing either
        let mut kept = svc.clone();
        let info = allocation_counter::measure(|| {
            for _ in 0..1000 {
                assert!(call_now(&mut svc.clone(), user.clone()));
                assert!(call_now(&mut kept, user.clone()));
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
    }
}

/// A request that counts how often it is weighed.
struct Weighed<'a> {
    tenant: &'static str,
    weighed: &'a AtomicUsize,
}

impl Keyed for Weighed<'_> {
    fn rate_key(&self) -> Option<&str> {
        Some(self.tenant)
    }

    fn token_weight(&self) -> u64 {
        self.weighed.fetch_add(1, Ordering::Relaxed);
        10
    }
}

#[test]
fn requests_are_weighed_only_under_a_token_limit() {
    let ok = service_fn(|_: Weighed<'_>| std::future::ready(Ok::<_, BoxError>(())));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    for (tpm, weighings) in [(None, 0), (Some(1_000_000), 3)] {
        let mut b = ErrorRateLimitLayer::builder().requests_per_minute(1_000);
        if let Some(tpm) = tpm {
            b = b.tokens_per_minute(tpm);
        }
        let mut svc = b.build().unwrap().layer(ok);
        let weighed = AtomicUsize::new(0);
        for _ in 0..3 {
            let tenant = "acme";
            assert!(call_now(
                &mut svc,
                Weighed {
                    tenant,
                    weighed: &weighed
                }
            ));
        }
        assert_eq!(weighed.load(Ordering::Relaxed), weighings, "tpm {tpm:?}");
    }
}
