//! The bindings of one exchange that carry a selector (`x-selector`).
//!
//! The exchange types' matchers index plain bindings by what their rule reads
//! and report each destination once, ignoring arguments. A binding with a
//! selector cannot be folded like that: each is its own condition. So each
//! gets a *slot*, and a second matcher of the exchange's type indexes slots
//! instead of destinations. Routing asks that matcher which slots' own rules
//! (key, pattern, headers) match, evaluates only those slots' selectors, and
//! reports the destinations of the slots whose selector is TRUE. Identity is
//! RabbitMQ's: (destination, routing key, arguments), the selector text being
//! one of the arguments.

use foldhash::HashMap;
use std::sync::Arc;

use amq_protocol_types::FieldTable;
use smallvec::SmallVec;

use crate::binding::Destination;
use crate::exchange::Matcher;
use crate::headers::HeadersRule;
use crate::kind::ExchangeKind;
use crate::selector::{Selector, SelectorInput};

pub(crate) type Slot = u32;

#[derive(Clone, Debug)]
struct SelectedBinding {
    destination: Destination,
    routing_key: Arc<str>,
    arguments: FieldTable,
    selector: Selector,
}

#[derive(Clone, Debug)]
pub(crate) struct SelectedBindings {
    /// Bindings by slot; removed ones leave `None`, recycled through `free`.
    slots: Vec<Option<SelectedBinding>>,
    free: Vec<Slot>,
    by_destination: HashMap<Destination, SmallVec<[Slot; 2]>>,
    len: usize,
    /// The exchange type's matching over slots.
    matcher: Matcher<Slot>,
}

impl SelectedBindings {
    pub(crate) fn new(kind: ExchangeKind) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_destination: HashMap::default(),
            len: 0,
            matcher: Matcher::new(kind),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn binding(&self, slot: Slot) -> Option<&SelectedBinding> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn find(&self, destination: &Destination, key: &str, arguments: &FieldTable) -> Option<Slot> {
        self.by_destination
            .get(destination)?
            .iter()
            .copied()
            .find(|&slot| {
                self.binding(slot)
                    .is_some_and(|b| &*b.routing_key == key && b.arguments == *arguments)
            })
    }

    pub(crate) fn contains(
        &self,
        destination: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.find(destination, key, arguments).is_some()
    }

    pub(crate) fn has_destination(&self, destination: &Destination) -> bool {
        self.by_destination.contains_key(destination)
    }

    /// Adds a binding; false when this exact binding exists already. `rule`
    /// is the compiled headers rule for a headers exchange.
    pub(crate) fn insert(
        &mut self,
        destination: Destination,
        key: &str,
        arguments: &FieldTable,
        selector: Selector,
        rule: Option<HeadersRule>,
    ) -> bool {
        if self.contains(&destination, key, arguments) {
            return false;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                Slot::try_from(self.slots.len() - 1).expect("exchange exceeds u32 bindings")
            }
        };
        let key: Arc<str> = key.into();
        match &mut self.matcher {
            Matcher::Direct(m) => m.insert(key.clone(), slot),
            Matcher::Fanout(m) => m.insert(slot),
            Matcher::Topic(m) => m.insert(key.clone(), slot),
            Matcher::Headers(m) => {
                // Bind compiles a rule for every headers binding.
                let rule = rule.unwrap_or_else(HeadersRule::match_everything);
                m.insert(slot, key.clone(), arguments.clone(), rule)
            }
        }
        self.by_destination
            .entry(destination.clone())
            .or_default()
            .push(slot);
        self.slots[slot as usize] = Some(SelectedBinding {
            destination,
            routing_key: key,
            arguments: arguments.clone(),
            selector,
        });
        self.len += 1;
        true
    }

    fn remove_slot(&mut self, slot: Slot) -> Option<SelectedBinding> {
        let binding = self.slots.get_mut(slot as usize)?.take()?;
        match &mut self.matcher {
            Matcher::Direct(m) => m.remove(&binding.routing_key, &slot),
            Matcher::Fanout(m) => m.remove(&slot),
            Matcher::Topic(m) => m.remove(&binding.routing_key, &slot),
            Matcher::Headers(m) => m.remove_destination(&slot),
        }
        self.free.push(slot);
        self.len -= 1;
        Some(binding)
    }

    /// Removes a binding; false when it did not exist.
    pub(crate) fn remove(
        &mut self,
        destination: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let Some(slot) = self.find(destination, key, arguments) else {
            return false;
        };
        self.remove_slot(slot);
        if let Some(slots) = self.by_destination.get_mut(destination) {
            slots.retain(|s| *s != slot);
            if slots.is_empty() {
                self.by_destination.remove(destination);
            }
        }
        true
    }

    /// Removes every binding to `destination`; returns how many went.
    pub(crate) fn remove_destination(&mut self, destination: &Destination) -> usize {
        let Some(slots) = self.by_destination.remove(destination) else {
            return 0;
        };
        slots
            .into_iter()
            .filter_map(|slot| self.remove_slot(slot))
            .count()
    }

    /// Every binding as (destination, routing key, arguments), in no order.
    pub(crate) fn list(&self) -> impl Iterator<Item = (Destination, Arc<str>, FieldTable)> + '_ {
        self.slots.iter().flatten().map(|b| {
            (
                b.destination.clone(),
                b.routing_key.clone(),
                b.arguments.clone(),
            )
        })
    }

    /// Reports the destination of every binding whose exchange rule matches
    /// and whose selector is TRUE; returns whether any did.
    pub(crate) fn for_each_match<'a>(
        &'a self,
        input: &SelectorInput<'_>,
        out: &mut impl FnMut(&'a Destination),
    ) -> bool {
        let mut matched = false;
        self.matcher.route(input.message(), &mut |&slot: &'a Slot| {
            if let Some(binding) = self.binding(slot) {
                if binding.selector.matches(input) {
                    out(&binding.destination);
                    matched = true;
                }
            }
        });
        matched
    }
}
