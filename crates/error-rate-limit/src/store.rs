//! Per-key state: error windows, penalties and GCRA rate limits, in a bounded sharded map.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

/// Why a key may not pass right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It caused too many errors and is serving a penalty.
    Errors,
    /// Requests per minute exceeded.
    RequestRate,
    /// Tokens per minute exceeded.
    TokenRate,
}

impl Reason {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Errors => "errors",
            Reason::RequestRate => "rpm",
            Reason::TokenRate => "tpm",
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go ahead.
    Pass,
    /// Not now: try again after this long.
    Deny {
        /// Why.
        reason: Reason,
        /// How long until the key may pass.
        retry_after: Duration,
    },
}

/// A throttled key and the time it has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottledKey {
    /// The key.
    pub key: String,
    /// Time left.
    pub remaining: Duration,
    /// Its offence level (the penalty doubles with each).
    pub offences: u32,
}

/// Counts across all keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Keys tracked now.
    pub keys: usize,
    /// Keys throttled now.
    pub throttled: usize,
    /// Requests refused so far.
    pub rejected: u64,
    /// Errors counted so far.
    pub errors: u64,
    /// Times a key was throttled so far.
    pub offences: u64,
    /// Keys evicted to stay under the key cap.
    pub evicted: u64,
}

/// The rules a store applies, fixed when the layer is built.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Errors within `window` that throttle a key.
    pub threshold: u32,
    /// The error window.
    pub window: Duration,
    /// Buckets the window is cut into (the window slides bucket by bucket).
    pub buckets: u32,
    /// First penalty; each repeated offence doubles it.
    pub base_penalty: Duration,
    /// Longest penalty.
    pub max_penalty: Duration,
    /// One offence is forgiven per this much time without a new one.
    pub decay: Duration,
    /// Requests per minute per key (GCRA), if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute per key (GCRA, weighted by the request's tokens), if limited.
    pub tpm: Option<u64>,
    /// Most keys tracked at once.
    pub max_keys: usize,
}

/// Where per-key limiter state lives. All times are nanoseconds on the limiter's clock.
/// The in-memory default is [`MemoryStore`]; a shared store (Redis, for fleets of gateways)
/// implements the same operations atomically per key.
pub trait LimiterStore: Send + Sync + 'static {
    /// The key's identity in this store (a keyed 64-bit hash: calls carry it instead of
    /// the key string).
    fn key_id(&self, key: &str) -> KeyId;
    /// May the key send a request weighing `tokens` now? Takes the request's RPM/TPM share
    /// if it passes. `now` is read only when needed (a clock read is not free).
    fn admit(&self, id: KeyId, key: &str, tokens: u64, now: &dyn Fn() -> u64) -> Admit;
    /// Records an error caused by the key; returns the penalty if this error throttled it.
    fn record_error(&self, id: KeyId, now: u64) -> Option<Duration>;
    /// Keys throttled at `now`.
    fn throttled(&self, now: u64) -> Vec<ThrottledKey>;
    /// Lifts `key`'s throttle and forgets its offences; false if it was not tracked.
    fn unthrottle(&self, key: &str) -> bool;
    /// Counts.
    fn stats(&self, now: u64) -> LimiterStats;
}

/// A key's identity in a store: a 64-bit hash of the key, keyed per store so that nobody can
/// craft two keys that collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u64);

/// Hashes a [`KeyId`] by passing its (already random) bits through.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One key's state; every field an atomic, so it is read and changed without a lock.
#[derive(Debug, Default)]
struct Entry {
    touched: AtomicBool,
    throttled_until: AtomicU64,
    offences: AtomicU32,
    last_offence: AtomicU64,
    /// bucket epoch (+1) and error count, per bucket
    epochs: Box<[AtomicU64]>,
    counts: Box<[AtomicU32]>,
    rpm_tat: AtomicU64,
    tpm_tat: AtomicU64,
}

impl Entry {
    fn new(buckets: u32) -> Self {
        Self {
            epochs: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            counts: (0..buckets).map(|_| AtomicU32::new(0)).collect(),
            ..Self::default()
        }
    }

    /// Back to a fresh key's state (when its slot is given to a new key).
    fn reset(&self) {
        self.touched.store(false, Ordering::Relaxed);
        self.throttled_until.store(0, Ordering::Relaxed);
        self.offences.store(0, Ordering::Relaxed);
        self.last_offence.store(0, Ordering::Relaxed);
        for (e, c) in self.epochs.iter().zip(self.counts.iter()) {
            e.store(0, Ordering::Relaxed);
            c.store(0, Ordering::Relaxed);
        }
        self.rpm_tat.store(0, Ordering::Relaxed);
        self.tpm_tat.store(0, Ordering::Relaxed);
    }

    /// Idle: not throttled, no offences left, no errors: safe to forget.
    fn idle(&self, now: u64) -> bool {
        self.throttled_until.load(Ordering::Relaxed) <= now
            && self.offences.load(Ordering::Relaxed) == 0
            && self.counts.iter().all(|c| c.load(Ordering::Relaxed) == 0)
    }

    #[inline]
    fn touch(&self) {
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }
}

/// GCRA on one atomic "theoretical arrival time": `interval` nanoseconds per unit of cost,
/// `tolerance` nanoseconds of burst. Returns how long to wait if the cost does not fit.
fn gcra(tat: &AtomicU64, now: u64, interval: u64, cost: u64, tolerance: u64) -> Option<u64> {
    let increment = interval.saturating_mul(cost);
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let base = current.max(now);
        let next = base.saturating_add(increment);
        // allowed while the new arrival time is within the burst tolerance of now
        if next.saturating_sub(now) > tolerance.saturating_add(interval) && current > now {
            return Some(
                next.saturating_sub(now)
                    .saturating_sub(tolerance + interval)
                    .max(1),
            );
        }
        match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return None,
            Err(actual) => current = actual,
        }
    }
}

const SHARDS: usize = 32;
const MINUTE: u64 = 60_000_000_000;
/// Slots are allocated this many at a time, when first needed.
const CHUNK: usize = 256;

/// A place for one key's state, reused when its key is evicted.
/// Cache-line aligned, so two keys busy on two threads never share a line.
#[derive(Debug)]
#[repr(align(64))]
struct Slot {
    /// The key id it holds now (0: none).
    owner: AtomicU64,
    entry: Entry,
}

/// A shard's keys: id -> (slot number, key), and the slots it may still hand out.
#[derive(Default)]
struct ShardMap {
    keys: HashMap<u64, (u32, Box<str>), BuildHasherDefault<IdHasher>>,
    /// Slots freed by eviction.
    free: Vec<u32>,
    /// Slots of this shard handed out so far.
    used: u32,
}

struct Shard {
    map: RwLock<ShardMap>,
    hand: AtomicUsize,
}

/// Limiter state in this process's memory, bounded by `max_keys`.
///
/// Each key's state lives in a slot of a fixed set (allocated in chunks as keys arrive).
/// The hot path finds a known key without any lock: a table of hints maps the key id's low
/// bits to its slot, and the slot's owner word confirms it. Adding, finding a key whose hint
/// was overwritten, and evicting go through 32 shards, each a map behind its own read-write
/// lock. When a shard is full, an idle key is evicted (a second-chance sweep) and its slot
/// reused; if none is idle, new keys share one overflow entry, so a flood of fresh keys is
/// throttled together and memory stays bounded.
pub struct MemoryStore {
    rules: Rules,
    /// ahash with a random key: fast, and nobody can craft keys that collide.
    hasher: ahash::RandomState,
    shards: Box<[Shard]>,
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    /// Slot number + 1 (0: none) by the key id's low bits.
    hints: Box<[AtomicU32]>,
    hint_mask: usize,
    overflow: Entry,
    per_shard: u32,
    rejected: AtomicU64,
    errors: AtomicU64,
    offences: AtomicU64,
    evicted: AtomicU64,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store applying `rules`.
    pub fn new(rules: Rules) -> Self {
        // at most max_keys in all (at least one per shard)
        let per_shard = (rules.max_keys / SHARDS).clamp(1, (u32::MAX as usize - 1) / SHARDS);
        let slots = per_shard * SHARDS;
        let hints = slots.next_power_of_two().clamp(64, 1 << 16);
        Self {
            hasher: ahash::RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Shard {
                    map: RwLock::new(ShardMap::default()),
                    hand: AtomicUsize::new(0),
                })
                .collect(),
            chunks: (0..slots.div_ceil(CHUNK))
                .map(|_| OnceLock::new())
                .collect(),
            hints: (0..hints).map(|_| AtomicU32::new(0)).collect(),
            hint_mask: hints - 1,
            overflow: Entry::new(rules.buckets),
            per_shard: per_shard as u32,
            rules,
            rejected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            offences: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: KeyId) -> &Shard {
        &self.shards[((id.0 >> 32) as usize) % SHARDS]
    }

    fn shard_index(&self, id: KeyId) -> u32 {
        ((id.0 >> 32) as usize % SHARDS) as u32
    }

    /// Slot `n`, if its chunk exists.
    #[inline]
    fn slot(&self, n: u32) -> Option<&Slot> {
        let n = n as usize;
        self.chunks.get(n / CHUNK)?.get()?.get(n % CHUNK)
    }

    /// Slot `n`, allocating its chunk if needed.
    fn slot_or_alloc(&self, n: u32) -> Option<&Slot> {
        let n = n as usize;
        let buckets = self.rules.buckets;
        self.chunks
            .get(n / CHUNK)?
            .get_or_init(|| {
                (0..CHUNK)
                    .map(|_| Slot {
                        owner: AtomicU64::new(0),
                        entry: Entry::new(buckets),
                    })
                    .collect()
            })
            .get(n % CHUNK)
    }

    #[inline]
    fn hint(&self, id: KeyId) -> &AtomicU32 {
        &self.hints[(id.0 as usize) & self.hint_mask]
    }

    /// The key's entry, found without a lock (None: ask the shard).
    #[inline]
    fn find(&self, id: KeyId) -> Option<&Entry> {
        let h = self.hint(id).load(Ordering::Relaxed);
        let slot = self.slot(h.checked_sub(1)?)?;
        // 0 marks a free slot: no key has that id
        (slot.owner.load(Ordering::Acquire) == id.0 && id.0 != 0).then_some(&slot.entry)
    }

    /// Runs `f` on the key's entry. With `key` given, a missing entry is created (evicting
    /// to make room, or falling back to the overflow entry); without (recording an error), a
    /// missing entry means the key lives in the overflow entry, or was evicted since: the
    /// overflow entry takes it.
    #[inline]
    fn with<T>(
        &self,
        id: KeyId,
        key: Option<&str>,
        now: &dyn Fn() -> u64,
        f: impl FnOnce(&Entry) -> T,
    ) -> T {
        match self.find(id) {
            Some(e) => {
                e.touch();
                f(e)
            }
            None => f(self.lookup(id, key, now)),
        }
    }

    /// The slow path of [`with`](Self::with): through the shard's map.
    #[cold]
    #[inline(never)]
    fn lookup(&self, id: KeyId, key: Option<&str>, now: &dyn Fn() -> u64) -> &Entry {
        let shard = self.shard(id);
        {
            let map = shard.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = self.known(&map, id) {
                return e;
            }
        }
        let Some(key) = key else {
            return &self.overflow;
        };
        let mut map = shard.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = self.known(&map, id) {
            return e;
        }
        let base = self.shard_index(id) * self.per_shard;
        let n = match map.free.pop() {
            Some(n) => Some(n),
            None if map.used < self.per_shard => {
                map.used += 1;
                Some(base + map.used - 1)
            }
            None => self.evict_one(shard, &mut map, now()),
        };
        let Some(slot) = n.and_then(|n| self.slot_or_alloc(n).map(|s| (n, s))) else {
            return &self.overflow;
        };
        let (n, slot) = slot;
        slot.entry.reset();
        slot.entry.touch();
        slot.owner.store(id.0, Ordering::Release);
        map.keys.insert(id.0, (n, Box::from(key)));
        self.hint(id).store(n + 1, Ordering::Relaxed);
        &slot.entry
    }

    /// The entry of a key the shard's map holds; points its hint at it.
    fn known(&self, map: &ShardMap, id: KeyId) -> Option<&Entry> {
        let &(n, _) = map.keys.get(&id.0)?;
        let slot = self.slot(n)?;
        self.hint(id).store(n + 1, Ordering::Relaxed);
        slot.entry.touch();
        Some(&slot.entry)
    }

    /// Second-chance sweep: clears `touched` bits until it finds an idle untouched entry,
    /// forgets its key and returns its slot.
    fn evict_one(&self, shard: &Shard, map: &mut ShardMap, now: u64) -> Option<u32> {
        let n = map.keys.len();
        if n == 0 {
            return None;
        }
        let start = shard.hand.fetch_add(1, Ordering::Relaxed) % n;
        let idle = |slot: u32| self.slot(slot).is_some_and(|s| s.entry.idle(now));
        let mut victim = None;
        for (k, (slot, _)) in map
            .keys
            .iter()
            .skip(start)
            .chain(map.keys.iter().take(start))
            .take(2 * n.min(64))
        {
            if !idle(*slot) {
                continue;
            }
            if self
                .slot(*slot)
                .is_some_and(|s| s.entry.touched.swap(false, Ordering::Relaxed))
            {
                continue; // second chance
            }
            victim = Some(*k);
            break;
        }
        if victim.is_none() {
            // everything was touched recently: take any idle one
            victim = map
                .keys
                .iter()
                .find(|(_, (slot, _))| idle(*slot))
                .map(|(k, _)| *k);
        }
        let (slot, _) = map.keys.remove(&victim?)?;
        if let Some(s) = self.slot(slot) {
            s.owner.store(0, Ordering::Release);
        }
        self.evicted.fetch_add(1, Ordering::Relaxed);
        Some(slot)
    }

    /// Runs `f` on every tracked key with its entry.
    fn for_each(&self, mut f: impl FnMut(&str, &Entry)) {
        for shard in self.shards.iter() {
            let map = shard.map.read().unwrap_or_else(|p| p.into_inner());
            for (slot, key) in map.keys.values() {
                if let Some(s) = self.slot(*slot) {
                    f(key, &s.entry);
                }
            }
        }
    }

    fn bucket_nanos(&self) -> u64 {
        (self.rules.window.as_nanos() / u128::from(self.rules.buckets.max(1)))
            .clamp(1, u128::from(u64::MAX)) as u64
    }

    fn penalty(&self, offences: u32) -> Duration {
        let doublings = offences.saturating_sub(1).min(32);
        self.rules
            .base_penalty
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.rules.max_penalty)
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

impl LimiterStore for MemoryStore {
    #[inline]
    fn key_id(&self, key: &str) -> KeyId {
        // never 0, which marks a free slot
        KeyId(self.hasher.hash_one(key).max(1))
    }

    #[inline]
    fn admit(&self, id: KeyId, key: &str, tokens: u64, now: &dyn Fn() -> u64) -> Admit {
        let r = &self.rules;
        let verdict = self.with(id, Some(key), now, |e| {
            let until = e.throttled_until.load(Ordering::Acquire);
            let mut t = None;
            if until != 0 {
                let n = now();
                t = Some(n);
                if until > n {
                    return Admit::Deny {
                        reason: Reason::Errors,
                        retry_after: Duration::from_nanos(until - n),
                    };
                }
            }
            if r.rpm.is_none() && r.tpm.is_none() {
                return Admit::Pass;
            }
            let now = t.unwrap_or_else(now);
            if let Some(rpm) = r.rpm {
                let interval = MINUTE / rpm.max(1);
                // a burst of up to a tenth of the per-minute allowance
                let tolerance = interval.saturating_mul((rpm / 10).max(1) - 1);
                if let Some(wait) = gcra(&e.rpm_tat, now, interval, 1, tolerance) {
                    return Admit::Deny {
                        reason: Reason::RequestRate,
                        retry_after: Duration::from_nanos(wait),
                    };
                }
            }
            if let Some(tpm) = r.tpm {
                let interval = (MINUTE / tpm.max(1)).max(1);
                let tolerance = interval.saturating_mul(tpm / 10);
                let cost = tokens.clamp(1, tpm);
                if let Some(wait) = gcra(&e.tpm_tat, now, interval, cost, tolerance) {
                    return Admit::Deny {
                        reason: Reason::TokenRate,
                        retry_after: Duration::from_nanos(wait),
                    };
                }
            }
            Admit::Pass
        });
        if verdict != Admit::Pass {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    fn record_error(&self, id: KeyId, now: u64) -> Option<Duration> {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let width = self.bucket_nanos();
        let buckets = u64::from(self.rules.buckets.max(1));
        self.with(id, None, &|| now, |e| {
            // count the error in the current bucket
            let epoch = now / width + 1;
            let i = (epoch % buckets) as usize;
            if e.epochs[i].swap(epoch, Ordering::AcqRel) != epoch {
                e.counts[i].store(0, Ordering::Release);
            }
            e.counts[i].fetch_add(1, Ordering::AcqRel);
            let oldest = epoch.saturating_sub(buckets - 1);
            let in_window: u32 = e
                .epochs
                .iter()
                .zip(e.counts.iter())
                .filter(|(ep, _)| {
                    let ep = ep.load(Ordering::Acquire);
                    ep >= oldest && ep <= epoch
                })
                .map(|(_, c)| c.load(Ordering::Acquire))
                .sum();
            if in_window < self.rules.threshold {
                return None;
            }
            // an offence: forgive one earlier offence per decay period, then count this one
            let last = e.last_offence.swap(now, Ordering::AcqRel);
            let decay = nanos(self.rules.decay).max(1);
            let forgiven = u32::try_from(now.saturating_sub(last) / decay).unwrap_or(u32::MAX);
            let prior = e.offences.load(Ordering::Acquire).saturating_sub(forgiven);
            let offences = prior.saturating_add(1);
            e.offences.store(offences, Ordering::Release);
            let penalty = self.penalty(offences);
            e.throttled_until
                .store(now.saturating_add(nanos(penalty)), Ordering::Release);
            for c in e.counts.iter() {
                c.store(0, Ordering::Release);
            }
            self.offences.fetch_add(1, Ordering::Relaxed);
            Some(penalty)
        })
    }

    fn throttled(&self, now: u64) -> Vec<ThrottledKey> {
        let mut out = Vec::new();
        self.for_each(|key, e| {
            let until = e.throttled_until.load(Ordering::Acquire);
            if until > now {
                out.push(ThrottledKey {
                    key: key.to_owned(),
                    remaining: Duration::from_nanos(until - now),
                    offences: e.offences.load(Ordering::Acquire),
                });
            }
        });
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    fn unthrottle(&self, key: &str) -> bool {
        let id = self.key_id(key);
        let map = self.shard(id).map.read().unwrap_or_else(|p| p.into_inner());
        match map.keys.get(&id.0).and_then(|(slot, _)| self.slot(*slot)) {
            Some(s) => {
                let e = &s.entry;
                e.throttled_until.store(0, Ordering::Release);
                e.offences.store(0, Ordering::Release);
                for c in e.counts.iter() {
                    c.store(0, Ordering::Release);
                }
                true
            }
            None => false,
        }
    }

    fn stats(&self, now: u64) -> LimiterStats {
        let mut keys = 0;
        let mut throttled = 0;
        self.for_each(|_, e| {
            keys += 1;
            if e.throttled_until.load(Ordering::Acquire) > now {
                throttled += 1;
            }
        });
        LimiterStats {
            keys,
            throttled,
            rejected: self.rejected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            offences: self.offences.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_rate_and_a_burst() {
        let tat = AtomicU64::new(0);
        let interval = 1_000; // one unit per microsecond
        let tolerance = 2_000; // a burst of 3
        let now = 1_000_000;
        assert_eq!(gcra(&tat, now, interval, 1, tolerance), None);
        assert_eq!(gcra(&tat, now, interval, 1, tolerance), None);
        assert_eq!(gcra(&tat, now, interval, 1, tolerance), None);
        assert!(gcra(&tat, now, interval, 1, tolerance).is_some());
        // one interval later, one more fits
        assert_eq!(gcra(&tat, now + 1_000, interval, 1, tolerance), None);
        assert!(gcra(&tat, now + 1_000, interval, 1, tolerance).is_some());
    }
}
