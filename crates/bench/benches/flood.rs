//! A flood of new client keys beside one known key, at the default caps (100,000 keys): what
//! one request costs when its key was never seen before, through the error-rate limiter
//! (each request an error, as issue #13 measured it, and each request a success) and through
//! a cost meter with a per-client budget (each new client spends). The table is full from the
//! first sample on, so every new key either takes a forgettable key's place or, when every
//! tracked key still matters, shares the overflow entry: the work per request stays bounded
//! whatever the flood.
//!
//! `cargo bench -p towerguard-bench --bench flood`
#![allow(clippy::unwrap_used, missing_docs)]

use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{BoxError, Layer, Service};
use towerguard_bench::call_now;
use towerguard_cost_meter::{
    Budget, CostMeterLayer, CostRequest, CostResponse, Ledger, Tokens, WorstCase, usd,
};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{ErrorKind, LlmError};

#[derive(Clone)]
struct Req {
    client: Arc<str>,
}

impl CostRequest for Req {
    fn model(&self) -> &str {
        "gpt-4o-mini"
    }
    fn client(&self) -> Option<&Arc<str>> {
        Some(&self.client)
    }
    fn worst_case(&self) -> WorstCase {
        WorstCase {
            input_tokens: 200,
            max_output_tokens: Some(100),
        }
    }
}

struct Billed;

impl CostResponse for Billed {
    fn tokens(&self) -> Option<Tokens> {
        Some(Tokens::new(150, 80))
    }
}

/// Answers at once: billed, or the client's own fault (an invalid request).
#[derive(Clone, Copy)]
struct Api {
    fail: bool,
}

impl Service<Req> for Api {
    type Response = Billed;
    type Error = LlmError;
    type Future = Ready<Result<Billed, LlmError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        ready(match self.fail {
            true => Err(LlmError::new(ErrorKind::InvalidRequest)),
            false => Ok(Billed),
        })
    }
}

/// `n` requests, each from a key no earlier request of this bench used.
fn new_keys(n: u64) -> Vec<Req> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let first = NEXT.fetch_add(n, Ordering::Relaxed);
    (first..first + n)
        .map(|i| Req {
            client: Arc::from(format!("client-{i}")),
        })
        .collect()
}

/// Times calls of `svc` on `requests` (made before the clock starts).
fn timed<S: Service<Req>>(svc: &mut S, requests: Vec<Req>) -> Duration {
    let start = Instant::now();
    for req in requests {
        black_box(call_now(svc, req));
    }
    start.elapsed()
}

/// One known key, then a new key per request, through `svc`; the table filled first.
fn one_key_and_new_keys<S: Service<Req>>(c: &mut Criterion, group: &str, mut svc: S) {
    let known = Req {
        client: Arc::from("tenant-42"),
    };
    timed(&mut svc, vec![known.clone()]);
    timed(&mut svc, new_keys(200_000));
    let mut g = c.benchmark_group(group);
    g.bench_function("one_key", |b| {
        b.iter_custom(|iters| timed(&mut svc, vec![known.clone(); iters as usize]))
    });
    g.bench_function("a_new_key_per_request", |b| {
        b.iter_custom(|iters| timed(&mut svc, new_keys(iters)))
    });
    g.finish();
}

fn flood(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let limiter = || {
        ErrorRateLimitLayer::builder()
            .key_with(|r: &Req| Some(&*r.client))
            .build()
            .unwrap()
    };
    one_key_and_new_keys(
        c,
        "flood_error_rate_limit_each_request_an_error",
        limiter().layer(Api { fail: true }),
    );
    one_key_and_new_keys(
        c,
        "flood_error_rate_limit_each_request_served",
        limiter().layer(Api { fail: false }),
    );
    let ledger = Ledger::builder()
        .budget(Budget::per_client(usd(1e6)).daily())
        .build()
        .unwrap();
    let meter = CostMeterLayer::new(ledger).layer(Api { fail: false });
    one_key_and_new_keys(
        c,
        "flood_cost_meter_per_client_budget",
        tower::ServiceExt::map_err(meter, BoxError::from),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = flood
}
criterion_main!(benches);
