//! A queue: its ready messages, its consumers, and the choice of who gets what.
//!
//! All of a queue's state sits behind one short `parking_lot` mutex that is never
//! held across an `.await`. Whoever changes the queue (a publisher's task
//! enqueueing, an ack freeing prefetch room, a consumer arriving, a writer that
//! drained a congested socket, the queue's expiry timer) calls into it, and it
//! hands ready messages to consumers with room until none is left. A publish to
//! one queue never waits on another queue's lock.
//!
//! Durable queues keep their persistent messages in the vhost's message log
//! too. The ready list holds those bodies in memory only up to
//! [`RAM_BYTES`] per queue; past that (and for everything recovered at start)
//! it keeps just the message's [`Location`], and reads bodies back in batches
//! as consumers reach them. Every stored reference is settled in the log exactly
//! once: when it is acked, dropped, expired, dead-lettered (after the dead
//! letter was stored), purged, or its queue is deleted.
//!
//! RabbitMQ's queue extensions live here too (see `docs/ARCHITECTURE.md`):
//! * priorities: one FIFO per priority level (`x-max-priority`), highest first;
//! * length limits (`x-max-length`, `x-max-length-bytes`, `x-overflow`);
//! * expiry: each message carries its deadline; deadlines from the queue's TTL
//!   grow with the publish order, so the heads of the levels are the next to
//!   expire; per-message TTLs go into a min-heap of (deadline, seq) read with
//!   lazy deletion. One timer task per queue (`expiry.rs`) wakes at the earliest
//!   deadline and also deletes the queue after `x-expires` unused;
//! * dead letters are collected under the lock and published by
//!   `dead_letter.rs` after it is released (a queue never holds its lock while
//!   publishing into another, so dead-letter cycles cannot deadlock);
//! * delivery counts (`x-delivery-count`, `x-delivery-limit`), single active
//!   consumer, and queue-level deduplication.

pub(crate) mod args;
pub(crate) mod consumer;
pub(crate) mod dead_letter;
pub(crate) mod delivery;
pub(crate) mod expiry;
mod levels;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};

use amq_protocol::types::{AMQPValue, FieldTable};
use arc_swap::{ArcSwap, Guard};
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tracing::error;

use crate::engine::clock::{now_ms, NEVER};
use crate::engine::message::Message;
use crate::protocol::error::{in_vhost, AmqpError};
use crate::store::{Location, MessageLog, Recovered};
use args::{Overflow, QueueArgs};
use consumer::Consumer;
use dead_letter::{DeadLetter, Reason};
use levels::{Body, Levels, Ready};

/// Bodies a durable queue keeps in memory before it pages the rest out.
pub(crate) const RAM_BYTES: usize = 8 << 20;
/// How many paged messages are read back at once, ahead of consumers.
const PAGE_IN_BATCH: usize = 256;
/// How many messages one pass of the expiry timer takes under the lock.
const EXPIRE_BATCH: usize = 4096;

/// A message handed out of a queue (delivered or got); its body is loaded.
#[derive(Clone, Debug)]
pub(crate) struct QueuedMessage {
    /// The message as published; what goes back to the queue on requeue and
    /// on to the dead-letter exchange.
    pub(crate) message: Arc<Message>,
    /// The copy the consumer sees, when the queue annotated it
    /// (`x-delivery-count`); the annotation never sticks to the message.
    pub(crate) sent: Option<Arc<Message>>,
    /// Position in the queue's publish order; requeued messages go back by it.
    pub(crate) seq: u64,
    pub(crate) redelivered: bool,
    /// Where the message is in the log, for a persistent message in a durable queue.
    pub(crate) location: Option<Location>,
    /// When it expires (ms since the epoch; [`NEVER`] for no TTL). Kept
    /// across requeues, as RabbitMQ does.
    pub(crate) expires_at: u64,
    /// How many times it came back to the queue (nack/reject with requeue,
    /// channel closed); `x-delivery-count` on quorum queues.
    pub(crate) deliveries: u32,
}

impl QueuedMessage {
    /// What goes on the wire: the annotated copy if there is one.
    pub(crate) fn to_send(&self) -> &Message {
        self.sent.as_deref().unwrap_or(&self.message)
    }
}

/// What a queue calls up to: its vhost (which implements this). The queue
/// folder defines it so that it never imports the vhost.
pub(crate) trait QueueOwner: Send + Sync {
    /// Republishes dead letters; called with no queue lock held.
    fn dead_letter(&self, queue: &Arc<Queue>, letters: Vec<DeadLetter>);
    /// Deletes a queue that expired unused (`x-expires`); returns its ready count.
    fn remove_queue(&self, queue: &Arc<Queue>) -> u32;
}

/// What a queue did with a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Enqueue {
    Accepted,
    /// Refused by `x-overflow` reject-publish(-dlx): nack the publisher.
    Rejected,
    /// A repeat of a message still in a deduplicating queue: dropped.
    Duplicate,
}

/// What the expiry timer should do next.
pub(crate) enum Wake {
    At(u64),
    /// A batch was expired and more are due: yield, then go on.
    Again,
    Idle,
    Stop,
}

/// What a queue was declared with.
#[derive(Clone, Debug)]
pub(crate) struct QueueConfig {
    pub(crate) name: Arc<str>,
    pub(crate) vhost: Arc<str>,
    pub(crate) durable: bool,
    /// The connection that owns an exclusive queue.
    pub(crate) exclusive_owner: Option<u64>,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: FieldTable,
}

struct State {
    ready: Levels,
    next_seq: u64,
    /// Bodies of ready messages held in memory.
    ram_bytes: usize,
    /// Bodies of all ready messages (`x-max-length-bytes`).
    bytes: u64,
    /// Ready messages whose body is only on disk.
    paged: usize,
    /// Sorted by priority, highest first; stable, so equal priorities keep
    /// arrival order for round-robin. Arrival order only, with single active consumer.
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin position within the priority group that delivered last.
    next_consumer: usize,
    had_consumer: bool,
    deleted: bool,
    /// Per-message deadlines: (deadline, seq, level), earliest first; entries
    /// of messages that left are skipped when popped.
    deadlines: BinaryHeap<Reverse<(u64, u64, u8)>>,
    /// The expiry task's wake-up signal, once it runs.
    timer: Option<Arc<Notify>>,
    /// When the expiry task will look next ([`NEVER`]: only when notified).
    timer_at: u64,
    /// Last declare, get or consumer departure (`x-expires`).
    last_used: u64,
    /// Deduplication keys of the messages in the queue (ready or unacked) and
    /// the key of each message by seq.
    dedup: HashMap<String, u64>,
    dedup_by_seq: HashMap<u64, String>,
    /// Dead letters collected under the lock, published once it is released.
    letters: Vec<DeadLetter>,
    /// The arguments in force (also in `Queue::args`, for readers without the lock).
    args: Arc<QueueArgs>,
    /// The clock of the publish being dispatched (0: none), so a message with
    /// TTL 0 reaches a waiting consumer even if a millisecond passed meanwhile.
    publish_clock: u64,
}

pub(crate) struct Queue {
    pub(crate) config: QueueConfig,
    /// The behaviour arguments: the declared ones, merged with the vhost's
    /// policy for this queue when it has one.
    args: ArcSwap<QueueArgs>,
    /// The vhost's log and this queue's id in it: set for durable queues,
    /// whose persistent messages are stored.
    store: Option<(Arc<MessageLog>, u32)>,
    /// The vhost, for dead-lettering and for deleting itself (`x-expires`).
    owner: Weak<dyn QueueOwner>,
    /// Itself, for the expiry timer (which must not keep a deleted queue alive).
    me: Weak<Queue>,
    /// What policies cannot change, read without a lock.
    max_priority: Option<u8>,
    single_active: bool,
    deduplication: bool,
    state: Mutex<State>,
}

impl Queue {
    pub(crate) fn new(
        config: QueueConfig,
        store: Option<(Arc<MessageLog>, u32)>,
        owner: Weak<dyn QueueOwner>,
    ) -> Arc<Self> {
        let args = QueueArgs::from_table(&config.arguments);
        let queue = Arc::new_cyclic(|me| Self {
            state: Mutex::new(State {
                ready: Levels::new(args.levels()),
                args: Arc::new(args.clone()),
                next_seq: 0,
                ram_bytes: 0,
                bytes: 0,
                paged: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                had_consumer: false,
                deleted: false,
                deadlines: BinaryHeap::new(),
                timer: None,
                timer_at: NEVER,
                last_used: now_ms(),
                dedup: HashMap::new(),
                dedup_by_seq: HashMap::new(),
                letters: Vec::new(),
                publish_clock: 0,
            }),
            config,
            max_priority: args.max_priority,
            single_active: args.single_active_consumer,
            deduplication: args.deduplication,
            args: ArcSwap::from_pointee(args.clone()),
            store,
            owner,
            me: me.clone(),
        });
        if let Some(expires) = queue.args().expires {
            let mut st = queue.state.lock();
            let at = st.last_used.saturating_add(expires);
            queue.schedule(&mut st, at);
        }
        queue
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.config.name
    }

    /// The behaviour arguments this queue was declared with.
    pub(crate) fn args(&self) -> Guard<Arc<QueueArgs>> {
        self.args.load()
    }

    /// Applies the vhost's policy for this queue (None: no policy matches),
    /// over the arguments it was declared with, as RabbitMQ merges them.
    pub(crate) fn apply_policy(
        self: &Arc<Self>,
        policy: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        let args = Arc::new(QueueArgs::effective(&self.config.arguments, policy));
        let mut st = self.state.lock();
        self.args.store(args.clone());
        st.args = args;
        // A new x-expires or a lower limit takes effect now.
        if let Some(expires) = st.args.expires {
            let at = st.last_used.saturating_add(expires);
            self.schedule(&mut st, at);
        }
        self.drop_head(&mut st);
        self.unlock(st);
    }

    /// This queue's id in the message log, if it stores messages.
    pub(crate) fn log_id(&self) -> Option<u32> {
        self.store.as_ref().map(|(_, id)| *id)
    }

    /// The log this queue stores its persistent messages in.
    pub(crate) fn log(&self) -> Option<&Arc<MessageLog>> {
        self.store.as_ref().map(|(log, _)| log)
    }

    /// The priority level a message goes to.
    fn level_of(&self, message: &Message) -> usize {
        match self.max_priority {
            None => 0,
            Some(max) => usize::from(message.properties.priority().unwrap_or(0).min(max)),
        }
    }

    /// The deadline of a message published now, and whether it is its own TTL
    /// (shorter than the queue's), which must go into the heap.
    fn deadline(&self, ttl: Option<u64>, message: &Message, published: u64) -> (u64, bool) {
        let own = message
            .properties
            .expiration()
            .and_then(|e| crate::protocol::content::parse_expiration(e).ok());
        deadline(ttl, own, published)
    }

    /// Releases the lock, then publishes the dead letters collected under it.
    fn unlock(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        let letters = std::mem::take(&mut st.letters);
        drop(st);
        if letters.is_empty() {
            return;
        }
        match self.owner.upgrade() {
            Some(owner) => owner.dead_letter(self, letters),
            None => {
                for letter in letters {
                    self.settle_location(letter.location);
                }
            }
        }
    }

    /// Enqueues a published message and delivers what can be delivered.
    /// `location` is where the log stored it (persistent message, durable queue).
    pub(crate) fn publish(
        self: &Arc<Self>,
        message: Arc<Message>,
        location: Option<Location>,
    ) -> Enqueue {
        let mut st = self.state.lock();
        if st.deleted {
            drop(st);
            self.settle_location(location);
            return Enqueue::Accepted;
        }
        let size = message.body.len();
        let dedup_key = if self.deduplication {
            message.dedup_key()
        } else {
            None
        };
        if let Some(key) = &dedup_key {
            if st.dedup.contains_key(key) {
                drop(st);
                self.settle_location(location);
                return Enqueue::Duplicate;
            }
        }
        let overflow = st.args.overflow;
        if overflow != Overflow::DropHead && would_overflow(&st, size as u64) {
            if overflow == Overflow::RejectPublishDlx && dead_letters(&st) {
                st.letters.push(DeadLetter {
                    message: Some(message),
                    location,
                    reason: Reason::MaxLen,
                });
                self.unlock(st);
            } else {
                drop(st);
                self.settle_location(location);
            }
            return Enqueue::Rejected;
        }
        let (expires_at, own_ttl) =
            if st.args.message_ttl.is_some() || message.properties.expiration().is_some() {
                st.publish_clock = now_ms();
                self.deadline(st.args.message_ttl, &message, st.publish_clock)
            } else {
                (NEVER, false)
            };
        let seq = st.next_seq;
        st.next_seq += 1;
        let level = self.level_of(&message);
        let body = if location.is_some() && (st.paged > 0 || st.ram_bytes + size > RAM_BYTES) {
            st.paged += 1;
            Body::Paged
        } else {
            st.ram_bytes += size;
            Body::Loaded(message)
        };
        if let Some(key) = dedup_key {
            st.dedup.insert(key.clone(), seq);
            st.dedup_by_seq.insert(seq, key);
        }
        st.bytes += size as u64;
        st.ready.push_back(
            level,
            Ready {
                body,
                seq,
                location,
                expires_at,
                size: size as u32,
                deliveries: 0,
                redelivered: false,
                own_ttl,
            },
        );
        if expires_at != NEVER {
            self.track_deadline(&mut st, expires_at, seq, level, own_ttl);
        }
        self.dispatch_locked(&mut st);
        if expires_at != NEVER && expires_at <= st.publish_clock {
            // TTL 0 that no consumer took at once: gone now, as in RabbitMQ,
            // not when the timer comes round.
            if let Some(index) = st.ready.find(level, seq) {
                let ready = st.ready.take(level, index);
                self.discard(&mut st, ready, Reason::Expired);
            }
        }
        st.publish_clock = 0;
        self.drop_head(&mut st);
        self.unlock(st);
        Enqueue::Accepted
    }

    /// x-overflow drop-head: drops (or dead-letters) the head until the queue
    /// is within its limits.
    fn drop_head(&self, st: &mut State) {
        if st.args.overflow != Overflow::DropHead {
            return;
        }
        while over_limit(st) {
            let Some(level) = st.ready.front_level() else {
                return;
            };
            let Some(ready) = st.ready.pop_front(level) else {
                return;
            };
            self.discard(st, ready, Reason::MaxLen);
        }
    }

    /// A ready message leaves the list without being delivered (expired,
    /// dropped): dead-letter it if the queue has a dead-letter exchange,
    /// settle it otherwise.
    fn discard(&self, st: &mut State, ready: Ready, reason: Reason) {
        account_removed(st, &ready);
        forget_key(st, ready.seq);
        let message = match ready.body {
            Body::Loaded(m) => Some(m),
            Body::Paged | Body::Gone => None,
        };
        if dead_letters(st) && (message.is_some() || ready.location.is_some()) {
            st.letters.push(DeadLetter {
                message,
                location: ready.location,
                reason,
            });
        } else {
            self.settle_location(ready.location);
        }
    }

    fn track_deadline(&self, st: &mut State, at: u64, seq: u64, level: usize, own: bool) {
        if own {
            st.deadlines.push(Reverse((at, seq, level as u8)));
        }
        self.schedule(st, at);
    }

    /// Makes sure the expiry timer looks again no later than `at`.
    fn schedule(&self, st: &mut State, at: u64) {
        if at >= st.timer_at {
            return;
        }
        st.timer_at = at;
        if st.timer.is_none() {
            st.timer = expiry::spawn(self.me.clone());
        }
        if let Some(timer) = &st.timer {
            timer.notify_one();
        }
    }

    /// Puts a message found in the log at start-up at the end of the queue,
    /// without reading its body.
    pub(crate) fn restore(&self, r: &Recovered) {
        let mut st = self.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.paged += 1;
        st.bytes += u64::from(r.body_len);
        let level = match self.max_priority {
            None => 0,
            Some(max) => usize::from(r.priority.min(max)),
        };
        let (expires_at, own_ttl) = deadline(st.args.message_ttl, r.expiration, r.timestamp);
        st.ready.push_back(
            level,
            Ready {
                body: Body::Paged,
                seq,
                location: Some(r.location),
                expires_at,
                size: r.body_len,
                deliveries: 0,
                redelivered: r.delivered,
                own_ttl,
            },
        );
        if expires_at != NEVER {
            self.track_deadline(&mut st, expires_at, seq, level, own_ttl);
        }
    }

    /// Delivers ready messages to consumers with room.
    pub(crate) fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
        self.unlock(st);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut State) {
        while st.ready.live > 0 && !st.consumers.is_empty() {
            if !self.deliver_one(st) {
                break;
            }
        }
    }

    /// Takes the next message with its body loaded (reading ahead from the log
    /// if it is paged out), expiring the ones past their deadline on the way.
    /// None when the queue is empty.
    fn pop_loaded(&self, st: &mut State) -> Option<QueuedMessage> {
        let mut now = None;
        loop {
            let level = st.ready.front_level()?;
            if matches!(st.ready.front(level)?.body, Body::Paged) {
                self.page_in(st, level);
            }
            let ready = st.ready.pop_front(level)?;
            // During a publish's dispatch the publish's own clock decides, so
            // a message with TTL 0 reaches a waiting consumer; otherwise a
            // deadline that is now has passed (TTL 0 is never fetched later).
            let clock = st.publish_clock;
            let expired = match clock {
                0 => ready.expires_at <= *now.get_or_insert_with(now_ms),
                clock => ready.expires_at < clock,
            };
            if ready.expires_at != NEVER && expired {
                self.discard(st, ready, Reason::Expired);
                continue;
            }
            account_removed(st, &ready);
            match ready.body {
                Body::Loaded(message) => {
                    return Some(QueuedMessage {
                        message,
                        sent: None,
                        seq: ready.seq,
                        redelivered: ready.redelivered,
                        location: ready.location,
                        expires_at: ready.expires_at,
                        deliveries: u32::from(ready.deliveries),
                    });
                }
                // Unreadable (reported and settled by page_in): try the next.
                Body::Paged | Body::Gone => forget_key(st, ready.seq),
            }
        }
    }

    /// Reads the paged messages at the head of `level` back from the log.
    fn page_in(&self, st: &mut State, level: usize) {
        let Some((log, _)) = &self.store else { return };
        let State {
            ready,
            ram_bytes,
            paged,
            ..
        } = st;
        let deque = &mut ready.levels[level];
        let mut picked: Vec<(usize, Location)> = Vec::new();
        for (i, r) in deque.iter().enumerate() {
            match r.body {
                Body::Paged => {
                    if let Some(at) = r.location {
                        picked.push((i, at));
                        if picked.len() == PAGE_IN_BATCH {
                            break;
                        }
                    }
                }
                Body::Gone => {}
                Body::Loaded(_) => break,
            }
        }
        let locations: Vec<Location> = picked.iter().map(|(_, at)| *at).collect();
        let mut load = |r: &mut Ready, message: Option<Message>| match message {
            Some(message) => {
                *ram_bytes += message.body.len();
                *paged -= 1;
                r.body = Body::Loaded(Arc::new(message));
            }
            None => {
                error!(queue = %self.config.name, location = ?r.location, "stored message lost: unreadable");
                self.settle_location(r.location.take());
            }
        };
        match log.read_batch(&locations) {
            Ok(messages) if messages.len() == picked.len() => {
                for ((i, _), stored) in picked.iter().zip(messages) {
                    load(&mut deque[*i], Message::from_stored(stored));
                }
            }
            result => {
                // Read them one by one to isolate the bad one(s).
                if let Err(e) = result {
                    error!(queue = %self.config.name, error = %e, "reading messages back failed");
                }
                for (i, at) in &picked {
                    let message = log.read(*at).ok().and_then(Message::from_stored);
                    load(&mut deque[*i], message);
                }
            }
        }
    }

    /// Gives the head message to the next consumer with room: the highest
    /// priority group that has room wins, round-robin inside the group. With
    /// single active consumer only the first consumer to arrive gets messages.
    fn deliver_one(self: &Arc<Self>, st: &mut State) -> bool {
        let count = if self.single_active {
            st.consumers.len().min(1)
        } else {
            st.consumers.len()
        };
        let mut start = 0;
        while start < count {
            let priority = st.consumers[start].priority;
            let len = st.consumers[start..count]
                .iter()
                .take_while(|c| c.priority == priority)
                .count();
            for i in 0..len {
                let offset = (st.next_consumer + i) % len;
                let consumer = st.consumers[start + offset].clone();
                let Some(mut message) = self.pop_loaded(st) else {
                    return false;
                };
                annotate(st, &mut message, false);
                let location = message.location;
                let seq = message.seq;
                match consumer.channel.deliver(self, &consumer, message) {
                    Ok(()) => {
                        st.next_consumer = offset + 1;
                        if consumer.no_ack {
                            forget_key(st, seq);
                            self.settle_location(location);
                        } else {
                            self.mark_delivered(location);
                        }
                        return true;
                    }
                    Err(message) => self.push_front(st, message),
                }
            }
            start += len;
        }
        false
    }

    fn ready_of(&self, message: QueuedMessage, own_ttl: bool) -> (usize, Ready) {
        let level = self.level_of(&message.message);
        let size = message.message.body.len() as u32;
        (
            level,
            Ready {
                body: Body::Loaded(message.message),
                seq: message.seq,
                location: message.location,
                expires_at: message.expires_at,
                size,
                deliveries: u16::try_from(message.deliveries).unwrap_or(u16::MAX),
                redelivered: message.redelivered,
                own_ttl,
            },
        )
    }

    fn push_front(&self, st: &mut State, message: QueuedMessage) {
        let (level, ready) = self.ready_of(message, false);
        account_added(st, &ready);
        st.ready.push_front(level, ready);
    }

    /// basic.get: takes the head message, with the ready count left after it.
    pub(crate) fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        st.last_used = now_ms();
        let Some(mut message) = self.pop_loaded(&mut st) else {
            self.unlock(st);
            return None;
        };
        // basic.get-ok carries the count from the first delivery on (0), as
        // RabbitMQ's quorum queues do; basic.deliver only from the second.
        annotate(&st, &mut message, true);
        if no_ack {
            forget_key(&mut st, message.seq);
            self.settle_location(message.location);
        } else {
            self.mark_delivered(message.location);
        }
        let remaining = st.ready.live as u32;
        self.unlock(st);
        Some((message, remaining))
    }

    /// Puts delivered messages back, each at its original place, marked
    /// redelivered. A message returned more often than `x-delivery-limit`
    /// allows is dead-lettered (reason delivery_limit) or dropped instead.
    pub(crate) fn requeue(self: &Arc<Self>, mut messages: Vec<QueuedMessage>) {
        let mut st = self.state.lock();
        if st.deleted {
            for m in &messages {
                forget_key(&mut st, m.seq);
            }
            drop(st);
            for m in messages {
                self.settle_location(m.location);
            }
            return;
        }
        messages.sort_by_key(|m| m.seq);
        for mut message in messages.into_iter().rev() {
            message.redelivered = true;
            message.deliveries = message.deliveries.saturating_add(1);
            if st
                .args
                .delivery_limit
                .is_some_and(|limit| u64::from(message.deliveries) > limit)
            {
                forget_key(&mut st, message.seq);
                if dead_letters(&st) {
                    st.letters.push(DeadLetter {
                        location: message.location,
                        message: Some(message.message),
                        reason: Reason::DeliveryLimit,
                    });
                } else {
                    self.settle_location(message.location);
                }
                continue;
            }
            let (expires_at, seq) = (message.expires_at, message.seq);
            let (level, ready) = self.ready_of(message, expires_at != NEVER);
            account_added(&mut st, &ready);
            st.ready.insert(level, ready);
            if expires_at != NEVER {
                self.track_deadline(&mut st, expires_at, seq, level, true);
            }
        }
        self.dispatch_locked(&mut st);
        self.drop_head(&mut st);
        self.unlock(st);
    }

    /// Forgets a delivered message for good (acked).
    pub(crate) fn settle(&self, message: &QueuedMessage) {
        if self.deduplication {
            forget_key(&mut self.state.lock(), message.seq);
        }
        self.settle_location(message.location);
    }

    /// A delivered message rejected without requeue: dead-lettered (reason
    /// rejected) if the queue has a dead-letter exchange, forgotten otherwise.
    pub(crate) fn reject(self: &Arc<Self>, message: QueuedMessage) {
        let mut st = self.state.lock();
        if !dead_letters(&st) {
            forget_key(&mut st, message.seq);
            drop(st);
            self.settle_location(message.location);
            return;
        }
        forget_key(&mut st, message.seq);
        st.letters.push(DeadLetter {
            message: Some(message.message),
            location: message.location,
            reason: Reason::Rejected,
        });
        self.unlock(st);
    }

    /// Settles this queue's reference to a stored message.
    pub(crate) fn settle_location(&self, location: Option<Location>) {
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
    pub(crate) fn add_consumer(
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
        let at = if self.single_active {
            st.consumers.len()
        } else {
            st.consumers
                .partition_point(|c| c.priority >= consumer.priority)
        };
        st.consumers.insert(at, consumer);
        st.had_consumer = true;
        st.last_used = now_ms();
        on_added();
        self.dispatch_locked(&mut st);
        self.unlock(st);
        Ok(())
    }

    /// Removes a consumer; returns whether the queue should now auto-delete.
    pub(crate) fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) -> bool {
        let mut st = self.state.lock();
        let was_active = st
            .consumers
            .first()
            .is_some_and(|c| Arc::ptr_eq(c, consumer));
        st.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
        if st.consumers.is_empty() {
            st.last_used = now_ms();
            if let Some(expires) = st.args.expires {
                let at = st.last_used.saturating_add(expires);
                self.schedule(&mut st, at);
            }
        } else if was_active && self.single_active {
            // The next consumer in line takes over.
            self.dispatch_locked(&mut st);
        }
        let auto_delete =
            self.config.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted;
        self.unlock(st);
        auto_delete
    }

    /// A declare (passive or not) counts as a use for `x-expires`.
    pub(crate) fn touch(&self) {
        let mut st = self.state.lock();
        if st.args.expires.is_some() {
            st.last_used = now_ms();
        }
    }

    pub(crate) fn message_count(&self) -> u32 {
        self.state.lock().ready.live as u32
    }

    pub(crate) fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    /// Drops every ready message (unacked ones stay); returns how many went.
    pub(crate) fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let ready = st.ready.drain();
        st.ram_bytes = 0;
        st.bytes = 0;
        st.paged = 0;
        st.deadlines.clear();
        // The deduplication plugin flushes its whole cache on purge.
        st.dedup.clear();
        st.dedup_by_seq.clear();
        drop(st);
        let count = ready.len() as u32;
        for r in ready {
            self.settle_location(r.location);
        }
        count
    }

    /// Marks the queue deleted: returns the ready count and the consumers to cancel.
    pub(crate) fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let count = self.purge();
        let mut st = self.state.lock();
        st.deleted = true;
        if let Some(timer) = &st.timer {
            timer.notify_one();
        }
        let consumers = std::mem::take(&mut st.consumers);
        for c in &consumers {
            c.cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        (count, consumers)
    }

    /// Checks for queue.delete: in use / not empty.
    pub(crate) fn check_delete(&self, if_unused: bool, if_empty: bool) -> Result<(), AmqpError> {
        let st = self.state.lock();
        let what = in_vhost("queue", &self.config.name, &self.config.vhost);
        if if_unused && !st.consumers.is_empty() {
            return Err(AmqpError::PreconditionFailed(format!("{what} in use")));
        }
        if if_empty && st.ready.live > 0 {
            return Err(AmqpError::PreconditionFailed(format!("{what} not empty")));
        }
        Ok(())
    }

    /// One round of the expiry timer: expires (dead-letters or drops) every
    /// message past its deadline, deletes the queue once `x-expires` passed
    /// unused, and says when to look again. Work is O(expired messages).
    pub(crate) fn run_expiry(self: &Arc<Self>) -> Wake {
        let mut st = self.state.lock();
        if st.deleted {
            st.timer = None;
            return Wake::Stop;
        }
        let now = now_ms();
        let mut budget = EXPIRE_BATCH;
        // The heads of the levels: deadlines from the queue's TTL grow with
        // the publish order, so they are the next to expire.
        for level in (0..st.ready.levels.len()).rev() {
            while budget > 0 {
                match st.ready.front(level) {
                    Some(r) if r.expires_at <= now => {}
                    _ => break,
                }
                if let Some(ready) = st.ready.pop_front(level) {
                    self.discard(&mut st, ready, Reason::Expired);
                    budget -= 1;
                }
            }
        }
        // Messages with their own, shorter TTL, wherever they are.
        while budget > 0 {
            match st.deadlines.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((_, seq, level))) = st.deadlines.pop() else {
                break;
            };
            let level = usize::from(level);
            if let Some(index) = st.ready.find(level, seq) {
                if st.ready.levels[level][index].expires_at <= now {
                    let ready = st.ready.take(level, index);
                    self.discard(&mut st, ready, Reason::Expired);
                    budget -= 1;
                }
            }
        }
        if budget == 0 {
            // More to do: let other tasks run first.
            self.unlock(st);
            return Wake::Again;
        }
        // Entries of messages that left before their deadline pile up in
        // the heap; rebuild it when they outnumber the live ones.
        if st.deadlines.len() > 2 * st.ready.live + 1024 {
            let rebuilt: Vec<Reverse<(u64, u64, u8)>> = st
                .ready
                .iter()
                .filter(|(_, r)| r.own_ttl && r.expires_at != NEVER)
                .map(|(l, r)| Reverse((r.expires_at, r.seq, l as u8)))
                .collect();
            st.deadlines = BinaryHeap::from(rebuilt);
        }
        let mut next = st.deadlines.peek().map_or(NEVER, |Reverse((at, _, _))| *at);
        for level in 0..st.ready.levels.len() {
            if let Some(r) = st.ready.front(level) {
                next = next.min(r.expires_at);
            }
        }
        let mut expire_queue = false;
        if let Some(expires) = st.args.expires {
            if st.consumers.is_empty() {
                let at = st.last_used.saturating_add(expires);
                if at <= now {
                    expire_queue = true;
                } else {
                    next = next.min(at);
                }
            }
        }
        st.timer_at = next;
        self.unlock(st);
        if expire_queue {
            if let Some(owner) = self.owner.upgrade() {
                owner.remove_queue(self);
            }
            return Wake::Stop;
        }
        if next == NEVER {
            Wake::Idle
        } else {
            Wake::At(next)
        }
    }
}

/// The deadline of a message published (or stored) at `published`: the
/// earlier of the queue's TTL and the message's own; `own` when the message's
/// is the earlier.
fn deadline(queue_ttl: Option<u64>, own: Option<u64>, published: u64) -> (u64, bool) {
    match (queue_ttl, own) {
        (None, None) => (NEVER, false),
        (Some(q), None) => (published.saturating_add(q), false),
        (None, Some(m)) => (published.saturating_add(m), true),
        (Some(q), Some(m)) if m < q => (published.saturating_add(m), true),
        (Some(q), Some(_)) => (published.saturating_add(q), false),
    }
}

/// Whether one more message of `size` bytes would pass a length limit.
fn would_overflow(st: &State, size: u64) -> bool {
    st.args
        .max_length
        .is_some_and(|max| st.ready.live as u64 + 1 > max)
        || st
            .args
            .max_length_bytes
            .is_some_and(|max| st.bytes + size > max)
}

fn over_limit(st: &State) -> bool {
    st.args
        .max_length
        .is_some_and(|max| st.ready.live as u64 > max)
        || st.args.max_length_bytes.is_some_and(|max| st.bytes > max)
}

fn dead_letters(st: &State) -> bool {
    st.args.dead_letter_exchange.is_some()
}

/// Gives the consumer's copy `x-delivery-count` when the message was returned
/// before (quorum queues and queues with a delivery limit), or always with
/// `always`; the queued message itself stays as published.
fn annotate(st: &State, message: &mut QueuedMessage, always: bool) {
    if (always || message.deliveries > 0) && st.args.counts_deliveries() {
        message.sent = Some(Arc::new(crate::engine::rebuild::with_header(
            &message.message,
            "x-delivery-count",
            AMQPValue::LongLongInt(i64::from(message.deliveries)),
        )));
    }
}

fn account_added(st: &mut State, ready: &Ready) {
    st.bytes += u64::from(ready.size);
    match &ready.body {
        Body::Loaded(m) => st.ram_bytes += m.body.len(),
        Body::Paged => st.paged += 1,
        Body::Gone => {}
    }
}

fn account_removed(st: &mut State, ready: &Ready) {
    st.bytes = st.bytes.saturating_sub(u64::from(ready.size));
    match &ready.body {
        Body::Loaded(m) => st.ram_bytes = st.ram_bytes.saturating_sub(m.body.len()),
        Body::Paged => st.paged = st.paged.saturating_sub(1),
        Body::Gone => {}
    }
}

/// Forgets the deduplication key of message `seq` (it left the queue for good).
fn forget_key(st: &mut State, seq: u64) {
    if st.dedup_by_seq.is_empty() {
        return;
    }
    if let Some(key) = st.dedup_by_seq.remove(&seq) {
        if st.dedup.get(&key) == Some(&seq) {
            st.dedup.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_message_stays_small() {
        assert_eq!(std::mem::size_of::<Ready>(), 56);
    }

    #[test]
    fn deadline_takes_the_shorter_ttl() {
        assert_eq!(deadline(None, None, 10), (NEVER, false));
        assert_eq!(deadline(Some(5), None, 10), (15, false));
        assert_eq!(deadline(None, Some(5), 10), (15, true));
        assert_eq!(deadline(Some(5), Some(3), 10), (13, true));
        assert_eq!(deadline(Some(5), Some(7), 10), (15, false));
    }
}
