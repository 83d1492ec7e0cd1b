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
//! Messages live in memory here; the ready list is the seam where a store goes
//! (it holds `QueuedMessage`s ordered by sequence number, which is also what
//! requeueing in the original order relies on).

use std::collections::VecDeque;
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use parking_lot::Mutex;

use crate::consumer::Consumer;
use crate::error::{in_vhost, AmqpError};
use crate::message::Message;

/// A message in a queue, ready or delivered.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub message: Arc<Message>,
    /// Position in the queue's publish order; requeued messages go back by it.
    pub seq: u64,
    pub redelivered: bool,
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
    ready: VecDeque<QueuedMessage>,
    next_seq: u64,
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
    state: Mutex<State>,
}

impl Queue {
    pub fn new(config: QueueConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::new(State::default()),
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.config.name
    }

    /// Enqueues a published message and delivers what can be delivered.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) {
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready.push_back(QueuedMessage {
            message,
            seq,
            redelivered: false,
        });
        self.dispatch_locked(&mut st);
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
                let Some(message) = st.ready.pop_front() else {
                    return false;
                };
                match consumer.channel.deliver(self, &consumer, message) {
                    Ok(()) => {
                        st.next_consumer = offset + 1;
                        return true;
                    }
                    Err(message) => st.ready.push_front(message),
                }
            }
            start += len;
        }
        false
    }

    /// basic.get: takes the head message, with the ready count left after it.
    pub fn get(&self) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        let message = st.ready.pop_front()?;
        Some((message, st.ready.len() as u32))
    }

    /// Puts delivered messages back, each at its original place, marked redelivered.
    pub fn requeue(self: &Arc<Self>, mut messages: Vec<QueuedMessage>) {
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        messages.sort_by_key(|m| m.seq);
        for mut message in messages.into_iter().rev() {
            message.redelivered = true;
            if st.ready.front().is_none_or(|head| head.seq > message.seq) {
                st.ready.push_front(message);
            } else {
                let at = st.ready.partition_point(|m| m.seq < message.seq);
                st.ready.insert(at, message);
            }
        }
        self.dispatch_locked(&mut st);
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
        let count = st.ready.len() as u32;
        st.ready.clear();
        count
    }

    /// Marks the queue deleted: returns the ready count and the consumers to cancel.
    pub fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut st = self.state.lock();
        st.deleted = true;
        let count = st.ready.len() as u32;
        st.ready.clear();
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
