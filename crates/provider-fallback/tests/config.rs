//! Nonsense configuration is refused by `build`, naming the field; nothing panics.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::BoxError;
use towerguard_provider_fallback::{
    AllDown, ConfigError, FallbackLayerBuilder, MAX_PROVIDERS, Strategy,
};

type Builder = FallbackLayerBuilder<(), String, BoxError>;

/// A primary `a` and one backup `b`: a valid start.
fn two() -> Builder {
    Builder::generic().primary("a").provider("b", ())
}

fn refused(b: Builder) -> ConfigError {
    match b.build() {
        Ok(_) => panic!("nonsense was accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_valid_configuration_builds() {
    assert!(two().build().is_ok());
    assert!(
        two()
            .hedge_after(Duration::from_millis(250))
            .when_all_down(AllDown::WaitForRecovery(Duration::from_secs(30)))
            .price_for("a", 0.0)
            .max_providers(usize::MAX)
            .build()
            .is_ok()
    );
}

#[test]
fn providers_must_be_there_named_once_and_few_enough() {
    let e = refused(Builder::generic().primary("a"));
    assert_eq!(e.field(), "provider");
    assert!(e.reason().contains("at least one provider"), "{e}");

    let e = refused(two().provider("a", ()));
    assert_eq!(e.field(), "provider");
    assert!(e.reason().contains("`a` is used twice"), "{e}");

    assert_eq!(refused(two().provider("", ())).field(), "provider");

    let mut many = two();
    for i in 0..MAX_PROVIDERS {
        many = many.provider(format!("p{i}"), ());
    }
    assert_eq!(refused(many).field(), "provider");
}

#[test]
fn unknown_names_are_reported_under_the_method_that_used_them() {
    let e = refused(two().model_for("nobody", "x"));
    assert_eq!(e.field(), "model_for");
    assert!(e.to_string().contains("nobody"), "{e}");
    assert_eq!(refused(two().price_for("ghost", 1.0)).field(), "price_for");
    assert_eq!(
        refused(two().health_check("ghost", || true)).field(),
        "health_check"
    );
    let e = refused(two().chain_when(|_| true, ["b", "ghost"]));
    assert_eq!(e.field(), "chain_when");
    assert!(e.reason().contains("ghost"), "{e}");
    let e = refused(two().chain_when(|_| true, ["b", "b"]));
    assert_eq!(e.field(), "chain_when");
    assert_eq!(
        refused(two().start_with("m", "ghost")).field(),
        "start_with"
    );
}

#[test]
fn routes_need_requests_that_name_their_model() {
    // generic requests have no model to route by
    let e = refused(two().start_with("m", "b"));
    assert_eq!(e.field(), "start_with");
    assert!(e.reason().contains("name their model"), "{e}");
}

#[test]
fn prices_must_be_finite_and_not_negative() {
    for price in [f64::NAN, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
        let e = refused(two().price_for("b", price));
        assert_eq!(e.field(), "price_for", "{price}");
        assert!(e.reason().contains("`b`"), "{e}");
    }
}

#[test]
fn counts_and_waits_must_make_sense() {
    assert_eq!(refused(two().max_providers(0)).field(), "max_providers");
    for delay in [Duration::ZERO, Duration::from_micros(10), Duration::MAX] {
        assert_eq!(refused(two().hedge_after(delay)).field(), "hedge_after");
        let wait = AllDown::WaitForRecovery(delay);
        assert_eq!(refused(two().when_all_down(wait)).field(), "when_all_down");
    }
    let e = refused(
        two()
            .strategy(Strategy::FailFast)
            .hedge_after(Duration::from_secs(1)),
    );
    assert_eq!(e.field(), "hedge_after");
    let e = refused(
        two()
            .health_aware(false)
            .when_all_down(AllDown::WaitForRecovery(Duration::from_secs(1))),
    );
    assert_eq!(e.field(), "when_all_down");
}
