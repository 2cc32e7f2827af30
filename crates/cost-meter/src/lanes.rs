//! Per-thread lanes for the ledger's rows: a thread that owns a lane adds to its own copy of
//! a row with plain loads and stores, so recording a call takes no atomic read-modify-write
//! and two threads never write the same cache line. Reads sum the lanes.
//!
//! A thread takes a lane the first time it records (up to twice the machine's parallelism,
//! at most 64) and gives it back when it exits, so a lane has one writer at a time. Threads
//! past the limit, and threads already tearing down their thread-locals, share the row's
//! flagged totals ([`Totals`]) instead: every call still counts exactly once.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::ledger::{Spend, Totals, bump};
use crate::prices::{Nanos, Tokens};

/// Lanes a row can have: threads past it share the row's flagged totals.
fn lane_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .saturating_mul(2)
            .clamp(2, 64)
    })
}

/// Lanes given back by exited threads, taken again first.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// The next lane never handed out.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// No lane: this thread shares the flagged totals.
const NONE: usize = usize::MAX;
/// Not asked for a lane yet.
const UNSET: usize = usize::MAX - 1;

thread_local! {
    /// This thread's lane, [`NONE`] or [`UNSET`]. No destructor, so it can be read at any
    /// time, even while the thread's other thread-locals are torn down.
    static LANE: Cell<usize> = const { Cell::new(UNSET) };
    /// Gives the lane back when the thread exits.
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let i = LANE.with(|l| l.replace(NONE));
        if i < UNSET {
            // the mutex orders this thread's last writes before the next owner's first
            FREE.lock().unwrap_or_else(PoisonError::into_inner).push(i);
        }
    }
}

/// This thread's lane, if it has one.
#[inline]
fn current() -> Option<usize> {
    let i = LANE.with(Cell::get);
    if i < UNSET {
        Some(i)
    } else if i == UNSET {
        take()
    } else {
        None
    }
}

/// Takes a lane for this thread, if one is free.
#[cold]
#[inline(never)]
fn take() -> Option<usize> {
    // the lane is given back by `Release`: no lane if it can no longer be set up
    let i = if RELEASE.try_with(|_| ()).is_ok() {
        let free = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        free.unwrap_or_else(|| {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            if i < lane_count() { i } else { NONE }
        })
    } else {
        NONE
    };
    LANE.with(|l| l.set(i));
    (i < UNSET).then_some(i)
}

/// One thread's copy of a row's counts (requests, input, output, cached input, cache
/// write, cost), on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Lane([AtomicU64; 6]);

/// A row's lanes, and what each lane showed at the last reset (reads subtract it: a reset
/// cannot zero a lane its owner may be writing).
struct Lanes {
    lanes: Box<[Lane]>,
    bases: Box<[[AtomicU64; 6]]>,
}

impl Lanes {
    fn new() -> Self {
        let n = lane_count();
        Self {
            lanes: (0..n).map(|_| Lane::default()).collect(),
            bases: (0..n).map(|_| Default::default()).collect(),
        }
    }
}

/// The totals of one ledger row: per-thread lanes, and flagged totals for threads without
/// one.
#[derive(Default)]
pub(crate) struct RowTotals {
    lanes: OnceLock<Lanes>,
    shared: Totals,
}

impl RowTotals {
    /// Adds one call.
    #[inline(always)]
    pub(crate) fn add(&self, t: Tokens, cost: Nanos) {
        if let Some(i) = current()
            && let Some(lane) = self.lanes.get_or_init(Lanes::new).lanes.get(i)
        {
            // this thread is the lane's only writer: plain loads and stores (field by field,
            // not through an array: a copy through memory stalls store forwarding)
            let [requests, input, output, cached, write, money] = &lane.0;
            bump(requests, 1);
            bump(input, t.input);
            bump(output, t.output);
            bump(cached, t.cached_input);
            bump(write, t.cache_write);
            bump(money, cost);
            return;
        }
        self.add_shared(t.input, t.output, t.cached_input, t.cache_write, cost);
    }

    /// Adds one call for a thread without a lane. (The counts come one by one, in registers:
    /// a `Tokens` argument would be copied through memory on the hot path.)
    #[inline(never)]
    fn add_shared(
        &self,
        input: u64,
        output: u64,
        cached_input: u64,
        cache_write: u64,
        cost: Nanos,
    ) {
        let t = Tokens {
            input,
            output,
            cached_input,
            cache_write,
        };
        self.shared.add(t, cost);
    }

    /// The totals so far.
    pub(crate) fn read(&self) -> Spend {
        let mut spend = self.shared.read();
        if let Some(lanes) = self.lanes.get() {
            for (lane, base) in lanes.lanes.iter().zip(lanes.bases.iter()) {
                let v: [u64; 6] = std::array::from_fn(|k| {
                    lane.0[k]
                        .load(Ordering::Relaxed)
                        .wrapping_sub(base[k].load(Ordering::Relaxed))
                });
                spend.add(&Spend {
                    requests: v[0],
                    tokens: Tokens {
                        input: v[1],
                        output: v[2],
                        cached_input: v[3],
                        cache_write: v[4],
                    },
                    cost: v[5],
                });
            }
        }
        spend
    }

    /// Starts the totals over.
    pub(crate) fn clear(&self) {
        self.shared.clear();
        if let Some(lanes) = self.lanes.get() {
            for (lane, base) in lanes.lanes.iter().zip(lanes.bases.iter()) {
                for (v, b) in lane.0.iter().zip(base) {
                    b.store(v.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_past_the_lanes_still_count_once_and_reset_clears_all() {
        let row = RowTotals::default();
        let threads = lane_count() + 6; // all alive at once: some get no lane
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..1000 {
                        row.add(Tokens::new(2, 3), 5);
                    }
                });
            }
        });
        let n = threads as u64 * 1000;
        let spend = row.read();
        assert_eq!(spend.requests, n);
        assert_eq!((spend.tokens.input, spend.tokens.output), (2 * n, 3 * n));
        assert_eq!(spend.cost, 5 * n);
        row.clear();
        assert_eq!(row.read(), Spend::default());
        row.add(Tokens::new(1, 1), 1);
        assert_eq!(row.read().requests, 1);
    }
}
