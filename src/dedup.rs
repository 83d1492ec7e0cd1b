//! Deduplication with the interface of the rabbitmq-message-deduplication
//! plugin: messages carrying an `x-deduplication-header` header are checked
//! against the values seen before.
//!
//! * Queue level (queue argument `x-message-deduplication`): the queue keeps
//!   the keys of the messages it holds, ready or unacked (`queue.rs`); a repeat
//!   is dropped while one is there. Acked, dropped and expired messages release
//!   their key; a purge forgets them all.

use amq_protocol::types::AMQPValue;

use crate::message::{value_as_i64, value_as_str, Message};

/// The header whose value identifies a message.
pub const HEADER: &str = "x-deduplication-header";

/// The deduplication key of a message, if it has the header. Strings of either
/// kind and integers of any width compare by value.
pub fn message_key(message: &Message) -> Option<String> {
    message.headers()?.inner().get(HEADER).map(key_of)
}

fn key_of(value: &AMQPValue) -> String {
    if let Some(s) = value_as_str(value) {
        return format!("s:{s}");
    }
    if let Some(n) = value_as_i64(value) {
        return format!("i:{n}");
    }
    format!("{value:?}")
}
