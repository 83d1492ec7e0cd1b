//! The queue arguments that change how a queue behaves, parsed once.
//!
//! `queue.declare` (and definitions) hand a queue a `FieldTable`;
//! [`crate::engine::arguments::validate_queue_arguments`] has already refused wrong
//! types and values with RabbitMQ's texts. This module turns the table into a
//! [`QueueArgs`] the queue reads on its hot path without looking anything up,
//! and holds the checks that depend on the queue type (quorum queues).

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::error::{in_vhost, AmqpError};
use crate::protocol::field::{value_as_i64, value_as_str};

/// `x-overflow`: what a full queue does with a new message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Drop (or dead-letter) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse the new message (nack to a confirming publisher).
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

/// `x-queue-type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum QueueType {
    #[default]
    Classic,
    /// Behaves as a single-node RabbitMQ quorum queue does for its clients:
    /// durable only, `x-delivery-count` on redeliveries, no global qos.
    Quorum,
}

/// The parsed behaviour arguments of a queue.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueueArgs {
    /// `x-message-ttl`, milliseconds.
    pub(crate) message_ttl: Option<u64>,
    /// `x-expires`: delete the queue after this long unused, milliseconds.
    pub(crate) expires: Option<u64>,
    /// `x-dead-letter-exchange` ("" is the default exchange).
    pub(crate) dead_letter_exchange: Option<Arc<str>>,
    /// `x-dead-letter-routing-key`.
    pub(crate) dead_letter_routing_key: Option<Arc<str>>,
    pub(crate) max_length: Option<u64>,
    pub(crate) max_length_bytes: Option<u64>,
    pub(crate) overflow: Overflow,
    /// `x-max-priority`: priorities 0..=max are kept apart.
    pub(crate) max_priority: Option<u8>,
    pub(crate) single_active_consumer: bool,
    pub(crate) queue_type: QueueType,
    /// `x-delivery-limit`: returns allowed before a message is dead-lettered.
    pub(crate) delivery_limit: Option<u64>,
    /// `x-message-deduplication` (queue-level deduplication plugin).
    pub(crate) deduplication: bool,
}

impl QueueArgs {
    /// Reads a (validated) argument table; values of the wrong type are ignored.
    pub(crate) fn from_table(table: &FieldTable) -> Self {
        let args = table.inner();
        let int = |key: &str| {
            args.get(key)
                .and_then(value_as_i64)
                .and_then(|v| u64::try_from(v).ok())
        };
        let string = |key: &str| args.get(key).and_then(value_as_str).map(Arc::from);
        let flag = |key: &str| matches!(args.get(key), Some(AMQPValue::Boolean(true)));
        Self {
            message_ttl: int("x-message-ttl"),
            expires: int("x-expires").filter(|v| *v > 0),
            dead_letter_exchange: string("x-dead-letter-exchange"),
            dead_letter_routing_key: string("x-dead-letter-routing-key"),
            max_length: int("x-max-length"),
            max_length_bytes: int("x-max-length-bytes"),
            overflow: match args.get("x-overflow").and_then(value_as_str) {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => Overflow::DropHead,
            },
            max_priority: int("x-max-priority").map(|v| v.min(255) as u8),
            single_active_consumer: flag("x-single-active-consumer"),
            queue_type: match args.get("x-queue-type").and_then(value_as_str) {
                Some("quorum") => QueueType::Quorum,
                _ => QueueType::Classic,
            },
            delivery_limit: int("x-delivery-limit"),
            deduplication: flag("x-message-deduplication"),
        }
    }

    /// The arguments in force for a queue declared with `table` that the policy
    /// `policy` (its definition) applies to, merged as RabbitMQ 3.10 does: for
    /// TTLs, expiry and limits the lower value wins; for the dead-letter exchange,
    /// its routing key and overflow the declared argument wins.
    pub(crate) fn effective(
        table: &FieldTable,
        policy: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Self {
        let mut args = Self::from_table(table);
        let Some(policy) = policy else {
            return args;
        };
        let int = |key: &str| policy.get(key).and_then(|v| v.as_u64());
        let string = |key: &str| policy.get(key).and_then(|v| v.as_str()).map(Arc::from);
        let min = |declared: Option<u64>, from_policy: Option<u64>| match (declared, from_policy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        args.message_ttl = min(args.message_ttl, int("message-ttl"));
        args.expires = min(args.expires, int("expires").filter(|v| *v > 0));
        args.max_length = min(args.max_length, int("max-length"));
        args.max_length_bytes = min(args.max_length_bytes, int("max-length-bytes"));
        args.delivery_limit = min(args.delivery_limit, int("delivery-limit"));
        if args.dead_letter_exchange.is_none() {
            args.dead_letter_exchange = string("dead-letter-exchange");
        }
        if args.dead_letter_routing_key.is_none() {
            args.dead_letter_routing_key = string("dead-letter-routing-key");
        }
        if !table.inner().contains_key("x-overflow") {
            args.overflow = match policy.get("overflow").and_then(|v| v.as_str()) {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => args.overflow,
            };
        }
        args
    }

    pub(crate) fn is_quorum(&self) -> bool {
        self.queue_type == QueueType::Quorum
    }

    /// How many priority levels the ready list keeps (1 without `x-max-priority`).
    pub(crate) fn levels(&self) -> usize {
        self.max_priority.map_or(1, |m| usize::from(m) + 1)
    }

    /// Whether deliveries carry `x-delivery-count` (quorum queues, and any queue
    /// with a delivery limit, which counts as quorum queues do).
    pub(crate) fn counts_deliveries(&self) -> bool {
        self.is_quorum() || self.delivery_limit.is_some()
    }
}

/// Checks that depend on the queue type, after the arguments themselves were
/// validated: a quorum queue must be durable, not exclusive, not auto-delete
/// and named by the client, and refuses classic-only arguments (RabbitMQ's texts
/// and order).
pub(crate) fn check_queue_type(
    name: &str,
    vhost: &str,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    arguments: &FieldTable,
) -> Result<(), AmqpError> {
    let args = QueueArgs::from_table(arguments);
    if !args.is_quorum() {
        return Ok(());
    }
    // Clients cannot declare amq.* names, so this one was generated for them.
    if name.starts_with("amq.gen-") {
        return Err(AmqpError::PreconditionFailed(
            "Cannot declare a server-named queue for type rabbit_quorum_queue".into(),
        ));
    }
    let what = in_vhost("queue", name, vhost);
    let property =
        |p: &str| AmqpError::PreconditionFailed(format!("invalid property '{p}' for {what}"));
    if auto_delete {
        return Err(property("auto-delete"));
    }
    if exclusive {
        return Err(property("exclusive-owner"));
    }
    if !durable {
        return Err(property("non-durable"));
    }
    for key in ["x-max-priority", "x-queue-mode", "x-queue-master-locator"] {
        if arguments.inner().contains_key(key) {
            return Err(AmqpError::PreconditionFailed(format!(
                "invalid arg '{key}' for {what} of queue type rabbit_quorum_queue"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::field::table;
    use amq_protocol::types::LongString;

    #[test]
    fn parses_arguments_of_any_integer_width() {
        let t = table(&[
            ("x-message-ttl", AMQPValue::ShortInt(50)),
            ("x-max-length", AMQPValue::LongLongInt(2)),
            ("x-max-priority", AMQPValue::ShortShortUInt(5)),
            (
                "x-overflow",
                AMQPValue::LongString(LongString::from("reject-publish")),
            ),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from("")),
            ),
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ]);
        let a = QueueArgs::from_table(&t);
        assert_eq!(a.message_ttl, Some(50));
        assert_eq!(a.max_length, Some(2));
        assert_eq!(a.levels(), 6);
        assert_eq!(a.overflow, Overflow::RejectPublish);
        assert_eq!(a.dead_letter_exchange.as_deref(), Some(""));
        assert!(a.single_active_consumer);
        assert!(!a.counts_deliveries());
    }

    #[test]
    fn policies_merge_as_rabbitmq_does() {
        let t = table(&[
            ("x-max-length", AMQPValue::LongInt(10)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from("mine")),
            ),
        ]);
        let policy = serde_json::json!({
            "max-length": 3, "message-ttl": 500, "dead-letter-exchange": "theirs",
            "overflow": "reject-publish", "expires": 1000
        });
        let a = QueueArgs::effective(&t, policy.as_object());
        assert_eq!(a.max_length, Some(3)); // the lower wins
        assert_eq!(a.message_ttl, Some(500));
        assert_eq!(a.expires, Some(1000));
        assert_eq!(a.dead_letter_exchange.as_deref(), Some("mine")); // the argument wins
        assert_eq!(a.overflow, Overflow::RejectPublish);
        let a = QueueArgs::effective(&t, None);
        assert_eq!(a.max_length, Some(10));
        assert_eq!(a.message_ttl, None);
    }

    #[test]
    fn quorum_queue_texts_follow_rabbitmq() {
        let q = table(&[(
            "x-queue-type",
            AMQPValue::LongString(LongString::from("quorum")),
        )]);
        let err = |name, durable, exclusive, auto_delete| {
            check_queue_type(name, "/", durable, exclusive, auto_delete, &q)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("amq.gen-x", true, false, false),
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
        );
        assert_eq!(
            err("q", false, true, true),
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'q' in vhost '/'"
        );
        assert_eq!(
            err("q", false, true, false),
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'q' in vhost '/'"
        );
        assert_eq!(
            err("q", false, false, false),
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"
        );
        assert!(check_queue_type("q", "/", true, false, false, &q).is_ok());
        let mut with_priority = q.clone();
        with_priority.insert("x-max-priority".into(), AMQPValue::LongInt(5));
        assert_eq!(
            check_queue_type("q", "/", true, false, false, &with_priority)
                .unwrap_err()
                .to_string(),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue"
        );
    }
}
