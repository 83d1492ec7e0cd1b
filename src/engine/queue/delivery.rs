//! The delivering side of a channel: delivery tags, unacked messages, prefetch.
//!
//! Queues deliver from whichever task triggered them (a publisher's connection,
//! an ack, a writer that drained), so this part of a channel is shared and
//! guarded by a short lock. It never calls into a queue while holding that lock:
//! queues call in (queue lock, then this lock, then the outbox), and acks take
//! entries out here first and only then go back to their queues. That one lock
//! order is what keeps the engine free of deadlocks.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use parking_lot::Mutex;

use crate::engine::queue::consumer::Consumer;
use crate::engine::queue::{Queue, QueuedMessage};
use crate::protocol::error::AmqpError;

/// Where frames for one client go: its connection's outbox. The network
/// layer implements it; queues reach a connection only through it.
pub(crate) trait ClientSink: Send + Sync {
    /// Appends frames written by `encode`.
    fn send(&self, encode: &mut dyn FnMut(&mut Vec<u8>));
    /// Appends a delivery's frames unless the client is behind; then `queue`
    /// is remembered and dispatched again once the client caught up.
    /// Returns whether `encode` ran.
    fn try_send(&self, queue: &Arc<Queue>, encode: &mut dyn FnMut(&mut Vec<u8>)) -> bool;
    /// Ends the connection once what was sent so far is written (the client
    /// can no longer be told the truth, e.g. a commit that did not reach disk).
    fn close(&self);
}

/// A client connection as the engine sees it.
pub(crate) struct ClientLink {
    pub(crate) id: u64,
    pub(crate) sink: Arc<dyn ClientSink>,
    pub(crate) frame_max: u32,
    /// The client announced consumer_cancel_notify: tell it when a queue cancels its consumer.
    pub(crate) consumer_cancel_notify: bool,
}

impl ClientLink {
    /// Appends frames written by `encode`.
    pub(crate) fn send(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut encode = Some(encode);
        self.sink.send(&mut |out| {
            if let Some(encode) = encode.take() {
                encode(out);
            }
        });
    }

    /// [`ClientSink::try_send`] with a one-shot encoder.
    pub(crate) fn try_send(&self, queue: &Arc<Queue>, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut encode = Some(encode);
        self.sink.try_send(queue, &mut |out| {
            if let Some(encode) = encode.take() {
                encode(out);
            }
        })
    }
}

/// A message delivered and awaiting ack, reject or nack.
pub(crate) struct Unacked {
    pub(crate) tag: u64,
    pub(crate) queue: Arc<Queue>,
    pub(crate) message: QueuedMessage,
    pub(crate) consumer: Option<Arc<Consumer>>,
}

#[derive(Default)]
struct State {
    next_tag: u64,
    unacked: BTreeMap<u64, Unacked>,
    /// basic.qos global=true: limit shared by all consumers of the channel (0 = none).
    global_prefetch: u32,
    global_unacked: u32,
    closed: bool,
}

pub(crate) struct DeliveryChannel {
    pub(crate) id: u16,
    pub(crate) conn: Arc<ClientLink>,
    state: Mutex<State>,
}

impl DeliveryChannel {
    pub(crate) fn new(id: u16, conn: Arc<ClientLink>) -> Arc<Self> {
        Arc::new(Self {
            id,
            conn,
            state: Mutex::new(State {
                next_tag: 1,
                ..State::default()
            }),
        })
    }

    /// Hands `message` to `consumer` if its prefetch, the channel's and the
    /// connection's write buffer allow; gives it back otherwise. Called by the
    /// queue with its lock held.
    pub(crate) fn deliver(
        &self,
        queue: &Arc<Queue>,
        consumer: &Arc<Consumer>,
        message: QueuedMessage,
    ) -> Result<(), QueuedMessage> {
        let mut st = self.state.lock();
        if st.closed || !consumer.has_room() {
            return Err(message);
        }
        if !consumer.no_ack && st.global_prefetch != 0 && st.global_unacked >= st.global_prefetch {
            return Err(message);
        }
        let tag = st.next_tag;
        let frame_max = self.conn.frame_max;
        let channel = self.id;
        let sent = self.conn.try_send(queue, |out| {
            message.to_send().encode(
                out,
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: consumer.tag.clone(),
                    delivery_tag: tag,
                    redelivered: message.redelivered,
                    exchange: message.message.exchange.clone(),
                    routing_key: message.message.routing_key.clone(),
                })),
                frame_max,
            );
        });
        if !sent {
            return Err(message);
        }
        st.next_tag += 1;
        if !consumer.no_ack {
            track(
                &mut st,
                Unacked {
                    tag,
                    queue: queue.clone(),
                    message,
                    consumer: Some(consumer.clone()),
                },
            );
        }
        Ok(())
    }

    /// Sends a basic.get-ok for `message`; `remaining` is the ready count after it.
    pub(crate) fn deliver_get(
        &self,
        queue: &Arc<Queue>,
        message: QueuedMessage,
        remaining: u32,
        no_ack: bool,
    ) {
        let mut st = self.state.lock();
        let tag = st.next_tag;
        st.next_tag += 1;
        let frame_max = self.conn.frame_max;
        let channel = self.id;
        self.conn.send(|out| {
            message.to_send().encode(
                out,
                channel,
                AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                    delivery_tag: tag,
                    redelivered: message.redelivered,
                    exchange: message.message.exchange.clone(),
                    routing_key: message.message.routing_key.clone(),
                    message_count: remaining,
                })),
                frame_max,
            );
        });
        if !no_ack {
            track(
                &mut st,
                Unacked {
                    tag,
                    queue: queue.clone(),
                    message,
                    consumer: None,
                },
            );
        }
    }

    /// Takes the entries settled by an ack/nack/reject of `tag`. The exact tag
    /// must be outstanding, as RabbitMQ requires; `multiple` also takes every
    /// lower tag, and tag 0 with `multiple` takes everything.
    pub(crate) fn settle(&self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, AmqpError> {
        let mut st = self.state.lock();
        let taken: Vec<Unacked> = if multiple && tag == 0 {
            std::mem::take(&mut st.unacked).into_values().collect()
        } else if !st.unacked.contains_key(&tag) {
            return Err(AmqpError::PreconditionFailed(format!(
                "unknown delivery tag {tag}"
            )));
        } else if multiple {
            let rest = st.unacked.split_off(&(tag + 1));
            std::mem::replace(&mut st.unacked, rest)
                .into_values()
                .collect()
        } else {
            st.unacked.remove(&tag).into_iter().collect()
        };
        release(&mut st, &taken);
        Ok(taken)
    }

    /// Takes every outstanding delivery (basic.recover).
    pub(crate) fn take_all(&self) -> Vec<Unacked> {
        let mut st = self.state.lock();
        let taken: Vec<Unacked> = std::mem::take(&mut st.unacked).into_values().collect();
        release(&mut st, &taken);
        taken
    }

    /// Closes the channel for deliveries and takes every outstanding delivery.
    pub(crate) fn close(&self) -> Vec<Unacked> {
        self.state.lock().closed = true;
        self.take_all()
    }

    /// Puts settled entries back as unacked, under their old tags (tx.rollback:
    /// acks of a rolled-back transaction leave the messages unacked).
    pub(crate) fn restore(&self, entries: Vec<Unacked>) {
        let mut st = self.state.lock();
        for entry in entries {
            track(&mut st, entry);
        }
    }

    pub(crate) fn set_global_prefetch(&self, prefetch: u32) {
        self.state.lock().global_prefetch = prefetch;
    }

    /// basic.qos global=true's limit (0 = none).
    pub(crate) fn global_prefetch(&self) -> u32 {
        self.state.lock().global_prefetch
    }
}

/// Records a delivery as unacked: the counterpart of [`release`], so the
/// per-consumer and channel-wide prefetch counts always match the map.
fn track(st: &mut State, entry: Unacked) {
    if let Some(c) = &entry.consumer {
        c.unacked.fetch_add(1, Ordering::Relaxed);
    }
    st.global_unacked += 1;
    st.unacked.insert(entry.tag, entry);
}

fn release(st: &mut State, taken: &[Unacked]) {
    st.global_unacked = st.global_unacked.saturating_sub(taken.len() as u32);
    for entry in taken {
        if let Some(c) = &entry.consumer {
            c.unacked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Gives settled messages back to their queues, in delivery order per queue.
pub(crate) fn requeue(entries: Vec<Unacked>) {
    let mut by_queue: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for entry in entries {
        match by_queue
            .iter_mut()
            .find(|(q, _)| Arc::ptr_eq(q, &entry.queue))
        {
            Some((_, list)) => list.push(entry.message),
            None => by_queue.push((entry.queue, vec![entry.message])),
        }
    }
    for (queue, messages) in by_queue {
        queue.requeue(messages);
    }
}
