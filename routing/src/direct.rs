//! Direct exchange matching: a message goes to the destinations bound with a
//! routing key equal to its own, found with one hash lookup. Arguments play no
//! part, so each (key, destination) pair is indexed once however many argument
//! variants are bound.

use foldhash::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::binding::Destination;

/// Generic over what a match reports: a [`Destination`] for plain bindings,
/// a binding slot for bindings with a selector (see `selected`).
#[derive(Clone, Debug)]
pub(crate) struct DirectMatcher<T = Destination> {
    by_key: HashMap<Arc<str>, SmallVec<[T; 1]>>,
}

impl<T> Default for DirectMatcher<T> {
    fn default() -> Self {
        Self {
            by_key: HashMap::default(),
        }
    }
}

impl<T: PartialEq> DirectMatcher<T> {
    /// Indexes a (key, destination) pair the registry reports as new.
    pub(crate) fn insert(&mut self, key: Arc<str>, destination: T) {
        self.by_key.entry(key).or_default().push(destination);
    }

    /// Drops a (key, destination) pair the registry reports as gone.
    pub(crate) fn remove(&mut self, key: &str, destination: &T) {
        if let Some(destinations) = self.by_key.get_mut(key) {
            destinations.retain(|d| d != destination);
            if destinations.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// Reports each destination bound with `key`, each once.
    pub(crate) fn route<'a>(&'a self, key: &str, out: &mut impl FnMut(&'a T)) -> bool {
        match self.by_key.get(key) {
            Some(destinations) => {
                destinations.iter().for_each(out);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn routed(m: &DirectMatcher, key: &str) -> (bool, Vec<Destination>) {
        let mut out = Vec::new();
        let matched = m.route(key, &mut |d| out.push(d.clone()));
        (matched, out)
    }

    #[test]
    fn routes_by_exact_key() {
        let mut m = DirectMatcher::default();
        m.insert("a".into(), q("qa"));
        m.insert("a".into(), q("qa2"));
        m.insert("b".into(), q("qb"));
        assert_eq!(routed(&m, "a"), (true, vec![q("qa"), q("qa2")]));
        assert_eq!(routed(&m, "b"), (true, vec![q("qb")]));
        assert_eq!(routed(&m, "c"), (false, vec![]));
        assert_eq!(routed(&m, "A"), (false, vec![]));
    }

    #[test]
    fn empty_key_is_an_ordinary_key() {
        let mut m = DirectMatcher::default();
        m.insert("".into(), q("q"));
        assert_eq!(routed(&m, ""), (true, vec![q("q")]));
        assert_eq!(routed(&m, "x"), (false, vec![]));
    }

    #[test]
    fn remove_drops_only_that_pair() {
        let mut m = DirectMatcher::default();
        m.insert("a".into(), q("q1"));
        m.insert("a".into(), q("q2"));
        m.remove("a", &q("q1"));
        assert_eq!(routed(&m, "a"), (true, vec![q("q2")]));
        m.remove("a", &q("q2"));
        assert_eq!(routed(&m, "a"), (false, vec![]));
        assert!(m.by_key.is_empty());
        m.remove("missing", &q("q2"));
    }
}
