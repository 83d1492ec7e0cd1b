//! Dead-lettering: republishing a message a queue rejected, expired, dropped
//! for length or gave up on (delivery limit) to the queue's dead-letter exchange.
//!
//! Queues collect [`DeadLetter`]s under their lock and hand them to their
//! vhost once it is released, which calls [`emit`]. The message is rebuilt as
//! RabbitMQ 3.10 does (`rabbit_dead_letter:make_msg`): an `x-death` entry per
//! (queue, reason) with count, reason, queue, time, exchange, routing-keys and
//! original-expiration, the `x-first-death-*` headers on the first death, the
//! `expiration` property removed, the `CC` header removed when a dead-letter
//! routing key replaces the original keys. It is routed through the
//! dead-letter exchange with those keys by the publish pipeline; a queue it
//! would reach in a cycle with no rejection in it is skipped (RabbitMQ's
//! `detect_cycles`). A persistent message bound for durable queues is
//! appended to the log again; the old reference is settled only after that.
//!
//! Publishing a dead letter can make another queue dead-letter (its length
//! limit). Those are queued on this thread and handled by the outermost call,
//! so chains do not recurse and no queue lock is ever held meanwhile.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use tracing::{error, warn};

use crate::engine::clock::now_ms;
use crate::engine::message::Message;
use crate::engine::publish::{self, routing_keys, Router};
use crate::engine::queue::dead_letter::{DeadLetter, Reason};
use crate::engine::queue::Queue;
use crate::engine::rebuild::{self, Edit};
use crate::engine::vhost::VHost;
use crate::protocol::field::{value_as_i64, value_as_str};
use crate::store::Location;

/// Dead letters waiting for the outermost [`emit`] on this thread.
type Pending = VecDeque<(Arc<VHost>, Arc<Queue>, Vec<DeadLetter>)>;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Pending> = const { RefCell::new(VecDeque::new()) };
}

/// Resets the thread's "dead-lettering" flag even if publishing panics.
struct ActiveGuard;

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
        PENDING.with(|p| p.borrow_mut().clear());
    }
}

/// Publishes `letters` from `queue` (of `vhost`) to its dead-letter exchange
/// (or settles them when it has none or the exchange is missing). Never call
/// with a queue lock held.
pub(crate) fn emit(vhost: &Arc<VHost>, queue: &Arc<Queue>, letters: Vec<DeadLetter>) {
    if ACTIVE.with(|a| a.get()) {
        PENDING.with(|p| {
            p.borrow_mut()
                .push_back((vhost.clone(), queue.clone(), letters))
        });
        return;
    }
    ACTIVE.with(|a| a.set(true));
    let _guard = ActiveGuard;
    let mut router = Router::default();
    let mut next = Some((vhost.clone(), queue.clone(), letters));
    while let Some((vhost, queue, letters)) = next {
        publish(&vhost, &queue, letters, &mut router);
        next = PENDING.with(|p| p.borrow_mut().pop_front());
    }
}

fn publish(vhost: &VHost, queue: &Arc<Queue>, mut letters: Vec<DeadLetter>, router: &mut Router) {
    let Some(exchange) = queue.args().dead_letter_exchange.clone() else {
        for letter in letters {
            queue.settle_location(letter.location);
        }
        return;
    };
    let snap = vhost.snapshot();
    if !exchange.is_empty() && !snap.exchanges.contains_key(&*exchange) {
        warn!(queue = %queue.name(), exchange = %exchange, "dead-letter exchange missing: messages dropped");
        for letter in letters {
            queue.settle_location(letter.location);
        }
        return;
    }
    load_paged(queue, &mut letters);
    let routing_key = queue.args().dead_letter_routing_key.clone();
    let now = now_ms() / 1000;
    for letter in letters {
        let Some(message) = letter.message else {
            queue.settle_location(letter.location);
            continue;
        };
        let (dead, keys, deaths) = make_message(
            &message,
            letter.reason,
            queue.name(),
            &exchange,
            routing_key.as_deref(),
            now,
        );
        let targets = router.collect(&snap, vhost, &exchange, &keys, &dead);
        if letter.reason != Reason::Rejected {
            targets.retain(|t| {
                let cycle = is_cycle(t.name(), &deaths);
                if cycle {
                    warn!(queue = %t.name(), "dead-letter cycle without rejection: message dropped");
                }
                !cycle
            });
        }
        let outcome = publish::enqueue(&vhost.log, targets, Arc::new(dead));
        if outcome.failed {
            // Keep the old reference: the message stays stored for this queue
            // and comes back after a restart rather than being lost.
            error!(queue = %queue.name(), "cannot store a dead-lettered message");
            continue;
        }
        queue.settle_location(letter.location);
    }
}

/// Reads back the bodies of letters that were paged out.
fn load_paged(queue: &Queue, letters: &mut [DeadLetter]) {
    let Some(log) = queue.log() else { return };
    let wanted: Vec<Location> = letters
        .iter()
        .filter(|l| l.message.is_none())
        .filter_map(|l| l.location)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let batch = log
        .read_batch(&wanted)
        .ok()
        .filter(|b| b.len() == wanted.len());
    let mut read = batch.map(|b| b.into_iter());
    for letter in letters.iter_mut().filter(|l| l.message.is_none()) {
        let Some(at) = letter.location else { continue };
        let stored = match &mut read {
            Some(it) => it.next(),
            None => log.read(at).ok(),
        };
        match stored.and_then(Message::from_stored) {
            Some(m) => letter.message = Some(Arc::new(m)),
            None => {
                error!(queue = %queue.name(), location = ?at, "stored message lost: unreadable")
            }
        }
    }
}

/// Builds the dead-lettered copy of `message`, the routing keys to route it
/// with (`rabbit_dead_letter:make_msg` in RabbitMQ 3.10) and the (queue,
/// reason) of its deaths, most recent first.
pub(crate) fn make_message(
    message: &Message,
    reason: Reason,
    queue: &str,
    dead_letter_exchange: &str,
    dead_letter_routing_key: Option<&str>,
    now_secs: u64,
) -> (Message, Vec<String>, Vec<Death>) {
    // Published with its routing key and CC keys (BCC keys were removed).
    let (original_keys, _) = routing_keys(message);
    let mut map = rebuild::headers_map(message);
    let long = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut info: BTreeMap<ShortString, AMQPValue> = BTreeMap::new();
    info.insert("reason".into(), long(reason.as_str()));
    info.insert("queue".into(), long(queue));
    info.insert("time".into(), AMQPValue::Timestamp(now_secs));
    info.insert("exchange".into(), long(message.exchange.as_str()));
    info.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(
            original_keys.iter().map(|k| long(k)).collect::<Vec<_>>(),
        )),
    );
    if let Some(expiration) = message.properties.view().expiration {
        info.insert("original-expiration".into(), long(expiration));
    }
    let deaths = match map.get("x-death") {
        Some(AMQPValue::FieldArray(existing)) => {
            let mut rest: Vec<AMQPValue> = Vec::with_capacity(existing.as_slice().len() + 1);
            let mut matched: Option<BTreeMap<ShortString, AMQPValue>> = None;
            for entry in existing.as_slice() {
                match entry {
                    AMQPValue::FieldTable(t)
                        if matched.is_none()
                            && field_str(t, "queue") == Some(queue)
                            && field_str(t, "reason") == Some(reason.as_str()) =>
                    {
                        matched = Some(t.inner().clone());
                    }
                    other => rest.push(other.clone()),
                }
            }
            let first = match matched {
                // Same queue and reason again: only the count changes.
                Some(mut entry) => {
                    let count = entry.get("count").and_then(value_as_i64).unwrap_or(0);
                    entry.insert("count".into(), AMQPValue::LongLongInt(count + 1));
                    entry
                }
                None => {
                    info.insert("count".into(), AMQPValue::LongLongInt(1));
                    info
                }
            };
            rest.insert(0, AMQPValue::FieldTable(FieldTable::from(first)));
            rest
        }
        _ => {
            map.insert("x-first-death-reason".into(), long(reason.as_str()));
            map.insert("x-first-death-queue".into(), long(queue));
            map.insert(
                "x-first-death-exchange".into(),
                long(message.exchange.as_str()),
            );
            info.insert("count".into(), AMQPValue::LongLongInt(1));
            vec![AMQPValue::FieldTable(FieldTable::from(info))]
        }
    };
    let summary = deaths_of(&deaths);
    map.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    let keys = match dead_letter_routing_key {
        Some(key) => {
            map.remove("CC");
            vec![key.to_string()]
        }
        None => original_keys,
    };
    let properties = rebuild::edit_properties(
        message,
        Edit {
            headers: Some(Some(FieldTable::from(map))),
            drop_expiration: true,
            ..Edit::default()
        },
    );
    let dead = rebuild::rebuild(
        message,
        ShortString::from(dead_letter_exchange),
        ShortString::from(keys[0].as_str()),
        properties,
    );
    (dead, keys, summary)
}

fn field_str<'a>(table: &'a FieldTable, key: &str) -> Option<&'a str> {
    table.inner().get(key).and_then(value_as_str)
}

/// (queue, reason) of each `x-death` entry, most recent first; None for an
/// entry that is not a table (a client put it there).
fn deaths_of(deaths: &[AMQPValue]) -> Vec<Death> {
    deaths
        .iter()
        .map(|d| match d {
            AMQPValue::FieldTable(t) => Some((
                field_str(t, "queue").unwrap_or_default().to_string(),
                field_str(t, "reason").unwrap_or_default().to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// The (queue, reason) of one `x-death` entry; None for an entry that is not
/// a table.
type Death = Option<(String, String)>;

/// RabbitMQ's `is_cycle`: the message already died in `queue`, and no death
/// since then (that one included) was a rejection.
fn is_cycle(queue: &str, deaths: &[Death]) -> bool {
    let Some(at) = deaths
        .iter()
        .position(|d| d.as_ref().is_some_and(|(q, _)| q == queue))
    else {
        return false;
    };
    deaths[..=at]
        .iter()
        .all(|d| d.as_ref().is_some_and(|(_, reason)| reason != "rejected"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::AMQPProperties;
    use bytes::Bytes;

    use crate::protocol::content::Properties;

    fn message(headers: Option<FieldTable>, expiration: Option<&str>) -> Message {
        let mut p = AMQPProperties::default().with_delivery_mode(2);
        if let Some(h) = headers {
            p = p.with_headers(h);
        }
        if let Some(e) = expiration {
            p = p.with_expiration(e.into());
        }
        Message::new(
            "src".into(),
            "rk".into(),
            Properties::encode(4, &p),
            Bytes::from_static(b"body"),
        )
    }

    fn death(m: &Message, i: usize) -> BTreeMap<ShortString, AMQPValue> {
        match m.headers().unwrap().inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => match &a.as_slice()[i] {
                AMQPValue::FieldTable(t) => t.inner().clone(),
                _ => panic!("not a table"),
            },
            _ => panic!("no x-death"),
        }
    }

    #[test]
    fn first_death_as_rabbitmq_writes_it() {
        let m = message(None, Some("50"));
        let (dead, keys, _) = make_message(&m, Reason::Expired, "q", "dlx", None, 1000);
        assert_eq!(keys, vec!["rk".to_string()]);
        assert_eq!(dead.exchange.as_str(), "dlx");
        assert_eq!(dead.routing_key.as_str(), "rk");
        assert_eq!(dead.properties.expiration(), None);
        let d = death(&dead, 0);
        assert_eq!(d.get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(d.get("reason").and_then(value_as_str), Some("expired"));
        assert_eq!(d.get("queue").and_then(value_as_str), Some("q"));
        assert_eq!(d.get("exchange").and_then(value_as_str), Some("src"));
        assert_eq!(d.get("time"), Some(&AMQPValue::Timestamp(1000)));
        assert_eq!(
            d.get("original-expiration").and_then(value_as_str),
            Some("50")
        );
        let h = dead.headers().unwrap();
        assert_eq!(
            h.inner().get("x-first-death-queue").and_then(value_as_str),
            Some("q")
        );
        // The header is re-encoded once and amq-protocol reads it back.
        let raw = dead.header_bytes();
        let (_, parsed) = amq_protocol::frame::parsing::parse_content_header(&raw[..]).unwrap();
        assert_eq!(parsed.properties, dead.properties.decode());
        assert_eq!(parsed.body_size, 4);
    }

    #[test]
    fn same_queue_and_reason_counts_up_and_moves_first() {
        let m = message(None, None);
        let (d1, _, _) = make_message(&m, Reason::Rejected, "a", "x", None, 1);
        let (d2, _, _) = make_message(&d1, Reason::Rejected, "b", "x", None, 2);
        let (d3, _, deaths) = make_message(&d2, Reason::Rejected, "a", "x", None, 3);
        let a = death(&d3, 0);
        assert_eq!(a.get("queue").and_then(value_as_str), Some("a"));
        assert_eq!(a.get("count"), Some(&AMQPValue::LongLongInt(2)));
        assert_eq!(a.get("time"), Some(&AMQPValue::Timestamp(1)));
        assert_eq!(death(&d3, 1).get("queue").and_then(value_as_str), Some("b"));
        let d = |q: &str| Some((q.to_string(), "rejected".to_string()));
        assert_eq!(deaths, vec![d("a"), d("b")]);
    }

    #[test]
    fn routing_key_override_drops_cc() {
        let mut h = FieldTable::default();
        h.insert(
            "CC".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                LongString::from("cc1"),
            )])),
        );
        let m = message(Some(h), None);
        let (dead, keys, _) = make_message(&m, Reason::Rejected, "q", "dlx", None, 0);
        assert_eq!(keys, vec!["rk".to_string(), "cc1".to_string()]);
        assert!(dead.headers().unwrap().contains_key("CC"));
        let (dead, keys, _) = make_message(&m, Reason::Rejected, "q", "dlx", Some("dk"), 0);
        assert_eq!(keys, vec!["dk".to_string()]);
        assert_eq!(dead.routing_key.as_str(), "dk");
        assert!(!dead.headers().unwrap().contains_key("CC"));
        let routing_keys = match death(&dead, 0).get("routing-keys") {
            Some(AMQPValue::FieldArray(a)) => a.as_slice().len(),
            _ => 0,
        };
        assert_eq!(routing_keys, 2);
    }

    #[test]
    fn cycles_without_rejection_are_detected() {
        let d = |q: &str, r: &str| Some((q.to_string(), r.to_string()));
        assert!(is_cycle("a", &[d("a", "expired")]));
        assert!(!is_cycle("b", &[d("a", "expired")]));
        assert!(is_cycle("a", &[d("b", "maxlen"), d("a", "expired")]));
        assert!(!is_cycle("a", &[d("b", "rejected"), d("a", "expired")]));
        assert!(!is_cycle("a", &[None, d("a", "expired")]));
    }
}
