//! Warren's routing engine: exchanges, bindings and matching.
//!
//! This crate owns the *decision* of where a message goes: which queues a
//! publish to an exchange reaches, following exchange-to-exchange bindings and
//! alternate exchanges. It is pure logic: no I/O, no tokio, no locks. The
//! broker keeps a [`Topology`] per vhost behind an atomic pointer and swaps in
//! a modified copy on bind/unbind, so publishers route against an immutable
//! snapshot without taking a lock.
//!
//! Layout, one concept per module, everything public re-exported here:
//! - `kind`: the four exchange types ([`ExchangeKind`]).
//! - `binding`: what a binding is ([`Destination`], [`Binding`], [`BindError`]).
//! - `registry`: binding identity per exchange (destination, key, arguments).
//! - `direct`, `fanout`, `topic`, `headers`: one matcher per exchange type.
//! - `exchange`: [`ExchangeTable`], one exchange's bindings compiled for matching.
//! - `route`: the per-publish input and output ([`RoutableMessage`],
//!   [`MessageProperties`], [`Route`]).
//! - `selector`: binding selectors (`x-selector`), compiled at bind
//!   ([`Selector`]) and evaluated per message ([`SelectorInput`]).
//! - `selected`: the bindings that carry a selector, indexed by exchange type.
//! - `topology`: [`Topology`], all exchanges of a vhost and the routing walk.

mod binding;
mod direct;
mod exchange;
mod fanout;
mod headers;
mod kind;
mod registry;
mod route;
mod selected;
mod selector;
mod topic;
mod topology;
pub mod value;

pub use amq_protocol_types::{AMQPValue, FieldTable};

pub use binding::{BindError, Binding, Destination};
pub use exchange::ExchangeTable;
pub use kind::ExchangeKind;
pub use route::{HeaderSource, Headers, MessageProperties, RoutableMessage, Route};
pub use selector::{
    Selector, SelectorError, SelectorInput, Truth, JMS_SELECTOR_ARGUMENT, MAX_DEPTH, MAX_NESTING,
    MAX_SELECTOR_LEN, SELECTOR_ARGUMENT,
};
pub use topology::Topology;
