//! The success path allocates nothing: measured with a counting global allocator.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use tower::{Layer, Service};
use towerguard_llm_core::{LlmRequest, Message};
use towerguard_retry_backoff::RetryLayer;

fn call_now<S: Service<R>, R>(svc: &mut S, req: R) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = std::pin::pin!(svc.call(req));
    matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_)))
}

#[test]
fn success_path_allocates_nothing() {
    let noop = tower::service_fn(|_: LlmRequest| std::future::ready(Ok::<_, Infallible>(())));
    let mut svc = RetryLayer::builder()
        .max_retries(3)
        .build()
        .unwrap()
        .layer(noop);
    let req = LlmRequest::new("gpt-4o-mini", vec![Message::user("hi")]);
    assert!(call_now(&mut svc, req.clone())); // warm up
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc, req.clone()));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // the counter does see allocations
    let boxed = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(7u64));
    });
    assert_eq!(boxed.count_total, 1);
}
