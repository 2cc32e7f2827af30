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

/// Calls of one time bucket, in one shard.
#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
}

/// One shard's calls in the current period.
#[derive(Debug)]
struct Calls {
    /// Count window: calls so far (summed over shards, the sequence number of the last call).
    total: AtomicU64,
    /// Time window: a ring of buckets, reused when a bucket's epoch comes round again.
    buckets: Box<[Bucket]>,
}

/// Failures and slow calls of one time bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    epoch: u64,
    failures: u64,
    slow: u64,
}

/// What is recorded under the lock.
#[derive(Debug)]
struct Failures {
    /// The period being recorded (the state generation).
    generation: u64,
    /// Count window: sequence numbers of the failed calls among the last `n`, oldest first.
    failed: VecDeque<u64>,
    /// Count window: sequence numbers of the slow calls among the last `n`, oldest first.
    slow: VecDeque<u64>,
    /// Time window: failures and slow calls per bucket.
    buckets: Box<[Marks]>,
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
            // the builder caps the bucket count
            Spec::Time { buckets, .. } => (shards, buckets as usize),
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
            failures: Mutex::new(Failures {
                generation: 0,
                failed: VecDeque::new(),
                slow: VecDeque::new(),
                buckets: vec![Marks::default(); buckets].into(),
            }),
        }
    }

    /// Whether recording reads the clock.
    pub(crate) fn reads_clock(&self) -> bool {
        matches!(self.spec, Spec::Time { .. })
    }

    /// Records a call of period `generation` on shard `shard`. Returns the tally for a
    /// failure or a slow call of the current period, `None` otherwise.
    #[inline]
    pub(crate) fn record(
        &self,
        shard: usize,
        generation: u64,
        failed: bool,
        slow: bool,
        now: u64,
    ) -> Option<Tally> {
        let epoch = self.epoch(now);
        if let Some(calls) = self.shards.get(shard) {
            match self.spec {
                Spec::Count(_) => {
                    calls.total.fetch_add(1, Ordering::Relaxed);
                }
                Spec::Time { .. } => count_in_bucket(&calls.buckets, epoch),
                Spec::None => {}
            }
        }
        if !failed && !slow {
            if self.run.load(Ordering::Relaxed) != 0 {
                self.run.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let mut f = lock(&self.failures);
        if f.generation != generation {
            return None;
        }
        let run = if failed {
            self.run.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        self.run.store(run, Ordering::Relaxed);
        let counts = match self.spec {
            Spec::None => WindowCounts::default(),
            Spec::Count(n) => {
                let seq = self.total();
                if failed {
                    f.failed.push_back(seq);
                }
                if slow {
                    f.slow.push_back(seq);
                }
                f.last_calls(seq, n)
            }
            Spec::Time { .. } => {
                let len = f.buckets.len() as u64;
                let m = &mut f.buckets[(epoch % len) as usize];
                if m.epoch < epoch {
                    *m = Marks {
                        epoch,
                        ..Marks::default()
                    };
                }
                if m.epoch == epoch {
                    m.failures += u64::from(failed);
                    m.slow += u64::from(slow);
                }
                self.in_time(&f, epoch)
            }
        };
        Some(Tally { run, counts })
    }

    /// What the window holds at `now`.
    pub(crate) fn counts(&self, now: u64) -> WindowCounts {
        let mut f = lock(&self.failures);
        match self.spec {
            Spec::None => WindowCounts::default(),
            Spec::Count(n) => {
                let total = self.total();
                f.last_calls(total, n)
            }
            Spec::Time { .. } => self.in_time(&f, self.epoch(now)),
        }
    }

    /// The current run of consecutive failures.
    pub(crate) fn run(&self) -> u32 {
        self.run.load(Ordering::Relaxed)
    }

    /// Starts recording period `generation` with an empty window.
    pub(crate) fn reset(&self, generation: u64) {
        let mut f = lock(&self.failures);
        f.generation = generation;
        f.failed.clear();
        f.slow.clear();
        f.buckets.fill(Marks::default());
        self.run.store(0, Ordering::Relaxed);
        for calls in self.shards.iter() {
            calls.total.store(0, Ordering::Relaxed);
            for b in calls.buckets.iter() {
                b.epoch.store(0, Ordering::Relaxed);
                b.calls.store(0, Ordering::Relaxed);
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
        self.shards
            .iter()
            .map(|c| c.total.load(Ordering::Relaxed))
            .sum()
    }

    /// The time window's counts at `epoch`: the buckets of the last `buckets` epochs.
    fn in_time(&self, f: &Failures, epoch: u64) -> WindowCounts {
        let oldest = epoch.saturating_sub(f.buckets.len() as u64 - 1);
        let inside = |e: u64| (oldest..=epoch).contains(&e);
        let calls = self
            .shards
            .iter()
            .flat_map(|c| c.buckets.iter())
            .filter(|b| inside(b.epoch.load(Ordering::Relaxed)))
            .map(|b| b.calls.load(Ordering::Relaxed))
            .sum();
        let marks = f.buckets.iter().filter(|m| inside(m.epoch));
        let (failures, slow) = marks.fold((0, 0), |(f, s), m| (f + m.failures, s + m.slow));
        WindowCounts {
            calls,
            failures: failures.min(calls),
            slow: slow.min(calls),
        }
    }
}

impl Failures {
    /// The count window's counts when `total` calls have been made: calls numbered up to
    /// `total - n` have left it.
    fn last_calls(&mut self, total: u64, n: u64) -> WindowCounts {
        let left = total.saturating_sub(n);
        for q in [&mut self.failed, &mut self.slow] {
            while q.front().is_some_and(|&seq| seq <= left) {
                q.pop_front();
            }
        }
        let calls = total.min(n);
        WindowCounts {
            calls,
            failures: (self.failed.len() as u64).min(calls),
            slow: (self.slow.len() as u64).min(calls),
        }
    }
}

/// Counts a call in its bucket of a shard's ring, moving the bucket on to `epoch` first if it
/// still holds an older one.
fn count_in_bucket(buckets: &[Bucket], epoch: u64) {
    let b = &buckets[(epoch % buckets.len() as u64) as usize];
    let seen = b.epoch.load(Ordering::Relaxed);
    if seen != epoch {
        if seen > epoch {
            return; // a call that read the clock earlier, after a newer one moved the bucket on
        }
        if b.epoch
            .compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            b.calls.store(0, Ordering::Relaxed);
        }
    }
    b.calls.fetch_add(1, Ordering::Relaxed);
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
    fn count_window_forgets_calls_older_than_its_size() {
        let w = Window::new(Spec::Count(3), 4);
        let t = w.record(0, 0, true, false, 0).map(|t| t.counts);
        assert_eq!(t, Some(counts(1, 1, 0)));
        let t = w.record(1, 0, true, true, 0).map(|t| (t.run, t.counts));
        assert_eq!(t, Some((2, counts(2, 2, 1))), "calls on two shards add up");
        assert!(
            w.record(2, 0, false, false, 0).is_none(),
            "a success decides nothing"
        );
        assert_eq!(w.run(), 0, "a success ends the run");
        w.record(0, 0, false, false, 0);
        assert_eq!(w.counts(0), counts(3, 1, 1));
        w.record(3, 0, false, false, 0);
        assert_eq!(w.counts(0), counts(3, 0, 0));
    }

    #[test]
    fn outcomes_of_an_earlier_period_are_dropped() {
        let w = Window::new(Spec::Count(10), 2);
        w.record(0, 0, true, false, 0);
        w.reset(4);
        assert!(w.record(0, 0, true, false, 0).is_none(), "period 0 is over");
        assert_eq!((w.run(), w.counts(0).failures), (0, 0));
        assert_eq!(w.record(0, 4, true, false, 0).map(|t| t.run), Some(1));
    }

    #[test]
    fn time_window_drops_old_buckets() {
        let w = Window::new(
            Spec::Time {
                buckets: 4,
                bucket_nanos: 1_000,
                origin: 0,
            },
            2,
        );
        w.record(0, 0, true, false, 0);
        w.record(1, 0, false, false, 1_500);
        assert_eq!(w.counts(1_500).calls, 2);
        assert_eq!(w.counts(3_999), counts(2, 1, 0));
        assert_eq!(w.counts(4_000), counts(1, 0, 0), "bucket [0, 1000) left");
        let t = w.record(0, 0, true, false, 4_100).map(|t| t.counts); // reuses bucket 0's slot
        assert_eq!(t, Some(counts(2, 1, 0)));
    }
}
