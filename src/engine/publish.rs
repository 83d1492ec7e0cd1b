//! The publish pipeline: where a message published to an exchange goes, and
//! putting it there. Every message enters queues through here, whoever
//! publishes it: a client's channel ([`Router::publish`]), dead-lettering and
//! the delayed-message exchange's releases ([`Router::collect`] then
//! [`enqueue`]).
//!
//! In order, for one publish:
//! 1. the routing keys: the routing key, then the `CC` and `BCC` headers'
//!    keys (RabbitMQ's sender-selected distribution, [`routing_keys`]);
//! 2. the exchange: the default exchange names queues (and direct reply-to
//!    consumers) by key; a named one must exist and not be internal; a
//!    delayed-message exchange holds a message with a positive `x-delay`
//!    (`exchange::delayed`); a deduplication exchange drops a repeat
//!    (`exchange::dedup`);
//! 3. the bindings: warren-routing's topology walks exchange types,
//!    selectors, exchange-to-exchange bindings and alternate exchanges;
//!    each queue is reached once whatever the number of keys;
//! 4. `BCC` is removed from the message;
//! 5. [`enqueue`]: a persistent message bound for durable (or quorum) queues
//!    is appended to the vhost's log once, listing all of them, then each
//!    queue takes it.
//!
//! What the publisher is told (confirm, nack, basic.return, tx.commit-ok) is
//! the channel's business, from the [`Published`] it gets back.

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};
use tracing::error;
use warren_routing::{RoutableMessage, Route};

use crate::engine::arguments::type_name;
use crate::engine::exchange::{delayed, Extension};
use crate::engine::message::Message;
use crate::engine::queue::{Enqueue, Queue};
use crate::engine::rebuild::{self, Edit};
use crate::engine::reply_to;
use crate::engine::vhost::{Snapshot, VHost};
use crate::protocol::content::Properties;
use crate::protocol::error::AmqpError;
use crate::protocol::field::value_as_str;
use crate::store::{Location, MessageLog};

/// What happened to a message handed to [`enqueue`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Written to the log: confirm once it is fsynced.
    pub(crate) stored: bool,
    /// The log write failed (disk full...): nothing was enqueued.
    pub(crate) failed: bool,
    /// A queue refused it (`x-overflow` reject-publish): nack the publisher.
    pub(crate) rejected: bool,
}

/// What a publish came to.
pub(crate) struct Published {
    /// Whether any queue took it (false: unroutable, returned if mandatory).
    pub(crate) routed: bool,
    pub(crate) outcome: Outcome,
    /// The message as queues got it (`BCC` removed), for a basic.return.
    pub(crate) message: Arc<Message>,
}

/// The routing scratch of one publisher, reused from publish to publish so
/// that routing allocates nothing.
#[derive(Default)]
pub(crate) struct Router {
    route: Route,
    targets: Vec<Arc<Queue>>,
}

impl Router {
    /// Publishes `message` to `exchange` ("" is the default exchange) of
    /// `vhost`: the whole pipeline of this module. Errors are the publisher's
    /// (404 no exchange, 403 internal exchange).
    pub(crate) fn publish(
        &mut self,
        vhost: &Arc<VHost>,
        exchange: &str,
        message: Arc<Message>,
    ) -> Result<Published, AmqpError> {
        let snap = vhost.snapshot();
        let (keys, bcc) = routing_keys(&message);
        let strip = |m: Arc<Message>| if bcc { Arc::new(strip_bcc(&m)) } else { m };
        let mut duplicate = false;
        if !exchange.is_empty() {
            let x = check_target(vhost, &snap, exchange)?;
            match &x.extension {
                Extension::None => {}
                Extension::Delayed => {
                    if let Some(delay) = delayed::delay_of(&message) {
                        let message = strip(message);
                        let outcome = match vhost.delayed.hold(vhost, &x, message.clone(), delay) {
                            Ok(stored) => Outcome {
                                stored,
                                ..Outcome::default()
                            },
                            Err(_) => Outcome {
                                failed: true,
                                ..Outcome::default()
                            },
                        };
                        // Held: never returned, as the plugin does.
                        return Ok(Published {
                            routed: true,
                            outcome,
                            message,
                        });
                    }
                }
                // A repeat within the window goes nowhere (so it is returned).
                Extension::Deduplication(cache) => duplicate = cache.is_duplicate(&message),
            }
        }
        if !duplicate {
            self.collect(&snap, vhost, exchange, &keys, &message);
        }
        let message = strip(message);
        let outcome = enqueue(&vhost.log, &self.targets, message.clone());
        let routed = !self.targets.is_empty();
        self.targets.clear();
        Ok(Published {
            routed,
            outcome,
            message,
        })
    }

    /// The queues `message` reaches through `exchange` with each of `keys`,
    /// each queue once (exchange types, selectors, exchange-to-exchange
    /// bindings and alternate exchanges; no plugin behaviour). The list is
    /// this router's: read or filter it, then hand it to [`enqueue`].
    pub(crate) fn collect(
        &mut self,
        snap: &Snapshot,
        vhost: &VHost,
        exchange: &str,
        keys: &[String],
        message: &Message,
    ) -> &mut Vec<Arc<Queue>> {
        let targets = &mut self.targets;
        targets.clear();
        let add = |targets: &mut Vec<Arc<Queue>>, queue: &Arc<Queue>, check: bool| {
            if !check || !targets.iter().any(|t| Arc::ptr_eq(t, queue)) {
                targets.push(queue.clone());
            }
        };
        if exchange.is_empty() {
            for key in keys {
                if let Some(queue) = snap.queues.get(key.as_str()) {
                    add(targets, queue, true);
                } else if key.starts_with(reply_to::PREFIX) {
                    if let Some(queue) = vhost.reply_to.get(key) {
                        add(targets, &queue, true);
                    }
                }
            }
            return targets;
        }
        let headers = message.lazy_headers();
        let routable = message.routable(&headers);
        for (i, key) in keys.iter().enumerate() {
            snap.topology.route(
                exchange,
                &RoutableMessage {
                    routing_key: key,
                    ..routable
                },
                &mut self.route,
            );
            // One route never names a queue twice; only further keys can.
            let check = i > 0;
            for name in &self.route.queues {
                if let Some(queue) = snap.queues.get(name) {
                    add(targets, queue, check);
                }
            }
        }
        targets
    }
}

/// Publish-time checks on a named exchange: it exists (404) and is not
/// internal (403). Transactions check when the publish arrives, not at commit.
pub(crate) fn check_target(
    vhost: &VHost,
    snap: &Snapshot,
    exchange: &str,
) -> Result<Arc<crate::engine::exchange::Exchange>, AmqpError> {
    let x = vhost.exchange(snap, exchange)?;
    if x.internal {
        return Err(AmqpError::AccessRefused(format!(
            "cannot publish to internal exchange '{exchange}' in vhost '{}'",
            vhost.name
        )));
    }
    Ok(x)
}

/// Enqueues `message` on every queue of `targets` (each once), writing it to the
/// log first when it is persistent and some of them are durable (or quorum).
pub(crate) fn enqueue(log: &MessageLog, targets: &[Arc<Queue>], message: Arc<Message>) -> Outcome {
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
pub(crate) fn check_routing_headers(properties: &Properties) -> Result<(), AmqpError> {
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

/// The keys a message is routed with: its routing key, then the string
/// elements of its `CC` and `BCC` headers; and whether it has a `BCC` header
/// (removed before it is stored or delivered, so a dead letter or a released
/// delayed message has its routing key and `CC` keys only).
pub(crate) fn routing_keys(message: &Message) -> (Vec<String>, bool) {
    let mut keys = vec![message.routing_key.to_string()];
    if !message.properties.has_headers() {
        return (keys, false);
    }
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
pub(crate) fn strip_bcc(message: &Message) -> Message {
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
