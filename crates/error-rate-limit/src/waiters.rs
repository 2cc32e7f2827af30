//! Delay mode's queues: waiting requests in arrival order per key, `max_waiting` in all.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use crate::key_table::lock;

/// The waiting requests. Only the first of each key's queue waits for its time and asks the
/// store again; the others wait for it to leave.
#[derive(Debug)]
pub(crate) struct Waiters<Key> {
    pub(crate) max_waiting: usize,
    /// Longest a request may wait in all; past it, it is rejected.
    pub(crate) max_delay: Option<Duration>,
    queues: Mutex<Queues<Key>>,
}

#[derive(Debug)]
struct Queues<Key> {
    /// Each key's waiters in arrival order: a ticket, and the waker of a waiter not first.
    by_key: HashMap<Key, VecDeque<(u64, Option<Waker>)>>,
    waiting: usize,
    next_ticket: u64,
}

/// A request's place in its key's queue; dropping it leaves the queue and lets the next
/// waiter of the key go.
#[derive(Debug)]
pub(crate) struct Place<Key: Eq + Hash> {
    waiters: Arc<Waiters<Key>>,
    key: Key,
    ticket: u64,
}

impl<Key: Eq + Hash + Clone> Waiters<Key> {
    pub(crate) fn new(max_waiting: usize, max_delay: Option<Duration>) -> Self {
        Self {
            max_waiting,
            max_delay,
            queues: Mutex::new(Queues {
                by_key: HashMap::new(),
                waiting: 0,
                next_ticket: 0,
            }),
        }
    }

    /// A place at the back of `key`'s queue, or `None` if `max_waiting` requests wait already.
    pub(crate) fn join(self: &Arc<Self>, key: &Key) -> Option<Place<Key>> {
        let mut q = lock(&self.queues);
        if q.waiting >= self.max_waiting {
            return None;
        }
        q.waiting += 1;
        q.next_ticket += 1;
        let ticket = q.next_ticket;
        q.by_key
            .entry(key.clone())
            .or_default()
            .push_back((ticket, None));
        Some(Place {
            waiters: self.clone(),
            key: key.clone(),
            ticket,
        })
    }
}

impl<Key: Eq + Hash> Place<Key> {
    /// Is this the first waiter of its key? If not, it is woken when it becomes the first.
    pub(crate) fn is_first(&self, cx: &mut Context<'_>) -> bool {
        let mut q = lock(&self.waiters.queues);
        let queue = q.by_key.get_mut(&self.key).into_iter().flatten();
        match queue.enumerate().find(|(_, (t, _))| *t == self.ticket) {
            Some((0, _)) | None => true,
            Some((_, (_, waker))) => {
                *waker = Some(cx.waker().clone());
                false
            }
        }
    }
}

impl<Key: Eq + Hash> Drop for Place<Key> {
    fn drop(&mut self) {
        let mut q = lock(&self.waiters.queues);
        q.waiting -= 1;
        let Some(queue) = q.by_key.get_mut(&self.key) else {
            return;
        };
        queue.retain(|(t, _)| *t != self.ticket);
        if let Some(next) = queue.front_mut().and_then(|(_, waker)| waker.take()) {
            next.wake();
        } else if queue.is_empty() {
            q.by_key.remove(&self.key);
        }
    }
}
