//! Fallback between services that have nothing to do with LLMs, and the primary's success
//! path allocating nothing.
#![allow(clippy::unwrap_used)]

use std::task::{Context, Poll};

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use towerguard_provider_fallback::{AllProvidersFailed, FallbackLayerBuilder};
use towerguard_testkit::call_now;

type Mirror = BoxCloneSyncService<String, String, BoxError>;

fn mirror(name: &'static str, up: bool) -> Mirror {
    BoxCloneSyncService::new(service_fn(move |path: String| async move {
        if up {
            Ok(format!("{name}:{path}"))
        } else {
            Err::<String, BoxError>(format!("{name} unreachable").into())
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn falls_back_across_download_mirrors() {
    let layer = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .primary("eu")
        .provider("us", mirror("us", false))
        .provider("asia", mirror("asia", true))
        .map_request(|name, path: &String| format!("/{name}{path}"))
        .build()
        .unwrap();
    let svc = layer.layer(mirror("eu", false));
    assert_eq!(
        svc.oneshot("/file".into()).await.unwrap(),
        "asia:/asia/file"
    );

    let layer_all_down = FallbackLayerBuilder::<Mirror, String, BoxError>::generic()
        .provider("us", mirror("us", false))
        .build()
        .unwrap();
    let err = layer_all_down
        .layer(mirror("eu", false))
        .oneshot("/x".into())
        .await
        .unwrap_err();
    let all = err.downcast_ref::<AllProvidersFailed<BoxError>>().unwrap();
    let names: Vec<&str> = all.attempts.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["primary", "us"]);
    assert!(err.to_string().contains("us unreachable"), "{err}");
}

#[derive(Clone)]
struct Ok1;

impl Service<u64> for Ok1 {
    type Response = u64;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u64, BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, r: u64) -> Self::Future {
        std::future::ready(Ok(r))
    }
}

#[test]
fn primary_success_path_allocates_nothing() {
    let layer = FallbackLayerBuilder::<Ok1, u64, BoxError>::generic()
        .provider("backup", Ok1)
        .build()
        .unwrap();
    let mut svc = layer.layer(Ok1);
    assert!(call_now(&mut svc, 1));
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc, 1));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}
