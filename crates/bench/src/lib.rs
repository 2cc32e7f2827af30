//! Shared pieces of towerguard's benchmarks: the bare services every layer is measured over.
//!
//! The benchmarks themselves live in `benches/` and run with
//! `cargo bench -p towerguard-bench --bench <name>`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tower_service::Service;

/// A service that answers every request at once with `Ok(())`: the baseline that layer
/// overheads are measured against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

impl<Req> Service<Req> for Noop {
    type Response = ();
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Req) -> Self::Future {
        ready(Ok(()))
    }
}

pub use towerguard_testkit::call_now;

pub mod clients;
pub mod peers;
pub mod preset;
pub mod readme;

/// Times `threads` pieces of work started together: `prepare(t)` builds thread `t`'s work
/// (clones, keys) on this thread, then every thread waits at a barrier and runs its work;
/// the result is the wall time from the barrier until the last thread is done.
pub fn timed_threads<W, F>(threads: usize, prepare: F) -> std::time::Duration
where
    F: Fn(usize) -> W,
    W: FnOnce() + Send,
{
    let work: Vec<W> = (0..threads).map(&prepare).collect();
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for w in work {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                w();
            });
        }
        barrier.wait();
        std::time::Instant::now()
    })
    .elapsed()
}

/// Times `iters` calls on each of `threads` threads, each with its own clone of `svc` and the
/// request `request(thread)`, inside the current tokio runtime if there is one (for layers
/// that read tokio's clock).
pub fn hammer<S, Req, F>(svc: &S, threads: usize, iters: u64, request: F) -> std::time::Duration
where
    S: Service<Req> + Clone + Send,
    Req: Clone + Send,
    F: Fn(usize) -> Req,
{
    let handle = tokio::runtime::Handle::try_current().ok();
    timed_threads(threads, |t| {
        let mut s = svc.clone();
        let handle = handle.clone();
        let req = request(t);
        move || {
            let _g = handle.as_ref().map(|h| h.enter());
            for _ in 0..iters {
                std::hint::black_box(call_now(&mut s, req.clone()));
            }
        }
    })
}
