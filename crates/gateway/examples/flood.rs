//! A flood of distinct client keys through the gateway, in process (the axum router called
//! directly, no sockets), printing the resident memory as it goes: the per-tenant state of
//! the limiter and the meter is bounded, so memory levels off instead of growing with the
//! number of keys.
//!
//! `cargo run --release -p towerguard-gateway --example flood -- [keys]` (default 1,000,000)

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use tower::ServiceExt;
use towerguard::preset::{BudgetSettings, LimitSettings, Preset, ProviderSpec};
use towerguard::testkit::FakeProvider;
use towerguard_gateway::{Gateway, PipelineOps, Settings};

/// The process's resident memory in MiB, from /proc (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let limits = LimitSettings::default();
    let (pipeline, handle) = Preset::new()
        .provider(ProviderSpec::new("openai", FakeProvider::new("openai")).model("gpt-4o-mini"))
        .budgets(BudgetSettings {
            daily_usd: Some(1e9),
            per_tenant_daily_usd: Some(1e6),
            ..BudgetSettings::default()
        })
        .limits(limits)
        .build()?;
    let ops = PipelineOps::new(handle);
    let router = Gateway::new(pipeline, Arc::new(ops), Settings::default()).router();
    let body =
        r#"{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    println!("{:>10} {:>10}", "keys", "RSS MiB");
    println!("{:>10} {:>10.1}", 0, rss_mib());
    let mut peak = 0.0f64;
    for i in 0..keys {
        let req = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer client-{i}"))
            .body(Body::from(body))?;
        let resp = router.clone().oneshot(req).await?;
        if !resp.status().is_success() {
            return Err(format!("request {i}: status {}", resp.status()).into());
        }
        let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
        if (i + 1) % (keys / 10).max(1) == 0 {
            let rss = rss_mib();
            peak = peak.max(rss);
            println!("{:>10} {:>10.1}", i + 1, rss);
        }
    }
    println!("peak {peak:.1} MiB after {keys} distinct keys");
    Ok(())
}
