//! Circuit breakers in one run: closed-state success overhead over a bare no-op service
//! (towerguard's consecutive, count-window and time-window modes; tower-resilience's breaker;
//! failsafe), open-state rejection cost, and two threads hammering one breaker.
//!
//! `cargo bench -p towerguard-bench --bench circuit_breaker`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::{BoxError, Layer, service_fn};
use towerguard_bench::{Noop, call_now, hammer};
use towerguard_circuit_breaker::CircuitBreakerLayer;

type BoxNoop = tower::util::MapErr<Noop, fn(std::convert::Infallible) -> BoxError>;

fn noop() -> BoxNoop {
    tower::ServiceExt::<u64>::map_err(Noop, |e| match e {})
}

fn ours_consecutive() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .build()
        .unwrap()
}

fn ours_count() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .count_window(100)
        .build()
        .unwrap()
}

fn ours_time() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .time_window(Duration::from_secs(30), 10)
        .build()
        .unwrap()
}

fn resilience_count() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(100)
        .build()
        .unwrap()
}

fn resilience_consecutive() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .build()
        .unwrap()
}

fn failsafe_consecutive() -> towerguard_bench::peers::FailsafeBreaker {
    towerguard_bench::peers::failsafe_breaker(5, Duration::from_secs(60))
}

fn closed(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("breaker_closed_success");

    let mut bare = noop();
    g.bench_function("bare_noop", |b| {
        b.iter(|| assert!(call_now(&mut bare, black_box(1u64))))
    });

    let mut s = ours_consecutive().layer(noop());
    g.bench_function("towerguard_consecutive", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    let mut s = ours_count().layer(noop());
    g.bench_function("towerguard_count_window_100", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    let mut s = ours_time().layer(noop());
    g.bench_function("towerguard_time_window_30s", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    // the same window after a million calls: the per-call cost does not depend on the fill
    for _ in 0..1_000_000 {
        call_now(&mut s, 1u64);
    }
    g.bench_function("towerguard_time_window_30s_after_1m_calls", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });

    let mut s = resilience_consecutive().layer(noop());
    g.bench_function("tower_resilience_consecutive", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });
    let mut s = resilience_count().layer(noop());
    g.bench_function("tower_resilience_count_window_100", |b| {
        b.iter(|| assert!(call_now(&mut s, black_box(1u64))))
    });

    let fs = failsafe_consecutive();
    g.bench_function("failsafe_consecutive_sync", |b| {
        b.iter(|| {
            use failsafe::CircuitBreaker;
            assert!(fs.call(|| Ok::<u64, ()>(black_box(1))).is_ok())
        })
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("breaker_open_reject");
    let failing = service_fn(|n: u64| async move {
        if n == 0 {
            Err::<(), BoxError>("down".into())
        } else {
            Ok(())
        }
    });

    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut s = layer.layer(failing);
    assert!(!call_now(&mut s, 0));
    g.bench_function("towerguard_open", |b| {
        b.iter(|| assert!(!call_now(&mut s, black_box(1u64))))
    });
    layer.handle().force_open();
    g.bench_function("towerguard_forced_open", |b| {
        b.iter(|| assert!(!call_now(&mut s, black_box(1u64))))
    });

    let mut s = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .unwrap()
        .layer(failing);
    assert!(!call_now(&mut s, 0));
    g.bench_function("tower_resilience_open", |b| {
        b.iter(|| assert!(!call_now(&mut s, black_box(1u64))))
    });

    let fs = towerguard_bench::peers::failsafe_breaker(1, Duration::from_secs(3600));
    {
        use failsafe::CircuitBreaker;
        let _ = fs.call(|| Err::<(), ()>(()));
        g.bench_function("failsafe_open_sync", |b| {
            b.iter(|| assert!(fs.call(|| Ok::<u64, ()>(black_box(1))).is_err()))
        });
    }
    g.finish();
}

/// Runs a service on `threads` threads for `iters` calls each.
type Hammer = Box<dyn Fn(usize, u64) -> Duration>;

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("breaker_threads");
    g.measurement_time(Duration::from_secs(4));
    let cases: Vec<(&str, Hammer)> = vec![
        ("towerguard_consecutive", {
            let s = ours_consecutive().layer(noop());
            Box::new(move |t, n| hammer(&s, t, n, |_| 1u64))
        }),
        ("towerguard_time_window", {
            let s = ours_time().layer(noop());
            Box::new(move |t, n| hammer(&s, t, n, |_| 1u64))
        }),
        ("towerguard_count_window", {
            let s = ours_count().layer(noop());
            Box::new(move |t, n| hammer(&s, t, n, |_| 1u64))
        }),
        ("tower_resilience_count_window", {
            let s = resilience_count().layer(noop());
            Box::new(move |t, n| hammer(&s, t, n, |_| 1u64))
        }),
    ];
    for (name, run) in &cases {
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_function(format!("{name}/{threads}_threads"), |b| {
                b.iter_custom(|iters| run(threads, iters))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = closed, open, contended
}
criterion_main!(benches);
