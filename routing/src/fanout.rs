//! Fanout exchange matching: every bound destination gets every message, keys
//! and arguments ignored. Destinations are kept once each, in bind order.

use crate::binding::Destination;

/// Generic over what a match reports: a [`Destination`] for plain bindings,
/// a binding slot for bindings with a selector (see `selected`).
#[derive(Clone, Debug)]
pub(crate) struct FanoutMatcher<T = Destination> {
    destinations: Vec<T>,
}

impl<T> Default for FanoutMatcher<T> {
    fn default() -> Self {
        Self {
            destinations: Vec::new(),
        }
    }
}

impl<T: PartialEq> FanoutMatcher<T> {
    /// Adds a destination the registry reports as newly bound.
    pub(crate) fn insert(&mut self, destination: T) {
        self.destinations.push(destination);
    }

    /// Drops a destination the registry reports as no longer bound.
    pub(crate) fn remove(&mut self, destination: &T) {
        if let Some(at) = self.destinations.iter().position(|d| d == destination) {
            self.destinations.remove(at);
        }
    }

    /// Reports every destination, each once.
    pub(crate) fn route<'a>(&'a self, out: &mut impl FnMut(&'a T)) -> bool {
        self.destinations.iter().for_each(out);
        !self.destinations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    #[test]
    fn routes_everywhere_in_bind_order() {
        let mut m: FanoutMatcher = FanoutMatcher::default();
        let mut out = Vec::new();
        assert!(!m.route(&mut |d| out.push(d.clone())));
        m.insert(q("b"));
        m.insert(q("a"));
        m.insert(Destination::Exchange("x".into()));
        assert!(m.route(&mut |d| out.push(d.clone())));
        assert_eq!(out, vec![q("b"), q("a"), Destination::Exchange("x".into())]);
    }

    #[test]
    fn remove_keeps_order_of_the_rest() {
        let mut m = FanoutMatcher::default();
        for n in ["a", "b", "c"] {
            m.insert(q(n));
        }
        m.remove(&q("b"));
        m.remove(&q("missing"));
        let mut out = Vec::new();
        m.route(&mut |d| out.push(d.clone()));
        assert_eq!(out, vec![q("a"), q("c")]);
    }
}
