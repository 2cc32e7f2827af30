//! Cost follows the attempt that served: the attempt hook, the response's provider and model,
//! responses without usage, usage recorded outside a meter, releases, concurrency.
#![cfg(feature = "llm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::Layer;
use tower::{BoxError, Service, ServiceExt, service_fn};
use towerguard_cost_meter::{
    Alerted, Budget, BudgetStore, ConfigError, CostError, CostMeterLayer, CounterRef, Hold, Ledger,
    LedgerBuilder, MemoryClient, MemoryStore, ModelInfo, Price, PriceTable, Settlement, Shortfall,
    Tokens, UnknownModel,
};
use towerguard_llm_core::{ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Usage};
use towerguard_outcome::{AttemptRefusal, ClassifyError};

/// `cheap` (openai) at 1 nano-dollar a token, `dear` (anthropic) at 20.
fn prices() -> PriceTable {
    let mut t = PriceTable::new();
    for (name, provider, pico) in [("cheap", "openai", 1_000), ("dear", "anthropic", 20_000)] {
        let info = ModelInfo {
            price: Price {
                input: pico,
                output: pico,
                cached_input: pico,
                cache_write: pico,
            },
            provider: Some(provider.into()),
            ..ModelInfo::default()
        };
        t.insert(name, info);
    }
    t
}

fn builder() -> LedgerBuilder {
    Ledger::builder().prices(prices())
}

const MAX_TOKENS: u32 = 100;

fn req() -> LlmRequest {
    LlmRequest::new(
        "cheap",
        vec![Message::user("What is the capital of France?")],
    )
    .with_max_tokens(MAX_TOKENS)
}

/// The request's worst case in tokens (the meter doubles the prompt estimate).
fn worst_tokens() -> u64 {
    req().estimated_input_tokens() * 2 + u64::from(MAX_TOKENS)
}

/// A fallback's last hope: asks the hook for an attempt on `provider`/`model`, then answers
/// as it with `usage`, or fails with `fail` after the hook said yes.
#[derive(Clone)]
struct Attempt {
    provider: &'static str,
    model: &'static str,
    usage: Usage,
    fail: Option<ErrorKind>,
    seen_spent: Arc<AtomicU64>,
    ledger: Option<Ledger>,
}

impl Attempt {
    fn new(provider: &'static str, model: &'static str, usage: Usage) -> Self {
        Self {
            provider,
            model,
            usage,
            fail: None,
            seen_spent: Arc::new(AtomicU64::new(u64::MAX)),
            ledger: None,
        }
    }

    /// Also notes the global budget's reservation once the hook answered.
    fn watching(mut self, ledger: &Ledger) -> Self {
        self.ledger = Some(ledger.clone());
        self
    }
}

impl Service<LlmRequest> for Attempt {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let hook = req
                .attempt_hook()
                .expect("the meter gives the request a hook");
            let checked = hook.before_attempt(this.provider, this.model).await;
            if let Some(ledger) = &this.ledger {
                this.seen_spent
                    .store(ledger.budget_spent(0, None).await, Ordering::SeqCst);
            }
            checked?;
            tokio::task::yield_now().await;
            if let Some(kind) = this.fail {
                return Err(LlmError::new(kind));
            }
            Ok(LlmResponse::new("Paris", this.model, this.provider).with_usage(this.usage))
        })
    }
}

#[tokio::test]
async fn an_attempt_raises_the_reservation_to_its_own_worst_case_and_is_billed_as_served() {
    let ledger = builder()
        .budget(Budget::global(u64::MAX / 2))
        .build()
        .unwrap();
    let attempt = Attempt::new("anthropic", "dear", Usage::new(10, 5)).watching(&ledger);
    let seen = attempt.seen_spent.clone();
    let resp = CostMeterLayer::new(ledger.clone())
        .layer(attempt)
        .oneshot(req())
        .await
        .unwrap();
    assert_eq!(resp.model(), "dear");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        20 * worst_tokens(),
        "the reservation was raised from the cheap worst case to the dear one"
    );
    let rows = ledger.stats();
    assert_eq!(rows.len(), 1);
    assert_eq!((&*rows[0].provider, &*rows[0].model), ("anthropic", "dear"));
    assert_eq!(
        rows[0].spend.cost,
        15 * 20,
        "priced at the model that served"
    );
    assert_eq!(
        ledger.budget_spent(0, None).await,
        15 * 20,
        "the rest released"
    );
}

#[tokio::test]
async fn an_attempt_no_budget_can_cover_is_refused_and_raises_nothing() {
    let cheap_worst = worst_tokens();
    let ledger = builder()
        .budget(Budget::global(u64::MAX / 2))
        .budget(Budget::provider("anthropic", 20 * cheap_worst - 1))
        .build()
        .unwrap();
    let attempt = Attempt::new("anthropic", "dear", Usage::new(10, 5)).watching(&ledger);
    let seen = attempt.seen_spent.clone();
    let err = CostMeterLayer::new(ledger.clone())
        .layer(attempt)
        .oneshot(req())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
    assert!(
        err.detail().unwrap().contains("provider anthropic total"),
        "{err:?}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        cheap_worst,
        "the global budget still holds only the cheap worst case: nothing partly raised"
    );
    assert_eq!(ledger.budget_spent(0, None).await, 0);
    assert_eq!(ledger.budget_spent(1, None).await, 0);
    assert!(ledger.stats().is_empty());
}

#[tokio::test]
async fn an_attempt_on_a_model_without_a_price_follows_the_unknown_model_policy() {
    // refused: the operator's configuration error, which a fallback may pass over
    let ledger = builder()
        .budget(Budget::global(u64::MAX / 2))
        .build()
        .unwrap();
    let svc = CostMeterLayer::new(ledger.clone()).layer(service_fn(|r: LlmRequest| async move {
        let refused = r
            .attempt_hook()
            .unwrap()
            .before_attempt("ollama", "llama-local")
            .await
            .unwrap_err();
        assert_eq!(refused.reason(), AttemptRefusal::Unpriced);
        assert_eq!(refused.detail(), "model llama-local");
        assert!(!refused.verdict().is_client_fault() && refused.verdict().should_fallback());
        Err::<LlmResponse, _>(LlmError::from(refused))
    }));
    let err = svc.oneshot(req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);

    // free, or at the default price: the reservation follows that price
    for (policy, per_token) in [
        (UnknownModel::Free, 0),
        (
            UnknownModel::Price(Price::per_million_usd(0.04, 0.04).unwrap()),
            40,
        ),
    ] {
        let ledger = builder()
            .unknown_model(policy)
            .budget(Budget::global(u64::MAX / 2))
            .build()
            .unwrap();
        let attempt = Attempt::new("ollama", "llama-local", Usage::new(1, 1)).watching(&ledger);
        let seen = attempt.seen_spent.clone();
        CostMeterLayer::new(ledger.clone())
            .layer(attempt)
            .oneshot(req())
            .await
            .unwrap();
        // never below what was held: free keeps the cheap worst case until it settles
        let expected = (per_token * worst_tokens()).max(worst_tokens());
        assert_eq!(seen.load(Ordering::SeqCst), expected);
        assert_eq!(ledger.snapshot().total.cost, 2 * per_token);
    }
}

/// Answers as `model` from `provider` without asking any hook (a provider that answered with
/// another model than the one asked for).
fn answers_as(
    provider: &'static str,
    model: &'static str,
    usage: Usage,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send> + Clone {
    service_fn(move |_: LlmRequest| async move {
        Ok::<_, LlmError>(LlmResponse::new("Paris", model, provider).with_usage(usage))
    })
}

#[tokio::test]
async fn a_response_from_a_model_without_a_price_is_never_billed_at_the_requested_price() {
    // refuse policy: it was served anyway, so it is charged what was reserved, and counted
    let ledger = builder()
        .budget(Budget::global(u64::MAX / 2))
        .build()
        .unwrap();
    CostMeterLayer::new(ledger.clone())
        .layer(answers_as("ollama", "llama-local", Usage::new(10, 10)))
        .oneshot(req())
        .await
        .unwrap();
    let snap = ledger.snapshot();
    assert_eq!(
        snap.total.cost,
        worst_tokens(),
        "the reservation, not 20 cheap tokens"
    );
    assert_eq!(snap.total.unpriced, 1);
    assert_eq!(&*snap.models[0].0, "llama-local");
    assert_eq!(ledger.budget_spent(0, None).await, worst_tokens());

    // free policy: free
    let ledger = builder().unknown_model(UnknownModel::Free).build().unwrap();
    CostMeterLayer::new(ledger.clone())
        .layer(answers_as("ollama", "llama-local", Usage::new(10, 10)))
        .oneshot(req())
        .await
        .unwrap();
    let snap = ledger.snapshot();
    assert_eq!((snap.total.cost, snap.total.unpriced), (0, 0));
    assert_eq!(snap.total.tokens, Tokens::new(10, 10));
}

#[tokio::test]
async fn per_provider_budgets_are_charged_to_the_provider_on_the_response() {
    let ledger = builder()
        .budget(Budget::provider("openai", u64::MAX / 2))
        .budget(Budget::provider("anthropic", u64::MAX / 2))
        .build()
        .unwrap();
    let svc = CostMeterLayer::new(ledger.clone()).layer(Attempt::new(
        "anthropic",
        "dear",
        Usage::new(3, 2),
    ));
    svc.oneshot(req()).await.unwrap();
    assert_eq!(
        ledger.budget_spent(0, None).await,
        0,
        "openai's reservation released"
    );
    assert_eq!(ledger.budget_spent(1, None).await, 5 * 20);

    // without a hook call, the response still names who served
    let ledger = builder()
        .budget(Budget::provider("openai", u64::MAX / 2))
        .budget(Budget::provider("anthropic", u64::MAX / 2))
        .build()
        .unwrap();
    CostMeterLayer::new(ledger.clone())
        .layer(answers_as("anthropic", "dear", Usage::new(3, 2)))
        .oneshot(req())
        .await
        .unwrap();
    assert_eq!(ledger.budget_spent(0, None).await, 0);
    assert_eq!(ledger.budget_spent(1, None).await, 5 * 20);
    assert_eq!(&*ledger.snapshot().providers[0].0, "anthropic");
}

#[tokio::test]
async fn a_response_without_usage_is_charged_its_worst_case_and_counted_unmetered() {
    let ledger = builder()
        .budget(Budget::global(u64::MAX / 2))
        .build()
        .unwrap();
    CostMeterLayer::new(ledger.clone())
        .layer(answers_as("openai", "cheap", Usage::default()))
        .oneshot(req())
        .await
        .unwrap();
    let snap = ledger.snapshot();
    assert_eq!(snap.total.cost, worst_tokens(), "never free");
    assert_eq!((snap.total.requests, snap.total.unmetered), (1, 1));
    assert_eq!(ledger.budget_spent(0, None).await, worst_tokens());

    // served by a dearer model than asked for: that model's worst case
    let ledger = builder().build().unwrap();
    CostMeterLayer::new(ledger.clone())
        .layer(answers_as("anthropic", "dear", Usage::default()))
        .oneshot(req())
        .await
        .unwrap();
    assert_eq!(ledger.snapshot().total.cost, 20 * worst_tokens());
}

#[tokio::test(start_paused = true)]
async fn usage_recorded_outside_a_meter_counts_against_budgets_windows_and_alerts() {
    let alerts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = alerts.clone();
    let ledger = builder()
        .budget(Budget::global(1000).daily().alert_at(0.5))
        .budget(Budget::per_client(600).daily())
        .on_budget_alert(move |a| seen.lock().unwrap().push(a.budget.clone()))
        .build()
        .unwrap();
    let cost = ledger
        .record_usage("openai", "cheap", Some("acme"), Tokens::new(400, 200))
        .await
        .unwrap();
    assert_eq!(cost, 600);
    assert_eq!(ledger.budget_spent(0, None).await, 600);
    assert_eq!(ledger.budget_spent(1, Some("acme")).await, 600);
    assert_eq!(*alerts.lock().unwrap(), ["global daily"]);
    // acme's budget is spent: a metered request of it is refused
    let svc =
        CostMeterLayer::new(ledger.clone()).layer(answers_as("openai", "cheap", Usage::new(1, 1)));
    let err = svc
        .clone()
        .oneshot(req().with_client_key("acme"))
        .await
        .unwrap_err();
    assert!(
        err.detail().unwrap().contains("client acme daily"),
        "{err:?}"
    );
    assert!(matches!(
        ledger.record_usage("x", "mystery", None, Tokens::new(1, 1)).await,
        Err(CostError::Unpriced(m)) if m == "mystery"
    ));
    // the next day starts over
    tokio::time::advance(Duration::from_secs(86_400)).await;
    assert_eq!(ledger.budget_spent(0, None).await, 0);
    svc.oneshot(req().with_client_key("acme")).await.unwrap();
    assert_eq!(ledger.budget_spent(1, Some("acme")).await, 2);
}

#[tokio::test(start_paused = true)]
async fn errors_and_cancellation_release_every_reservation() {
    let ledger = builder()
        .budget(Budget::global(u64::MAX / 2).daily())
        .budget(Budget::provider("openai", u64::MAX / 2))
        .budget(Budget::provider("anthropic", u64::MAX / 2))
        .budget(Budget::per_client(u64::MAX / 2))
        .build()
        .unwrap();
    let all_zero = || async {
        let mut spent = Vec::new();
        for i in 0..3 {
            spent.push(ledger.budget_spent(i, None).await);
        }
        spent.push(ledger.budget_spent(3, Some("acme")).await);
        spent == [0, 0, 0, 0]
    };
    // an error after the hook raised every budget
    let mut failing = Attempt::new("anthropic", "dear", Usage::new(1, 1));
    failing.fail = Some(ErrorKind::Server);
    let err = CostMeterLayer::new(ledger.clone())
        .layer(failing)
        .oneshot(req().with_client_key("acme"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(all_zero().await);

    // cancelled after the hook raised: the future is dropped mid-call
    let hanging = service_fn(|r: LlmRequest| async move {
        r.attempt_hook()
            .unwrap()
            .before_attempt("anthropic", "dear")
            .await?;
        std::future::pending::<()>().await;
        Ok::<LlmResponse, LlmError>(LlmResponse::new("", "dear", "anthropic"))
    });
    let svc = CostMeterLayer::new(ledger.clone()).layer(hanging);
    let call = svc.oneshot(req().with_client_key("acme"));
    let mut call = Box::pin(call);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut call)
            .await
            .is_err()
    );
    assert_eq!(
        ledger.budget_spent(2, None).await,
        20 * worst_tokens(),
        "held while in flight"
    );
    drop(call);
    assert!(all_zero().await, "nothing leaks");
    assert!(ledger.stats().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_fallbacks_to_a_dearer_model_never_overspend() {
    let dear_worst = 20 * worst_tokens();
    // every answer uses exactly its worst case
    let usage = Usage::new(
        worst_tokens() - u64::from(MAX_TOKENS),
        u64::from(MAX_TOKENS),
    );
    let ledger = builder()
        .budget(Budget::global(100 * dear_worst))
        .build()
        .unwrap();
    let svc = CostMeterLayer::new(ledger.clone()).layer(Attempt::new("anthropic", "dear", usage));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(req()).await })
        })
        .collect();
    let (mut served, mut refused) = (0u64, 0u64);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.model(), "dear");
                served += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
                refused += 1;
            }
        }
    }
    assert_eq!(served + refused, 1000);
    assert!((1..=100).contains(&served), "{served} served");
    let total = ledger.snapshot().total;
    assert_eq!(total.requests, served);
    assert_eq!(
        total.cost,
        served * dear_worst,
        "the ledger is the sum of what was served"
    );
    assert!(total.cost <= 100 * dear_worst, "never past the budget");
    assert_eq!(
        ledger.budget_spent(0, None).await,
        total.cost,
        "no reservation left open"
    );
}

#[test]
fn cost_errors_say_who_is_at_fault() {
    let unpriced = CostError::Unpriced("llama-local".into());
    assert!(!unpriced.verdict().is_client_fault() && unpriced.verdict().should_fallback());
    let e = LlmError::from(unpriced.clone());
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.detail().unwrap().contains("llama-local"));
    assert!(!e.verdict().is_client_fault());
    let boxed: BoxError = Box::new(unpriced);
    assert!(boxed.verdict().is_upstream_failure() && !boxed.verdict().is_retryable());

    let exceeded = CostError::BudgetExceeded {
        budget: "global daily".into(),
        limit: 1,
        spent: 1,
        requested: 1,
    };
    let boxed: BoxError = Box::new(exceeded.clone());
    assert!(
        boxed.verdict().is_refusal(),
        "a BoxError pipeline never retries it"
    );
    assert!(!boxed.verdict().should_fallback());
    assert_eq!(exceeded.verdict(), towerguard_outcome::Verdict::refused());
}

/// A store that answers every reservation and settlement one poll late (as a networked
/// store does), around the memory store.
#[derive(Default)]
struct LateStore(MemoryStore);

/// Pending once, then ready.
struct Late<T>(Option<T>, bool);

impl<T: Unpin> Future for Late<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if !self.1 {
            self.1 = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.0.take() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

impl BudgetStore for LateStore {
    type Client = MemoryClient;
    type Reserve = Late<Result<(), Shortfall>>;
    type Settle = Late<Vec<Alerted>>;
    type Spent = std::future::Ready<u64>;
    type Reset = std::future::Ready<()>;

    fn prepare(&mut self, budgets: &[Budget]) -> Result<(), ConfigError> {
        self.0.prepare(budgets)
    }
    fn client(&self, key: &str) -> MemoryClient {
        self.0.client(key)
    }
    fn client_is_idle(&self, client: &MemoryClient, windows: &[u64]) -> bool {
        self.0.client_is_idle(client, windows)
    }
    fn reserve<'a>(
        &self,
        holds: impl IntoIterator<Item = Hold<'a, MemoryClient>>,
    ) -> Self::Reserve {
        Late(Some(self.0.reserve(holds).into_inner()), false)
    }
    fn settle<'a>(
        &self,
        settlements: impl IntoIterator<Item = Settlement<'a, MemoryClient>>,
    ) -> Self::Settle {
        Late(Some(self.0.settle(settlements).into_inner()), false)
    }
    fn spent(&self, counter: CounterRef<'_, MemoryClient>) -> Self::Spent {
        self.0.spent(counter)
    }
    fn reset(&self, budgets: &[usize]) -> Self::Reset {
        self.0.reset(budgets)
    }
}

#[tokio::test]
async fn a_store_that_answers_later_is_awaited_before_the_call() {
    let alerts = Arc::new(AtomicU64::new(0));
    let seen = alerts.clone();
    let dear_worst = 20 * worst_tokens();
    let ledger = builder()
        .store(LateStore::default())
        .budget(Budget::global(dear_worst + 50).alert_at(0.01))
        .on_budget_alert(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let svc = CostMeterLayer::new(ledger.clone()).layer(service_fn(|r: LlmRequest| async move {
        // the hook's raise answers later too
        r.attempt_hook()
            .unwrap()
            .before_attempt("anthropic", "dear")
            .await?;
        Ok::<_, LlmError>(
            LlmResponse::new("Paris", "dear", "anthropic").with_usage(Usage::new(4, 1)),
        )
    }));
    svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(ledger.budget_spent(0, None).await, 100);
    assert_eq!(
        alerts.load(Ordering::SeqCst),
        1,
        "the late settlement's alert fired"
    );
    // the second request's raise no longer fits: refused through the pending path
    let err = svc.oneshot(req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
    assert_eq!(
        ledger.budget_spent(0, None).await,
        100,
        "nothing left reserved"
    );
}

/// With budgets, a request that carries an attempt hook allocates its shared reservation
/// (one allocation a call); without anything an attempt could change, nothing.
#[test]
fn a_hook_costs_one_allocation_and_only_when_it_can_matter() {
    let (model, provider): (Arc<str>, Arc<str>) = ("cheap".into(), "openai".into());
    let api = service_fn(move |_: LlmRequest| {
        let resp = LlmResponse::new(String::new(), model.clone(), provider.clone());
        std::future::ready(Ok::<_, LlmError>(resp.with_usage(Usage::new(3, 1))))
    });
    let request = req();
    // the answer's list of choices is the service's own allocation, not the meter's
    let mut bare = api.clone();
    let bare_info = allocation_counter::measure(|| {
        for _ in 0..100 {
            assert!(towerguard_testkit::call_now(&mut bare, request.clone()));
        }
    });
    for (ledger, per_call) in [
        (builder().build().unwrap(), 0),
        (
            builder()
                .budget(Budget::global(u64::MAX / 2))
                .build()
                .unwrap(),
            1,
        ),
    ] {
        let mut svc = CostMeterLayer::new(ledger.clone()).layer(api.clone());
        assert!(towerguard_testkit::call_now(&mut svc, request.clone()));
        let info = allocation_counter::measure(|| {
            for _ in 0..100 {
                assert!(towerguard_testkit::call_now(&mut svc, request.clone()));
            }
        });
        assert_eq!(
            info.count_total,
            bare_info.count_total + 100 * per_call,
            "{info:?}"
        );
        assert_eq!(ledger.snapshot().total.requests, 101);
    }
}
