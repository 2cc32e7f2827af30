//! The limiter in front of something that is not an LLM: an HTTP-ish service keyed by IP
//! address; and the known-key success path allocating nothing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tower::{BoxError, Layer, ServiceExt, service_fn};
use towerguard_error_rate_limit::{ErrorRateLimitLayer, ThrottledError};
use towerguard_testkit::call_now;

#[derive(Clone)]
struct Login {
    ip: Arc<str>,
    password_ok: bool,
}

#[tokio::test(start_paused = true)]
async fn throttles_an_ip_that_keeps_failing_logins() {
    let backend = service_fn(|l: Login| async move {
        if l.password_ok {
            Ok("welcome")
        } else {
            Err(BoxError::from("bad password"))
        }
    });
    let layer = ErrorRateLimitLayer::builder()
        .threshold(3)
        .penalty(Duration::from_secs(60), Duration::from_secs(3600))
        .key_with(|l: &Login| Some(&*l.ip))
        .build()
        .unwrap();
    let svc = layer.layer(backend);
    let attacker = Login {
        ip: Arc::from("203.0.113.9"),
        password_ok: false,
    };
    for _ in 0..3 {
        assert!(svc.clone().oneshot(attacker.clone()).await.is_err());
    }
    let e = svc
        .clone()
        .oneshot(Login {
            password_ok: true,
            ..attacker.clone()
        })
        .await
        .unwrap_err();
    let t = e.downcast_ref::<ThrottledError>().unwrap();
    assert_eq!(t.retry_after(), Duration::from_secs(60));
    let user = Login {
        ip: Arc::from("198.51.100.7"),
        password_ok: true,
    };
    assert_eq!(svc.oneshot(user).await.unwrap(), "welcome");
}

#[test]
fn known_key_success_path_allocates_nothing() {
    let ok = service_fn(|_: Login| std::future::ready(Ok::<_, BoxError>(())));
    let mut svc = ErrorRateLimitLayer::builder()
        .requests_per_minute(u64::MAX / 2)
        .key_with(|l: &Login| Some(&*l.ip))
        .build()
        .unwrap()
        .layer(ok);
    let login = Login {
        ip: Arc::from("192.0.2.1"),
        password_ok: true,
    };
    assert!(call_now(&mut svc, login.clone())); // the key is created here
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc, login.clone()));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // a clone per request, as axum makes, allocates nothing either
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc.clone(), login.clone()));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // a long-lived clone takes its own handle once, on its second call
    let mut kept = svc.clone();
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut kept, login.clone()));
        }
    });
    assert_eq!(info.count_total, 1, "{info:?}");
}
