//! The success path allocates nothing: measured with a counting global allocator.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;

use tower::Layer;
use towerguard_llm_core::{LlmRequest, Message};
use towerguard_retry_backoff::RetryLayer;
use towerguard_testkit::call_now;

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
