//! The README's tool-calling loop, exactly as the README prints it (a test in
//! `examples/tests/readme.rs` checks the two stay the same), run through a cost meter and a
//! fallback over two fake providers: the primary is down, the second asks for the tool once
//! and then answers. No API keys needed.
//!
//! `cargo run -p towerguard-examples --bin readme_tools`

use std::error::Error;

use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};
use towerguard_cost_meter::{Budget, CostMeterLayer, Ledger, usd};
use towerguard_llm_core::{ErrorKind, LlmRequest, Message, Tool, ToolCall};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_testkit::{FakeProvider, Outcome};

/// The application's tool.
fn run_tool(name: &str, arguments: &str) -> String {
    match (name, serde_json::from_str::<serde_json::Value>(arguments)) {
        ("get_weather", Ok(args)) => json!({"city": args["city"], "celsius": 21}).to_string(),
        _ => json!({"error": "unknown tool or invalid arguments"}).to_string(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let down = FakeProvider::always("openai", Outcome::fail(ErrorKind::Overloaded));
    let claude = FakeProvider::scripted(
        "anthropic",
        [
            Outcome::ok().with_tool_calls(vec![ToolCall::new(
                "toolu_01",
                "get_weather",
                r#"{"city":"Paris"}"#,
            )]),
            Outcome::ok().with_content("It is 21 °C in Paris."),
        ],
    );
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(5.0)).daily())
        .build()?;
    let mut client = ServiceBuilder::new()
        .layer(CostMeterLayer::new(ledger.clone()))
        .layer(
            FallbackLayer::builder()
                .primary("openai")
                .provider("anthropic", claude)
                .model_for("anthropic", "claude-sonnet-4-5")
                .build()?,
        )
        .service(down);

    // README-BEGIN
    let weather = Tool::function(
        "get_weather",
        "The current weather in a city",
        json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
    );
    let mut conversation = vec![Message::user("How warm is it in Paris?")];
    let answer = loop {
        let req = LlmRequest::new("gpt-4o-mini", conversation.clone())
            .with_tool(weather.clone())
            .with_max_tokens(512)
            .with_client_key("tenant-42");
        let resp = client.ready().await?.call(req).await?;
        if resp.tool_calls().is_empty() {
            break resp.text().into_owned();
        }
        // Keep the assistant's turn (its tool calls, and any thinking) and answer each call.
        conversation.push(resp.choices[0].message.clone());
        for call in resp.tool_calls() {
            conversation.push(Message::tool_result(
                &call.id,
                run_tool(&call.name, &call.arguments),
            ));
        }
    };
    println!("{answer}");
    // README-END
    assert_eq!(answer, "It is 21 °C in Paris.");
    assert_eq!(conversation.len(), 3);
    let spent: u64 = ledger.stats().iter().map(|r| r.spend.cost).sum();
    println!(
        "spent {spent} nano-dollars over {} calls",
        ledger.stats().iter().map(|r| r.spend.requests).sum::<u64>()
    );
    Ok(())
}
