//! Runs one benchmark case a given number of times, for instruction counts under callgrind
//! (`scripts/instructions` runs each case at two counts and divides the difference, so
//! start-up cost cancels out). Instruction counts do not drift with a noisy machine, so CI
//! compares them with committed ceilings.
//!
//! `cargo run --release -p towerguard-bench --bin instructions -- <case> <calls>`

use std::hint::black_box;
use std::process::ExitCode;

use tower::Layer;
use towerguard_bench::call_now;
use towerguard_bench::readme::{ours, provider, request};
use towerguard_circuit_breaker::CircuitBreakerLayer;
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::ErrorRateLimitLayer;
use towerguard_retry_backoff::RetryLayer;
use towerguard_testkit::ReadyClient;

/// The cases, as `scripts/instructions` names them.
const CASES: [&str; 7] = [
    "bare", "pipeline", "preset", "retry", "breaker", "meter", "limiter",
];

fn run(case: &str, calls: u64) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let _guard = rt.enter();
    let req = request(0);
    macro_rules! drive {
        ($svc:expr) => {{
            let mut svc = $svc;
            for _ in 0..calls {
                black_box(call_now(&mut svc, req.clone()));
            }
        }};
    }
    match case {
        "bare" => drive!(ReadyClient),
        "pipeline" => drive!(ours(ReadyClient, true)),
        "preset" => drive!(towerguard_bench::preset::one_provider(ReadyClient)),
        "retry" => drive!(
            RetryLayer::builder()
                .max_retries(2)
                .build()
                .map_err(|e| e.to_string())?
                .layer(ReadyClient)
        ),
        "breaker" => drive!(CircuitBreakerLayer::named("openai").layer(ReadyClient)),
        "meter" => {
            let ledger = Ledger::builder()
                .budget(Budget::global(usd(1e9)).daily())
                .budget(Budget::per_client(usd(1e6)).daily())
                .build()
                .map_err(|e| e.to_string())?;
            drive!(CostMeterLayer::new(ledger).layer(ReadyClient))
        }
        "limiter" => drive!(
            ErrorRateLimitLayer::builder()
                .requests_per_minute(60_000_000_000)
                .build()
                .map_err(|e| e.to_string())?
                .layer(ReadyClient)
        ),
        "provider" => drive!(provider("openai", ReadyClient)),
        other => return Err(format!("unknown case `{other}`: one of {CASES:?}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(calls)) = (args.next(), args.next()) else {
        eprintln!("usage: instructions <case> <calls>   (cases: {CASES:?})");
        return ExitCode::from(2);
    };
    let Ok(calls) = calls.parse::<u64>() else {
        eprintln!("`{calls}` is not a number of calls");
        return ExitCode::from(2);
    };
    match run(&case, calls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
