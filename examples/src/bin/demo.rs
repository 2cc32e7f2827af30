//! The quick-start demo: sends requests through fake providers (no API keys, no network) and
//! prints what happened to each, then shows how real provider error answers are classified.
//!
//! `cargo run -p towerguard-examples -- [requests] [seed]`

use std::time::Duration;

use http::HeaderMap;
use tower::{Service, ServiceExt};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, Message, classify_http_error};
use towerguard_testkit::{FakeProvider, FaultPlan, Latency};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let requests: u32 = parse_arg(args.next(), "requests", 12)?;
    let seed: u64 = parse_arg(args.next(), "seed", 42)?;

    println!("towerguard demo: {requests} requests to a flaky fake provider (seed {seed})\n");
    let faults = FaultPlan::seeded(seed)
        .fail(ErrorKind::RateLimited, 0.15)
        .fail(ErrorKind::Overloaded, 0.05)
        .fail(ErrorKind::Server, 0.10)
        .retry_after(Duration::from_secs(1))
        .latency(Latency::Uniform {
            min: Duration::from_millis(5),
            max: Duration::from_millis(40),
        })
        .build()?;
    let mut provider = FakeProvider::chaotic("deepseek", faults);

    for n in 1..=requests {
        let req = LlmRequest::new(
            "deepseek-chat",
            vec![
                Message::system("You are terse."),
                Message::user(format!("Question number {n}?")),
            ],
        )
        .with_max_tokens(64)
        .with_client_key("demo-client");
        let id = req.request_id().clone();
        match provider.ready().await?.call(req).await {
            Ok(resp) => println!(
                "{id}  ok     {:<9} {} in / {} out tokens: {:?}",
                resp.provider(),
                resp.usage.total_input_tokens(),
                resp.usage.output_tokens,
                resp.content
            ),
            Err(err) => println!("{id}  {}", describe(&err)),
        }
    }
    println!(
        "\nprovider saw {} calls: {} ok, {} failed",
        provider.calls(),
        provider.successes(),
        provider.failures()
    );

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
        println!("  {}", describe(&err));
        if let Some(detail) = err.detail() {
            println!("      operator detail (redacted): {detail}");
        }
    }
    Ok(())
}

fn describe(err: &LlmError) -> String {
    format!(
        "{:<24} retry={:<5} breaker={:<5} fallback={:<5} {}",
        err.kind().as_str(),
        err.is_retryable(),
        err.counts_for_breaker(),
        err.should_fallback(),
        err
    )
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
