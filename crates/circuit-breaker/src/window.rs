//! Sliding windows over call outcomes, each O(1) per call whatever its fill.

use crate::shard::{Padded, shard_count, shard_index};
use crate::sync::{AtomicU8, AtomicU64, Ordering};

/// Outcome bits stored per call.
pub(crate) const RECORDED: u8 = 1;
pub(crate) const FAILED: u8 = 2;
pub(crate) const SLOW: u8 = 4;

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

/// The last `size` calls, exactly: a ring of outcomes with running totals, so a call older
/// than the last `size` drops out as the next one comes in.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    /// Failures in the low 32 bits and slow calls in the high 32, as wrapping signed sums
    /// (a transiently negative field decodes exactly: see `unpack`).
    totals: AtomicU64,
}

fn pack(failures: i64, slow: i64) -> u64 {
    (slow << 32).wrapping_add(failures) as u64
}

fn unpack(x: u64) -> (i64, i64) {
    let failures = i64::from(x as u32 as i32);
    let slow = (x as i64).wrapping_sub(failures) >> 32;
    (failures, slow)
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            totals: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn record(&self, bits: u8) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(i % self.slots.len() as u64) as usize];
        let old = slot.swap(bits | RECORDED, Ordering::AcqRel);
        let df = i64::from(bits & FAILED != 0) - i64::from(old & FAILED != 0);
        let ds = i64::from(bits & SLOW != 0) - i64::from(old & SLOW != 0);
        if df != 0 || ds != 0 {
            self.totals.fetch_add(pack(df, ds), Ordering::AcqRel);
        }
    }

    pub(crate) fn counts(&self) -> WindowCounts {
        let calls = self
            .next
            .load(Ordering::Acquire)
            .min(self.slots.len() as u64);
        let (f, s) = unpack(self.totals.load(Ordering::Acquire));
        WindowCounts {
            calls,
            failures: f.clamp(0, calls as i64) as u64,
            slow: s.clamp(0, calls as i64) as u64,
        }
    }

    pub(crate) fn clear(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.totals.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// Calls of the last `buckets * bucket_nanos`, in buckets, sharded per thread so that calls
/// on different threads write different cache lines. A bucket is reused (and cleared) when
/// its epoch comes round again; readers sum the buckets whose epoch is still in the window.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    buckets: u64,
    shards: Box<[Padded<Box<[Bucket]>>]>,
}

impl TimeWindow {
    pub(crate) fn new(buckets: u32, bucket_nanos: u64) -> Self {
        let shards = (0..shard_count())
            .map(|_| Padded((0..buckets).map(|_| Bucket::default()).collect()))
            .collect();
        Self {
            bucket_nanos: bucket_nanos.max(1),
            buckets: u64::from(buckets),
            shards,
        }
    }

    /// Epochs are 1-based so that a fresh bucket (epoch 0) never looks current.
    fn epoch(&self, now: u64) -> u64 {
        now / self.bucket_nanos + 1
    }

    #[inline]
    pub(crate) fn record(&self, now: u64, bits: u8) {
        let e = self.epoch(now);
        let shard = &self.shards[shard_index(self.shards.len())].0;
        let b = &shard[(e % self.buckets) as usize];
        let seen = b.epoch.load(Ordering::Acquire);
        if seen != e {
            if seen > e {
                // A call that started before a newer one already moved this bucket on.
                return;
            }
            if b.epoch
                .compare_exchange(seen, e, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                b.calls.store(0, Ordering::Relaxed);
                b.failures.store(0, Ordering::Relaxed);
                b.slow.store(0, Ordering::Relaxed);
            }
        }
        b.calls.fetch_add(1, Ordering::Relaxed);
        if bits & FAILED != 0 {
            b.failures.fetch_add(1, Ordering::Relaxed);
        }
        if bits & SLOW != 0 {
            b.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn counts(&self, now: u64) -> WindowCounts {
        let e = self.epoch(now);
        let oldest = e.saturating_sub(self.buckets - 1);
        let mut c = WindowCounts::default();
        for shard in self.shards.iter() {
            for b in shard.0.iter() {
                let be = b.epoch.load(Ordering::Acquire);
                if be >= oldest && be <= e {
                    c.calls += b.calls.load(Ordering::Relaxed);
                    c.failures += b.failures.load(Ordering::Relaxed);
                    c.slow += b.slow.load(Ordering::Relaxed);
                }
            }
        }
        c
    }

    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            for b in shard.0.iter() {
                b.epoch.store(0, Ordering::Release);
                b.calls.store(0, Ordering::Relaxed);
                b.failures.store(0, Ordering::Relaxed);
                b.slow.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(towerguard_loom)))]
mod tests {
    use super::*;

    #[test]
    fn packing_survives_transient_negatives() {
        for (f, s) in [(0, 0), (5, 3), (-1, 0), (0, -1), (-3, 7), (100, -2)] {
            assert_eq!(unpack(pack(f, s)), (f, s));
        }
        let mut x = pack(2, 1);
        x = x.wrapping_add(pack(-3, 0));
        assert_eq!(unpack(x), (-1, 1));
        x = x.wrapping_add(pack(1, -1));
        assert_eq!(unpack(x), (0, 0));
    }

    #[test]
    fn count_window_forgets_calls_older_than_its_size() {
        let w = CountWindow::new(3);
        w.record(FAILED);
        w.record(FAILED | SLOW);
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 2,
                failures: 2,
                slow: 1
            }
        );
        w.record(0);
        w.record(0);
        assert_eq!(w.counts().failures, 1);
        w.record(0);
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_drops_old_buckets() {
        let w = TimeWindow::new(4, 1_000);
        w.record(0, FAILED);
        w.record(1_500, 0);
        assert_eq!(w.counts(1_500).calls, 2);
        assert_eq!(w.counts(3_999).failures, 1);
        assert_eq!(
            w.counts(4_000).failures,
            0,
            "bucket [0,1000) left the window"
        );
        assert_eq!(w.counts(4_000).calls, 1);
        w.record(4_100, FAILED); // reuses bucket 0's slot
        assert_eq!(w.counts(4_100).failures, 1);
        assert_eq!(w.counts(4_100).calls, 2);
    }
}
