//! Warren: an AMQP 0-9-1 message broker that follows the RabbitMQ model.
//!
//! The path of a message, and which module owns each step, is described in
//! `docs/ARCHITECTURE.md`. In short: [`server`] accepts sockets; each runs a
//! [`connection`] task that cuts [`frame`]s out of its read buffer and hands
//! them to its [`channel`]s; a publish is routed (the `warren-routing` crate)
//! against the [`vhost`]'s snapshot and enqueued on each [`queue`], which
//! delivers to a [`consumer`] through that consumer's channel ([`delivery`])
//! into its connection's [`outbox`], written by one writer task per socket.

pub mod arguments;
pub mod auth;
pub mod broker;
pub mod channel;
pub mod cli;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod dead_letter;
pub mod dedup;
pub mod definitions;
pub mod delayed;
pub mod delivery;
pub mod error;
pub mod exchange_types;
pub mod expiry;
pub mod frame;
pub mod headers;
pub mod http;
pub mod memory;
pub mod message;
pub mod outbox;
pub mod password;
pub mod permissions;
pub mod policy;
pub mod protocol;
pub mod publish;
pub mod queue;
pub mod queue_args;
pub mod reply_to;
pub mod server;
pub mod store;
pub mod vhost;
