//! Binding identity for one exchange. RabbitMQ identifies a binding by
//! (destination, routing key, arguments); the registry is the authority on
//! which bindings exist, indexed by destination so that deleting a queue
//! touches only that queue's bindings. It also tells the matchers when a
//! destination or a (destination, key) pair appears or disappears, since the
//! direct, fanout and topic matchers ignore arguments and index each only once.

use foldhash::HashMap;
use std::sync::Arc;

use amq_protocol_types::FieldTable;
use smallvec::SmallVec;

use crate::binding::Destination;

/// The argument tables bound under one (destination, key); nearly always one.
pub(crate) type ArgumentSets = SmallVec<[FieldTable; 1]>;

/// The bindings to one destination: routing key -> argument tables.
pub(crate) type KeyBindings = HashMap<Arc<str>, ArgumentSets>;

/// What an insertion or removal changed beyond the binding itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The destination gained its first, or lost its last, binding.
    pub destination: bool,
    /// The (destination, key) pair gained its first, or lost its last, binding.
    pub key: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct BindingRegistry {
    by_destination: HashMap<Destination, KeyBindings>,
    len: usize,
}

impl BindingRegistry {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains(
        &self,
        destination: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.by_destination
            .get(destination)
            .and_then(|keys| keys.get(key))
            .is_some_and(|sets| sets.contains(arguments))
    }

    pub(crate) fn has_destination(&self, destination: &Destination) -> bool {
        self.by_destination.contains_key(destination)
    }

    /// Records a binding; `None` when it already existed. On success also
    /// returns the registry's shared copy of the key.
    pub(crate) fn insert(
        &mut self,
        destination: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) -> Option<(Change, Arc<str>)> {
        if self.contains(destination, key, arguments) {
            return None;
        }
        let new_destination = !self.by_destination.contains_key(destination);
        let keys = self.by_destination.entry(destination.clone()).or_default();
        let (key, sets) = match keys.get_key_value(key) {
            Some((shared, _)) => {
                let shared = shared.clone();
                let sets = keys.get_mut(&*shared).expect("key just found");
                (shared, sets)
            }
            None => {
                let shared: Arc<str> = Arc::from(key);
                (shared.clone(), keys.entry(shared).or_default())
            }
        };
        let new_key = sets.is_empty();
        sets.push(arguments.clone());
        self.len += 1;
        Some((
            Change {
                destination: new_destination,
                key: new_key,
            },
            key,
        ))
    }

    /// Forgets a binding; `None` when it did not exist.
    pub(crate) fn remove(
        &mut self,
        destination: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) -> Option<Change> {
        let keys = self.by_destination.get_mut(destination)?;
        let sets = keys.get_mut(key)?;
        let at = sets.iter().position(|a| a == arguments)?;
        sets.remove(at);
        self.len -= 1;
        let key_gone = sets.is_empty();
        if key_gone {
            keys.remove(key);
        }
        let destination_gone = keys.is_empty();
        if destination_gone {
            self.by_destination.remove(destination);
        }
        Some(Change {
            destination: destination_gone,
            key: key_gone,
        })
    }

    /// Forgets every binding to `destination` and hands them back.
    pub(crate) fn take_destination(&mut self, destination: &Destination) -> Option<KeyBindings> {
        let keys = self.by_destination.remove(destination)?;
        self.len -= keys.values().map(|sets| sets.len()).sum::<usize>();
        Some(keys)
    }

    /// Every binding, sorted by destination then key (arguments in bind order).
    pub(crate) fn sorted(&self) -> Vec<(Destination, Arc<str>, FieldTable)> {
        let mut out = Vec::with_capacity(self.len);
        for (destination, keys) in &self.by_destination {
            for (key, sets) in keys {
                for arguments in sets {
                    out.push((destination.clone(), key.clone(), arguments.clone()));
                }
            }
        }
        // Stable sort: arguments under one (destination, key) keep bind order.
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::AMQPValue;

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn args(pairs: &[(&str, i32)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), AMQPValue::LongInt(*v));
        }
        t
    }

    #[test]
    fn insert_reports_what_is_new() {
        let mut r = BindingRegistry::default();
        let none = FieldTable::default();
        let (c, key) = r.insert(&q("a"), "k", &none).unwrap();
        assert_eq!(&*key, "k");
        assert_eq!(
            c,
            Change {
                destination: true,
                key: true
            }
        );
        let (c, _) = r.insert(&q("a"), "k", &args(&[("x", 1)])).unwrap();
        assert_eq!(
            c,
            Change {
                destination: false,
                key: false
            }
        );
        let (c, _) = r.insert(&q("a"), "j", &none).unwrap();
        assert_eq!(
            c,
            Change {
                destination: false,
                key: true
            }
        );
        assert!(r.insert(&q("a"), "k", &none).is_none());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn insert_shares_the_key_allocation() {
        let mut r = BindingRegistry::default();
        let (_, k1) = r.insert(&q("a"), "k", &FieldTable::default()).unwrap();
        let (_, k2) = r.insert(&q("a"), "k", &args(&[("x", 1)])).unwrap();
        assert!(Arc::ptr_eq(&k1, &k2));
    }

    #[test]
    fn remove_reports_what_is_gone() {
        let mut r = BindingRegistry::default();
        let none = FieldTable::default();
        r.insert(&q("a"), "k", &none);
        r.insert(&q("a"), "k", &args(&[("x", 1)]));
        r.insert(&q("a"), "j", &none);
        assert_eq!(r.remove(&q("a"), "k", &args(&[("x", 2)])), None);
        assert_eq!(r.remove(&q("b"), "k", &none), None);
        assert_eq!(
            r.remove(&q("a"), "k", &none),
            Some(Change {
                destination: false,
                key: false
            })
        );
        assert_eq!(
            r.remove(&q("a"), "k", &args(&[("x", 1)])),
            Some(Change {
                destination: false,
                key: true
            })
        );
        assert_eq!(
            r.remove(&q("a"), "j", &none),
            Some(Change {
                destination: true,
                key: true
            })
        );
        assert_eq!(r.len(), 0);
        assert!(!r.has_destination(&q("a")));
    }

    #[test]
    fn take_destination_counts_down() {
        let mut r = BindingRegistry::default();
        let none = FieldTable::default();
        r.insert(&q("a"), "k", &none);
        r.insert(&q("a"), "j", &none);
        r.insert(&q("b"), "k", &none);
        let taken = r.take_destination(&q("a")).unwrap();
        assert_eq!(taken.len(), 2);
        assert_eq!(r.len(), 1);
        assert!(r.take_destination(&q("a")).is_none());
    }

    #[test]
    fn sorted_lists_by_destination_then_key() {
        let mut r = BindingRegistry::default();
        let none = FieldTable::default();
        r.insert(&q("b"), "k", &none);
        r.insert(&q("a"), "z", &none);
        r.insert(&q("a"), "a", &args(&[("x", 2)]));
        r.insert(&q("a"), "a", &args(&[("x", 1)]));
        r.insert(&Destination::Exchange("a".into()), "k", &none);
        let listed: Vec<_> = r
            .sorted()
            .into_iter()
            .map(|(d, k, a)| (d, k.to_string(), a))
            .collect();
        assert_eq!(
            listed,
            vec![
                (q("a"), "a".to_string(), args(&[("x", 2)])),
                (q("a"), "a".to_string(), args(&[("x", 1)])),
                (q("a"), "z".to_string(), none.clone()),
                (q("b"), "k".to_string(), none.clone()),
                (Destination::Exchange("a".into()), "k".to_string(), none),
            ]
        );
    }
}
