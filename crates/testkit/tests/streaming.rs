//! Fakes that stream: the default stream, scripted chunks, chunk latency, cuts, stalls, error
//! events, garbage, the commit point (n = 0), the stream counters and seeded stream faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use tokio::time::{Instant, timeout};
use tower::{Service, ServiceExt};
use towerguard_llm_core::{
    Chunk, ChunkStream, ErrorKind, FinishReason, LlmError, LlmRequest, LlmResponse, ToolCall, Usage,
};
use towerguard_testkit::{FakeProvider, FaultPlan, Outcome, request};

fn stream_request(model: &str) -> LlmRequest {
    let mut req = request(model);
    req.options_mut().stream = true;
    req
}

async fn call(p: &mut FakeProvider, req: LlmRequest) -> Result<LlmResponse, LlmError> {
    p.ready().await?.call(req).await
}

async fn open(p: &mut FakeProvider) -> ChunkStream {
    let resp = call(p, stream_request("gpt-4o")).await.unwrap();
    assert!(resp.is_stream());
    assert!(resp.choices.is_empty());
    resp.stream.unwrap()
}

async fn next(s: &mut ChunkStream) -> Option<Result<Chunk, LlmError>> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// Every item: the chunks, then the error item if it failed (and nothing after it).
async fn read_all(s: &mut ChunkStream) -> (Vec<Chunk>, Option<LlmError>) {
    let mut chunks = Vec::new();
    while let Some(item) = next(s).await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(next(s).await.is_none(), "nothing after the error item");
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

fn script() -> Vec<Chunk> {
    vec![
        Chunk::Start {
            id: Some("msg_1".into()),
            model: Some("claude-sonnet-4-5".into()),
        },
        Chunk::Reasoning {
            choice: 0,
            text: "think".into(),
        },
        Chunk::Text {
            choice: 0,
            text: "Hel".into(),
        },
        Chunk::Text {
            choice: 0,
            text: "lo".into(),
        },
        Chunk::Finish {
            choice: 0,
            reason: FinishReason::Stop,
        },
        Chunk::Usage(Usage::new(11, 4)),
    ]
}

#[tokio::test(start_paused = true)]
async fn the_default_stream_is_start_text_finish_usage_then_a_clean_end() {
    let usage = Usage::new(30, 7);
    let mut p = FakeProvider::always(
        "openai",
        Outcome::ok_with_usage(usage).with_content("one two three four"),
    );
    let mut s = open(&mut p).await;
    let (chunks, err) = read_all(&mut s).await;
    assert!(err.is_none());
    assert_eq!(
        chunks.first(),
        Some(&Chunk::Start {
            id: None,
            model: Some("gpt-4o".into())
        })
    );
    let texts: Vec<&str> = chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Text { choice: 0, text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["one ", "two ", "three ", "four"]);
    let n = chunks.len();
    assert_eq!(
        chunks[n - 2],
        Chunk::Finish {
            choice: 0,
            reason: FinishReason::Stop
        }
    );
    assert_eq!(chunks[n - 1], Chunk::Usage(usage));
    assert_eq!(n, 1 + 4 + 2);
    assert_eq!(s.usage(), Some(usage));
    assert!(next(&mut s).await.is_none(), "it stays ended");
    assert_eq!(p.streams_started(), 1);
    assert_eq!(p.streams_completed(), 1);
    assert_eq!(
        (p.streams_failed(), p.streams_dropped(), p.streams_open()),
        (0, 0, 0)
    );
    assert_eq!((p.successes(), p.failures(), p.in_flight()), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_stream_bills_and_reads_like_the_complete_answer_of_the_same_outcome() {
    let calls = vec![ToolCall::new(
        "call_1",
        "get_weather",
        r#"{"city":"Paris"}"#,
    )];
    for outcome in [
        Outcome::ok(),
        Outcome::ok_with_usage(Usage::new(100, 20)).with_content("a longer answer of six words"),
        Outcome::ok().with_finish_reason(FinishReason::Length),
        Outcome::ok_with_usage(Usage::new(9, 3)).with_tool_calls(calls.clone()),
    ] {
        let mut p = FakeProvider::always("openai", outcome);
        let complete = call(&mut p, request("gpt-4o")).await.unwrap();
        assert!(!complete.is_stream());
        let streamed = call(&mut p, stream_request("gpt-4o")).await.unwrap();
        assert!(streamed.is_stream());
        let streamed = streamed.into_complete().await.unwrap();
        assert_eq!(streamed.usage, complete.usage, "same usage, same bill");
        assert_ne!(streamed.usage, Usage::default());
        assert_eq!(streamed.text(), complete.text());
        assert_eq!(streamed.finish_reason(), complete.finish_reason());
        assert_eq!(streamed.tool_calls(), complete.tool_calls());
        assert_eq!(
            (streamed.model(), streamed.provider()),
            (complete.model(), complete.provider())
        );
        assert_eq!((p.streams_started(), p.streams_completed()), (1, 1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_scripted_stream_sends_exactly_its_chunks() {
    let mut p = FakeProvider::always("anthropic", Outcome::stream(script()));
    for _ in 0..2 {
        let mut s = open(&mut p).await;
        let (chunks, err) = read_all(&mut s).await;
        assert!(err.is_none());
        assert_eq!(chunks, script());
    }
    assert_eq!((p.streams_started(), p.streams_completed()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_scripted_stream_answers_a_complete_request_complete() {
    let mut p = FakeProvider::always("anthropic", Outcome::stream(script()).cut_after(2));
    let resp = call(&mut p, request("claude-sonnet-4-5")).await.unwrap();
    assert!(!resp.is_stream());
    assert_eq!(resp.text(), "Hello");
    assert_eq!(resp.reasoning(), Some("think"));
    assert_eq!(resp.usage, Usage::new(11, 4));
    assert_eq!(resp.id.as_deref(), Some("msg_1"));
    assert_eq!(resp.provider(), "anthropic");
    assert_eq!(p.streams_started(), 0, "no stream for a complete request");
}

#[tokio::test(start_paused = true)]
async fn chunk_latency_delays_every_chunk_on_tokios_clock() {
    let outcome = Outcome::stream(script())
        .after(Duration::from_millis(500))
        .chunk_latency(Duration::from_millis(40));
    let mut p = FakeProvider::always("anthropic", outcome);
    let start = Instant::now();
    let mut s = open(&mut p).await;
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(500),
        "time to the answer"
    );
    for i in 1..=script().len() as u64 {
        assert!(next(&mut s).await.unwrap().is_ok());
        assert_eq!(start.elapsed(), Duration::from_millis(500 + 40 * i));
    }
    assert!(next(&mut s).await.is_none());
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(500 + 40 * 6),
        "the end is not delayed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_ends_with_a_connection_error_item() {
    let mut p = FakeProvider::always("openai", Outcome::stream(script()).cut_after(3));
    let mut s = open(&mut p).await;
    let (chunks, err) = read_all(&mut s).await;
    assert_eq!(chunks, script()[..3]);
    let err = err.expect("a cut stream is an error, not a success");
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(err.provider(), Some("openai"));
    assert!(err.detail().unwrap().contains("terminator"));
    assert_eq!(
        (
            p.streams_started(),
            p.streams_failed(),
            p.streams_completed()
        ),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_after_the_last_chunk_is_still_an_error() {
    let mut p = FakeProvider::always("openai", Outcome::ok().cut_after(usize::MAX));
    let mut s = open(&mut p).await;
    let (chunks, err) = read_all(&mut s).await;
    assert!(
        matches!(chunks.last(), Some(Chunk::Usage(_))),
        "every chunk arrived"
    );
    assert_eq!(err.unwrap().kind(), ErrorKind::Connection);
    assert_eq!(p.streams_failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn faults_before_the_first_chunk_fail_the_call_itself() {
    for (outcome, kind) in [
        (Outcome::ok().cut_after(0), ErrorKind::Connection),
        (
            Outcome::stream(script()).error_after(0, ErrorKind::Overloaded),
            ErrorKind::Overloaded,
        ),
        (Outcome::ok().garbage_after(0), ErrorKind::Server),
        (
            Outcome::stream(Vec::new()).cut_after(5),
            ErrorKind::Connection,
        ),
    ] {
        let mut p = FakeProvider::always("anthropic", outcome.after(Duration::from_millis(200)));
        let start = Instant::now();
        let err = call(&mut p, stream_request("m")).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        assert_eq!(err.kind(), kind);
        assert_eq!(err.provider(), Some("anthropic"));
        assert_eq!(
            (p.failures(), p.successes(), p.streams_started()),
            (1, 0, 0)
        );
        // a complete request is not affected by stream faults
        assert!(call(&mut p, request("m")).await.is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn a_stall_before_the_first_chunk_hangs_the_call() {
    let mut p = FakeProvider::always("openai", Outcome::ok().stall_after(0));
    let res = timeout(Duration::from_secs(3600), call(&mut p, stream_request("m"))).await;
    assert!(res.is_err(), "the call never answers");
    assert_eq!((p.in_flight(), p.successes(), p.failures()), (0, 0, 0));
    assert_eq!(p.streams_started(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_sends_n_chunks_then_nothing_until_dropped() {
    let mut p = FakeProvider::always("openai", Outcome::stream(script()).stall_after(2));
    let mut s = open(&mut p).await;
    assert_eq!(next(&mut s).await.unwrap().unwrap(), script()[0]);
    assert_eq!(next(&mut s).await.unwrap().unwrap(), script()[1]);
    let idle = timeout(Duration::from_secs(24 * 3600), next(&mut s)).await;
    assert!(idle.is_err(), "only the caller's idle timeout ends it");
    assert_eq!(p.streams_open(), 1);
    drop(s);
    assert_eq!((p.streams_dropped(), p.streams_open()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn an_error_event_ends_the_stream_with_its_kind_and_provider() {
    let mut p = FakeProvider::scripted(
        "anthropic",
        [
            Outcome::stream(script()).error_after(4, ErrorKind::Overloaded),
            Outcome::ok().error_after(1, ErrorKind::RateLimited),
        ],
    );
    let mut s = open(&mut p).await;
    let (chunks, err) = read_all(&mut s).await;
    assert_eq!(chunks, script()[..4]);
    let err = err.unwrap();
    assert_eq!(
        (err.kind(), err.provider()),
        (ErrorKind::Overloaded, Some("anthropic"))
    );
    let mut s = open(&mut p).await;
    let (chunks, err) = read_all(&mut s).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(err.unwrap().kind(), ErrorKind::RateLimited);
    assert_eq!((p.streams_started(), p.streams_failed()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn garbage_ends_the_stream_with_a_malformed_event_error() {
    let mut p = FakeProvider::always(
        "openai",
        Outcome::stream(script())
            .garbage_after(5)
            .chunk_latency(Duration::from_millis(10)),
    );
    let start = Instant::now();
    let mut s = open(&mut p).await;
    let (chunks, err) = read_all(&mut s).await;
    assert_eq!(chunks, script()[..5]);
    let err = err.unwrap();
    assert_eq!(
        (err.kind(), err.provider()),
        (ErrorKind::Server, Some("openai"))
    );
    assert!(err.detail().unwrap().contains("malformed stream event"));
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(60),
        "the bad event is an event too"
    );
    assert_eq!(p.streams_failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn stream_behaviours_leave_failures_and_hangs_alone() {
    let o = Outcome::fail(ErrorKind::Server)
        .cut_after(2)
        .chunk_latency(Duration::from_secs(1));
    let mut p = FakeProvider::always("openai", o);
    let err = call(&mut p, stream_request("m")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.status(), Some(500));
    assert!(Outcome::hang().garbage_after(1).is_hang());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_is_counted_as_dropped_at_once() {
    let mut p = FakeProvider::always(
        "openai",
        Outcome::ok().chunk_latency(Duration::from_secs(5)),
    );
    let mut s = open(&mut p).await;
    assert!(next(&mut s).await.unwrap().is_ok());
    // a chunk is pending on its timer
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut s).poll_next(&mut cx).is_pending());
    drop(s);
    assert_eq!(
        (p.streams_started(), p.streams_dropped(), p.streams_open()),
        (1, 1, 0)
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!((p.streams_completed(), p.streams_failed()), (0, 0));

    // a call answered with a stream but dropped unread is dropped too; a call future
    // dropped before it answers starts no stream at all
    let resp = call(&mut p, stream_request("m")).await.unwrap();
    drop(resp);
    assert_eq!(p.streams_dropped(), 2);
    let slow = FakeProvider::always("slow", Outcome::ok().after(Duration::from_secs(9)));
    let mut slow2 = slow.clone();
    let fut = slow2.ready().await.unwrap().call(stream_request("m"));
    drop(fut);
    assert_eq!((slow.streams_started(), slow.streams_dropped()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn many_streams_are_all_accounted_for() {
    let p = FakeProvider::builder("openai")
        .script((0..200).map(|i| match i % 5 {
            0 => Outcome::ok(),
            1 => Outcome::ok().cut_after(2),
            2 => Outcome::ok().error_after(3, ErrorKind::Server),
            3 => Outcome::ok().stall_after(1),
            _ => Outcome::ok().chunk_latency(Duration::from_millis(3)),
        }))
        .build();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let mut p = p.clone();
        tasks.push(tokio::spawn(async move {
            let resp = call(&mut p, stream_request("m")).await.unwrap();
            let _ = timeout(Duration::from_secs(30), resp.into_complete()).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(p.streams_started(), 200);
    assert_eq!(p.streams_completed(), 80);
    assert_eq!(p.streams_failed(), 80);
    assert_eq!(p.streams_dropped(), 40);
    assert_eq!(p.streams_open(), 0);
}

/// Polls `s` to its end with a paused clock, counting only the allocations of the polls.
async fn allocations_reading(s: &mut ChunkStream) -> (u64, usize) {
    let mut cx = Context::from_waker(Waker::noop());
    let (mut allocs, mut chunks) = (0, 0);
    loop {
        let mut poll = Poll::Pending;
        let info = allocation_counter::measure(|| poll = Pin::new(&mut *s).poll_next(&mut cx));
        allocs += info.count_total;
        match poll {
            Poll::Ready(Some(item)) => {
                assert!(item.is_ok());
                chunks += 1;
            }
            Poll::Ready(None) => return (allocs, chunks),
            Poll::Pending => tokio::time::advance(Duration::from_millis(1)).await,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn reading_a_stream_allocates_nothing_beyond_its_chunks() {
    // the default stream's chunks are built with the answer: reading moves them out
    let mut p = FakeProvider::always("openai", Outcome::ok().with_content("word ".repeat(500)));
    let mut s = open(&mut p).await;
    assert_eq!(allocations_reading(&mut s).await, (0, 1 + 500 + 2));

    // with a chunk latency: the stream's one timer is reset for each chunk, not remade
    let outcome = Outcome::ok()
        .with_content("word ".repeat(100))
        .chunk_latency(Duration::from_millis(1));
    let mut p = FakeProvider::always("openai", outcome);
    let mut s = open(&mut p).await;
    assert!(next(&mut s).await.unwrap().is_ok()); // the timer exists now
    assert_eq!(allocations_reading(&mut s).await, (0, 100 + 2));

    // a scripted stream clones each chunk: the allocations are the chunks' own strings
    let mut p = FakeProvider::always("openai", Outcome::stream(script()));
    let mut s = open(&mut p).await;
    // Start (id and model), Reasoning, Text, Text
    assert_eq!(allocations_reading(&mut s).await, (5, 6));

    // the counter does see allocations
    let boxed = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(7u64));
    });
    assert_eq!(boxed.count_total, 1);
}

/// How a call under faults went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Went {
    /// The call never answered (a hang, or a stall before the first chunk).
    Hung,
    /// The call failed with this kind.
    Failed(ErrorKind),
    /// The call answered a stream, which sent this many chunks and ended so.
    Streamed(usize, End),
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Clean,
    Stalled,
    Error(ErrorKind),
}

impl Went {
    /// The error kind of the call or of its stream's error item.
    fn error(self) -> Option<ErrorKind> {
        match self {
            Went::Failed(k) | Went::Streamed(_, End::Error(k)) => Some(k),
            _ => None,
        }
    }
}

async fn run_stream_chaos(plan: FaultPlan, n: usize) -> (Vec<Went>, FakeProvider) {
    let mut p = FakeProvider::chaotic("chaos", plan.build().unwrap());
    let mut out = Vec::new();
    for _ in 0..n {
        let went = match timeout(Duration::from_secs(60), call(&mut p, stream_request("m"))).await {
            Err(_) => Went::Hung,
            Ok(Err(e)) => Went::Failed(e.kind()),
            Ok(Ok(resp)) => {
                let mut s = resp.stream.unwrap();
                let mut chunks = 0;
                let end = loop {
                    match timeout(Duration::from_secs(60), next(&mut s)).await {
                        Err(_) => break End::Stalled,
                        Ok(None) => break End::Clean,
                        Ok(Some(Ok(_))) => chunks += 1,
                        Ok(Some(Err(e))) => break End::Error(e.kind()),
                    }
                };
                Went::Streamed(chunks, end)
            }
        };
        out.push(went);
    }
    (out, p)
}

fn stream_plan(seed: u64) -> FaultPlan {
    FaultPlan::seeded(seed)
        .fail(ErrorKind::RateLimited, 0.1)
        .hang(0.02)
        .cut(0.1)
        .stall(0.05)
        .error_event(ErrorKind::Overloaded, 0.1)
        .garbage(0.05)
        .chunk_latency(Duration::from_millis(2))
}

#[tokio::test(start_paused = true)]
async fn stream_faults_are_seeded_and_follow_their_rates() {
    let (a, p) = run_stream_chaos(stream_plan(3), 1000).await;
    let (b, _) = run_stream_chaos(stream_plan(3), 1000).await;
    assert_eq!(a, b, "same seed, same sequence");
    assert_ne!(a, run_stream_chaos(stream_plan(4), 1000).await.0);
    let share =
        |f: &dyn Fn(Went) -> bool| a.iter().filter(|w| f(**w)).count() as f64 / a.len() as f64;
    let cut = share(&|w| w.error() == Some(ErrorKind::Connection));
    let overloaded = share(&|w| w.error() == Some(ErrorKind::Overloaded));
    let garbage = share(&|w| w.error() == Some(ErrorKind::Server));
    let limited = share(&|w| w == Went::Failed(ErrorKind::RateLimited));
    let clean = share(&|w| matches!(w, Went::Streamed(_, End::Clean)));
    assert!((0.07..0.13).contains(&cut), "{cut}");
    assert!((0.07..0.13).contains(&overloaded), "{overloaded}");
    assert!((0.03..0.07).contains(&garbage), "{garbage}");
    assert!((0.07..0.13).contains(&limited), "{limited}");
    assert!((0.52..0.64).contains(&clean), "{clean}");
    // the faults strike at every point: before the first chunk (the call fails, or hangs
    // for a stall), mid-stream, after the last chunk (the default answer here is 8 chunks:
    // Start, 5 words, Finish, Usage)
    let any = |f: &dyn Fn(Went) -> bool| a.iter().any(|w| f(*w));
    assert!(any(&|w| w == Went::Failed(ErrorKind::Connection)));
    assert!(any(&|w| w == Went::Failed(ErrorKind::Server)));
    assert!(any(&|w| matches!(
        w,
        Went::Streamed(1..=7, End::Error(ErrorKind::Connection))
    )));
    assert!(any(&|w| matches!(w, Went::Streamed(8, End::Error(_)))));
    assert!(any(&|w| matches!(w, Went::Streamed(1.., End::Stalled))));
    assert!(
        !any(&|w| matches!(w, Went::Streamed(0, _))),
        "no stream before its first chunk"
    );
    // every stream is accounted for
    let streams = a.iter().filter(|w| matches!(w, Went::Streamed(..))).count() as u64;
    assert_eq!(p.streams_started(), streams);
    assert_eq!(
        p.streams_completed() + p.streams_failed() + p.streams_dropped(),
        streams
    );
}

async fn complete_chaos(plan: FaultPlan, n: usize) -> Vec<Option<ErrorKind>> {
    let mut p = FakeProvider::chaotic("chaos", plan.build().unwrap());
    let mut out = Vec::new();
    for _ in 0..n {
        let r = timeout(Duration::from_secs(60), call(&mut p, request("m"))).await;
        out.push(match r {
            Err(_) => Some(ErrorKind::Timeout),
            Ok(r) => {
                assert!(r.as_ref().map_or(true, |r| !r.is_stream()));
                r.err().map(|e| e.kind())
            }
        });
    }
    out
}

#[tokio::test(start_paused = true)]
async fn stream_faults_leave_complete_requests_and_existing_seeds_unchanged() {
    let base = || {
        FaultPlan::seeded(9)
            .fail(ErrorKind::RateLimited, 0.2)
            .fail(ErrorKind::Server, 0.1)
            .hang(0.05)
    };
    let without = complete_chaos(base(), 1000).await;
    let with = complete_chaos(
        base()
            .cut(0.2)
            .stall(0.1)
            .error_event(ErrorKind::Server, 0.1)
            .garbage(0.1),
        1000,
    )
    .await;
    assert_eq!(with, without, "the same outcomes for the same seed");
}

#[test]
fn stream_fault_rates_are_checked_naming_the_field() {
    let e = FaultPlan::seeded(0).cut(1.5).build().unwrap_err();
    assert_eq!(e.field(), "cut.rate");
    let e = FaultPlan::seeded(0).stall(-0.1).build().unwrap_err();
    assert_eq!(e.field(), "stall.rate");
    let e = FaultPlan::seeded(0)
        .error_event(ErrorKind::Server, f64::NAN)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "error_event.rate");
    let e = FaultPlan::seeded(0).garbage(2.0).build().unwrap_err();
    assert_eq!(e.field(), "garbage.rate");
    let e = FaultPlan::seeded(0)
        .fail(ErrorKind::Server, 0.6)
        .cut(0.5)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "fail.rate");
}
