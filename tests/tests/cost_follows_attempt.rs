//! Cost follows the attempt that served, with the README's order: CostMeter above a
//! FallbackLayer. The meter's attempt hook is asked by the fallback before each provider it
//! calls, so a request for a cheap model that a dear fallback serves is reserved, budgeted and
//! billed at the dear one, and a budget that cannot cover the dear attempt stops the chain
//! before that provider is called.
#![allow(clippy::unwrap_used)]

use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use towerguard_cost_meter::{
    Budget, CostMeterLayer, Ledger, Price, PriceTable, Tokens, UnknownModel, usd,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Usage};
use towerguard_provider_fallback::FallbackLayer;
use towerguard_testkit::{FakeProvider, Outcome};

type Provider = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

const MAX_TOKENS: u32 = 100;
const USAGE: Usage = Usage::new(40, 60);

/// "cheap" at $1 per million tokens, "dear" at $20: twenty times pricier.
fn prices() -> PriceTable {
    let mut t = PriceTable::new();
    t.set_price("cheap", Price::per_million_usd(1.0, 1.0).unwrap());
    t.set_price("dear", Price::per_million_usd(20.0, 20.0).unwrap());
    t
}

fn request() -> LlmRequest {
    LlmRequest::new("cheap", vec![Message::user("hello there")]).with_max_tokens(MAX_TOKENS)
}

fn boxed(p: &FakeProvider) -> Provider {
    BoxCloneSyncService::new(p.clone())
}

/// CostMeter -> Fallback [cheapco (model "cheap", down), dearco (model "dear")].
fn pipeline(ledger: &Ledger, cheap: &FakeProvider, dear: &FakeProvider) -> Provider {
    let fallback = FallbackLayer::builder()
        .primary("cheapco")
        .provider("dearco", boxed(dear))
        .model_for("dearco", "dear")
        .build()
        .unwrap();
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(CostMeterLayer::new(ledger.clone()))
            .layer(fallback)
            .service(boxed(cheap)),
    )
}

fn spend_of<'a>(
    rows: &'a [(std::sync::Arc<str>, towerguard_cost_meter::Spend)],
    name: &str,
) -> Option<&'a towerguard_cost_meter::Spend> {
    rows.iter().find(|(n, _)| &**n == name).map(|(_, s)| s)
}

fn dear_cost(ledger: &Ledger) -> u64 {
    ledger
        .price_of("dear")
        .unwrap()
        .cost(Tokens::new(USAGE.input_tokens, USAGE.output_tokens))
}

#[tokio::test(start_paused = true)]
async fn a_cheap_request_served_by_a_dear_fallback_is_billed_and_budgeted_at_the_dear_model() {
    let cheap = FakeProvider::always("cheapco", Outcome::fail(ErrorKind::Overloaded));
    let dear = FakeProvider::always("dearco", Outcome::ok_with_usage(USAGE));
    let ledger = Ledger::builder()
        .prices(prices())
        .budget(Budget::global(usd(10.0)).daily())
        .budget(Budget::provider("dearco", usd(5.0)))
        .budget(Budget::provider("cheapco", usd(5.0)))
        .build()
        .unwrap();
    let resp = pipeline(&ledger, &cheap, &dear)
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!((resp.provider(), resp.model()), ("dearco", "dear"));

    let cost = dear_cost(&ledger);
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, 1);
    assert_eq!(snap.total.cost, cost, "billed at the model that served");
    assert_eq!(spend_of(&snap.providers, "dearco").unwrap().cost, cost);
    assert!(spend_of(&snap.providers, "cheapco").is_none());
    assert!(spend_of(&snap.models, "cheap").is_none());
    assert_eq!(ledger.budget_spent(0, None).await, cost, "global budget");
    assert_eq!(
        ledger.budget_spent(1, None).await,
        cost,
        "the serving provider's budget"
    );
    assert_eq!(
        ledger.budget_spent(2, None).await,
        0,
        "the failed provider's budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_cannot_cover_the_dear_attempt_stops_the_chain_before_calling_it() {
    let cheap = FakeProvider::always("cheapco", Outcome::fail(ErrorKind::Server));
    let dear = FakeProvider::always("dearco", Outcome::ok_with_usage(USAGE));
    // enough for the cheap model's worst case, far from the dear one's
    let ledger = Ledger::builder()
        .prices(prices())
        .budget(Budget::global(usd(0.001)))
        .build()
        .unwrap();
    let err = pipeline(&ledger, &cheap, &dear)
        .oneshot(request())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded, "{err}");
    assert_eq!(cheap.calls(), 1, "the cheap attempt fitted and was made");
    assert_eq!(dear.calls(), 0, "the dear provider was never called");
    assert_eq!(ledger.snapshot().total.cost, 0);
    assert_eq!(
        ledger.budget_spent(0, None).await,
        0,
        "nothing left reserved"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fallback_to_an_unpriced_model_is_never_billed_at_the_requested_price() {
    let cheap = FakeProvider::always("cheapco", Outcome::fail(ErrorKind::Server));
    let ollama = FakeProvider::always("ollama", Outcome::ok_with_usage(USAGE));
    let fallback = |ledger: &Ledger| {
        let fb = FallbackLayer::builder()
            .primary("cheapco")
            .provider("ollama", boxed(&ollama))
            .model_for("ollama", "llama3.2")
            .build()
            .unwrap();
        ServiceBuilder::new()
            .layer(CostMeterLayer::new(ledger.clone()))
            .layer(fb)
            .service(boxed(&cheap))
    };

    // refuse (the default): the operator's misconfiguration, not the client's, and ollama
    // is not called
    let strict = Ledger::builder()
        .prices(prices())
        .budget(Budget::global(usd(1.0)))
        .build()
        .unwrap();
    let err = fallback(&strict).oneshot(request()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AllProvidersFailed);
    let kinds: Vec<_> = err.attempts().iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [ErrorKind::Server, ErrorKind::Configuration]);
    assert!(!err.verdict().is_client_fault());
    assert_eq!(ollama.calls(), 0);
    assert_eq!(strict.snapshot().total.cost, 0);

    // free: served and billed nothing, never the cheap model's price
    let local = Ledger::builder()
        .prices(prices())
        .unknown_model(UnknownModel::Free)
        .budget(Budget::global(usd(1.0)))
        .build()
        .unwrap();
    let resp = fallback(&local).oneshot(request()).await.unwrap();
    assert_eq!(resp.model(), "llama3.2");
    let snap = local.snapshot();
    assert_eq!(snap.total.requests, 1);
    assert_eq!(snap.total.cost, 0);
    assert_eq!(local.budget_spent(0, None).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_fallbacks_to_a_twenty_times_pricier_model_never_overspend() {
    let cheap = FakeProvider::always("cheapco", Outcome::fail(ErrorKind::Overloaded));
    let dear = FakeProvider::always("dearco", Outcome::ok_with_usage(USAGE));
    let probe = Ledger::builder().prices(prices()).build().unwrap();
    let budget = 100 * dear_cost(&probe);
    let ledger = Ledger::builder()
        .prices(prices())
        .budget(Budget::global(budget))
        .build()
        .unwrap();
    let svc = pipeline(&ledger, &cheap, &dear);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(request()).await })
        })
        .collect();
    let mut served = 0u64;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.provider(), "dearco");
                served += 1;
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::BudgetExceeded, "{e}"),
        }
    }
    let total = ledger.snapshot().total;
    assert!(served >= 1, "some requests were served");
    assert_eq!(total.requests, served);
    assert_eq!(
        total.cost,
        served * dear_cost(&ledger),
        "the ledger is what was served"
    );
    assert!(
        total.cost <= budget,
        "spend {} over budget {budget}",
        total.cost
    );
    assert_eq!(
        dear.calls(),
        served,
        "every dear call was admitted and billed"
    );
    assert_eq!(
        ledger.budget_spent(0, None).await,
        total.cost,
        "no reservation left open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_meter_directly_over_a_provider_still_bills_the_model_on_the_response() {
    // no fallback: nothing asks the hook, settlement alone follows the response
    let dear = FakeProvider::always("dearco", Outcome::ok_with_usage(USAGE));
    let ledger = Ledger::builder().prices(prices()).build().unwrap();
    let mut req = request();
    req.set_model("dear");
    let resp = CostMeterLayer::new(ledger.clone())
        .layer(dear)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.model(), "dear");
    assert_eq!(ledger.snapshot().total.cost, dear_cost(&ledger));
}
