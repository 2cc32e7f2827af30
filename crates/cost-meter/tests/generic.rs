//! Metering something that is not an LLM: a translation API billed per character; the
//! success path allocating nothing; and many threads counted exactly.
#![allow(clippy::unwrap_used)]

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use towerguard_cost_meter::{
    Budget, CostError, CostMeterLayer, CostRequest, CostResponse, Ledger, ModelInfo, Price,
    PriceTable, Tokens, WorstCase,
};
use towerguard_testkit::call_now;

struct Translate {
    text: String,
    engine: &'static str,
}

#[derive(Debug)]
struct Translated {
    chars: u64,
}

impl CostRequest for Translate {
    fn model(&self) -> &str {
        self.engine
    }
    fn worst_case(&self) -> WorstCase {
        WorstCase {
            input_tokens: self.text.chars().count() as u64,
            max_output_tokens: Some(0),
        }
    }
}

impl CostResponse for Translated {
    fn tokens(&self) -> Option<Tokens> {
        Some(Tokens::new(self.chars, 0))
    }
    fn provider(&self) -> Option<&str> {
        Some("deepl")
    }
}

#[tokio::test]
async fn bills_characters_against_a_budget() {
    let mut prices = PriceTable::new();
    // $20 per million characters = 20_000 pico-dollars per character
    prices.insert(
        "deepl-pro",
        ModelInfo {
            price: Price {
                input: 20_000,
                ..Price::FREE
            },
            ..ModelInfo::default()
        },
    );
    let ledger = Ledger::builder()
        .prices(prices)
        .budget(Budget::global(200)) // 200 nano-dollars: 10 characters
        .build()
        .unwrap();
    let api = service_fn(|t: Translate| async move {
        Ok::<_, BoxError>(Translated {
            chars: t.text.chars().count() as u64,
        })
    });
    let svc = CostMeterLayer::new(ledger.clone()).layer(api);
    let short = || Translate {
        text: "bonjour".into(),
        engine: "deepl-pro",
    };
    svc.clone().oneshot(short()).await.unwrap();
    let e = svc.clone().oneshot(short()).await.unwrap_err();
    let e = e.downcast_ref::<CostError>().unwrap();
    assert_eq!(e.budget(), Some("global total"));
    let snap = ledger.snapshot();
    assert_eq!(snap.total.cost, 7 * 20);
    assert_eq!(&*snap.providers[0].0, "deepl");
}

/// A ledger with a global budget that never runs out, and a meter over an API that answers at
/// once with one character per byte of text.
fn metered() -> (
    Ledger,
    impl Service<Translate, Response = Translated, Error = BoxError> + Clone + Send,
) {
    let ledger = Ledger::builder()
        .budget(Budget::global(u64::MAX / 2))
        .build()
        .unwrap();
    let api = service_fn(|t: Translate| {
        std::future::ready(Ok::<_, BoxError>(Translated {
            chars: t.text.len() as u64,
        }))
    });
    (ledger.clone(), CostMeterLayer::new(ledger).layer(api))
}

#[test]
fn success_path_allocates_nothing() {
    let (_, mut svc) = metered();
    let req = || Translate {
        text: String::new(),
        engine: "gpt-4o-mini",
    };
    assert!(call_now(&mut svc, req()));
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc, req()));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // a clone per request, as axum makes, allocates nothing either
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            assert!(call_now(&mut svc.clone(), req()));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}

/// Many OS threads metering through clones of one service: every call is counted once in
/// the totals, and the budget ends exact.
#[test]
fn threads_count_every_call_once() {
    let (ledger, svc) = metered();
    let threads = 2 * std::thread::available_parallelism().map_or(4, |n| n.get()) + 8;
    let start = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let mut svc = svc.clone();
            let start = &start;
            s.spawn(move || {
                start.wait();
                for _ in 0..500 {
                    let req = Translate {
                        text: "abc".into(),
                        engine: "gpt-4o-mini",
                    };
                    assert!(call_now(&mut svc, req));
                }
            });
        }
    });
    let calls = threads as u64 * 500;
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, calls);
    assert_eq!(snap.total.tokens.input, 3 * calls);
    // gpt-4o-mini: 150_000 pico-dollars per input token, 3 tokens = 450 nano-dollars a call
    assert_eq!(snap.total.cost, 450 * calls);
    let spent = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(ledger.budget_spent(0, None));
    assert_eq!(spent, 450 * calls);
}
