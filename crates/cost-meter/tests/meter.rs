//! Metering LLM calls: totals, race-free budgets, windows, alerts, price files.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt};
use towerguard_cost_meter::{
    Budget, BudgetStore, CostError, CostMeterLayer, CounterRef, Hold, Ledger, ManualClock,
    MemoryStore, Price, PriceTable, Settlement, Tokens, UnknownModel, usd,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, Message, Usage};
use towerguard_testkit::{FakeProvider, Outcome};

fn req(model: &str, max_tokens: u32) -> LlmRequest {
    LlmRequest::new(model, vec![Message::user("What is the capital of France?")])
        .with_max_tokens(max_tokens)
}

/// gpt-4o-mini per token, in nano-dollars (1.5e-7 and 6e-7 USD).
const MINI_IN: u64 = 150;
const MINI_OUT: u64 = 600;

#[tokio::test]
async fn totals_per_provider_model_and_client() {
    let ledger = Ledger::builder().build().unwrap();
    let meter = CostMeterLayer::new(ledger.clone());
    let openai = FakeProvider::always("openai", Outcome::ok_with_usage(Usage::new(1000, 200)));
    let anthropic = FakeProvider::always(
        "anthropic",
        Outcome::ok_with_usage(Usage {
            input_tokens: 100,
            output_tokens: 50,
            cached_input_tokens: 1000,
            cache_write_tokens: 10,
            reasoning_tokens: 0,
        }),
    );
    let mut a = meter.layer(openai);
    let mut b = meter.layer(anthropic);
    for _ in 0..3 {
        a.ready()
            .await
            .unwrap()
            .call(req("gpt-4o-mini", 256).with_client_key("acme"))
            .await
            .unwrap();
    }
    b.ready()
        .await
        .unwrap()
        .call(req("claude-sonnet-4-5", 256).with_client_key("globex"))
        .await
        .unwrap();

    let mini_cost = 1000 * MINI_IN + 200 * MINI_OUT;
    // claude sonnet: in 3000, out 15000, cache read 300, cache write 3750 nano-dollars/token
    let claude_cost = 100 * 3000 + 50 * 15000 + 1000 * 300 + 10 * 3750;
    let snap = ledger.snapshot();
    assert_eq!(snap.total.requests, 4);
    assert_eq!(snap.total.cost, 3 * mini_cost + claude_cost);
    assert_eq!(snap.total.tokens.cached_input, 1000);
    let openai = snap
        .providers
        .iter()
        .find(|(p, _)| &**p == "openai")
        .unwrap();
    assert_eq!(openai.1.cost, 3 * mini_cost);
    assert_eq!(openai.1.tokens, Tokens::new(3000, 600));
    let acme = snap.clients.iter().find(|(c, _)| &**c == "acme").unwrap();
    assert_eq!((acme.1.requests, acme.1.cost), (3, 3 * mini_cost));
    let rows = ledger.stats();
    assert_eq!(rows.len(), 2);

    ledger.reset_provider("openai").await;
    assert_eq!(ledger.snapshot().total.cost, claude_cost);
    ledger.reset().await;
    assert_eq!(ledger.snapshot().total.cost, 0);
}

#[tokio::test]
async fn the_model_that_answered_is_priced() {
    // a fallback answered with another model than the one asked for
    let ledger = Ledger::builder().build().unwrap();
    let provider = FakeProvider::new("anthropic");
    let svc = CostMeterLayer::new(ledger.clone()).layer(tower::service_fn(move |r: LlmRequest| {
        let mut p = provider.clone();
        async move {
            let mut mapped = r.clone();
            mapped.set_model("claude-sonnet-4-5");
            let resp = p.call(mapped).await?;
            Ok::<_, LlmError>(resp.with_usage(Usage::new(10, 10)))
        }
    }));
    svc.oneshot(req("gpt-4o-mini", 64)).await.unwrap();
    let rows = ledger.stats();
    assert_eq!(&*rows[0].model, "claude-sonnet-4-5");
    assert_eq!(rows[0].spend.cost, 10 * 3000 + 10 * 15000);
}

#[tokio::test]
async fn reasoning_and_cache_tokens_are_billed_exactly() {
    let ledger = Ledger::builder().build().unwrap();
    let meter = CostMeterLayer::new(ledger.clone());
    // Anthropic: input excludes the cache reads and writes; thinking is in the output.
    let claude = Usage {
        input_tokens: 1000,
        output_tokens: 500,
        cached_input_tokens: 4000,
        cache_write_tokens: 2000,
        reasoning_tokens: 400,
    };
    let anthropic = FakeProvider::always("anthropic", Outcome::ok_with_usage(claude));
    meter
        .layer(anthropic)
        .oneshot(req("claude-sonnet-4-5", 1000))
        .await
        .unwrap();
    // OpenAI's o4-mini: 2,000 prompt tokens of which 1,500 cached, 800 completion tokens of
    // which 640 reasoning, as the provider client stores them (prompt minus cached).
    let o4 = Usage {
        input_tokens: 500,
        output_tokens: 800,
        cached_input_tokens: 1500,
        cache_write_tokens: 0,
        reasoning_tokens: 640,
    };
    let openai = FakeProvider::always("openai", Outcome::ok_with_usage(o4));
    let mut asked = LlmRequest::new("o4-mini", vec![Message::user("Think.")]);
    asked.params_mut().max_completion_tokens = Some(1000);
    meter.layer(openai).oneshot(asked).await.unwrap();

    let rows = ledger.stats();
    let cost_of = |model: &str| rows.iter().find(|r| &*r.model == model).unwrap().spend.cost;
    // nano-dollars per token: 3000 in, 300 cache read, 3750 cache write, 15000 out
    assert_eq!(
        cost_of("claude-sonnet-4-5"),
        1000 * 3000 + 4000 * 300 + 2000 * 3750 + 500 * 15000
    );
    // 1100 in, 275 cached, 4400 out: reasoning is billed as output, once
    assert_eq!(cost_of("o4-mini"), 500 * 1100 + 1500 * 275 + 800 * 4400);
}

#[tokio::test]
async fn max_completion_tokens_bounds_the_reservation() {
    // 100,000 output tokens of o4-mini cost 0.44 USD: a 0.10 USD budget cannot cover them.
    let ledger = Ledger::builder()
        .budget(Budget::global(usd(0.10)))
        .build()
        .unwrap();
    let provider = FakeProvider::always("openai", Outcome::ok_with_usage(Usage::new(10, 10)));
    let mut meter = CostMeterLayer::new(ledger.clone()).layer(provider.clone());
    let mut big = LlmRequest::new("o4-mini", vec![Message::user("Think hard.")]);
    big.params_mut().max_completion_tokens = Some(100_000);
    let e = meter.ready().await.unwrap().call(big).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert_eq!(provider.calls(), 0);
    let mut small = LlmRequest::new("o4-mini", vec![Message::user("Think a little.")]);
    small.params_mut().max_completion_tokens = Some(1_000);
    meter.ready().await.unwrap().call(small).await.unwrap();
}

#[tokio::test]
async fn a_dated_snapshot_is_priced_as_its_model() {
    // OpenAI answers "gpt-4o-mini" with "gpt-4o-mini-2024-07-18": the table finds it by its model
    let ledger = Ledger::builder().build().unwrap();
    let provider = FakeProvider::new("openai");
    let svc = CostMeterLayer::new(ledger.clone()).layer(tower::service_fn(move |r: LlmRequest| {
        let mut p = provider.clone();
        async move {
            let mut dated = r.clone();
            dated.set_model("gpt-4o-mini-2024-07-18");
            let resp = p.call(dated).await?;
            Ok::<_, LlmError>(resp.with_usage(Usage::new(1000, 100)))
        }
    }));
    svc.oneshot(req("gpt-4o-mini", 64)).await.unwrap();
    let rows = ledger.stats();
    assert_eq!(&*rows[0].model, "gpt-4o-mini-2024-07-18");
    assert_eq!(rows[0].spend.cost, 1000 * MINI_IN + 100 * MINI_OUT);
}

/// A request whose worst case the provider then uses exactly.
fn exact(model: &str) -> (LlmRequest, Usage) {
    let r = req(model, 100);
    let input = r.estimated_input_tokens() * 2;
    (r, Usage::new(input, 100))
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_requests_never_overspend() {
    let (r, usage) = exact("gpt-4o-mini");
    let each = usage.input_tokens * MINI_IN + usage.output_tokens * MINI_OUT;
    let ledger = Ledger::builder()
        .budget(Budget::global(100 * each).daily())
        .build()
        .unwrap();
    let provider = FakeProvider::always(
        "openai",
        Outcome::ok_with_usage(usage).after(Duration::from_millis(50)),
    );
    let svc = CostMeterLayer::new(ledger.clone()).layer(provider.clone());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let s = svc.clone();
            let r = r.clone();
            tokio::spawn(async move { s.oneshot(r).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (100, 900));
    assert_eq!(
        provider.calls(),
        100,
        "refused requests never reached the provider"
    );
    assert_eq!(
        ledger.snapshot().total.cost,
        100 * each,
        "every cent accounted"
    );
    assert_eq!(ledger.budget_spent(0, None).await, 100 * each);
}

#[test]
fn the_memory_store_is_exact_under_threads() {
    let mut store = MemoryStore::default();
    store.prepare(&[Budget::global(300)]).unwrap();
    let store = Arc::new(store);
    let won = Arc::new(AtomicU32::new(0));
    let counter = || CounterRef {
        budget: 0,
        window: 7,
        client: None,
    };
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, won) = (store.clone(), won.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    let hold = Hold {
                        counter: counter(),
                        amount: 3,
                        limit: 300,
                    };
                    if store.reserve([hold]).into_inner().is_ok() {
                        won.fetch_add(1, Ordering::SeqCst);
                        let spent = Settlement {
                            counter: counter(),
                            reserved: 3,
                            actual: 3,
                            alert_at: None,
                        };
                        assert!(store.settle([spent]).into_inner().is_empty());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(won.load(Ordering::SeqCst), 100);
    assert_eq!(store.spent(counter()).into_inner(), 300);
}

/// Every thread adds to its own copy of a row's totals; the stats add the copies up exactly,
/// and a reset clears every copy of the rows of the provider reset, and only those.
#[test]
fn row_totals_from_many_threads_add_up_exactly() {
    let ledger = Ledger::builder().build().unwrap();
    let call = |ledger: &Ledger, provider: &'static str| {
        let meter = CostMeterLayer::new(ledger.clone()).layer(FakeProvider::always(
            provider,
            Outcome::ok_with_usage(Usage::new(10, 2)),
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(meter.oneshot(req("gpt-4o-mini", 16))).unwrap();
    };
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| (0..250).for_each(|_| call(&ledger, "openai")));
        }
    });
    call(&ledger, "azure");
    let rows = ledger.stats();
    let spend = |provider: &str| {
        rows.iter()
            .find(|r| &*r.provider == provider && &*r.model == "gpt-4o-mini")
            .map(|r| r.spend)
    };
    let openai = spend("openai").unwrap();
    assert_eq!(openai.requests, 1000);
    assert_eq!((openai.tokens.input, openai.tokens.output), (10_000, 2000));
    assert_eq!(openai.cost, 1000 * (10 * MINI_IN + 2 * MINI_OUT));
    assert_eq!(spend("azure").unwrap().requests, 1);

    block_on(ledger.reset_provider("openai"));
    let rows = ledger.stats();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(&*rows[0].provider, "azure");
    call(&ledger, "openai");
    let openai = ledger
        .stats()
        .into_iter()
        .find(|r| &*r.provider == "openai");
    assert_eq!(openai.unwrap().spend.requests, 1, "counted again from zero");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[tokio::test]
async fn errors_and_cancellations_release_their_reservation() {
    let (r, usage) = exact("gpt-4o-mini");
    let each = usage.input_tokens * MINI_IN + usage.output_tokens * MINI_OUT;
    let ledger = Ledger::builder()
        .budget(Budget::global(each))
        .build()
        .unwrap();
    let provider = FakeProvider::builder("openai")
        .script([Outcome::fail(ErrorKind::Server), Outcome::hang()])
        .then(Outcome::ok_with_usage(usage))
        .build();
    let svc = CostMeterLayer::new(ledger.clone()).layer(provider);
    assert_eq!(
        svc.clone().oneshot(r.clone()).await.unwrap_err().kind(),
        ErrorKind::Server
    );
    assert_eq!(ledger.budget_spent(0, None).await, 0);
    let hung =
        tokio::time::timeout(Duration::from_millis(10), svc.clone().oneshot(r.clone())).await;
    assert!(hung.is_err());
    assert_eq!(
        ledger.budget_spent(0, None).await,
        0,
        "the dropped call released its reservation"
    );
    svc.oneshot(r).await.unwrap();
    assert_eq!(ledger.budget_spent(0, None).await, each);
}

#[tokio::test]
async fn windows_roll_over_and_alerts_fire_once_per_window() {
    let clock = Arc::new(ManualClock::at(1_769_900_000 * 1_000_000_000)); // 2026-01-31
    let (r, usage) = exact("gpt-4o-mini");
    let each = usage.input_tokens * MINI_IN + usage.output_tokens * MINI_OUT;
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let a = alerts.clone();
    let ledger = Ledger::builder()
        .clock(clock.clone())
        .budget(Budget::per_client(4 * each).daily().alert_at(0.5))
        .on_budget_alert(move |alert| a.lock().unwrap().push(alert.budget.clone()))
        .build()
        .unwrap();
    let provider = FakeProvider::always("openai", Outcome::ok_with_usage(usage));
    let svc = CostMeterLayer::new(ledger.clone()).layer(provider);
    let r = r.with_client_key("acme");
    for _ in 0..4 {
        svc.clone().oneshot(r.clone()).await.unwrap();
    }
    let e = svc.clone().oneshot(r.clone()).await.unwrap_err();
    assert!(e.detail().unwrap().contains("client acme daily"), "{e:?}");
    // another client has its own budget
    svc.clone()
        .oneshot(r.clone().with_client_key("globex"))
        .await
        .unwrap();
    assert_eq!(
        *alerts.lock().unwrap(),
        ["client acme daily"],
        "once per window"
    );

    clock.advance(Duration::from_secs(86_400));
    for _ in 0..4 {
        svc.clone().oneshot(r.clone()).await.unwrap();
    }
    assert_eq!(alerts.lock().unwrap().len(), 2, "again in the new window");
    assert_eq!(ledger.budget_spent(0, Some("acme")).await, 4 * each);
}

#[tokio::test]
async fn a_client_with_a_limit_of_its_own_is_held_to_it_and_the_others_to_theirs() {
    let (r, usage) = exact("gpt-4o-mini");
    let each = usage.input_tokens * MINI_IN + usage.output_tokens * MINI_OUT;
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let a = alerts.clone();
    let ledger = Ledger::builder()
        .budget(
            Budget::per_client(2 * each)
                .daily()
                .alert_at(0.5)
                .limit_for("premium", 5 * each)
                .limit_for("trial", each),
        )
        .on_budget_alert(move |alert| a.lock().unwrap().push((alert.budget.clone(), alert.limit)))
        .build()
        .unwrap();
    let provider = FakeProvider::always("openai", Outcome::ok_with_usage(usage));
    let svc = CostMeterLayer::new(ledger.clone()).layer(provider);
    let served = |key: &'static str, n: usize| {
        let (svc, r) = (svc.clone(), r.clone().with_client_key(key));
        async move {
            let mut ok = 0;
            for _ in 0..n {
                ok += usize::from(svc.clone().oneshot(r.clone()).await.is_ok());
            }
            ok
        }
    };
    assert_eq!(served("premium", 8).await, 5, "its own, larger limit");
    assert_eq!(served("trial", 8).await, 1, "its own, smaller limit");
    assert_eq!(
        served("anyone", 8).await,
        2,
        "the limit of every other client"
    );
    let e = svc
        .clone()
        .oneshot(r.clone().with_client_key("premium"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert!(
        e.detail().unwrap().contains("client premium daily"),
        "{e:?}"
    );
    assert_eq!(ledger.budget_spent(0, Some("premium")).await, 5 * each);
    let alerts = alerts.lock().unwrap();
    assert!(
        alerts.contains(&("client premium daily".to_owned(), 5 * each)),
        "alerts at its own limit's share: {alerts:?}"
    );
}

#[tokio::test]
async fn per_request_cap_and_unknown_models() {
    let ledger = Ledger::builder()
        .max_request_cost(usd(0.01))
        .build()
        .unwrap();
    let provider = FakeProvider::new("openai");
    let svc = CostMeterLayer::new(ledger.clone()).layer(provider.clone());
    // gpt-4-turbo: 4096 output tokens at 3e-5 = $0.12 worst case
    let e = svc
        .clone()
        .oneshot(req("gpt-4-turbo", 4096))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert!(e.detail().unwrap().contains("per-request"));
    let e = svc
        .clone()
        .oneshot(req("mystery-model", 10))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Configuration,
        "an operator's error, not the client's"
    );
    assert!(e.detail().unwrap().contains("mystery-model"));
    assert_eq!(provider.calls(), 0);

    for (policy, expected) in [
        (UnknownModel::Free, 0),
        // $1 and $2 per million tokens: 1000 tokens each = $0.001 + $0.002
        (
            UnknownModel::Price(Price::per_million_usd(1.0, 2.0).unwrap()),
            3_000_000,
        ),
    ] {
        let ledger = Ledger::builder().unknown_model(policy).build().unwrap();
        let p = FakeProvider::always("x", Outcome::ok_with_usage(Usage::new(1000, 1000)));
        CostMeterLayer::new(ledger.clone())
            .layer(p)
            .oneshot(req("mystery-model", 10))
            .await
            .unwrap();
        assert_eq!(ledger.snapshot().total.cost, expected);
        assert_eq!(ledger.snapshot().total.requests, 1);
    }
    // ollama models are free, found by their short name
    let ledger = Ledger::builder().build().unwrap();
    CostMeterLayer::new(ledger.clone())
        .layer(FakeProvider::new("ollama"))
        .oneshot(req("llama3", 10))
        .await
        .unwrap();
    assert_eq!(ledger.snapshot().total.cost, 0);
}

#[test]
fn litellm_price_files() {
    let file = r#"{
        "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
        "gpt-4o-mini": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
                        "cache_read_input_token_cost": 7.5e-08, "litellm_provider": "openai",
                        "max_input_tokens": 128000, "max_output_tokens": 16384, "mode": "chat"},
        "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
        "groq/llama3-8b-8192": {"input_cost_per_token": "5e-08", "output_cost_per_token": 8e-08}
    }"#;
    let t = PriceTable::from_litellm_json(file).unwrap();
    assert_eq!(t.len(), 2, "image models are skipped");
    let mini = t.get("gpt-4o-mini").unwrap();
    assert_eq!(mini.price.input, 150_000);
    assert_eq!(mini.price.cached_input, 75_000);
    assert_eq!(
        mini.price.cache_write, 150_000,
        "unknown cache-write price = input price"
    );
    assert_eq!(mini.max_output_tokens, Some(16384));
    assert_eq!(t.get("llama3-8b-8192").unwrap().price.input, 50_000);
    assert!(t.get("openai/gpt-4o-mini").is_some());

    let bad = [
        (
            r#"{"m1": {"input_cost_per_token": -1, "output_cost_per_token": 1}}"#,
            "m1",
            "input_cost_per_token",
        ),
        (
            r#"{"m2": {"input_cost_per_token": 1e-6, "output_cost_per_token": "lots"}}"#,
            "m2",
            "output_cost_per_token",
        ),
        (
            r#"{"m3": {"input_cost_per_token": 1e-6, "output_cost_per_token": true}}"#,
            "m3",
            "output_cost_per_token",
        ),
        (
            r#"{"m4": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "max_output_tokens": -5}}"#,
            "m4",
            "max_output_tokens",
        ),
        (
            r#"{"m5": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "litellm_provider": 3}}"#,
            "m5",
            "litellm_provider",
        ),
        (r#"{"m6": [1, 2]}"#, "m6", ""),
    ];
    for (json, model, field) in bad {
        let e = PriceTable::from_litellm_json(json).unwrap_err();
        assert_eq!((e.model.as_str(), e.field), (model, field), "{e}");
        assert!(e.to_string().contains(model));
    }
    assert!(PriceTable::from_litellm_json("[1,2]").is_err());
    assert!(PriceTable::from_litellm_json("{not json").is_err());
    assert!(PriceTable::builtin().len() >= 8);
}

#[test]
fn invalid_configuration_is_rejected_naming_the_field() {
    let field = |b: towerguard_cost_meter::LedgerBuilder| b.build().unwrap_err().field().to_owned();
    let every = |d| towerguard_cost_meter::Window::Every(d);
    for (builder, expected) in [
        (
            Ledger::builder().budget(Budget::global(0)),
            "budgets[0].limit",
        ),
        (
            Ledger::builder().budget(Budget::global(usd(-1.0))),
            "budgets[0].limit",
        ),
        (
            Ledger::builder().budget(Budget::global(usd(f64::NAN))),
            "budgets[0].limit",
        ),
        (
            Ledger::builder().budget(Budget::global(5).alert_at(1.5)),
            "budgets[0].alert_at",
        ),
        (
            Ledger::builder().budget(Budget::global(5).alert_at(0.0)),
            "budgets[0].alert_at",
        ),
        (
            Ledger::builder().budget(Budget::global(5).alert_at(f64::NAN)),
            "budgets[0].alert_at",
        ),
        (
            Ledger::builder().budget(Budget::provider("", 5)),
            "budgets[0].scope",
        ),
        (
            Ledger::builder().budget(Budget::global(5).window(every(Duration::ZERO))),
            "budgets[0].window",
        ),
        (
            Ledger::builder().budget(Budget::global(5).window(every(Duration::from_nanos(1)))),
            "budgets[0].window",
        ),
        (Ledger::builder().max_request_cost(0), "max_request_cost"),
        (Ledger::builder().max_clients(0), "max_clients"),
        (Ledger::builder().max_clients(usize::MAX), "max_clients"),
        (
            Ledger::builder().default_max_output_tokens(0),
            "default_max_output_tokens",
        ),
        (
            Ledger::builder()
                .budget(Budget::per_client(5).daily())
                .budget(Budget::per_client(9).daily()),
            "budgets[1]",
        ),
        (
            Ledger::builder().budget(Budget::global(5).limit_for("acme", 9)),
            "budgets[0].limit_for",
        ),
        (
            Ledger::builder().budget(Budget::per_client(5).limit_for("acme", 0)),
            "budgets[0].limit_for",
        ),
        (
            Ledger::builder().budget(Budget::per_client(5).limit_for("", 9)),
            "budgets[0].limit_for",
        ),
    ] {
        assert_eq!(field(builder), expected);
    }
    // the same scope over another window is not a duplicate
    assert!(
        Ledger::builder()
            .budget(Budget::per_client(5).daily())
            .budget(Budget::per_client(50).monthly())
            .budget(Budget::provider("openai", 5).daily())
            .budget(Budget::provider("anthropic", 5).daily())
            .build()
            .is_ok()
    );
    let mut b = Ledger::builder();
    for i in 0..9 {
        b = b.budget(Budget::global(5).window(every(Duration::from_secs(i + 1))));
    }
    assert_eq!(field(b), "budgets");
}

#[test]
fn cost_errors_convert_to_llm_errors_without_leaking() {
    let e = LlmError::from(CostError::BudgetExceeded {
        budget: "client acme daily".into(),
        limit: 5,
        spent: 5,
        requested: 1,
    });
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert!(
        !e.client_message().contains("acme"),
        "other clients' names stay out of client messages"
    );
}

#[tokio::test]
async fn client_state_stays_bounded_under_a_flood_of_keys() {
    let (r, usage) = exact("gpt-4o-mini");
    let each = usage.input_tokens * MINI_IN + usage.output_tokens * MINI_OUT;
    let ledger = Ledger::builder()
        .max_clients(64)
        .budget(Budget::per_client(10 * each).daily())
        .build()
        .unwrap();
    let provider = FakeProvider::always("openai", Outcome::ok_with_usage(usage));
    let svc = CostMeterLayer::new(ledger.clone()).layer(provider.clone());
    let (mut ok, mut refused) = (0u64, 0u64);
    for i in 0..2_000 {
        match svc
            .clone()
            .oneshot(r.clone().with_client_key(format!("client-{i}").as_str()))
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
                refused += 1;
            }
        }
    }
    let snap = ledger.snapshot();
    assert!(
        snap.clients.len() <= 64 + 1,
        "{} client rows",
        snap.clients.len()
    );
    assert_eq!(snap.total.requests, ok, "every billed request is counted");
    assert_eq!(provider.calls(), ok);
    // every tracked client spent this day, so none could be forgotten: the newcomers past
    // the cap share one budget (limited together: never more spending, only less)
    assert!((64..=64 + 10).contains(&ok), "{ok} served");
    assert_eq!(ok + refused, 2_000);
}
