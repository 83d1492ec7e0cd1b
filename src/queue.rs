//! A queue: its ready messages, its consumers, and the choice of who gets what.
//!
//! All of a queue's state sits behind one short `parking_lot` mutex that is never
//! held across an `.await`. Whoever changes the queue (a publisher's task
//! enqueueing, an ack freeing prefetch room, a consumer arriving, a writer that
//! drained a congested socket) calls [`Queue::dispatch`], which hands ready
//! messages to consumers with room until none is left. There is no task per
//! queue and no hand-off per message: a publish to one queue never waits on
//! another queue's lock.
//!
//! Durable queues keep their persistent messages in the vhost's message log
//! too. The ready list holds those bodies in memory only up to
//! [`RAM_BYTES`] per queue; past that (and for everything recovered at start)
//! it keeps just the message's [`Location`], and reads bodies back in batches
//! as consumers reach them. Every stored reference is settled in the log exactly
//! once: when it is acked, dropped, purged, or its queue is deleted.

use std::collections::VecDeque;
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use parking_lot::Mutex;
use tracing::error;

use crate::consumer::Consumer;
use crate::error::{in_vhost, AmqpError};
use crate::message::Message;
use crate::store::{Location, MessageLog};

/// Bodies a durable queue keeps in memory before it pages the rest out.
pub const RAM_BYTES: usize = 8 << 20;
/// How many paged messages are read back at once, ahead of consumers.
const PAGE_IN_BATCH: usize = 256;

/// A message handed out of a queue (delivered or got); its body is loaded.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub message: Arc<Message>,
    /// Position in the queue's publish order; requeued messages go back by it.
    pub seq: u64,
    pub redelivered: bool,
    /// Where the message is in the log, for a persistent message in a durable queue.
    pub location: Option<Location>,
}

/// A ready message: in memory, or only on disk.
enum Body {
    Loaded(Arc<Message>),
    Paged,
}

struct Ready {
    body: Body,
    seq: u64,
    redelivered: bool,
    location: Option<Location>,
}

/// What a queue was declared with.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub name: Arc<str>,
    pub vhost: Arc<str>,
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Ready>,
    next_seq: u64,
    /// Bodies of ready messages held in memory.
    ram_bytes: usize,
    /// Ready messages whose body is only on disk.
    paged: usize,
    /// Sorted by priority, highest first; stable, so equal priorities keep
    /// arrival order for round-robin.
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin position within the priority group that delivered last.
    next_consumer: usize,
    had_consumer: bool,
    deleted: bool,
}

pub struct Queue {
    pub config: QueueConfig,
    /// The vhost's log and this queue's id in it: set for durable queues,
    /// whose persistent messages are stored.
    store: Option<(Arc<MessageLog>, u32)>,
    state: Mutex<State>,
}

impl Queue {
    pub fn new(config: QueueConfig, store: Option<(Arc<MessageLog>, u32)>) -> Arc<Self> {
        Arc::new(Self {
            config,
            store,
            state: Mutex::new(State::default()),
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.config.name
    }

    /// This queue's id in the message log, if it stores messages.
    pub fn log_id(&self) -> Option<u32> {
        self.store.as_ref().map(|(_, id)| *id)
    }

    /// Enqueues a published message and delivers what can be delivered.
    /// `location` is where the log stored it (persistent message, durable queue).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>, location: Option<Location>) {
        let mut st = self.state.lock();
        if st.deleted {
            drop(st);
            self.settle_location(location);
            return;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let size = message.body.len();
        let body = if location.is_some() && (st.paged > 0 || st.ram_bytes + size > RAM_BYTES) {
            st.paged += 1;
            Body::Paged
        } else {
            st.ram_bytes += size;
            Body::Loaded(message)
        };
        st.ready.push_back(Ready {
            body,
            seq,
            redelivered: false,
            location,
        });
        self.dispatch_locked(&mut st);
    }

    /// Puts messages found in the log at start-up at the end of the queue,
    /// without reading their bodies.
    pub fn restore(&self, location: Location, redelivered: bool) {
        let mut st = self.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.paged += 1;
        st.ready.push_back(Ready {
            body: Body::Paged,
            seq,
            redelivered,
            location: Some(location),
        });
    }

    /// Delivers ready messages to consumers with room.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut State) {
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            if !self.deliver_one(st) {
                break;
            }
        }
    }

    /// Takes the head message with its body loaded (reading ahead from the log
    /// if it is paged out). None when the queue is empty.
    fn pop_loaded(&self, st: &mut State) -> Option<QueuedMessage> {
        loop {
            if matches!(st.ready.front()?.body, Body::Paged) {
                self.page_in(st);
            }
            let ready = st.ready.pop_front()?;
            match ready.body {
                Body::Loaded(message) => {
                    st.ram_bytes = st.ram_bytes.saturating_sub(message.body.len());
                    return Some(QueuedMessage {
                        message,
                        seq: ready.seq,
                        redelivered: ready.redelivered,
                        location: ready.location,
                    });
                }
                // Unreadable (reported by page_in): it was settled; try the next.
                Body::Paged => st.paged = st.paged.saturating_sub(1),
            }
        }
    }

    /// Reads the paged messages at the head of the queue back from the log.
    fn page_in(&self, st: &mut State) {
        let Some((log, _)) = &self.store else { return };
        let count = st
            .ready
            .iter()
            .take(PAGE_IN_BATCH)
            .take_while(|r| matches!(r.body, Body::Paged))
            .count();
        let locations: Vec<Location> = st
            .ready
            .iter()
            .take(count)
            .filter_map(|r| r.location)
            .collect();
        match log.read_batch(&locations) {
            Ok(messages) if messages.len() == count => {
                for (ready, stored) in st.ready.iter_mut().zip(messages) {
                    match Message::from_stored(stored) {
                        Some(message) => {
                            st.ram_bytes += message.body.len();
                            st.paged -= 1;
                            ready.body = Body::Loaded(Arc::new(message));
                        }
                        None => {
                            error!(queue = %self.config.name, "stored message has an unreadable header");
                            self.settle_location(ready.location);
                        }
                    }
                }
            }
            result => {
                // Read them one by one to isolate the bad one(s).
                if let Err(e) = result {
                    error!(queue = %self.config.name, error = %e, "reading messages back failed");
                }
                for ready in st.ready.iter_mut().take(count) {
                    let loaded = ready
                        .location
                        .and_then(|at| log.read(at).ok())
                        .and_then(Message::from_stored);
                    match loaded {
                        Some(message) => {
                            st.ram_bytes += message.body.len();
                            st.paged -= 1;
                            ready.body = Body::Loaded(Arc::new(message));
                        }
                        None => {
                            error!(queue = %self.config.name, location = ?ready.location, "stored message lost: unreadable");
                            self.settle_location(ready.location);
                            ready.location = None;
                        }
                    }
                }
            }
        }
    }

    /// Gives the head message to the next consumer with room: the highest
    /// priority group that has room wins, round-robin inside the group.
    fn deliver_one(self: &Arc<Self>, st: &mut State) -> bool {
        let count = st.consumers.len();
        let mut start = 0;
        while start < count {
            let priority = st.consumers[start].priority;
            let len = st.consumers[start..]
                .iter()
                .take_while(|c| c.priority == priority)
                .count();
            for i in 0..len {
                let offset = (st.next_consumer + i) % len;
                let consumer = st.consumers[start + offset].clone();
                let Some(message) = self.pop_loaded(st) else {
                    return false;
                };
                let location = message.location;
                match consumer.channel.deliver(self, &consumer, message) {
                    Ok(()) => {
                        st.next_consumer = offset + 1;
                        if consumer.no_ack {
                            self.settle_location(location);
                        } else {
                            self.mark_delivered(location);
                        }
                        return true;
                    }
                    Err(message) => Self::push_front(st, message),
                }
            }
            start += len;
        }
        false
    }

    fn push_front(st: &mut State, message: QueuedMessage) {
        st.ram_bytes += message.message.body.len();
        st.ready.push_front(Ready {
            body: Body::Loaded(message.message),
            seq: message.seq,
            redelivered: message.redelivered,
            location: message.location,
        });
    }

    /// basic.get: takes the head message, with the ready count left after it.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        let message = self.pop_loaded(&mut st)?;
        if no_ack {
            self.settle_location(message.location);
        } else {
            self.mark_delivered(message.location);
        }
        Some((message, st.ready.len() as u32))
    }

    /// Puts delivered messages back, each at its original place, marked redelivered.
    pub fn requeue(self: &Arc<Self>, mut messages: Vec<QueuedMessage>) {
        let mut st = self.state.lock();
        if st.deleted {
            drop(st);
            for m in messages {
                self.settle_location(m.location);
            }
            return;
        }
        messages.sort_by_key(|m| m.seq);
        for mut message in messages.into_iter().rev() {
            message.redelivered = true;
            if st.ready.front().is_none_or(|head| head.seq > message.seq) {
                Self::push_front(&mut st, message);
            } else {
                let at = st.ready.partition_point(|m| m.seq < message.seq);
                st.ram_bytes += message.message.body.len();
                st.ready.insert(
                    at,
                    Ready {
                        body: Body::Loaded(message.message),
                        seq: message.seq,
                        redelivered: true,
                        location: message.location,
                    },
                );
            }
        }
        self.dispatch_locked(&mut st);
    }

    /// Forgets delivered messages for good (acked, or rejected without requeue).
    pub fn settle(&self, message: &QueuedMessage) {
        self.settle_location(message.location);
    }

    fn settle_location(&self, location: Option<Location>) {
        if let (Some((log, id)), Some(at)) = (&self.store, location) {
            log.settle(at, *id);
        }
    }

    fn mark_delivered(&self, location: Option<Location>) {
        if let (Some((log, id)), Some(at)) = (&self.store, location) {
            log.mark_delivered(at, *id);
        }
    }

    /// Adds a consumer (after RabbitMQ's exclusivity checks) and starts delivering
    /// to it. `on_added` runs once the consumer is accepted and before any
    /// delivery, so basic.consume-ok reaches the client before the first message.
    pub fn add_consumer(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
        on_added: impl FnOnce(),
    ) -> Result<(), AmqpError> {
        let mut st = self.state.lock();
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
            return Err(AmqpError::AccessRefused(format!(
                "{} in exclusive use",
                in_vhost("queue", &self.config.name, &self.config.vhost)
            )));
        }
        let at = st
            .consumers
            .partition_point(|c| c.priority >= consumer.priority);
        st.consumers.insert(at, consumer);
        st.had_consumer = true;
        on_added();
        self.dispatch_locked(&mut st);
        Ok(())
    }

    /// Removes a consumer; returns whether the queue should now auto-delete.
    pub fn remove_consumer(&self, consumer: &Arc<Consumer>) -> bool {
        let mut st = self.state.lock();
        st.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
        self.config.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted
    }

    pub fn message_count(&self) -> u32 {
        self.state.lock().ready.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    /// Drops every ready message (unacked ones stay); returns how many went.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let ready = std::mem::take(&mut st.ready);
        st.ram_bytes = 0;
        st.paged = 0;
        drop(st);
        let count = ready.len() as u32;
        for r in ready {
            self.settle_location(r.location);
        }
        count
    }

    /// Marks the queue deleted: returns the ready count and the consumers to cancel.
    pub fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let count = self.purge();
        let mut st = self.state.lock();
        st.deleted = true;
        let consumers = std::mem::take(&mut st.consumers);
        for c in &consumers {
            c.cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        (count, consumers)
    }

    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// Checks for queue.delete: in use / not empty.
    pub fn check_delete(&self, if_unused: bool, if_empty: bool) -> Result<(), AmqpError> {
        let st = self.state.lock();
        let what = in_vhost("queue", &self.config.name, &self.config.vhost);
        if if_unused && !st.consumers.is_empty() {
            return Err(AmqpError::PreconditionFailed(format!("{what} in use")));
        }
        if if_empty && !st.ready.is_empty() {
            return Err(AmqpError::PreconditionFailed(format!("{what} not empty")));
        }
        Ok(())
    }
}
