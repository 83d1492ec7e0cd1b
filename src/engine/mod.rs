//! The broker's engine: vhosts, exchanges, queues, messages and the publish
//! pipeline, with no knowledge of sockets or frames on the wire.

pub mod arguments;
pub mod broker;
pub mod clock;
pub mod dead_lettering;
pub mod exchange;
pub mod memory;
pub mod message;
pub mod policy;
pub mod publish;
pub mod queue;
pub mod rebuild;
pub mod reply_to;
pub mod vhost;
