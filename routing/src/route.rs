//! The per-publish input and output of routing: [`RoutableMessage`] (with its
//! [`MessageProperties`]) borrows what matching and selectors read of a
//! message, and [`Route`] carries the resulting queue list in a `Vec` the
//! caller reuses, so routing need not allocate.

use foldhash::HashSet;
use std::sync::Arc;

use amq_protocol_types::FieldTable;

/// What routing reads of a message. Borrowed: building one allocates nothing.
///
/// Exchange types read only `routing_key` and `headers`; binding selectors
/// (`x-selector`) may also read `exchange`, `properties` and `body`. Fields a
/// caller leaves at their default read as absent (NULL to a selector):
/// `RoutableMessage { routing_key, headers, ..Default::default() }`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoutableMessage<'a> {
    pub routing_key: &'a str,
    /// The headers table, decoded only if a headers exchange or a selector
    /// asks for it ([`Headers::Lazy`]).
    pub headers: Headers<'a>,
    /// The exchange the message was published to (`sys.exchange`).
    pub exchange: &'a str,
    /// The basic properties selectors can read as `sys.<property>`.
    pub properties: MessageProperties<'a>,
    /// The message body; parsed as JSON only if a selector reads `body.…`.
    pub body: &'a [u8],
}

/// Where routing finds a message's headers table.
#[derive(Clone, Copy, Default)]
pub enum Headers<'a> {
    /// The message has no headers.
    #[default]
    None,
    /// Already decoded.
    Table(&'a FieldTable),
    /// Decoded on first use (most publishes never need their headers).
    Lazy(&'a dyn HeaderSource),
}

/// A headers table that is decoded when first asked for.
pub trait HeaderSource {
    /// The table; the same one on every call.
    fn table(&self) -> Option<&FieldTable>;
}

impl<'a> Headers<'a> {
    /// The headers table, decoding it if needed.
    pub fn get(self) -> Option<&'a FieldTable> {
        match self {
            Headers::None => None,
            Headers::Table(table) => Some(table),
            Headers::Lazy(source) => source.table(),
        }
    }
}

impl<'a> From<Option<&'a FieldTable>> for Headers<'a> {
    fn from(table: Option<&'a FieldTable>) -> Self {
        match table {
            Some(table) => Headers::Table(table),
            None => Headers::None,
        }
    }
}

impl std::fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Headers::None => f.write_str("None"),
            Headers::Table(_) => f.write_str("Table"),
            Headers::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

/// The AMQP basic properties a selector can read, borrowed from the message
/// (`None` is an absent property). `headers` are in [`RoutableMessage`];
/// `cluster-id` is deprecated and not offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageProperties<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub expiration: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub message_type: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub app_id: Option<&'a str>,
}

/// The result of routing one message.
#[derive(Clone, Debug, Default)]
pub struct Route {
    /// Each destination queue once, in the order first reached.
    pub queues: Vec<Arc<str>>,
}

/// Up to this many queues, duplicates are found by a linear scan of the
/// output; past it a hash set takes over so large fan-outs stay linear.
const LINEAR_DEDUP_LIMIT: usize = 16;

/// Appends queues to a [`Route`] once each, preserving first-reached order.
///
/// Checking is skipped while the caller vouches that nothing pushed can be a
/// duplicate (the first exchange of a walk, when its matcher never repeats a
/// destination), which keeps plain direct and fanout publishes scan-free.
pub(crate) struct QueueCollector<'r> {
    queues: &'r mut Vec<Arc<str>>,
    seen: Option<HashSet<Arc<str>>>,
    check: bool,
}

impl<'r> QueueCollector<'r> {
    /// Clears `route` and collects into it.
    pub(crate) fn new(route: &'r mut Route) -> Self {
        route.queues.clear();
        Self {
            queues: &mut route.queues,
            seen: None,
            check: true,
        }
    }

    /// Whether nothing has been collected yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Sets whether the next pushes may repeat a queue already collected.
    pub(crate) fn set_check(&mut self, check: bool) {
        self.check = check;
    }

    pub(crate) fn push(&mut self, queue: &Arc<str>) {
        if let Some(seen) = &mut self.seen {
            if !seen.insert(queue.clone()) {
                return;
            }
        } else if self.check {
            if self.queues.len() < LINEAR_DEDUP_LIMIT {
                if self.queues.iter().any(|q| **q == **queue) {
                    return;
                }
            } else {
                let mut seen: HashSet<Arc<str>> = self.queues.iter().cloned().collect();
                let fresh = seen.insert(queue.clone());
                self.seen = Some(seen);
                if !fresh {
                    return;
                }
            }
        }
        self.queues.push(queue.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(route: &Route) -> Vec<&str> {
        route.queues.iter().map(|q| &**q).collect()
    }

    #[test]
    fn collector_clears_previous_result() {
        let mut route = Route {
            queues: vec!["stale".into()],
        };
        let mut c = QueueCollector::new(&mut route);
        assert!(c.is_empty());
        c.push(&"a".into());
        assert_eq!(names(&route), ["a"]);
    }

    #[test]
    fn collector_deduplicates_in_first_reached_order() {
        let mut route = Route::default();
        let mut c = QueueCollector::new(&mut route);
        for q in ["b", "a", "b", "c", "a"] {
            c.push(&q.into());
        }
        assert_eq!(names(&route), ["b", "a", "c"]);
    }

    #[test]
    fn collector_deduplicates_past_the_linear_limit() {
        let mut route = Route::default();
        let mut c = QueueCollector::new(&mut route);
        for _ in 0..3 {
            for i in 0..100 {
                c.push(&format!("q{i}").into());
            }
        }
        let expected: Vec<String> = (0..100).map(|i| format!("q{i}")).collect();
        assert_eq!(names(&route), expected);
    }

    #[test]
    fn collector_keeps_hash_set_in_sync_when_unchecked() {
        let mut route = Route::default();
        let mut c = QueueCollector::new(&mut route);
        for i in 0..40 {
            c.push(&format!("q{i}").into());
        }
        c.push(&"q0".into()); // builds the set
        c.set_check(false);
        c.push(&"new".into()); // unchecked, but must enter the set
        c.set_check(true);
        c.push(&"new".into());
        assert_eq!(route.queues.len(), 41);
        assert_eq!(&*route.queues[40], "new");
    }
}
