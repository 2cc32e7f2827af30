//! The quick-start demo: the recommended pipeline on fake providers (no API keys, no
//! network), on tokio's paused clock so simulated seconds pass instantly.
//!
//! ErrorRateLimit -> CostMeter -> Fallback over [deepseek, openai, anthropic],
//! each provider: Retry -> CircuitBreaker -> fake provider.
//!
//! `cargo run -p towerguard-examples -- [requests] [seed]`

use std::time::Duration;

use http::HeaderMap;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use towerguard_circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer};
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_error_rate_limit::{ErrorRateLimitLayer, LimiterStore};
use towerguard_llm_core::{
    ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Usage, classify_http_error,
};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_retry_backoff::{Backoff, Jitter, LlmAttempts, RetryLayer, attempts};
use towerguard_testkit::{FakeProvider, FaultPlan, Latency, Outcome};

type Provider = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// Refuses requests with an empty prompt, as a provider would (HTTP 400): a client fault
/// that the error rate limiter counts.
#[derive(Clone)]
struct Validate<S>(S);

impl<S> tower::Service<LlmRequest> for Validate<S>
where
    S: tower::Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<LlmResponse, LlmError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), LlmError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        if req.messages().iter().all(|m| m.text().trim().is_empty()) {
            let err = LlmError::new(ErrorKind::InvalidRequest)
                .with_status(400)
                .with_provider("deepseek");
            return Box::pin(std::future::ready(Err(err)));
        }
        Box::pin(self.0.call(req))
    }
}

/// One provider's stack: Retry -> CircuitBreaker -> the (fake) client.
fn provider_stack(
    client: FakeProvider,
    breakers: &mut Vec<CircuitBreakerHandle>,
) -> Result<Provider, Box<dyn std::error::Error>> {
    let breaker = CircuitBreakerLayer::builder()
        .name(client.name().to_owned())
        .consecutive_failures(4)
        .open_duration(Duration::from_secs(20))
        .build()?;
    breakers.push(breaker.handle());
    let retry = RetryLayer::builder()
        .max_retries(2)
        .backoff(
            Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(4))
                .with_jitter(Jitter::Full),
        )
        .record_attempts(LlmAttempts)
        .build()?;
    Ok(BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(retry)
            .layer(breaker)
            .service(client),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::time::pause();
    let mut args = std::env::args().skip(1);
    let requests: u32 = parse_arg(args.next(), "requests", 30)?;
    let seed: u64 = parse_arg(args.next(), "seed", 42)?;
    println!(
        "towerguard demo: {requests} requests through the recommended pipeline (seed {seed})\n"
    );

    // deepseek is flaky (rate limits, overloads, server errors), then goes down for a while;
    // openai is slower but healthy; anthropic is the last resort.
    let deepseek = FakeProvider::chaotic(
        "deepseek",
        FaultPlan::seeded(seed)
            .fail(ErrorKind::RateLimited, 0.15)
            .fail(ErrorKind::Overloaded, 0.05)
            .fail(ErrorKind::Server, 0.10)
            .retry_after(Duration::from_secs(1))
            .latency(Latency::Uniform {
                min: Duration::from_millis(200),
                max: Duration::from_millis(900),
            })
            .build()?,
    );
    let openai = FakeProvider::always(
        "openai",
        Outcome::ok_with_usage(Usage::new(420, 180)).after(Duration::from_millis(1200)),
    );
    let anthropic = FakeProvider::always(
        "anthropic",
        Outcome::ok_with_usage(Usage::new(400, 150)).after(Duration::from_millis(1500)),
    );

    let mut breakers = Vec::new();
    let fallback = FallbackLayer::builder()
        .primary("deepseek")
        .model_for("deepseek", "deepseek-chat")
        .provider("openai", provider_stack(openai.clone(), &mut breakers)?)
        .model_for("openai", "gpt-4o-mini")
        .provider(
            "anthropic",
            provider_stack(anthropic.clone(), &mut breakers)?,
        )
        .model_for("anthropic", "claude-sonnet-4-5")
        .build()?;
    let fallback_stats = fallback.handle();
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(5.0)).daily().alert_at(0.8))
        .budget(Budget::per_client(usd(0.02)).daily())
        .on_budget_alert(|a| {
            println!(
                "  !! budget alert: {} at ${:.4}",
                a.budget,
                a.spent as f64 / 1e9
            )
        })
        .build()?;
    let limiter = ErrorRateLimitLayer::builder()
        .threshold(3)
        .window(Duration::from_secs(60))
        .penalty(Duration::from_secs(30), Duration::from_secs(600))
        .build()?;
    let limiter_handle = limiter.handle();
    let primary = provider_stack(deepseek.clone(), &mut breakers)?;
    let pipeline = ServiceBuilder::new()
        .layer(limiter)
        .layer_fn(Validate)
        .layer(CostMeterLayer::new(ledger.clone()))
        .layer(fallback)
        .service(primary);

    let start = tokio::time::Instant::now();
    for n in 1..=requests {
        // from request 12 on, deepseek is down hard (its breaker will open)
        if n == 12 {
            deepseek.push_script(vec![Outcome::fail(ErrorKind::Server); 12]);
        }
        // "mallory" sends malformed requests and gets throttled
        let (client, prompt) = match n % 5 {
            0 => ("mallory", ""),
            1 | 3 => ("acme", "Summarise this contract in one line."),
            _ => ("globex", "Translate 'good morning' to French."),
        };
        let req = LlmRequest::new("deepseek-chat", vec![Message::user(prompt)])
            .with_max_tokens(200)
            .with_client_key(client);
        let sent = start.elapsed();
        let result = pipeline.clone().oneshot(req).await;
        let took = start.elapsed() - sent;
        match result {
            Ok(resp) => println!(
                "t={:>6.2}s  #{n:<3} {client:<8} ok   by {:<9} {:<18} attempts {}  {:>5} tokens  {:.1?}",
                sent.as_secs_f64(),
                resp.provider(),
                resp.model(),
                attempts(&resp.extensions),
                resp.usage.total_tokens(),
                took,
            ),
            Err(e) => println!(
                "t={:>6.2}s  #{n:<3} {client:<8} ERR  {:<24} {}",
                sent.as_secs_f64(),
                e.kind().as_str(),
                e.client_message()
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    println!(
        "\nproviders:  deepseek {} calls, openai {} calls, anthropic {} calls",
        deepseek.calls(),
        openai.calls(),
        anthropic.calls()
    );
    for b in &breakers {
        let s = b.stats();
        println!(
            "breaker {:<9} {:<10} failures {:>3}  rejected {:>3}",
            b.name().unwrap_or("?"),
            s.state.as_str(),
            s.failures,
            s.rejected
        );
    }
    let f = fallback_stats.stats();
    println!(
        "fallback:   {} requests, {} fallbacks taken",
        f.requests, f.fallbacks
    );
    println!("cost ledger:");
    for row in ledger.stats() {
        println!(
            "  {:<9} {:<18} {:>3} requests {:>6} in {:>6} out  ${:.6}",
            row.provider,
            row.model,
            row.spend.requests,
            row.spend.tokens.input,
            row.spend.tokens.output,
            row.spend.cost_usd()
        );
    }
    let snap = ledger.snapshot();
    println!(
        "  total ${:.6}; per client: {}",
        snap.total.cost_usd(),
        snap.clients
            .iter()
            .map(|(c, s)| format!("{c} ${:.6}", s.cost_usd()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for t in limiter_handle.throttled().await {
        println!(
            "throttled:  {} for {:.0?} more (offence {})",
            t.key, t.remaining, t.offences
        );
    }

    println!("\nhow real provider answers are classified:");
    let samples: [(&str, u16, &[u8]); 4] = [
        (
            "openai",
            429,
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        ),
        (
            "openai",
            400,
            br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        ),
        (
            "anthropic",
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        (
            "openai",
            401,
            br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc123secret456.","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        ),
    ];
    for (provider, status, body) in samples {
        let err = classify_http_error(status, &HeaderMap::new(), body).with_provider(provider);
        println!(
            "  {:<24} retry={:<5} breaker={:<5} fallback={:<5} {}",
            err.kind().as_str(),
            err.is_retryable(),
            err.counts_for_breaker(),
            err.should_fallback(),
            err
        );
        if let Some(detail) = err.detail() {
            println!("      operator detail (redacted): {detail}");
        }
    }
    Ok(())
}

fn parse_arg<T: std::str::FromStr>(
    arg: Option<String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match arg {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| format!("`{name}` must be a number, got {s:?}")),
    }
}
