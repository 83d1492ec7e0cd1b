//! Putting a routed message into its queues, and sender-selected distribution.
//!
//! [`enqueue`] is the one way a message enters queues, whoever publishes it: a
//! client's channel, dead-lettering, the delayed-message exchange. A persistent
//! message bound for durable queues is appended to the vhost's log once, listing
//! all of them, before any queue sees it.
//!
//! `CC` and `BCC` headers (RabbitMQ's sender-selected distribution) add routing
//! keys to a publish; `BCC` is removed before the message is stored or delivered.

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::content::Properties;
use tracing::error;
use warren_routing::{RoutableMessage, Route};

use crate::engine::arguments::type_name;
use crate::engine::message::Message;
use crate::protocol::field::value_as_str;
use crate::engine::queue::{Enqueue, Queue};
use crate::engine::rebuild::{self, Edit};
use crate::engine::vhost::Snapshot;
use crate::protocol::error::AmqpError;
use crate::store::{Location, MessageLog};

/// What happened to a message handed to [`enqueue`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Written to the log: confirm once it is fsynced.
    pub stored: bool,
    /// The log write failed (disk full...): nothing was enqueued.
    pub failed: bool,
    /// A queue refused it (`x-overflow` reject-publish): nack the publisher.
    pub rejected: bool,
}

/// Enqueues `message` on every queue of `targets` (each once), writing it to the
/// log first when it is persistent and some of them are durable (or quorum).
pub fn enqueue(log: &MessageLog, targets: &[Arc<Queue>], message: Arc<Message>) -> Outcome {
    let mut outcome = Outcome::default();
    let persistent = message.is_persistent();
    // Quorum queues keep every message, as RabbitMQ's do (they are logged
    // whatever the delivery mode).
    let stores = |q: &Queue| q.log_id().is_some() && (persistent || q.args().is_quorum());
    let mut location: Option<Location> = None;
    let ids: Vec<u32> = targets
        .iter()
        .filter(|q| stores(q))
        .filter_map(|q| q.log_id())
        .collect();
    if !ids.is_empty() {
        match message.store_in(log, ids) {
            Ok(at) => {
                location = Some(at);
                outcome.stored = true;
            }
            Err(e) => {
                error!(error = %e, "cannot write a persistent message to the log");
                outcome.failed = true;
                return outcome;
            }
        }
    }
    for queue in targets {
        let at = if stores(queue) { location } else { None };
        if queue.publish(message.clone(), at) == Enqueue::Rejected {
            outcome.rejected = true;
        }
    }
    outcome
}

/// The routing headers of sender-selected distribution.
const ROUTING_HEADERS: [&str; 2] = ["CC", "BCC"];

/// Checks the `CC` and `BCC` headers as RabbitMQ does: each must be an array
/// (its string elements are routing keys).
pub fn check_routing_headers(properties: &Properties) -> Result<(), AmqpError> {
    if !properties.has_headers() {
        return Ok(());
    }
    for key in ROUTING_HEADERS {
        match properties.header(key) {
            None | Some(AMQPValue::FieldArray(_)) => {}
            Some(other) => {
                return Err(AmqpError::PreconditionFailed(format!(
                    "invalid message: {{unacceptable_type_in_header,\"{key}\",{}}}",
                    type_name(&other)
                )))
            }
        }
    }
    Ok(())
}

/// The extra routing keys of a message (`CC` then `BCC`), and whether it has a
/// `BCC` header to remove.
pub fn extra_keys(message: &Message) -> (Vec<String>, bool) {
    if !message.properties.has_headers() {
        return (Vec::new(), false);
    }
    let mut keys = Vec::new();
    let mut bcc = false;
    for key in ROUTING_HEADERS {
        if let Some(value) = message.header(key) {
            bcc |= key == "BCC";
            if let AMQPValue::FieldArray(routes) = value {
                keys.extend(
                    routes
                        .as_slice()
                        .iter()
                        .filter_map(value_as_str)
                        .map(String::from),
                );
            }
        }
    }
    (keys, bcc)
}

/// The message without its `BCC` header.
pub fn strip_bcc(message: &Message) -> Message {
    let mut map = rebuild::headers_map(message);
    map.remove("BCC");
    let properties = rebuild::edit_properties(
        message,
        Edit {
            headers: Some(Some(FieldTable::from(map))),
            ..Edit::default()
        },
    );
    rebuild::rebuild(
        message,
        message.exchange.clone(),
        message.routing_key.clone(),
        properties,
    )
}

/// Routes a message through `exchange` ("" is the default exchange) once per
/// routing key, adding each queue reached to `targets` once.
pub fn route_keys(
    snap: &Snapshot,
    exchange: &str,
    keys: &[String],
    message: &Message,
    route: &mut Route,
    targets: &mut Vec<Arc<Queue>>,
) {
    let mut add = |queue: &Arc<Queue>| {
        if !targets.iter().any(|t| Arc::ptr_eq(t, queue)) {
            targets.push(queue.clone());
        }
    };
    let headers = message.lazy_headers();
    let routable = message.routable(&headers);
    for key in keys {
        if exchange.is_empty() {
            if let Some(queue) = snap.queues.get(key.as_str()) {
                add(queue);
            }
            continue;
        }
        snap.topology.route(
            exchange,
            &RoutableMessage {
                routing_key: key,
                ..routable
            },
            route,
        );
        for name in &route.queues {
            if let Some(queue) = snap.queues.get(name) {
                add(queue);
            }
        }
    }
}
