//! [`Topology`]: every exchange of a vhost with its bindings, and the routing
//! walk across them. Exchanges are held as `Arc`s and copied on write, so a
//! clone of the topology (the broker's next snapshot) shares every exchange it
//! does not change.
//!
//! Routing follows RabbitMQ: exchange-to-exchange bindings are followed breadth
//! first, each exchange at most once (so cycles end); an exchange none of whose
//! bindings matched hands the message to its alternate exchange, if that
//! exists; each queue is delivered once.

use foldhash::HashMap;
use std::sync::Arc;

use amq_protocol_types::FieldTable;
use smallvec::SmallVec;

use crate::binding::{BindError, Binding, Destination};
use crate::exchange::ExchangeTable;
use crate::kind::ExchangeKind;
use crate::route::{QueueCollector, RoutableMessage, Route};
use crate::selector::SelectorInput;

/// All exchanges of a vhost and their bindings. Cloning is cheap (exchanges are
/// shared `Arc`s, copied on write).
#[derive(Clone, Debug, Default)]
pub struct Topology {
    exchanges: HashMap<Arc<str>, Arc<ExchangeTable>>,
}

impl Topology {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an exchange with no bindings (replaces nothing if it exists: returns false).
    pub fn add_exchange(&mut self, name: &str, kind: ExchangeKind) -> bool {
        if self.exchanges.contains_key(name) {
            return false;
        }
        self.exchanges
            .insert(name.into(), Arc::new(ExchangeTable::new(kind)));
        true
    }

    /// Removes an exchange, its bindings as source, and every binding to it as destination.
    pub fn remove_exchange(&mut self, name: &str) -> bool {
        let existed = self.exchanges.remove(name).is_some();
        self.remove_destination(&Destination::Exchange(name.into()));
        existed
    }

    pub fn exchange(&self, name: &str) -> Option<&ExchangeTable> {
        self.exchanges.get(name).map(|table| &**table)
    }

    /// Mutable access (copy-on-write of that exchange only).
    pub fn exchange_mut(&mut self, name: &str) -> Option<&mut ExchangeTable> {
        self.exchanges.get_mut(name).map(Arc::make_mut)
    }

    /// Names of all exchanges, in no particular order.
    pub fn exchange_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.exchanges.keys()
    }

    pub fn bind(
        &mut self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<bool, BindError> {
        let table = self
            .exchanges
            .get_mut(source)
            .ok_or(BindError::NoSourceExchange)?;
        // Don't copy a shared table for a no-op.
        if table.contains(&destination, routing_key, arguments) {
            return Ok(false);
        }
        Arc::make_mut(table).bind(destination, routing_key, arguments)
    }

    pub fn unbind(
        &mut self,
        source: &str,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        match self.exchanges.get_mut(source) {
            Some(table) if table.contains(destination, routing_key, arguments) => {
                Arc::make_mut(table).unbind(destination, routing_key, arguments)
            }
            _ => false,
        }
    }

    /// Removes every binding whose destination is this queue (queue deleted).
    pub fn remove_queue(&mut self, queue: &str) {
        self.remove_destination(&Destination::Queue(queue.into()));
    }

    /// Removes every binding to `destination`, copying only the exchanges that had one.
    fn remove_destination(&mut self, destination: &Destination) {
        for table in self.exchanges.values_mut() {
            if table.has_destination(destination) {
                Arc::make_mut(table).remove_destination(destination);
            }
        }
    }

    /// Whether any binding leads to this destination exchange (for exchange.delete if_unused
    /// RabbitMQ looks only at bindings where the exchange is the source; this is for auto-delete).
    pub fn has_bindings_to(&self, destination: &Destination) -> bool {
        self.exchanges
            .values()
            .any(|table| table.has_destination(destination))
    }

    /// Every binding in the vhost, sorted by source, then destination, then key.
    pub fn bindings(&self) -> Vec<Binding> {
        let mut sources: Vec<(&Arc<str>, &Arc<ExchangeTable>)> = self.exchanges.iter().collect();
        sources.sort_by(|a, b| a.0.cmp(b.0));
        sources
            .into_iter()
            .flat_map(|(source, table)| {
                table
                    .bindings()
                    .into_iter()
                    .map(|(destination, routing_key, arguments)| Binding {
                        source: source.clone(),
                        destination,
                        routing_key,
                        arguments,
                    })
            })
            .collect()
    }

    /// Routes a message published to `exchange`: follows exchange-to-exchange bindings
    /// (each exchange visited once, so cycles end), applies an exchange's alternate
    /// exchange when none of its bindings matched, and returns each queue once.
    ///
    /// A binding with a selector matches only when its selector is TRUE for the
    /// message; selectors read `message.exchange` as `sys.exchange` (the broker
    /// sets it to the exchange published to), and the body is parsed as JSON at
    /// most once per call, only if a selector reads it.
    pub fn route(&self, exchange: &str, message: &RoutableMessage<'_>, route: &mut Route) {
        let mut queues = QueueCollector::new(route);
        let Some((start, table)) = self.exchanges.get_key_value(exchange) else {
            return;
        };
        // Exchanges in visiting order; those before `next` are done. Being in
        // the list is being visited, so nothing enters twice.
        // One per message: a JSON body is parsed at most once for all selectors.
        let input = SelectorInput::new(message);
        let mut walk: SmallVec<[&str; 8]> = SmallVec::new();
        walk.push(start);
        let mut next = 1;
        let mut current: Option<&ExchangeTable> = Some(table);
        loop {
            // Missing exchanges (a dangling alternate) are skipped.
            if let Some(table) = current {
                // The first exchange to reach queues cannot repeat one unless
                // its own matcher can.
                queues.set_check(!queues.is_empty() || table.may_repeat());
                let matched = table.for_each_match(&input, &mut |destination| match destination {
                    Destination::Queue(queue) => queues.push(queue),
                    Destination::Exchange(target) => {
                        if !walk.contains(&&**target) {
                            walk.push(target);
                        }
                    }
                });
                if !matched {
                    if let Some(alternate) = table.alternate_exchange() {
                        if !walk.contains(&&**alternate) {
                            walk.push(alternate);
                        }
                    }
                }
            }
            let Some(&name) = walk.get(next) else {
                break;
            };
            next += 1;
            current = self.exchanges.get(name).map(|table| &**table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::{AMQPValue, LongString};

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn x(name: &str) -> Destination {
        Destination::Exchange(name.into())
    }

    fn none() -> FieldTable {
        FieldTable::default()
    }

    fn headers(pairs: &[(&str, &str)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
        }
        t
    }

    fn route_key(t: &Topology, exchange: &str, key: &str) -> Vec<String> {
        route_msg(t, exchange, key, None)
    }

    fn route_msg(t: &Topology, exchange: &str, key: &str, h: Option<&FieldTable>) -> Vec<String> {
        let mut route = Route::default();
        t.route(
            exchange,
            &RoutableMessage {
                routing_key: key,
                headers: h.into(),
                ..Default::default()
            },
            &mut route,
        );
        route.queues.iter().map(|q| q.to_string()).collect()
    }

    fn topology(exchanges: &[(&str, ExchangeKind)]) -> Topology {
        let mut t = Topology::new();
        for (name, kind) in exchanges {
            assert!(t.add_exchange(name, *kind));
        }
        t
    }

    #[test]
    fn add_exchange_does_not_replace() {
        let mut t = topology(&[("e", ExchangeKind::Direct)]);
        t.bind("e", q("q"), "k", &none()).unwrap();
        assert!(!t.add_exchange("e", ExchangeKind::Fanout));
        let e = t.exchange("e").unwrap();
        assert_eq!(e.kind(), ExchangeKind::Direct);
        assert_eq!(e.binding_count(), 1);
        assert!(t.exchange("missing").is_none());
    }

    #[test]
    fn bind_to_missing_source_is_refused() {
        let mut t = Topology::new();
        assert_eq!(
            t.bind("nope", q("q"), "k", &none()),
            Err(BindError::NoSourceExchange)
        );
        assert!(!t.unbind("nope", &q("q"), "k", &none()));
    }

    #[test]
    fn bind_and_unbind_report_changes() {
        let mut t = topology(&[("e", ExchangeKind::Direct)]);
        assert_eq!(t.bind("e", q("q"), "k", &none()), Ok(true));
        assert_eq!(t.bind("e", q("q"), "k", &none()), Ok(false));
        assert_eq!(t.bind("e", q("q"), "k", &headers(&[("a", "1")])), Ok(true));
        assert!(t.unbind("e", &q("q"), "k", &none()));
        assert!(!t.unbind("e", &q("q"), "k", &none()));
        assert_eq!(t.bindings().len(), 1);
    }

    #[test]
    fn headers_bind_errors_pass_through() {
        let mut t = topology(&[("h", ExchangeKind::Headers)]);
        let err = t
            .bind("h", q("q"), "", &headers(&[("x-match", "some")]))
            .unwrap_err();
        assert!(matches!(err, BindError::InvalidArgument(text) if text.contains("\"some\"")));
    }

    #[test]
    fn route_to_unknown_exchange_is_empty_and_clears() {
        let t = Topology::new();
        let mut route = Route {
            queues: vec!["stale".into()],
        };
        t.route(
            "missing",
            &RoutableMessage {
                routing_key: "k",
                headers: crate::Headers::None,
                ..Default::default()
            },
            &mut route,
        );
        assert!(route.queues.is_empty());
    }

    #[test]
    fn route_deduplicates_queue_bound_several_times() {
        let mut t = topology(&[("t", ExchangeKind::Topic), ("h", ExchangeKind::Headers)]);
        t.bind("t", q("q"), "a.*", &none()).unwrap();
        t.bind("t", q("q"), "#", &none()).unwrap();
        t.bind("t", q("q"), "a.b", &none()).unwrap();
        t.bind("t", q("r"), "#", &none()).unwrap();
        assert_eq!(route_key(&t, "t", "a.b"), ["q", "r"]);
        t.bind("h", q("q"), "", &headers(&[("a", "1")])).unwrap();
        t.bind("h", q("q"), "", &headers(&[("x-match", "any"), ("a", "1")]))
            .unwrap();
        assert_eq!(route_msg(&t, "h", "", Some(&headers(&[("a", "1")]))), ["q"]);
    }

    #[test]
    fn route_follows_exchange_bindings_breadth_first() {
        let mut t = topology(&[
            ("root", ExchangeKind::Fanout),
            ("left", ExchangeKind::Fanout),
            ("right", ExchangeKind::Fanout),
            ("deep", ExchangeKind::Fanout),
        ]);
        t.bind("root", x("left"), "", &none()).unwrap();
        t.bind("root", x("right"), "", &none()).unwrap();
        t.bind("root", q("q-root"), "", &none()).unwrap();
        t.bind("left", x("deep"), "", &none()).unwrap();
        t.bind("left", q("q-left"), "", &none()).unwrap();
        t.bind("right", q("q-right"), "", &none()).unwrap();
        t.bind("right", q("q-root"), "", &none()).unwrap();
        t.bind("deep", q("q-deep"), "", &none()).unwrap();
        assert_eq!(
            route_key(&t, "root", ""),
            ["q-root", "q-left", "q-right", "q-deep"]
        );
    }

    #[test]
    fn route_terminates_on_cycles() {
        let mut t = topology(&[("a", ExchangeKind::Fanout), ("b", ExchangeKind::Fanout)]);
        t.bind("a", x("b"), "", &none()).unwrap();
        t.bind("b", x("a"), "", &none()).unwrap();
        t.bind("b", q("q"), "", &none()).unwrap();
        t.bind("a", x("a"), "", &none()).unwrap();
        assert_eq!(route_key(&t, "a", ""), ["q"]);
        assert_eq!(route_key(&t, "b", ""), ["q"]);
    }

    #[test]
    fn exchange_to_exchange_uses_each_exchanges_own_matching() {
        let mut t = topology(&[("d", ExchangeKind::Direct), ("t", ExchangeKind::Topic)]);
        t.bind("d", x("t"), "orders.eu", &none()).unwrap();
        t.bind("t", q("eu"), "*.eu", &none()).unwrap();
        t.bind("t", q("us"), "*.us", &none()).unwrap();
        assert_eq!(route_key(&t, "d", "orders.eu"), ["eu"]);
        assert!(route_key(&t, "d", "orders.us").is_empty());
    }

    #[test]
    fn alternate_exchange_gets_unmatched_messages() {
        let mut t = topology(&[("main", ExchangeKind::Direct), ("ae", ExchangeKind::Fanout)]);
        t.exchange_mut("main")
            .unwrap()
            .set_alternate_exchange(Some("ae".into()));
        t.bind("main", q("known"), "k", &none()).unwrap();
        t.bind("ae", q("unrouted"), "", &none()).unwrap();
        assert_eq!(route_key(&t, "main", "k"), ["known"]);
        assert_eq!(route_key(&t, "main", "other"), ["unrouted"]);
    }

    #[test]
    fn alternate_exchange_not_used_when_matched_binding_leads_nowhere() {
        let mut t = topology(&[
            ("main", ExchangeKind::Direct),
            ("empty", ExchangeKind::Fanout),
            ("ae", ExchangeKind::Fanout),
        ]);
        t.exchange_mut("main")
            .unwrap()
            .set_alternate_exchange(Some("ae".into()));
        t.bind("main", x("empty"), "k", &none()).unwrap();
        t.bind("ae", q("unrouted"), "", &none()).unwrap();
        assert!(route_key(&t, "main", "k").is_empty());
        assert_eq!(route_key(&t, "main", "j"), ["unrouted"]);
    }

    #[test]
    fn alternate_exchange_of_downstream_exchange_applies() {
        let mut t = topology(&[
            ("main", ExchangeKind::Fanout),
            ("inner", ExchangeKind::Direct),
            ("inner-ae", ExchangeKind::Fanout),
        ]);
        t.bind("main", x("inner"), "", &none()).unwrap();
        t.bind("main", q("direct"), "", &none()).unwrap();
        t.exchange_mut("inner")
            .unwrap()
            .set_alternate_exchange(Some("inner-ae".into()));
        t.bind("inner-ae", q("caught"), "", &none()).unwrap();
        assert_eq!(route_key(&t, "main", "x"), ["direct", "caught"]);
    }

    #[test]
    fn alternate_exchange_chains_and_cycles_end() {
        let mut t = topology(&[
            ("a", ExchangeKind::Direct),
            ("b", ExchangeKind::Direct),
            ("c", ExchangeKind::Fanout),
        ]);
        t.exchange_mut("a")
            .unwrap()
            .set_alternate_exchange(Some("b".into()));
        t.exchange_mut("b")
            .unwrap()
            .set_alternate_exchange(Some("a".into()));
        assert!(route_key(&t, "a", "k").is_empty());
        t.exchange_mut("b")
            .unwrap()
            .set_alternate_exchange(Some("c".into()));
        t.bind("c", q("last"), "", &none()).unwrap();
        assert_eq!(route_key(&t, "a", "k"), ["last"]);
    }

    #[test]
    fn dangling_alternate_exchange_is_skipped() {
        let mut t = topology(&[("main", ExchangeKind::Direct)]);
        t.exchange_mut("main")
            .unwrap()
            .set_alternate_exchange(Some("gone".into()));
        assert!(route_key(&t, "main", "k").is_empty());
    }

    #[test]
    fn alternate_exchange_result_is_deduplicated() {
        let mut t = topology(&[
            ("main", ExchangeKind::Fanout),
            ("inner", ExchangeKind::Direct),
            ("ae", ExchangeKind::Fanout),
        ]);
        t.bind("main", q("q"), "", &none()).unwrap();
        t.bind("main", x("inner"), "", &none()).unwrap();
        t.exchange_mut("inner")
            .unwrap()
            .set_alternate_exchange(Some("ae".into()));
        t.bind("ae", q("q"), "", &none()).unwrap();
        t.bind("ae", q("r"), "", &none()).unwrap();
        assert_eq!(route_key(&t, "main", ""), ["q", "r"]);
    }

    #[test]
    fn many_queues_through_several_exchanges_are_deduplicated() {
        let mut t = topology(&[("a", ExchangeKind::Fanout), ("b", ExchangeKind::Fanout)]);
        for i in 0..50 {
            t.bind("a", q(&format!("q{i}")), "", &none()).unwrap();
            t.bind("b", q(&format!("q{}", 49 - i)), "", &none())
                .unwrap();
        }
        t.bind("b", q("extra"), "", &none()).unwrap();
        t.bind("a", x("b"), "", &none()).unwrap();
        let routed = route_key(&t, "a", "");
        assert_eq!(routed.len(), 51);
        assert_eq!(routed[0], "q0");
        assert_eq!(routed[50], "extra");
    }

    #[test]
    fn route_reuses_the_route_buffer() {
        let mut t = topology(&[("f", ExchangeKind::Fanout)]);
        t.bind("f", q("a"), "", &none()).unwrap();
        let mut route = Route::default();
        let msg = RoutableMessage {
            routing_key: "",
            headers: crate::Headers::None,
            ..Default::default()
        };
        t.route("f", &msg, &mut route);
        t.route("f", &msg, &mut route);
        assert_eq!(route.queues.len(), 1);
    }

    #[test]
    fn remove_exchange_removes_bindings_both_ways() {
        let mut t = topology(&[
            ("a", ExchangeKind::Fanout),
            ("b", ExchangeKind::Fanout),
            ("c", ExchangeKind::Topic),
        ]);
        t.bind("a", x("b"), "", &none()).unwrap();
        t.bind("a", q("qa"), "", &none()).unwrap();
        t.bind("c", x("b"), "#", &none()).unwrap();
        t.bind("c", x("b"), "x.*", &none()).unwrap();
        t.bind("b", q("qb"), "", &none()).unwrap();
        assert!(t.has_bindings_to(&x("b")));
        assert!(t.remove_exchange("b"));
        assert!(!t.remove_exchange("b"));
        assert!(t.exchange("b").is_none());
        assert!(!t.has_bindings_to(&x("b")));
        assert_eq!(t.exchange("c").unwrap().binding_count(), 0);
        assert_eq!(route_key(&t, "a", ""), ["qa"]);
        assert!(t
            .bindings()
            .iter()
            .all(|b| b.destination != x("b") && &*b.source != "b"));
        // Re-declaring it starts empty.
        t.add_exchange("b", ExchangeKind::Fanout);
        assert_eq!(route_key(&t, "a", ""), ["qa"]);
    }

    #[test]
    fn remove_queue_removes_every_binding_to_it() {
        let mut t = topology(&[
            ("d", ExchangeKind::Direct),
            ("t", ExchangeKind::Topic),
            ("h", ExchangeKind::Headers),
        ]);
        t.bind("d", q("q"), "k", &none()).unwrap();
        t.bind("d", q("q"), "k", &headers(&[("v", "2")])).unwrap();
        t.bind("d", q("other"), "k", &none()).unwrap();
        t.bind("t", q("q"), "#", &none()).unwrap();
        t.bind("h", q("q"), "", &none()).unwrap();
        assert!(t.has_bindings_to(&q("q")));
        t.remove_queue("q");
        assert!(!t.has_bindings_to(&q("q")));
        assert_eq!(route_key(&t, "d", "k"), ["other"]);
        assert!(route_key(&t, "t", "k").is_empty());
        assert!(route_key(&t, "h", "").is_empty());
        assert_eq!(t.bindings().len(), 1);
        t.remove_queue("never-bound");
    }

    #[test]
    fn has_bindings_to_distinguishes_queue_and_exchange() {
        let mut t = topology(&[("e", ExchangeKind::Direct)]);
        t.bind("e", q("n"), "", &none()).unwrap();
        assert!(t.has_bindings_to(&q("n")));
        assert!(!t.has_bindings_to(&x("n")));
    }

    #[test]
    fn bindings_lists_all_sources_sorted() {
        let mut t = topology(&[("b", ExchangeKind::Direct), ("a", ExchangeKind::Topic)]);
        t.bind("b", q("q1"), "k1", &none()).unwrap();
        t.bind("a", q("q2"), "k2", &headers(&[("x", "y")])).unwrap();
        t.bind("a", x("b"), "#", &none()).unwrap();
        let listed = t.bindings();
        assert_eq!(
            listed,
            vec![
                Binding {
                    source: "a".into(),
                    destination: q("q2"),
                    routing_key: "k2".into(),
                    arguments: headers(&[("x", "y")]),
                },
                Binding {
                    source: "a".into(),
                    destination: x("b"),
                    routing_key: "#".into(),
                    arguments: none(),
                },
                Binding {
                    source: "b".into(),
                    destination: q("q1"),
                    routing_key: "k1".into(),
                    arguments: none(),
                },
            ]
        );
    }

    #[test]
    fn clone_shares_exchanges_until_written() {
        let mut t = topology(&[("a", ExchangeKind::Direct), ("b", ExchangeKind::Direct)]);
        t.bind("a", q("qa"), "k", &none()).unwrap();
        t.bind("b", q("qb"), "k", &none()).unwrap();
        let snapshot = t.clone();
        assert!(Arc::ptr_eq(&t.exchanges["a"], &snapshot.exchanges["a"]));

        t.bind("a", q("qa2"), "k", &none()).unwrap();
        assert!(!Arc::ptr_eq(&t.exchanges["a"], &snapshot.exchanges["a"]));
        assert!(Arc::ptr_eq(&t.exchanges["b"], &snapshot.exchanges["b"]));
        assert_eq!(route_key(&snapshot, "a", "k"), ["qa"]);
        assert_eq!(route_key(&t, "a", "k"), ["qa", "qa2"]);

        // No-ops and removals of absent things copy nothing.
        let snapshot = t.clone();
        assert_eq!(t.bind("b", q("qb"), "k", &none()), Ok(false));
        assert!(!t.unbind("b", &q("nope"), "k", &none()));
        t.remove_queue("qa");
        assert!(Arc::ptr_eq(&t.exchanges["b"], &snapshot.exchanges["b"]));
        assert!(!Arc::ptr_eq(&t.exchanges["a"], &snapshot.exchanges["a"]));
        assert_eq!(route_key(&snapshot, "a", "k"), ["qa", "qa2"]);
    }

    #[test]
    fn exchange_mut_copies_only_that_exchange() {
        let mut t = topology(&[("a", ExchangeKind::Direct), ("b", ExchangeKind::Direct)]);
        let snapshot = t.clone();
        t.exchange_mut("a")
            .unwrap()
            .set_alternate_exchange(Some("b".into()));
        assert!(snapshot
            .exchange("a")
            .unwrap()
            .alternate_exchange()
            .is_none());
        assert!(Arc::ptr_eq(&t.exchanges["b"], &snapshot.exchanges["b"]));
        assert!(t.exchange_mut("missing").is_none());
    }

    fn sel(selector: &str) -> FieldTable {
        headers(&[("x-selector", selector)])
    }

    #[test]
    fn queue_gets_one_copy_however_many_selector_bindings_match() {
        let mut t = topology(&[("f", ExchangeKind::Fanout), ("t", ExchangeKind::Topic)]);
        t.bind("f", q("q"), "", &sel("region = 'eu'")).unwrap();
        t.bind("f", q("q"), "", &sel("region LIKE 'e%'")).unwrap();
        t.bind("f", q("q"), "", &none()).unwrap();
        t.bind("f", x("t"), "", &sel("TRUE")).unwrap();
        t.bind("t", q("q"), "#", &sel("TRUE")).unwrap();
        t.bind("t", q("r"), "#", &sel("region = 'eu'")).unwrap();
        let h = headers(&[("region", "eu")]);
        assert_eq!(route_msg(&t, "f", "k", Some(&h)), ["q", "r"]);
        let h = headers(&[("region", "us")]);
        assert_eq!(route_msg(&t, "f", "k", Some(&h)), ["q"]);
    }

    #[test]
    fn alternate_exchange_gets_messages_no_selector_accepted() {
        let mut t = topology(&[("main", ExchangeKind::Fanout), ("ae", ExchangeKind::Fanout)]);
        t.exchange_mut("main")
            .unwrap()
            .set_alternate_exchange(Some("ae".into()));
        t.bind("main", q("eu"), "", &sel("region = 'eu'")).unwrap();
        t.bind("ae", q("rest"), "", &none()).unwrap();
        let h = headers(&[("region", "eu")]);
        assert_eq!(route_msg(&t, "main", "", Some(&h)), ["eu"]);
        let h = headers(&[("region", "us")]);
        assert_eq!(route_msg(&t, "main", "", Some(&h)), ["rest"]);
        assert_eq!(route_msg(&t, "main", "", None), ["rest"]);
    }

    #[test]
    fn selectors_read_exchange_properties_and_body() {
        let mut t = topology(&[("a", ExchangeKind::Fanout), ("b", ExchangeKind::Fanout)]);
        t.bind("a", x("b"), "", &none()).unwrap();
        t.bind("b", q("from-a"), "", &sel("sys.exchange = 'a'"))
            .unwrap();
        t.bind(
            "b",
            q("big"),
            "",
            &sel("body.total > 1000 AND sys.priority >= 5"),
        )
        .unwrap();
        let mut route = Route::default();
        let message = RoutableMessage {
            routing_key: "k",
            exchange: "a",
            properties: crate::MessageProperties {
                priority: Some(7),
                ..Default::default()
            },
            body: br#"{"total": 1200}"#,
            ..Default::default()
        };
        t.route("a", &message, &mut route);
        assert_eq!(route.queues, vec![Arc::from("from-a"), Arc::from("big")]);
    }

    #[test]
    fn bad_selector_error_passes_through_topology() {
        let mut t = topology(&[("d", ExchangeKind::Direct)]);
        let err = t.bind("d", q("q"), "k", &sel("a IN 1")).unwrap_err();
        assert_eq!(
            err,
            BindError::InvalidArgument(
                "invalid x-selector at position 6: expected '(', found '1'".into()
            )
        );
        assert!(t.bindings().is_empty());
    }
}
