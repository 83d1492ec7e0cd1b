//! [`ExchangeTable`]: one exchange's bindings, compiled for its type. Plain
//! bindings live in the binding registry, the authority on which exist, and
//! the type's matcher, the index routing reads; every change goes through
//! both, so they never disagree. Bindings with a selector (`x-selector`) live
//! apart, in `selected`, which has its own index of the same type: a binding
//! matches when the exchange's rule matches and its selector is TRUE.

use std::sync::Arc;

use amq_protocol_types::FieldTable;

use crate::binding::{BindError, Destination};
use crate::direct::DirectMatcher;
use crate::fanout::FanoutMatcher;
use crate::headers::{HeadersMatcher, HeadersRule};
use crate::kind::ExchangeKind;
use crate::registry::BindingRegistry;
use crate::route::RoutableMessage;
use crate::selected::SelectedBindings;
use crate::selector::{self, SelectorInput};
use crate::topic::TopicMatcher;

/// The routing index of one exchange type, reporting `T`s: destinations for
/// plain bindings, slots for bindings with a selector.
#[derive(Clone, Debug)]
pub(crate) enum Matcher<T = Destination> {
    Direct(DirectMatcher<T>),
    Fanout(FanoutMatcher<T>),
    Topic(TopicMatcher<T>),
    Headers(HeadersMatcher<T>),
}

impl<T: PartialEq> Matcher<T> {
    pub(crate) fn new(kind: ExchangeKind) -> Self {
        match kind {
            ExchangeKind::Direct => Matcher::Direct(DirectMatcher::default()),
            ExchangeKind::Fanout => Matcher::Fanout(FanoutMatcher::default()),
            ExchangeKind::Topic => Matcher::Topic(TopicMatcher::default()),
            ExchangeKind::Headers => Matcher::Headers(HeadersMatcher::default()),
        }
    }

    /// Reports what every matching binding leads to; whether any matched.
    pub(crate) fn route<'a>(
        &'a self,
        message: &RoutableMessage<'_>,
        out: &mut impl FnMut(&'a T),
    ) -> bool {
        match self {
            Matcher::Direct(m) => m.route(message.routing_key, out),
            Matcher::Fanout(m) => m.route(out),
            Matcher::Topic(m) => m.route(message.routing_key, out),
            Matcher::Headers(m) => m.route(message.headers.get(), out),
        }
    }
}

/// One exchange's compiled bindings.
#[derive(Clone, Debug)]
pub struct ExchangeTable {
    kind: ExchangeKind,
    alternate_exchange: Option<Arc<str>>,
    /// Plain bindings (no selector).
    registry: BindingRegistry,
    matcher: Matcher,
    /// Bindings with a selector.
    selected: SelectedBindings,
}

impl ExchangeTable {
    pub fn new(kind: ExchangeKind) -> Self {
        Self {
            kind,
            alternate_exchange: None,
            registry: BindingRegistry::default(),
            matcher: Matcher::new(kind),
            selected: SelectedBindings::new(kind),
        }
    }

    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// The alternate exchange (RabbitMQ's `alternate-exchange` argument), if any.
    pub fn alternate_exchange(&self) -> Option<&Arc<str>> {
        self.alternate_exchange.as_ref()
    }

    pub fn set_alternate_exchange(&mut self, name: Option<Arc<str>>) {
        self.alternate_exchange = name;
    }

    /// Adds a binding. Ok(false) when an identical binding (same destination, key and
    /// arguments) already existed: binding twice is a no-op, as in RabbitMQ.
    ///
    /// A selector argument (`x-selector`, or its alias `x-filter-jms-selector`)
    /// is compiled here; one that is not a string or does not compile is
    /// [`BindError::InvalidArgument`] with the position and what was expected.
    pub fn bind(
        &mut self,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<bool, BindError> {
        let rule = match self.matcher {
            Matcher::Headers(_) => Some(HeadersRule::compile(arguments)?),
            _ => None,
        };
        if let Some(selector) = selector::from_arguments(arguments)? {
            return Ok(self
                .selected
                .insert(destination, routing_key, arguments, selector, rule));
        }
        let Some((change, key)) = self.registry.insert(&destination, routing_key, arguments) else {
            return Ok(false);
        };
        match &mut self.matcher {
            Matcher::Direct(m) if change.key => m.insert(key, destination),
            Matcher::Fanout(m) if change.destination => m.insert(destination),
            Matcher::Topic(m) if change.key => m.insert(key, destination),
            Matcher::Headers(m) => {
                let rule = rule.expect("compiled above for headers exchanges");
                m.insert(destination, key, arguments.clone(), rule);
            }
            _ => {}
        }
        Ok(true)
    }

    /// Whether this exact binding exists.
    pub fn contains(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        if has_selector(arguments) {
            self.selected.contains(destination, routing_key, arguments)
        } else {
            self.registry.contains(destination, routing_key, arguments)
        }
    }

    /// Whether any binding of this exchange leads to `destination`.
    pub fn has_destination(&self, destination: &Destination) -> bool {
        self.registry.has_destination(destination) || self.selected.has_destination(destination)
    }

    /// Removes a binding; false when it did not exist (unbinding a missing binding succeeds).
    pub fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        if has_selector(arguments) {
            return self.selected.remove(destination, routing_key, arguments);
        }
        let Some(change) = self.registry.remove(destination, routing_key, arguments) else {
            return false;
        };
        match &mut self.matcher {
            Matcher::Direct(m) if change.key => m.remove(routing_key, destination),
            Matcher::Fanout(m) if change.destination => m.remove(destination),
            Matcher::Topic(m) if change.key => m.remove(routing_key, destination),
            Matcher::Headers(m) => m.remove(destination, routing_key, arguments),
            _ => {}
        }
        true
    }

    /// Removes every binding to `destination`; returns how many went.
    pub fn remove_destination(&mut self, destination: &Destination) -> usize {
        let selected = self.selected.remove_destination(destination);
        let Some(keys) = self.registry.take_destination(destination) else {
            return selected;
        };
        match &mut self.matcher {
            Matcher::Direct(m) => keys.keys().for_each(|key| m.remove(key, destination)),
            Matcher::Fanout(m) => m.remove(destination),
            Matcher::Topic(m) => keys.keys().for_each(|key| m.remove(key, destination)),
            Matcher::Headers(m) => m.remove_destination(destination),
        }
        selected + keys.values().map(|sets| sets.len()).sum::<usize>()
    }

    /// Number of bindings with this exchange as source.
    pub fn binding_count(&self) -> usize {
        self.registry.len() + self.selected.len()
    }

    /// The bindings of this exchange: (destination, routing key, arguments),
    /// sorted by destination then routing key.
    pub fn bindings(&self) -> Vec<(Destination, Arc<str>, FieldTable)> {
        let mut all = self.registry.sorted();
        if !self.selected.is_empty() {
            all.extend(self.selected.list());
            // Stable: plain bindings first under one (destination, key).
            all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        }
        all
    }

    /// Calls `out` once per destination whose binding matches (a destination bound
    /// several times may be reported several times; [`Topology::route`] deduplicates).
    /// Returns whether any binding matched.
    ///
    /// [`Topology::route`]: crate::Topology::route
    pub fn route(&self, message: &RoutableMessage<'_>, out: &mut dyn FnMut(&Destination)) -> bool {
        self.for_each_match(&SelectorInput::new(message), &mut |d| out(d))
    }

    /// [`route`](Self::route), monomorphised, with destinations borrowed for
    /// as long as the table. `input` carries the message and its lazily parsed
    /// body across every table of one routing walk.
    pub(crate) fn for_each_match<'a>(
        &'a self,
        input: &SelectorInput<'_>,
        out: &mut impl FnMut(&'a Destination),
    ) -> bool {
        let plain = self.matcher.route(input.message(), out);
        if self.selected.is_empty() {
            return plain;
        }
        self.selected.for_each_match(input, out) || plain
    }

    /// Whether one routing through this table may report a destination twice.
    pub(crate) fn may_repeat(&self) -> bool {
        if !self.selected.is_empty() {
            return true;
        }
        match &self.matcher {
            Matcher::Direct(_) | Matcher::Fanout(_) => false,
            Matcher::Topic(m) => m.may_repeat(),
            Matcher::Headers(_) => true,
        }
    }
}

/// Whether binding arguments name a selector (valid or not: a binding with an
/// invalid one is never bound, so it is simply not found).
fn has_selector(arguments: &FieldTable) -> bool {
    let table = arguments.inner();
    table.contains_key(selector::SELECTOR_ARGUMENT)
        || table.contains_key(selector::JMS_SELECTOR_ARGUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::{AMQPValue, LongString};

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn args(pairs: &[(&str, &str)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
        }
        t
    }

    fn none() -> FieldTable {
        FieldTable::default()
    }

    fn routed(
        t: &ExchangeTable,
        key: &str,
        headers: Option<&FieldTable>,
    ) -> (bool, Vec<Destination>) {
        let mut out = Vec::new();
        let msg = RoutableMessage {
            routing_key: key,
            headers: headers.into(),
            ..Default::default()
        };
        let matched = t.route(&msg, &mut |d| out.push(d.clone()));
        (matched, out)
    }

    #[test]
    fn new_table_is_empty() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            let t = ExchangeTable::new(kind);
            assert_eq!(t.kind(), kind);
            assert_eq!(t.binding_count(), 0);
            assert!(t.bindings().is_empty());
            assert_eq!(t.alternate_exchange(), None);
            assert_eq!(routed(&t, "k", None), (false, vec![]));
        }
    }

    #[test]
    fn alternate_exchange_is_settable() {
        let mut t = ExchangeTable::new(ExchangeKind::Direct);
        t.set_alternate_exchange(Some("ae".into()));
        assert_eq!(t.alternate_exchange().map(|s| &**s), Some("ae"));
        t.set_alternate_exchange(None);
        assert_eq!(t.alternate_exchange(), None);
    }

    #[test]
    fn binding_twice_is_a_no_op() {
        let mut t = ExchangeTable::new(ExchangeKind::Direct);
        assert_eq!(t.bind(q("q"), "k", &none()), Ok(true));
        assert_eq!(t.bind(q("q"), "k", &none()), Ok(false));
        assert_eq!(t.binding_count(), 1);
        assert_eq!(routed(&t, "k", None), (true, vec![q("q")]));
    }

    #[test]
    fn bindings_differing_in_arguments_are_distinct() {
        let mut t = ExchangeTable::new(ExchangeKind::Direct);
        assert_eq!(t.bind(q("q"), "k", &none()), Ok(true));
        assert_eq!(t.bind(q("q"), "k", &args(&[("a", "1")])), Ok(true));
        assert_eq!(t.binding_count(), 2);
        // Direct ignores arguments: still one delivery from this table.
        assert_eq!(routed(&t, "k", None), (true, vec![q("q")]));
        assert!(t.unbind(&q("q"), "k", &none()));
        assert_eq!(routed(&t, "k", None), (true, vec![q("q")]));
        assert!(t.unbind(&q("q"), "k", &args(&[("a", "1")])));
        assert_eq!(routed(&t, "k", None), (false, vec![]));
    }

    #[test]
    fn unbind_missing_returns_false() {
        let mut t = ExchangeTable::new(ExchangeKind::Topic);
        assert!(!t.unbind(&q("q"), "k", &none()));
        t.bind(q("q"), "k", &none()).unwrap();
        assert!(!t.unbind(&q("q"), "k", &args(&[("a", "1")])));
        assert!(!t.unbind(&q("q"), "j", &none()));
        assert!(!t.unbind(&q("r"), "k", &none()));
        assert_eq!(t.binding_count(), 1);
    }

    #[test]
    fn direct_routes_by_key() {
        let mut t = ExchangeTable::new(ExchangeKind::Direct);
        t.bind(q("a"), "a", &none()).unwrap();
        t.bind(q("b"), "b", &none()).unwrap();
        t.bind(Destination::Exchange("x".into()), "a", &none())
            .unwrap();
        assert_eq!(
            routed(&t, "a", None),
            (true, vec![q("a"), Destination::Exchange("x".into())])
        );
        assert_eq!(routed(&t, "c", None), (false, vec![]));
    }

    #[test]
    fn fanout_ignores_key_and_reports_destination_once() {
        let mut t = ExchangeTable::new(ExchangeKind::Fanout);
        t.bind(q("a"), "x", &none()).unwrap();
        t.bind(q("a"), "y", &none()).unwrap();
        t.bind(q("b"), "", &none()).unwrap();
        assert_eq!(t.binding_count(), 3);
        assert_eq!(routed(&t, "anything", None), (true, vec![q("a"), q("b")]));
        t.unbind(&q("a"), "x", &none());
        assert_eq!(routed(&t, "", None), (true, vec![q("a"), q("b")]));
        t.unbind(&q("a"), "y", &none());
        assert_eq!(routed(&t, "", None), (true, vec![q("b")]));
    }

    #[test]
    fn topic_routes_by_pattern() {
        let mut t = ExchangeTable::new(ExchangeKind::Topic);
        t.bind(q("all"), "#", &none()).unwrap();
        t.bind(q("eu"), "eu.*", &none()).unwrap();
        t.bind(q("exact"), "eu.orders", &none()).unwrap();
        let (matched, mut out) = routed(&t, "eu.orders", None);
        out.sort();
        assert!(matched);
        assert_eq!(out, vec![q("all"), q("eu"), q("exact")]);
        assert_eq!(routed(&t, "", None), (true, vec![q("all")]));
    }

    #[test]
    fn topic_unbind_of_one_argument_variant_keeps_pattern() {
        let mut t = ExchangeTable::new(ExchangeKind::Topic);
        t.bind(q("q"), "a.*", &none()).unwrap();
        t.bind(q("q"), "a.*", &args(&[("v", "2")])).unwrap();
        t.unbind(&q("q"), "a.*", &none());
        assert_eq!(routed(&t, "a.b", None), (true, vec![q("q")]));
    }

    #[test]
    fn headers_validates_and_routes() {
        let mut t = ExchangeTable::new(ExchangeKind::Headers);
        let err = t
            .bind(q("q"), "", &args(&[("x-match", "foo")]))
            .unwrap_err();
        assert_eq!(
            err,
            BindError::InvalidArgument(
                r#"Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x"#.into()
            )
        );
        assert_eq!(t.binding_count(), 0);
        t.bind(q("eu"), "", &args(&[("region", "eu")])).unwrap();
        t.bind(
            q("any"),
            "",
            &args(&[("x-match", "any"), ("region", "us"), ("kind", "order")]),
        )
        .unwrap();
        let h = args(&[("region", "eu"), ("kind", "order")]);
        let (matched, mut out) = routed(&t, "ignored", Some(&h));
        out.sort();
        assert!(matched);
        assert_eq!(out, vec![q("any"), q("eu")]);
        assert_eq!(routed(&t, "", None), (false, vec![]));
    }

    #[test]
    fn headers_bindings_differing_in_arguments_route_separately() {
        let mut t = ExchangeTable::new(ExchangeKind::Headers);
        t.bind(q("q"), "", &args(&[("a", "1")])).unwrap();
        t.bind(q("q"), "", &args(&[("b", "1")])).unwrap();
        let both = args(&[("a", "1"), ("b", "1")]);
        assert_eq!(routed(&t, "", Some(&both)).1.len(), 2);
        t.unbind(&q("q"), "", &args(&[("a", "1")]));
        assert_eq!(routed(&t, "", Some(&args(&[("a", "1")]))), (false, vec![]));
        assert_eq!(routed(&t, "", Some(&both)), (true, vec![q("q")]));
    }

    #[test]
    fn other_kinds_accept_any_x_match() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
        ] {
            let mut t = ExchangeTable::new(kind);
            assert_eq!(t.bind(q("q"), "k", &args(&[("x-match", "foo")])), Ok(true));
        }
    }

    #[test]
    fn remove_destination_counts_every_binding() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            let mut t = ExchangeTable::new(kind);
            t.bind(q("gone"), "a", &none()).unwrap();
            t.bind(q("gone"), "a", &args(&[("k", "v")])).unwrap();
            t.bind(q("gone"), "b.*", &none()).unwrap();
            t.bind(q("stays"), "a", &none()).unwrap();
            assert_eq!(t.remove_destination(&q("gone")), 3, "{kind:?}");
            assert_eq!(t.remove_destination(&q("gone")), 0);
            assert_eq!(t.binding_count(), 1);
            assert!(!t.has_destination(&q("gone")));
            let (_, out) = routed(&t, "a", Some(&args(&[("k", "v")])));
            assert_eq!(out, vec![q("stays")], "{kind:?}");
            let (_, out) = routed(&t, "b.x", None);
            assert!(!out.contains(&q("gone")), "{kind:?}");
        }
    }

    #[test]
    fn bindings_lists_everything() {
        let mut t = ExchangeTable::new(ExchangeKind::Topic);
        t.bind(q("b"), "k", &none()).unwrap();
        t.bind(q("a"), "k", &args(&[("x", "1")])).unwrap();
        t.bind(Destination::Exchange("e".into()), "#", &none())
            .unwrap();
        let listed = t.bindings();
        assert_eq!(
            listed,
            vec![
                (q("a"), "k".into(), args(&[("x", "1")])),
                (q("b"), "k".into(), none()),
                (Destination::Exchange("e".into()), "#".into(), none()),
            ]
        );
        assert!(t.contains(&q("a"), "k", &args(&[("x", "1")])));
        assert!(!t.contains(&q("a"), "k", &none()));
    }

    fn sel(selector: &str) -> FieldTable {
        args(&[("x-selector", selector)])
    }

    fn all_kinds() -> [ExchangeKind; 4] {
        [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ]
    }

    #[test]
    fn selector_and_exchange_rule_must_both_match() {
        let eu = args(&[("region", "eu")]);
        let us = args(&[("region", "us")]);
        for kind in all_kinds() {
            let mut t = ExchangeTable::new(kind);
            let key = if kind == ExchangeKind::Topic {
                "orders.*"
            } else {
                "orders.new"
            };
            t.bind(q("eu"), key, &sel("region = 'eu'")).unwrap();
            t.bind(q("plain"), key, &none()).unwrap();
            assert_eq!(t.binding_count(), 2);
            let (matched, mut out) = routed(&t, "orders.new", Some(&eu));
            out.sort();
            assert!(matched, "{kind:?}");
            assert_eq!(out, vec![q("eu"), q("plain")], "{kind:?}");
            assert_eq!(
                routed(&t, "orders.new", Some(&us)),
                (true, vec![q("plain")]),
                "{kind:?}"
            );
            // The exchange's own rule still applies (fanout and headers ignore keys).
            let (_, out) = routed(&t, "other", Some(&eu));
            let expected = match kind {
                ExchangeKind::Direct | ExchangeKind::Topic => vec![],
                _ => vec![q("plain"), q("eu")],
            };
            assert_eq!(out, expected, "{kind:?}");
        }
    }

    #[test]
    fn selector_false_or_unknown_is_no_match() {
        for kind in all_kinds() {
            let mut t = ExchangeTable::new(kind);
            t.bind(q("q"), "k", &sel("region = 'eu'")).unwrap();
            assert_eq!(routed(&t, "k", None), (false, vec![]), "{kind:?}");
            let us = args(&[("region", "us")]);
            assert_eq!(routed(&t, "k", Some(&us)), (false, vec![]), "{kind:?}");
        }
    }

    #[test]
    fn jms_alias_is_accepted() {
        let mut t = ExchangeTable::new(ExchangeKind::Fanout);
        t.bind(
            q("q"),
            "",
            &args(&[("x-filter-jms-selector", "region = 'eu'")]),
        )
        .unwrap();
        let eu = args(&[("region", "eu")]);
        assert_eq!(routed(&t, "", Some(&eu)), (true, vec![q("q")]));
        assert_eq!(routed(&t, "", None), (false, vec![]));
    }

    #[test]
    fn invalid_selector_is_refused_and_nothing_bound() {
        for kind in all_kinds() {
            let mut t = ExchangeTable::new(kind);
            let err = t.bind(q("q"), "k", &sel("region = ")).unwrap_err();
            assert_eq!(
                err,
                BindError::InvalidArgument(
                    "invalid x-selector at position 10: expected an operand, found the end of the selector".into()
                )
            );
            assert_eq!(t.binding_count(), 0);
            assert!(!t.has_destination(&q("q")));
        }
    }

    #[test]
    fn selectors_take_part_in_binding_identity() {
        for kind in all_kinds() {
            let mut t = ExchangeTable::new(kind);
            assert_eq!(t.bind(q("q"), "k", &sel("a = 1")), Ok(true));
            assert_eq!(t.bind(q("q"), "k", &sel("a = 1")), Ok(false));
            assert_eq!(t.bind(q("q"), "k", &sel("a = 2")), Ok(true));
            assert_eq!(t.bind(q("q"), "k", &sel("a=1")), Ok(true));
            assert_eq!(t.bind(q("q"), "k", &none()), Ok(true));
            assert_eq!(t.binding_count(), 4);
            assert!(t.contains(&q("q"), "k", &sel("a = 2")));
            assert!(!t.contains(&q("q"), "k", &sel("a = 3")));
            // Both matching selectors report q; Topology deduplicates.
            let both = {
                let mut h = FieldTable::default();
                h.insert("a".into(), AMQPValue::LongInt(1));
                h
            };
            let (matched, out) = routed(&t, "k", Some(&both));
            assert!(matched);
            assert!(
                out.iter().all(|d| *d == q("q")) && out.len() >= 2,
                "{kind:?} {out:?}"
            );
            assert!(t.may_repeat());

            assert!(t.unbind(&q("q"), "k", &sel("a = 1")));
            assert!(!t.unbind(&q("q"), "k", &sel("a = 1")));
            assert!(!t.unbind(&q("q"), "k", &sel("not even valid (")));
            assert_eq!(t.binding_count(), 3);
            assert!(t.unbind(&q("q"), "k", &none()));
            // Plain index unaffected by selector bindings and vice versa.
            let two = {
                let mut h = FieldTable::default();
                h.insert("a".into(), AMQPValue::LongInt(2));
                h
            };
            assert_eq!(
                routed(&t, "k", Some(&two)),
                (true, vec![q("q")]),
                "{kind:?}"
            );
            assert_eq!(routed(&t, "k", Some(&both)).1, vec![q("q")], "{kind:?}");
        }
    }

    #[test]
    fn plain_binding_indexed_even_when_a_selector_binding_came_first() {
        let mut t = ExchangeTable::new(ExchangeKind::Direct);
        t.bind(q("q"), "k", &sel("FALSE")).unwrap();
        t.bind(q("q"), "k", &none()).unwrap();
        assert_eq!(routed(&t, "k", None), (true, vec![q("q")]));
        t.unbind(&q("q"), "k", &none());
        assert_eq!(routed(&t, "k", None), (false, vec![]));
        assert!(t.has_destination(&q("q")));
    }

    #[test]
    fn remove_destination_and_listing_include_selector_bindings() {
        for kind in all_kinds() {
            let mut t = ExchangeTable::new(kind);
            t.bind(q("gone"), "k", &sel("TRUE")).unwrap();
            t.bind(q("gone"), "k", &sel("a = 1")).unwrap();
            t.bind(q("gone"), "k", &none()).unwrap();
            t.bind(q("stays"), "k", &sel("TRUE")).unwrap();
            let listed = t.bindings();
            assert_eq!(
                listed,
                vec![
                    (q("gone"), "k".into(), none()),
                    (q("gone"), "k".into(), sel("TRUE")),
                    (q("gone"), "k".into(), sel("a = 1")),
                    (q("stays"), "k".into(), sel("TRUE")),
                ],
                "{kind:?}"
            );
            assert_eq!(t.remove_destination(&q("gone")), 3, "{kind:?}");
            assert!(!t.has_destination(&q("gone")));
            assert_eq!(t.binding_count(), 1);
            assert_eq!(routed(&t, "k", None), (true, vec![q("stays")]), "{kind:?}");
            // Slots are recycled.
            t.bind(q("again"), "k", &sel("TRUE")).unwrap();
            let (_, mut out) = routed(&t, "k", None);
            out.sort();
            assert_eq!(out, vec![q("again"), q("stays")], "{kind:?}");
        }
    }

    #[test]
    fn headers_with_x_modes_ignore_selector_arguments() {
        for mode in ["all-with-x", "any-with-x", "all", "any"] {
            for name in ["x-selector", "x-filter-jms-selector"] {
                let mut t = ExchangeTable::new(ExchangeKind::Headers);
                t.bind(
                    q("q"),
                    "",
                    &args(&[
                        ("x-match", mode),
                        ("kind", "order"),
                        (name, "region = 'eu'"),
                    ]),
                )
                .unwrap();
                let h = args(&[("kind", "order"), ("region", "eu")]);
                assert_eq!(
                    routed(&t, "", Some(&h)),
                    (true, vec![q("q")]),
                    "{mode} {name}"
                );
                let h = args(&[("kind", "order"), ("region", "us")]);
                assert_eq!(routed(&t, "", Some(&h)), (false, vec![]), "{mode} {name}");
                let h = args(&[("kind", "invoice"), ("region", "eu")]);
                assert_eq!(routed(&t, "", Some(&h)), (false, vec![]), "{mode} {name}");
            }
        }
    }

    #[test]
    fn body_is_parsed_only_for_candidates_and_once() {
        let mut t = ExchangeTable::new(ExchangeKind::Direct);
        for n in 0..10 {
            t.bind(q(&format!("q{n}")), "json", &sel(&format!("body.n = {n}")))
                .unwrap();
        }
        t.bind(q("hdr"), "plain", &sel("sys.routing_key = 'plain'"))
            .unwrap();
        let message = RoutableMessage {
            routing_key: "plain",
            body: br#"{"n": 3}"#,
            ..Default::default()
        };
        let input = SelectorInput::new(&message);
        let mut out = Vec::new();
        assert!(t.for_each_match(&input, &mut |d| out.push(d.clone())));
        assert_eq!(out, vec![q("hdr")]);
        assert!(!input.body_parsed(), "no candidate reads the body");

        let message = RoutableMessage {
            routing_key: "json",
            ..message
        };
        let input = SelectorInput::new(&message);
        let mut out = Vec::new();
        assert!(t.for_each_match(&input, &mut |d| out.push(d.clone())));
        assert_eq!(out, vec![q("q3")]);
        assert!(input.body_parsed());
    }
}
