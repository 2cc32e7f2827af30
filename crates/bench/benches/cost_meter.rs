//! Cost meter overhead per call (price lookup, reserve, settle, totals) over a no-op
//! service, with the in-memory store; and one vs two threads on one ledger.
//!
//! `cargo bench -p towerguard-bench --bench cost_meter`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::{BoxError, Layer, Service};
use towerguard_bench::{call_now, hammer};
use towerguard_cost_meter::{
    Budget, CostMeterLayer, CostRequest, CostResponse, Ledger, Tokens, WorstCase, usd,
};

#[derive(Clone)]
struct Req {
    client: Option<Arc<str>>,
}

impl CostRequest for Req {
    fn model(&self) -> &str {
        "gpt-4o-mini"
    }
    fn client(&self) -> Option<&Arc<str>> {
        self.client.as_ref()
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
    fn provider(&self) -> Option<&str> {
        Some("openai")
    }
}

/// Answers at once with a billed response.
#[derive(Clone, Copy)]
struct Api;

impl Service<Req> for Api {
    type Response = Billed;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Billed, BoxError>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Req) -> Self::Future {
        std::future::ready(Ok(Billed))
    }
}

fn ledger(budgets: &[Budget]) -> Ledger {
    let mut b = Ledger::builder();
    for budget in budgets {
        b = b.budget(budget.clone());
    }
    b.build().unwrap()
}

const PLENTY: u64 = u64::MAX / 4;

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("cost_meter");
    let plain = Req { client: None };
    let mut bare = Api;
    g.bench_function("bare_api", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(plain.clone()))))
    });

    let mut s = CostMeterLayer::new(ledger(&[])).layer(Api);
    g.bench_function("meter_no_budget", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(plain.clone()))))
    });
    let mut s = CostMeterLayer::new(ledger(&[Budget::global(PLENTY)])).layer(Api);
    g.bench_function("meter_global_budget", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(plain.clone()))))
    });
    let mut s = CostMeterLayer::new(ledger(&[Budget::global(PLENTY).daily()])).layer(Api);
    g.bench_function("meter_global_daily_budget", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(plain.clone()))))
    });
    let keyed = Req {
        client: Some(Arc::from("tenant-42")),
    };
    let mut s = CostMeterLayer::new(ledger(&[
        Budget::global(PLENTY).daily(),
        Budget::per_client(usd(1e6)).daily(),
    ]))
    .layer(Api);
    g.bench_function("meter_global_and_client_daily_budgets", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(keyed.clone()))))
    });
    g.finish();
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("cost_meter_threads");
    let s = CostMeterLayer::new(ledger(&[Budget::global(PLENTY)])).layer(Api);
    let per_client =
        CostMeterLayer::new(ledger(&[Budget::per_client(usd(1e6)).daily()])).layer(Api);
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("global_budget/{threads}_threads"), |b| {
            b.iter_custom(|iters| hammer(&s, threads, iters, |_| Req { client: None }))
        });
        g.bench_function(format!("per_client_budget/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                hammer(&per_client, threads, iters, |t| Req {
                    client: Some(Arc::from(format!("tenant-{t}"))),
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single, threads
}
criterion_main!(benches);
