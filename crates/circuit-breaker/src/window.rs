//! What the breaker records while closed: the run of consecutive failures and the sliding
//! window its failure and slow-call rates are taken over.
//!
//! A success only adds one to a counter of its thread's shard (with a time window, after
//! reading the clock). Failures and slow calls, which may trip the breaker, are recorded under
//! a lock together with the counts the decision needs. The lock also holds the period (the
//! state generation) being recorded, so an outcome from an earlier period is dropped.

use std::collections::VecDeque;

use crate::shard::Padded;
use crate::sync::{AtomicU32, AtomicU64, Mutex, Ordering, lock};

/// What a window holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window (successful or not).
    pub slow: u64,
}

/// Which window, checked by the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spec {
    /// Consecutive failures only.
    None,
    /// The last `n` calls.
    Count(u64),
    /// The last `buckets` buckets of `bucket_nanos` each, counted from `origin` (clock
    /// nanoseconds when the breaker was made).
    Time {
        buckets: u64,
        bucket_nanos: u64,
        origin: u64,
    },
}

/// What a failure or a slow call leaves the breaker to decide on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally {
    /// Consecutive failures, this one included.
    pub(crate) run: u32,
    /// The window, this call included.
    pub(crate) counts: WindowCounts,
}

/// One time bucket of one shard.
#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// One shard's calls in the current period.
#[derive(Debug)]
struct Calls {
    /// Count window: calls so far (summed over shards, the sequence number of the last call).
    total: AtomicU64,
    /// Time window: a ring of buckets, reused when a bucket's epoch comes round again.
    buckets: Box<[Bucket]>,
}

/// What is recorded under the lock.
#[derive(Debug, Default)]
struct Failures {
    /// The period being recorded (the state generation).
    generation: u64,
    /// Count window: sequence numbers of the failed calls among the last `n`, oldest first.
    failed: VecDeque<u64>,
    /// Count window: sequence numbers of the slow calls among the last `n`, oldest first.
    slow: VecDeque<u64>,
}

/// The closed period's record (see the module docs).
#[derive(Debug)]
pub(crate) struct Window {
    spec: Spec,
    shards: Box<[Padded<Calls>]>,
    /// Read by every success, written only by failures and the success that ends their run.
    run: AtomicU32,
    failures: Mutex<Failures>,
}

impl Window {
    pub(crate) fn new(spec: Spec, shards: usize) -> Self {
        let (shards, buckets) = match spec {
            Spec::None => (0, 0),
            Spec::Count(_) => (shards, 0),
            Spec::Time { buckets, .. } => (shards, buckets), // capped by the builder
        };
        let calls = |_| {
            Padded(Calls {
                total: AtomicU64::new(0),
                buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            })
        };
        Self {
            spec,
            shards: (0..shards).map(calls).collect(),
            run: AtomicU32::new(0),
            failures: Mutex::new(Failures::default()),
        }
    }

    /// Records a call of period `generation` on shard `shard`; `now` is read only by a time
    /// window. Returns the tally for a failure or a slow call of the current period, `None`
    /// otherwise.
    #[inline]
    pub(crate) fn record(
        &self,
        shard: usize,
        generation: u64,
        failed: bool,
        slow: bool,
        now: impl Fn() -> u64,
    ) -> Option<Tally> {
        let calls = self.shards.get(shard);
        if !failed && !slow {
            if let Some(calls) = calls {
                self.count(calls, &now, false, false);
            }
            if self.run.load(Ordering::Relaxed) != 0 {
                self.run.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let mut f = lock(&self.failures);
        if f.generation != generation {
            return None;
        }
        if let Some(calls) = calls {
            self.count(calls, &now, failed, slow);
        }
        let run = match failed {
            true => self.run.load(Ordering::Relaxed).saturating_add(1),
            false => 0,
        };
        self.run.store(run, Ordering::Relaxed);
        if let Spec::Count(_) = self.spec {
            let seq = self.total();
            if failed {
                f.failed.push_back(seq);
            }
            if slow {
                f.slow.push_back(seq);
            }
        }
        let counts = self.counts_locked(&mut f, now);
        Some(Tally { run, counts })
    }

    /// Counts a call in its shard: one more call, or one more in its time bucket (moving the
    /// bucket on to the current epoch first if it still holds an older one).
    fn count(&self, calls: &Calls, now: &impl Fn() -> u64, failed: bool, slow: bool) {
        if let Spec::Count(_) = self.spec {
            calls.total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let epoch = self.epoch(now());
        let b = &calls.buckets[(epoch % calls.buckets.len() as u64) as usize];
        let seen = b.epoch.load(Ordering::Relaxed);
        if seen > epoch {
            return; // a call that read the clock earlier, after a newer one moved the bucket on
        }
        if seen < epoch
            && b.epoch
                .compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            for c in [&b.calls, &b.failures, &b.slow] {
                c.store(0, Ordering::Relaxed);
            }
        }
        b.calls.fetch_add(1, Ordering::Relaxed);
        for (counter, yes) in [(&b.failures, failed), (&b.slow, slow)] {
            if yes {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// What the window holds now.
    pub(crate) fn counts(&self, now: impl Fn() -> u64) -> WindowCounts {
        self.counts_locked(&mut lock(&self.failures), now)
    }

    fn counts_locked(&self, f: &mut Failures, now: impl Fn() -> u64) -> WindowCounts {
        let c = match self.spec {
            Spec::None => WindowCounts::default(),
            Spec::Count(n) => {
                // calls numbered up to `total - n` have left the window
                let total = self.total();
                let left = total.saturating_sub(n);
                for q in [&mut f.failed, &mut f.slow] {
                    while q.front().is_some_and(|&seq| seq <= left) {
                        q.pop_front();
                    }
                }
                WindowCounts {
                    calls: total.min(n),
                    failures: f.failed.len() as u64,
                    slow: f.slow.len() as u64,
                }
            }
            Spec::Time { buckets, .. } => {
                let epoch = self.epoch(now());
                let inside = epoch.saturating_sub(buckets - 1)..=epoch;
                let mut c = WindowCounts::default();
                let all = self.shards.iter().flat_map(|s| s.buckets.iter());
                for b in all.filter(|b| inside.contains(&b.epoch.load(Ordering::Relaxed))) {
                    c.calls += b.calls.load(Ordering::Relaxed);
                    c.failures += b.failures.load(Ordering::Relaxed);
                    c.slow += b.slow.load(Ordering::Relaxed);
                }
                c
            }
        };
        WindowCounts {
            failures: c.failures.min(c.calls),
            slow: c.slow.min(c.calls),
            ..c
        }
    }

    /// The current run of consecutive failures.
    pub(crate) fn run(&self) -> u32 {
        self.run.load(Ordering::Relaxed)
    }

    /// Starts recording period `generation` with an empty window.
    pub(crate) fn reset(&self, generation: u64) {
        let mut f = lock(&self.failures);
        *f = Failures {
            generation,
            ..Failures::default()
        };
        self.run.store(0, Ordering::Relaxed);
        for calls in self.shards.iter() {
            calls.total.store(0, Ordering::Relaxed);
            for b in calls.buckets.iter() {
                for c in [&b.epoch, &b.calls, &b.failures, &b.slow] {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// The time bucket `now` falls in, counted from 1 so that a fresh bucket (epoch 0) is
    /// never current; 0 for the other windows.
    fn epoch(&self, now: u64) -> u64 {
        match self.spec {
            Spec::Time {
                bucket_nanos,
                origin,
                ..
            } => now.saturating_sub(origin) / bucket_nanos + 1,
            _ => 0,
        }
    }

    fn total(&self) -> u64 {
        let totals = self.shards.iter().map(|c| c.total.load(Ordering::Relaxed));
        totals.sum()
    }
}

#[cfg(all(test, not(towerguard_loom)))]
mod tests {
    use super::*;

    fn counts(calls: u64, failures: u64, slow: u64) -> WindowCounts {
        WindowCounts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn calls_on_every_shard_add_up_and_an_earlier_period_is_dropped() {
        let w = Window::new(Spec::Count(3), 4);
        let t = w.record(1, 0, true, true, || 0).map(|t| (t.run, t.counts));
        assert_eq!(t, Some((1, counts(1, 1, 1))));
        assert!(
            w.record(2, 0, false, false, || 0).is_none(),
            "a success decides nothing"
        );
        let t = w.record(3, 0, true, false, || 0).map(|t| (t.run, t.counts));
        assert_eq!(t, Some((1, counts(3, 2, 1))), "a success ended the run");
        w.record(0, 0, false, false, || 0);
        assert_eq!(w.counts(|| 0), counts(3, 1, 0), "the first call left");
        w.reset(4);
        assert!(
            w.record(0, 0, true, false, || 0).is_none(),
            "period 0 is over"
        );
        assert_eq!((w.run(), w.counts(|| 0)), (0, counts(0, 0, 0)));
    }
}
