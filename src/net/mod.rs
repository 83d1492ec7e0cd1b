//! The network layer: sockets, AMQP connections and channels.
//!
//! `listener` accepts sockets; each runs a `connection` task that cuts frames
//! out of its read buffer and hands them to its `channel`s, which turn methods
//! into calls on the engine; everything sent goes through the connection's
//! `outbox`, written by one writer task per socket.

pub(crate) mod channel;
pub(crate) mod connection;
pub(crate) mod handshake;
pub(crate) mod listener;
pub(crate) mod outbox;
