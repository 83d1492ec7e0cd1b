//! The broker's engine: vhosts, exchanges, queues, messages and the publish
//! pipeline, with no knowledge of sockets or frames on the wire.

pub(crate) mod arguments;
pub(crate) mod broker;
pub(crate) mod clock;
pub(crate) mod dead_lettering;
pub(crate) mod exchange;
pub(crate) mod memory;
pub(crate) mod message;
pub(crate) mod policy;
pub(crate) mod publish;
pub(crate) mod queue;
pub(crate) mod rebuild;
pub(crate) mod reply_to;
pub(crate) mod vhost;
