//! Configuration: nonsense is refused at build time naming the field, no input panics, and
//! memory does not grow with huge inputs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use tower::{BoxError, Layer, service_fn};
use towerguard_circuit_breaker::{CircuitBreakerLayer, CircuitBreakerLayerBuilder};
use towerguard_testkit::call_now;

fn field(b: CircuitBreakerLayerBuilder) -> String {
    b.build().unwrap_err().field().to_owned()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn nonsense_is_refused_naming_the_field() {
    let b = CircuitBreakerLayer::builder;
    let secs = Duration::from_secs;
    for rate in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
        assert_eq!(field(b().failure_rate(rate)), "failure_rate", "{rate}");
        assert_eq!(
            field(b().slow_calls(secs(1), rate)),
            "slow_calls.rate",
            "{rate}"
        );
    }
    assert_eq!(
        field(b().slow_calls(Duration::ZERO, 0.5)),
        "slow_calls.threshold"
    );
    assert_eq!(field(b().open_duration(Duration::ZERO)), "open_duration");
    assert_eq!(field(b().count_window(0)), "count_window");
    assert_eq!(field(b().count_window(100_001)), "count_window");
    assert_eq!(field(b().count_window(u32::MAX)), "count_window");
    assert_eq!(field(b().count_window(10).min_calls(11)), "min_calls");
    assert_eq!(field(b().failure_rate(0.5).min_calls(101)), "min_calls");
    assert_eq!(field(b().time_window(Duration::ZERO, 10)), "time_window");
    assert_eq!(field(b().time_window(secs(10), 0)), "time_window.buckets");
    assert_eq!(
        field(b().time_window(secs(3600), 1_001)),
        "time_window.buckets"
    );
    assert_eq!(
        field(b().time_window(ms(10), 20)),
        "time_window.buckets",
        "0.5 ms buckets"
    );
    for n in [0, 1_001, u32::MAX] {
        assert_eq!(field(b().half_open_permits(n)), "half_open_permits");
        assert_eq!(field(b().half_open_successes(n)), "half_open_successes");
    }
    assert_eq!(field(b().consecutive_failures(0)), "consecutive_failures");
    assert_eq!(field(b().no_consecutive_failures()), "consecutive_failures");
    let below = b().open_duration(secs(600)).max_open_duration(secs(60));
    assert_eq!(field(below), "max_open_duration");
    assert_eq!(
        field(b().open_duration(secs(60)).grow_open_duration(secs(1))),
        "max_open_duration"
    );

    assert!(b().open_duration(secs(600)).build().is_ok());
    assert!(b().count_window(100_000).min_calls(100_000).build().is_ok());
    assert!(b().time_window(ms(1_000), 1_000).build().is_ok());
    assert!(
        b().failure_rate(1.0)
            .half_open_permits(1_000)
            .build()
            .is_ok()
    );
    let msg = b().failure_rate(2.0).build().unwrap_err().to_string();
    assert!(
        msg.contains("`failure_rate`") && msg.contains("(0, 1]"),
        "{msg}"
    );
}

#[test]
fn a_count_window_smaller_than_the_default_min_calls_still_trips_on_its_rate() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .failure_rate(0.5)
        .count_window(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|_: ()| async {
        Err::<(), BoxError>("down".into())
    }));
    for _ in 0..4 {
        call_now(&mut svc, ());
    }
    assert!(
        handle.is_rejecting(),
        "4 failures of 4 calls: the default min_calls is the window's size"
    );
}

#[test]
fn the_largest_windows_cost_little_memory_until_used() {
    let count = allocation_counter::measure(|| {
        drop(
            CircuitBreakerLayer::builder()
                .count_window(100_000)
                .build()
                .unwrap(),
        );
    });
    assert!(
        count.bytes_max < 16 * 1024,
        "{} bytes for 100,000 calls",
        count.bytes_max
    );
    let time = allocation_counter::measure(|| {
        let span = Duration::from_secs(3600);
        drop(
            CircuitBreakerLayer::builder()
                .time_window(span, 1_000)
                .build()
                .unwrap(),
        );
    });
    // 32 bytes a bucket, in each of at most 32 shards
    assert!(
        time.bytes_max < 16 * 1024 + 32 * 1_000 * 32,
        "{} bytes",
        time.bytes_max
    );
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..10_000).prop_map(Duration::from_micros),
        (0u64..100_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), 0.0..=1.0f64, Just(f64::NAN), Just(1.0)]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), 0u32..20, 0u32..200_000]
}

#[derive(Debug, Clone)]
enum Win {
    None,
    Count(u32),
    Time(Duration, u32),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Whatever the inputs, `build` answers `Ok` or `Err`, and a built breaker survives
    /// failures, trips and stats without panicking.
    #[test]
    fn no_input_panics(
        consecutive in proptest::option::of(count()),
        failure_rate in proptest::option::of(rate()),
        slow in proptest::option::of((duration(), rate())),
        window in prop_oneof![
            Just(Win::None),
            count().prop_map(Win::Count),
            (duration(), count()).prop_map(|(d, n)| Win::Time(d, n)),
        ],
        min_calls in proptest::option::of(prop_oneof![any::<u64>(), 0u64..20]),
        open in duration(),
        max_open in proptest::option::of(duration()),
        grow in proptest::option::of(duration()),
        follow in any::<bool>(),
        permits in count(),
        successes in proptest::option::of(count()),
    ) {
        let mut b = CircuitBreakerLayer::builder().open_duration(open).follow_retry_after(follow);
        b = match consecutive { Some(n) => b.consecutive_failures(n), None => b.no_consecutive_failures() };
        if let Some(r) = failure_rate { b = b.failure_rate(r); }
        if let Some((t, r)) = slow { b = b.slow_calls(t, r); }
        b = match window {
            Win::None => b,
            Win::Count(n) => b.count_window(n),
            Win::Time(d, n) => b.time_window(d, n),
        };
        if let Some(m) = min_calls { b = b.min_calls(m); }
        if let Some(m) = max_open { b = b.max_open_duration(m); }
        if let Some(g) = grow { b = b.grow_open_duration(g); }
        b = b.half_open_permits(permits);
        if let Some(s) = successes { b = b.half_open_successes(s); }
        if let Ok(layer) = b.build() {
            let handle = layer.handle();
            let mut svc = layer.layer(service_fn(|fail: bool| async move {
                if fail { Err::<(), BoxError>("down".into()) } else { Ok(()) }
            }));
            for i in 0..30 {
                call_now(&mut svc, i % 3 != 0);
            }
            let stats = handle.stats();
            prop_assert_eq!(stats.successes + stats.failures + stats.rejected, 30);
            handle.reset();
        }
    }
}
