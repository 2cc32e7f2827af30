//! Chaos soak: many requests, complete and streamed, at a fixed concurrency through the
//! facade's preset pipeline (aliases -> ErrorRateLimit -> CostMeter -> Fallback over three
//! providers, each Retry -> CircuitBreaker -> Timeout -> fake), over fake providers that inject
//! every fault kind, with the providers going fully down and recovering mid-run. Seeded, on
//! tokio's paused clock (one thread, so a breaker's admission and the call it admits cannot be
//! interleaved by another thread).
//!
//! Checked at the end: every request got exactly one answer or one error, none hung past its
//! deadline; no call reached a provider whose breaker was open; half-open probes never exceeded
//! their limit; each request made at most `1 + max_retries` calls to each provider; the
//! ledger's tokens equal the usage of what was served; the budget was never exceeded; no
//! reservation was left open.
//!
//! `TOWERGUARD_SOAK_REQUESTS` sets the count (default 100,000; a million for a long
//! run: `TOWERGUARD_SOAK_REQUESTS=1000000 cargo test --release -p towerguard-tests --test
//! chaos_soak -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use tower::{Service, ServiceExt};
use towerguard::breaker::{CircuitBreakerHandle, State};
use towerguard::llm::{Chunk, ErrorKind, LlmError, LlmRequest, LlmResponse, Message, Usage};
use towerguard::preset::{BreakerSettings, BudgetSettings, Pipeline, Preset, ProviderSpec};
use towerguard::retry::Backoff;
use towerguard::testkit::{FakeProvider, FaultPlan, Latency};

const CONCURRENCY: usize = 256;
const MAX_RETRIES: u32 = 2;
const HALF_OPEN_PERMITS: u32 = 1;
/// Longer than any request can take: the per-attempt timeout (2 s) times three attempts on
/// three providers, plus backoff.
const DEADLINE: Duration = Duration::from_secs(120);
/// A client's patience between chunks: a stalled stream is dropped after it.
const IDLE: Duration = Duration::from_secs(5);

/// What the fake upstreams saw, checked against the breakers.
#[derive(Default)]
struct Watch {
    violations: Mutex<Vec<String>>,
    /// Calls per (request id, provider).
    calls: Mutex<HashMap<(String, &'static str), u32>>,
    /// Calls admitted while half-open and still in flight, per provider.
    probes_in_flight: Mutex<HashMap<&'static str, u32>>,
    most_probes: AtomicU64,
}

/// A fake provider behind a switch (down: every call fails with a 503) and the invariant
/// checks, sitting where the real client would: below the breaker and the timeout.
#[derive(Clone)]
struct Upstream {
    name: &'static str,
    fake: FakeProvider,
    down: Arc<AtomicBool>,
    breaker: Arc<Mutex<Option<CircuitBreakerHandle>>>,
    watch: Arc<Watch>,
}

/// A half-open call in flight at a provider, counted in the watch until it is dropped.
struct Probe {
    watch: Arc<Watch>,
    name: &'static str,
}

impl Probe {
    fn start(watch: &Arc<Watch>, name: &'static str) -> Self {
        let mut inflight = watch.probes_in_flight.lock().unwrap();
        let n = inflight.entry(name).or_default();
        *n += 1;
        watch.most_probes.fetch_max(u64::from(*n), Ordering::SeqCst);
        Self {
            watch: watch.clone(),
            name,
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        *self
            .watch
            .probes_in_flight
            .lock()
            .unwrap()
            .entry(self.name)
            .or_default() -= 1;
    }
}

type BoxFut = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

impl Service<LlmRequest> for Upstream {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = BoxFut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> BoxFut {
        let watch = self.watch.clone();
        let state = self
            .breaker
            .lock()
            .unwrap()
            .as_ref()
            .map_or(State::Closed, |b| b.state());
        if state == State::Open {
            watch.violations.lock().unwrap().push(format!(
                "{} was called while its breaker was open",
                self.name
            ));
        }
        *watch
            .calls
            .lock()
            .unwrap()
            .entry((req.request_id().as_str().to_owned(), self.name))
            .or_default() += 1;
        // a probe is in flight until its call ends or is dropped (a timeout, a cancelled
        // request): the breaker then lets another probe in
        let probe = (state == State::HalfOpen).then(|| Probe::start(&watch, self.name));
        let name = self.name;
        let down = self.down.load(Ordering::SeqCst);
        let call = self.fake.call(req);
        Box::pin(async move {
            let result = if down {
                drop(call);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(LlmError::new(ErrorKind::Server)
                    .with_status(503)
                    .with_provider(name))
            } else {
                call.await
            };
            drop(probe);
            result
        })
    }
}

fn faults(seed: u64) -> FaultPlan {
    FaultPlan::seeded(seed)
        .fail(ErrorKind::RateLimited, 0.03)
        .fail_with(
            LlmError::new(ErrorKind::RateLimited)
                .with_status(429)
                .with_retry_after(Duration::from_millis(500)),
            0.02,
        )
        .fail(ErrorKind::Server, 0.03)
        .fail_with(LlmError::new(ErrorKind::Server).with_status(503), 0.02)
        .fail(ErrorKind::Overloaded, 0.02)
        .fail(ErrorKind::Timeout, 0.01)
        .fail(ErrorKind::Connection, 0.01)
        .fail(ErrorKind::QuotaExceeded, 0.005)
        .fail(ErrorKind::ContextLengthExceeded, 0.005)
        .hang(0.005)
        .cut(0.02)
        .stall(0.01)
        .error_event(ErrorKind::Overloaded, 0.02)
        .garbage(0.01)
        .latency(Latency::Uniform {
            min: Duration::from_millis(50),
            max: Duration::from_millis(400),
        })
        .chunk_latency(Duration::from_millis(20))
}

struct Soak {
    pipeline: Pipeline,
    handle: towerguard::preset::PipelineHandle,
    upstreams: Vec<Upstream>,
}

fn soak_pipeline(watch: &Arc<Watch>) -> Soak {
    let names = ["deepseek", "openai", "anthropic"];
    let models = ["deepseek-chat", "gpt-4o-mini", "claude-sonnet-4-5"];
    let upstreams: Vec<Upstream> = names
        .iter()
        .enumerate()
        .map(|(i, name)| Upstream {
            name,
            fake: FakeProvider::chaotic(*name, faults(7 + i as u64).build().unwrap()),
            down: Arc::default(),
            breaker: Arc::default(),
            watch: watch.clone(),
        })
        .collect();
    let mut preset = Preset::new().budgets(BudgetSettings {
        daily_usd: Some(1_000.0),
        per_tenant_daily_usd: Some(100.0),
        ..BudgetSettings::default()
    });
    for (up, model) in upstreams.iter().zip(models) {
        preset = preset.provider(
            ProviderSpec::new(up.name, up.clone())
                .model(model)
                .max_retries(MAX_RETRIES)
                .backoff(
                    Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1))
                        .with_jitter(towerguard::retry::Jitter::Full),
                )
                .breaker(BreakerSettings {
                    consecutive_failures: Some(8),
                    open_duration: Duration::from_secs(5),
                    half_open_permits: HALF_OPEN_PERMITS,
                    ..BreakerSettings::default()
                })
                .timeout(Duration::from_secs(2)),
        );
    }
    let (pipeline, handle) = preset.build().unwrap();
    for up in &upstreams {
        *up.breaker.lock().unwrap() = Some(handle.breaker(up.name).unwrap().clone());
    }
    Soak {
        pipeline,
        handle,
        upstreams,
    }
}

/// How one request ended, as its client saw it.
enum End {
    Answer(Usage),
    Stream { usage: Option<Usage>, ended: bool },
    Error,
}

async fn one_request(mut pipeline: Pipeline, i: u64) -> End {
    let mut req = LlmRequest::new("gpt-4o-mini", vec![Message::user("Tell me something.")])
        .with_max_tokens(100)
        .with_client_key(format!("tenant-{}", i % 50));
    let streamed = i.is_multiple_of(2);
    req.options_mut().stream = streamed;
    let resp = match pipeline.ready().await {
        Ok(svc) => svc.call(req).await,
        Err(e) => Err(e),
    };
    let Ok(resp) = resp else { return End::Error };
    let Some(mut stream) = resp.stream else {
        return End::Answer(resp.usage);
    };
    let mut usage = None;
    loop {
        match tokio::time::timeout(IDLE, stream.next()).await {
            Ok(Some(Ok(Chunk::Usage(u)))) => usage = Some(u),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return End::Stream { usage, ended: true },
            // stalled: the client gives up and drops it
            Err(_) => {
                return End::Stream {
                    usage,
                    ended: false,
                };
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_loses_nothing_under_chaos() {
    let requests: u64 = std::env::var("TOWERGUARD_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let watch = Arc::new(Watch::default());
    let soak = soak_pipeline(&watch);

    // the providers go down and recover while the requests run
    let switches: Vec<_> = soak.upstreams.iter().map(|u| u.down.clone()).collect();
    let outages = tokio::spawn(async move {
        for (i, down) in switches.iter().cycle().take(9).enumerate() {
            tokio::time::sleep(Duration::from_secs(20 + 7 * i as u64)).await;
            down.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(15)).await;
            down.store(false, Ordering::SeqCst);
        }
    });

    let answered = Arc::new(AtomicU64::new(0));
    let mut served_input = 0u64;
    let mut served_output = 0u64;
    let (mut errors, mut complete, mut streams, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    let mut next = 0u64;
    let mut running = tokio::task::JoinSet::new();
    while next < requests || !running.is_empty() {
        while next < requests && running.len() < CONCURRENCY {
            let pipeline = soak.pipeline.clone();
            let answered = answered.clone();
            let i = next;
            running.spawn(async move {
                let end = tokio::time::timeout(DEADLINE, one_request(pipeline, i))
                    .await
                    .expect("a request hung past its deadline");
                answered.fetch_add(1, Ordering::SeqCst);
                end
            });
            next += 1;
        }
        match running.join_next().await.unwrap().unwrap() {
            End::Answer(u) => {
                complete += 1;
                served_input += u.input_tokens;
                served_output += u.output_tokens;
            }
            End::Stream { usage, ended } => {
                streams += 1;
                dropped += u64::from(!ended);
                if let Some(u) = usage {
                    served_input += u.input_tokens;
                    served_output += u.output_tokens;
                }
            }
            End::Error => errors += 1,
        }
    }
    outages.abort();

    let stats = soak.handle.stats().await;
    let ledger = &stats.ledger.total;
    println!(
        "{requests} requests: {complete} complete, {streams} streams ({dropped} dropped stalled), \
         {errors} errors; ledger {} requests, {} unmetered, {} nano-dollars; most probes at once {}",
        ledger.requests,
        ledger.unmetered,
        ledger.cost,
        watch.most_probes.load(Ordering::SeqCst)
    );
    assert_eq!(
        answered.load(Ordering::SeqCst),
        requests,
        "one answer per request"
    );
    assert_eq!(complete + streams + errors, requests);
    let violations = watch.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "{:?}",
        &violations[..violations.len().min(5)]
    );
    assert!(watch.most_probes.load(Ordering::SeqCst) <= u64::from(HALF_OPEN_PERMITS));
    let most_calls = watch
        .calls
        .lock()
        .unwrap()
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    assert!(
        most_calls <= 1 + MAX_RETRIES,
        "a request called one provider {most_calls} times"
    );
    assert_eq!(
        ledger.requests,
        complete + streams,
        "every served answer billed once"
    );
    assert_eq!(
        ledger.tokens.input, served_input,
        "the ledger is the served usage"
    );
    assert_eq!(ledger.tokens.output, served_output);
    let spent = soak.handle.ledger().budget_spent(0, None).await;
    assert_eq!(spent, ledger.cost, "no reservation left open");
    assert!(spent <= towerguard::cost::usd(1_000.0), "the budget held");
    for up in &soak.upstreams {
        assert_eq!(
            up.fake.streams_started(),
            up.fake.streams_completed() + up.fake.streams_failed() + up.fake.streams_dropped(),
            "{}: every stream ended",
            up.name
        );
    }
    assert!(complete > 0 && streams > 0 && errors > 0 && dropped > 0);
}
