//! Warren: an AMQP 0-9-1 message broker that follows the RabbitMQ model.
//!
//! The path of a message, and which module owns each step, is described in
//! `docs/ARCHITECTURE.md`. In short: [`server`] accepts sockets; each runs a
//! [`connection`] task that cuts [`frame`]s out of its read buffer and hands
//! them to its [`channel`]s; a publish is routed (the `warren-routing` crate)
//! against the [`vhost`]'s snapshot and enqueued on each [`queue`], which
//! delivers to a [`consumer`] through that consumer's channel ([`delivery`])
//! into its connection's [`outbox`], written by one writer task per socket.

pub mod access;
pub mod admin;
pub mod config;
pub mod engine;
pub mod net;
pub mod protocol;
pub mod store;
