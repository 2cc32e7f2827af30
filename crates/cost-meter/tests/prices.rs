//! Prices, windows and the checks on them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use towerguard_cost_meter::{ModelInfo, Price, PriceTable, Tokens, Window, usd};

#[test]
fn cost_is_rounded_up_and_saturates() {
    let p = Price {
        input: 150_000,
        output: 600_000,
        cached_input: 75_000,
        cache_write: 1,
    };
    let t = Tokens {
        input: 3,
        output: 2,
        cached_input: 1,
        cache_write: 1,
    };
    // 450_000 + 1_200_000 + 75_000 + 1 pico-dollars, rounded up to nano-dollars
    assert_eq!(p.cost(t), 1_726);
    let all = Tokens {
        input: u64::MAX,
        ..t
    };
    assert_eq!(p.cost(all), u64::MAX);
    assert_eq!(Price::FREE.cost(all), 0);
}

#[test]
fn negative_and_nan_prices_are_refused_naming_the_field() {
    assert_eq!(
        Price::per_million_usd(-1.0, 2.0).unwrap_err().field(),
        "input"
    );
    assert_eq!(
        Price::per_million_usd(1.0, f64::NAN).unwrap_err().field(),
        "output"
    );
    assert!(Price::per_million_usd(1.0, f64::INFINITY).is_err());
    let p = Price::per_million_usd(1.0, 2.0).unwrap();
    assert_eq!(
        (p.input, p.output, p.cache_write),
        (1_000_000, 2_000_000, 1_000_000)
    );
    assert_eq!(usd(-3.0), 0, "a limit of usd(-3.0) is refused as 0");
    assert_eq!(usd(f64::NAN), 0);
    assert_eq!(usd(1.5), 1_500_000_000);
}

#[test]
fn dated_snapshots_and_prefixed_names_are_found() {
    let t = PriceTable::builtin();
    assert!(t.len() >= 8, "the built-in file parses");
    assert!(t.get("gpt-4o-mini-2024-07-18").is_some());
    assert!(t.get("openai/gpt-4o-mini").is_some());
    assert!(t.get("openai/gpt-4o-mini-20240718").is_some());
    assert!(t.get("gpt-4o-mini-2024-07").is_none());
    assert!(t.get("mystery-model").is_none());
    let mut t = PriceTable::new();
    t.insert("anthropic/claude-3-5-sonnet", ModelInfo::default());
    assert!(t.get("claude-3-5-sonnet-20241022").is_some());
}

#[test]
fn calendar_windows() {
    const S: u64 = 1_000_000_000;
    // 2026-01-31 23:59:59 UTC and a second later
    let jan31 = 1_769_903_999 * S;
    let feb1 = jan31 + S;
    assert_eq!(Window::Monthly.id(jan31) + 1, Window::Monthly.id(feb1));
    assert_eq!(Window::Daily.id(jan31) + 1, Window::Daily.id(feb1));
    // 2024-02-29 and 2024-03-01 (a leap year), 1970-01-31 and 1970-02-01
    let feb29 = 19_782 * 86_400 * S;
    assert_eq!(
        Window::Monthly.id(feb29) + 1,
        Window::Monthly.id(feb29 + 86_400 * S)
    );
    assert_eq!(
        Window::Monthly.id(30 * 86_400 * S) + 1,
        Window::Monthly.id(31 * 86_400 * S)
    );
    assert_eq!(Window::Every(Duration::from_secs(60)).id(125 * S), 2);
    assert_eq!(Window::Total.id(feb1), 0);
}
