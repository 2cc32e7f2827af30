//! Shards: what every call writes is kept once per group of threads, each copy on its own
//! cache lines, so that calls on different threads do not fight over one line. Readers add
//! the copies up. The pieces come from the outcome crate; under loom one shard is kept.

pub(crate) use towerguard_outcome::Padded;

/// How many shards a breaker keeps (the outcome crate's count; one under loom).
pub(crate) fn count() -> usize {
    if cfg!(towerguard_loom) {
        return 1;
    }
    towerguard_outcome::shard_count()
}

/// The shard of the current thread, below `count` (a power of two).
#[inline]
pub(crate) fn this_thread(count: usize) -> usize {
    towerguard_outcome::this_thread_shard(count)
}
