//! The whole suite in one run: every layer of ours and of the peers on the same work, the
//! README's pipeline, the facade's preset, and the failure paths users care about.
//!
//! The work is always the same: [`request`] (one user message, `max_tokens` 64, a client
//! key) through a service over a client that answers at once ([`ReadyClient`], or
//! [`FailingClient`] where a case needs the upstream to fail), driven by [`call_now`]
//! without a runtime's scheduler. Every case's figure is therefore its layers' own cost plus
//! the bare client's (`success/bare_client`, `failure/bare_failing_client`).
//!
//! Before the timings the suite prints a table of heap allocations per call of every case.
//!
//! `cargo bench -p towerguard-bench --bench suite`
//! (quick check: `cargo bench -p towerguard-bench --bench suite -- --warm-up-time 0.2 --measurement-time 0.5`)
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tower::{Layer, Service, ServiceBuilder};
use tower_resilience_circuitbreaker::CircuitBreakerError;
use towerguard_bench::clients::{FailingClient, error_now};
use towerguard_bench::peers::{
    self, Failsafe, GovernorDirect, GovernorKeyed, PeerError, failsafe_breaker, resilience_stack,
};
use towerguard_bench::readme::{self, request};
use towerguard_bench::{call_now, preset};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::RetryLayer;
use towerguard_testkit::ReadyClient;

// ---- success: ours ----------------------------------------------------------------------------

fn bare() -> ReadyClient {
    ReadyClient
}

fn ours_retry() -> impl Service<LlmRequest> {
    RetryLayer::builder()
        .max_retries(2)
        .build()
        .unwrap()
        .layer(ReadyClient)
}

fn ours_breaker() -> impl Service<LlmRequest> {
    CircuitBreakerLayer::named("openai").layer(ReadyClient)
}

/// Fallback from a primary that answers to a backup that is never called.
fn ours_fallback() -> impl Service<LlmRequest> {
    FallbackLayer::builder()
        .primary("openai")
        .provider("anthropic", ReadyClient)
        .build()
        .unwrap()
        .layer(ReadyClient)
}

/// A global daily budget and a per-client daily budget, both far from reached.
fn metered_ledger() -> Ledger {
    Ledger::builder()
        .budget(Budget::global(usd(1e9)).daily())
        .budget(Budget::per_client(usd(1e6)).daily())
        .build()
        .unwrap()
}

fn ours_cost_meter() -> impl Service<LlmRequest> {
    CostMeterLayer::new(metered_ledger()).layer(ReadyClient)
}

/// Error tracking per client key, with an RPM no benchmark reaches.
fn ours_error_rate_limit() -> impl Service<LlmRequest> {
    ErrorRateLimitLayer::builder()
        .requests_per_minute(60_000_000_000)
        .build()
        .unwrap()
        .layer(ReadyClient)
}

fn ours_readme_pipeline() -> impl Service<LlmRequest> {
    readme::ours(ReadyClient, true)
}

fn ours_preset() -> impl Service<LlmRequest> {
    preset::one_provider(ReadyClient)
}

fn ours_preset_two_providers() -> impl Service<LlmRequest> {
    preset::two_providers(ReadyClient)
}

// ---- success: the peers -----------------------------------------------------------------------

fn tower_retry() -> impl Service<LlmRequest> {
    peers::tower_retry().layer(ReadyClient)
}

fn tower_rate_limit() -> impl Service<LlmRequest> {
    peers::tower_rate_limit().layer(ReadyClient)
}

fn tower_concurrency_limit() -> impl Service<LlmRequest> {
    peers::tower_concurrency_limit().layer(ReadyClient)
}

fn tower_timeout() -> impl Service<LlmRequest> {
    peers::tower_timeout().layer(ReadyClient)
}

fn resilience_retry() -> impl Service<LlmRequest> {
    peers::resilience_retry::<LlmError>().layer(ReadyClient)
}

fn resilience_breaker() -> impl Service<LlmRequest> {
    peers::resilience_breaker().layer(ReadyClient)
}

fn resilience_rate_limiter() -> impl Service<LlmRequest> {
    peers::resilience_rate_limiter().layer(ReadyClient)
}

fn resilience_time_limiter() -> impl Service<LlmRequest> {
    peers::resilience_time_limiter().layer(ReadyClient)
}

fn resilience_fallback() -> impl Service<LlmRequest> {
    peers::resilience_fallback(ReadyClient).layer(ReadyClient)
}

fn resilience_four_layer_stack() -> impl Service<LlmRequest> {
    resilience_stack(ReadyClient)
}

fn failsafe() -> impl Service<LlmRequest> {
    Failsafe::new(failsafe_breaker(5, Duration::from_secs(60)), ReadyClient)
}

fn governor_direct() -> impl Service<LlmRequest> {
    GovernorDirect::unlimited(ReadyClient)
}

fn governor_keyed() -> impl Service<LlmRequest> {
    GovernorKeyed::unlimited(ReadyClient)
}

// ---- failure paths ----------------------------------------------------------------------------

/// `svc` after one call that trips it, checked to refuse the next with `kind`.
fn tripped<S>(mut svc: S, kind: ErrorKind) -> S
where
    S: Service<LlmRequest, Error = LlmError>,
{
    let _ = error_now(&mut svc, request(0));
    let refused = error_now(&mut svc, request(0)).map(|e| e.kind());
    assert_eq!(refused, Some(kind), "the case is not refusing as it should");
    svc
}

fn bare_failing() -> FailingClient {
    FailingClient::DOWN
}

/// Our breaker, opened by one failure for an hour.
fn ours_breaker_open() -> impl Service<LlmRequest> {
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(3600))
        .build()
        .unwrap();
    tripped(breaker.layer(FailingClient::DOWN), ErrorKind::CircuitOpen)
}

/// tower-resilience's breaker, opened by one failure for an hour.
fn resilience_breaker_open() -> impl Service<LlmRequest> {
    let mut svc = peers::resilience_breaker_tripping().layer(FailingClient::DOWN);
    let _ = error_now(&mut svc, request(0));
    let refused = error_now(&mut svc, request(0));
    assert!(matches!(refused, Some(CircuitBreakerError::OpenCircuit)));
    svc
}

/// failsafe's breaker, opened by one failure for an hour.
fn failsafe_open() -> impl Service<LlmRequest> {
    let breaker = failsafe_breaker(1, Duration::from_secs(3600));
    let mut svc = Failsafe::new(breaker, FailingClient::DOWN);
    let _ = error_now(&mut svc, request(0));
    assert!(matches!(
        error_now(&mut svc, request(0)),
        Some(PeerError::Refused)
    ));
    svc
}

/// The primary fails at once, the backup answers.
fn ours_fallback_step() -> impl Service<LlmRequest> {
    FallbackLayer::builder()
        .primary("openai")
        .provider("anthropic", ReadyClient)
        .build()
        .unwrap()
        .layer(FailingClient::DOWN)
}

fn resilience_fallback_step() -> impl Service<LlmRequest> {
    peers::resilience_fallback(ReadyClient).layer(FailingClient::DOWN)
}

/// A client throttled for an hour after one bad request of its own.
fn ours_throttled() -> impl Service<LlmRequest> {
    let limiter = ErrorRateLimitLayer::builder()
        .threshold(1)
        .penalty(Duration::from_secs(3600), Duration::from_secs(3600))
        .build()
        .unwrap();
    tripped(
        limiter.layer(FailingClient::BAD_REQUEST),
        ErrorKind::Throttled,
    )
}

/// governor's keyed limiter at one request per client per hour, after that request.
fn governor_keyed_refusing() -> impl Service<LlmRequest> {
    let mut svc = GovernorKeyed::one_per_hour(ReadyClient);
    assert!(call_now(&mut svc, request(0)));
    assert!(matches!(
        error_now(&mut svc, request(0)),
        Some(PeerError::Refused)
    ));
    svc
}

/// A per-client budget smaller than one request's worst case.
fn ours_budget_refusal() -> impl Service<LlmRequest> {
    let ledger = Ledger::builder()
        .budget(Budget::per_client(usd(1e-6)).daily())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CostMeterLayer::new(ledger))
        .service(ReadyClient);
    let refused = error_now(&mut svc, request(0)).map(|e| e.kind());
    assert_eq!(refused, Some(ErrorKind::BudgetExceeded));
    svc
}

// ---- the list of cases, and what is done with each ------------------------------------------

/// What is done with each case: count its allocations, or time it.
trait Cases {
    /// The case `name`, built by `make`, whose calls answer `Ok` when `answers` is true and
    /// fail otherwise.
    fn case<S: Service<LlmRequest>>(&mut self, name: &str, answers: bool, make: fn() -> S);
}

fn success(v: &mut impl Cases) {
    v.case("bare_client", true, bare);
    v.case("towerguard_retry", true, ours_retry);
    v.case("towerguard_breaker", true, ours_breaker);
    v.case("towerguard_fallback_primary_succeeds", true, ours_fallback);
    v.case("towerguard_cost_meter", true, ours_cost_meter);
    v.case("towerguard_error_rate_limit", true, ours_error_rate_limit);
    v.case("towerguard_readme_pipeline", true, ours_readme_pipeline);
    v.case("towerguard_preset", true, ours_preset);
    v.case(
        "towerguard_preset_two_providers",
        true,
        ours_preset_two_providers,
    );
    v.case("tower_retry_tps_budget", true, tower_retry);
    v.case("tower_rate_limit", true, tower_rate_limit);
    v.case("tower_concurrency_limit", true, tower_concurrency_limit);
    v.case("tower_timeout", true, tower_timeout);
    v.case("tower_resilience_retry", true, resilience_retry);
    v.case("tower_resilience_circuit_breaker", true, resilience_breaker);
    v.case(
        "tower_resilience_rate_limiter",
        true,
        resilience_rate_limiter,
    );
    v.case(
        "tower_resilience_time_limiter",
        true,
        resilience_time_limiter,
    );
    v.case(
        "tower_resilience_fallback_primary_succeeds",
        true,
        resilience_fallback,
    );
    v.case(
        "tower_resilience_four_layer_stack",
        true,
        resilience_four_layer_stack,
    );
    v.case("failsafe_breaker", true, failsafe);
    v.case("governor_direct_check", true, governor_direct);
    v.case("governor_keyed_check", true, governor_keyed);
}

fn failure(v: &mut impl Cases) {
    v.case("bare_failing_client", false, bare_failing);
    v.case("towerguard_breaker_open", false, ours_breaker_open);
    v.case(
        "tower_resilience_breaker_open",
        false,
        resilience_breaker_open,
    );
    v.case("failsafe_breaker_open", false, failsafe_open);
    v.case("towerguard_one_fallback_step", true, ours_fallback_step);
    v.case(
        "tower_resilience_one_fallback_step",
        true,
        resilience_fallback_step,
    );
    v.case("towerguard_throttled_client", false, ours_throttled);
    v.case("governor_keyed_refusing", false, governor_keyed_refusing);
    v.case("towerguard_budget_refusal", false, ours_budget_refusal);
}

/// Heap allocations per call of each case, averaged over many calls after a warm-up.
struct Allocations {
    group: &'static str,
    rows: Vec<(String, f64)>,
}

impl Cases for Allocations {
    fn case<S: Service<LlmRequest>>(&mut self, name: &str, answers: bool, make: fn() -> S) {
        const N: u64 = 10_000;
        let mut svc = make();
        let req = request(0);
        for _ in 0..100 {
            assert_eq!(call_now(&mut svc, req.clone()), answers, "{name}");
        }
        let info = allocation_counter::measure(|| {
            for _ in 0..N {
                assert_eq!(call_now(&mut svc, req.clone()), answers);
            }
        });
        let per_call = info.count_total as f64 / N as f64;
        self.rows.push((format!("{}/{name}", self.group), per_call));
    }
}

fn print_allocations() {
    let mut table = Allocations {
        group: "success",
        rows: Vec::new(),
    };
    success(&mut table);
    table.group = "failure";
    failure(&mut table);
    let width = table.rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    println!("heap allocations per call, averaged over 10,000 calls; `added`: over the bare");
    println!("client of the group, whose one allocation is its answer (the response, or the");
    println!("error); below zero: the case refuses without calling the client");
    println!("  {:<width$}  {:>8}  {:>8}", "case", "per call", "added");
    let mut baseline = 0.0;
    for (name, per_call) in &table.rows {
        if name.ends_with("/bare_client") || name.ends_with("/bare_failing_client") {
            baseline = *per_call;
        }
        let added = per_call - baseline;
        println!("  {name:<width$}  {per_call:>8.2}  {added:>8.2}");
    }
    println!();
}

/// Times each case in one criterion group.
struct Timings<'a>(BenchmarkGroup<'a, WallTime>);

impl Cases for Timings<'_> {
    fn case<S: Service<LlmRequest>>(&mut self, name: &str, answers: bool, make: fn() -> S) {
        let mut svc = make();
        let req = request(0);
        self.0.bench_function(name, |b| {
            b.iter(|| assert_eq!(call_now(&mut svc, black_box(req.clone())), answers))
        });
    }
}

fn suite(c: &mut Criterion) {
    // Layers that read tokio's clock or make tokio timers find this runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    print_allocations();
    {
        let mut timings = Timings(c.benchmark_group("success"));
        success(&mut timings);
        timings.0.finish();
    }
    let mut timings = Timings(c.benchmark_group("failure"));
    failure(&mut timings);
    timings.0.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = suite
}
criterion_main!(benches);
