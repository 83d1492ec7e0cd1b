//! Warren's routing engine: exchanges, bindings and matching.
//!
//! This crate owns the *decision* of where a message goes: which queues a
//! publish to an exchange reaches, following exchange-to-exchange bindings and
//! alternate exchanges. It is pure logic: no I/O, no tokio, no locks. The
//! broker keeps a [`Topology`] per vhost behind an atomic pointer and swaps in
//! a modified copy on bind/unbind, so publishers route against an immutable
//! snapshot without taking a lock.

use std::sync::Arc;

pub use amq_protocol_types::{AMQPValue, FieldTable};

/// Where a binding leads: a queue or another exchange (exchange-to-exchange binding).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(Arc<str>),
    Exchange(Arc<str>),
}

/// The four standard exchange types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    /// Parses the type name used in exchange.declare ("direct", "fanout", "topic", "headers").
    pub fn parse(name: &str) -> Option<Self> {
        todo!("{name}")
    }

    /// The name RabbitMQ uses for this type.
    pub fn as_str(self) -> &'static str {
        todo!()
    }
}

/// Why a binding was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// The headers exchange's `x-match` argument is not all/any/all-with-x/any-with-x
    /// (the text is the reply text to send with 406 PRECONDITION_FAILED).
    InvalidArgument(String),
    /// The source exchange does not exist in the topology.
    NoSourceExchange,
}

/// What routing reads of a message. Borrowed: building one allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct RoutableMessage<'a> {
    pub routing_key: &'a str,
    pub headers: Option<&'a FieldTable>,
}

/// A binding as listed for export: RabbitMQ identifies a binding by all four parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub source: Arc<str>,
    pub destination: Destination,
    pub routing_key: Arc<str>,
    pub arguments: FieldTable,
}

/// One exchange's compiled bindings.
#[derive(Clone, Debug)]
pub struct ExchangeTable {
    _private: (),
}

impl ExchangeTable {
    pub fn new(kind: ExchangeKind) -> Self {
        todo!("{kind:?}")
    }

    pub fn kind(&self) -> ExchangeKind {
        todo!()
    }

    /// The alternate exchange (RabbitMQ's `alternate-exchange` argument), if any.
    pub fn alternate_exchange(&self) -> Option<&Arc<str>> {
        todo!()
    }

    pub fn set_alternate_exchange(&mut self, name: Option<Arc<str>>) {
        todo!("{name:?}")
    }

    /// Adds a binding. Ok(false) when an identical binding (same destination, key and
    /// arguments) already existed: binding twice is a no-op, as in RabbitMQ.
    pub fn bind(
        &mut self,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<bool, BindError> {
        todo!("{destination:?} {routing_key} {arguments:?}")
    }

    /// Removes a binding; false when it did not exist (unbinding a missing binding succeeds).
    pub fn unbind(&mut self, destination: &Destination, routing_key: &str, arguments: &FieldTable) -> bool {
        todo!("{destination:?} {routing_key} {arguments:?}")
    }

    /// Removes every binding to `destination`; returns how many went.
    pub fn remove_destination(&mut self, destination: &Destination) -> usize {
        todo!("{destination:?}")
    }

    /// Number of bindings with this exchange as source.
    pub fn binding_count(&self) -> usize {
        todo!()
    }

    /// The bindings of this exchange: (destination, routing key, arguments).
    pub fn bindings(&self) -> Vec<(Destination, Arc<str>, FieldTable)> {
        todo!()
    }

    /// Calls `out` once per destination whose binding matches (a destination bound
    /// several times may be reported several times; [`Topology::route`] deduplicates).
    /// Returns whether any binding matched.
    pub fn route(&self, message: &RoutableMessage<'_>, out: &mut dyn FnMut(&Destination)) -> bool {
        todo!("{message:?} {}", out as *const _ as *const u8 as usize)
    }
}

/// The result of routing one message.
#[derive(Clone, Debug, Default)]
pub struct Route {
    /// Each destination queue once, in the order first reached.
    pub queues: Vec<Arc<str>>,
}

/// All exchanges of a vhost and their bindings. Cloning is cheap (exchanges are
/// shared `Arc`s, copied on write).
#[derive(Clone, Debug, Default)]
pub struct Topology {
    _private: (),
}

impl Topology {
    pub fn new() -> Self {
        todo!()
    }

    /// Adds an exchange with no bindings (replaces nothing if it exists: returns false).
    pub fn add_exchange(&mut self, name: &str, kind: ExchangeKind) -> bool {
        todo!("{name} {kind:?}")
    }

    /// Removes an exchange, its bindings as source, and every binding to it as destination.
    pub fn remove_exchange(&mut self, name: &str) -> bool {
        todo!("{name}")
    }

    pub fn exchange(&self, name: &str) -> Option<&ExchangeTable> {
        todo!("{name}")
    }

    /// Mutable access (copy-on-write of that exchange only).
    pub fn exchange_mut(&mut self, name: &str) -> Option<&mut ExchangeTable> {
        todo!("{name}")
    }

    pub fn bind(
        &mut self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<bool, BindError> {
        todo!("{source} {destination:?} {routing_key} {arguments:?}")
    }

    pub fn unbind(&mut self, source: &str, destination: &Destination, routing_key: &str, arguments: &FieldTable) -> bool {
        todo!("{source} {destination:?} {routing_key} {arguments:?}")
    }

    /// Removes every binding whose destination is this queue (queue deleted).
    pub fn remove_queue(&mut self, queue: &str) {
        todo!("{queue}")
    }

    /// Whether any binding leads to this destination exchange (for exchange.delete if_unused
    /// RabbitMQ looks only at bindings where the exchange is the source; this is for auto-delete).
    pub fn has_bindings_to(&self, destination: &Destination) -> bool {
        todo!("{destination:?}")
    }

    /// Every binding in the vhost.
    pub fn bindings(&self) -> Vec<Binding> {
        todo!()
    }

    /// Routes a message published to `exchange`: follows exchange-to-exchange bindings
    /// (each exchange visited once, so cycles end), applies an exchange's alternate
    /// exchange when none of its bindings matched, and returns each queue once.
    pub fn route(&self, exchange: &str, message: &RoutableMessage<'_>, route: &mut Route) {
        todo!("{exchange} {message:?} {route:?}")
    }
}
