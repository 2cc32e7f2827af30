//! The order providers are tried in for one request.

use crate::MAX_PROVIDERS;

/// The order providers are tried in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The primary, then the others in the order given (default).
    #[default]
    Priority,
    /// By price hint, cheapest first; providers without a price go last, in order.
    CheapestFirst,
    /// Each request starts one provider further along the list.
    RoundRobin,
    /// The primary only: no fallback.
    FailFast,
}

/// An ordered list of provider indices (the primary is 0), without allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    items: [u8; MAX_PROVIDERS],
    len: u8,
}

impl Plan {
    /// Adds `i` at the end (ignored once full: there are never more than `MAX_PROVIDERS`).
    pub(crate) fn push(&mut self, i: usize) {
        let len = usize::from(self.len);
        if len < MAX_PROVIDERS {
            self.items[len] = i as u8;
            self.len += 1;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.items[..usize::from(self.len)]
            .iter()
            .map(|&i| usize::from(i))
    }

    pub(crate) fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The same providers, those for which `first` holds before the others (order kept
    /// within each group).
    pub(crate) fn partition(&self, first: impl Fn(usize) -> bool) -> Plan {
        let mut out = Plan::default();
        self.iter().filter(|&i| first(i)).for_each(|i| out.push(i));
        self.iter().filter(|&i| !first(i)).for_each(|i| out.push(i));
        out
    }
}

impl FromIterator<usize> for Plan {
    fn from_iter<T: IntoIterator<Item = usize>>(iter: T) -> Self {
        let mut plan = Plan::default();
        iter.into_iter().for_each(|i| plan.push(i));
        plan
    }
}
