//! What a binding is: where it leads ([`Destination`]), how it is listed for
//! export ([`Binding`]) and why one may be refused ([`BindError`]). Identity
//! follows RabbitMQ: a binding is (source, destination, routing key, arguments),
//! so two bindings that differ only in their arguments are two bindings.

use std::fmt;
use std::sync::Arc;

use amq_protocol_types::FieldTable;

/// Where a binding leads: a queue or another exchange (exchange-to-exchange binding).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(Arc<str>),
    Exchange(Arc<str>),
}

impl Destination {
    /// The queue or exchange name.
    pub fn name(&self) -> &Arc<str> {
        match self {
            Self::Queue(name) | Self::Exchange(name) => name,
        }
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

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument(text) => f.write_str(text),
            Self::NoSourceExchange => f.write_str("no such source exchange"),
        }
    }
}

impl std::error::Error for BindError {}

/// A binding as listed for export: RabbitMQ identifies a binding by all four parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub source: Arc<str>,
    pub destination: Destination,
    pub routing_key: Arc<str>,
    pub arguments: FieldTable,
}
