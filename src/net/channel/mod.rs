//! One AMQP channel: the methods a client calls on it, and publishing.
//!
//! A `Channel` lives on its connection's task and is only touched there. It
//! turns methods into calls on the vhost (declare, bind, delete), on queues
//! (consume, get, purge) and on its own [`DeliveryChannel`] (acks, qos), and it
//! assembles published messages from their method, header and body frames, then
//! routes them and enqueues them inline. Channel-level errors (403, 404, 405,
//! 406) close only the channel: it sends channel.close, releases its consumers
//! and unacked messages, and ignores the client until channel.close-ok.

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::protocol::{
    access, basic, channel as chan, confirm, exchange, queue as q, tx, AMQPClass,
};
use amq_protocol::types::ShortString;
use bytes::{Bytes, BytesMut};
use rand::distr::{Alphanumeric, SampleString};
use tracing::debug;
use warren_routing::{Destination, RoutableMessage, Route};

use crate::access::permissions::{Perm, Resource};
use crate::engine::exchange::delayed;
use crate::engine::exchange::Extension;
use crate::engine::memory::MemoryCharge;
use crate::engine::message::Message;
use crate::protocol::field::value_as_i64;
use crate::engine::publish;
use crate::engine::queue::consumer::Consumer;
use crate::engine::queue::delivery::{self, DeliveryChannel, Unacked};
use crate::engine::queue::Queue;
use crate::engine::reply_to;
use crate::engine::vhost::{ExchangeDeclare, QueueDeclare};
use crate::net::connection::Session;
use crate::protocol::content::ContentHeader;
use crate::protocol::error::{AmqpError, MethodError};
use crate::protocol::frame::{self, Frame};
use crate::store::SyncWaiter;

/// RabbitMQ's default max_message_size.
pub const MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

/// A publish whose content is still arriving.
struct Content {
    publish: basic::Publish,
    header: Option<ContentHeader>,
    body: PendingBody,
    received: u64,
    /// What the header and the body so far hold, for the memory alarm.
    charge: MemoryCharge,
}

/// The body frames received so far.
enum PendingBody {
    Empty,
    /// The whole body came in one frame: kept as a slice of the read buffer.
    Whole(Bytes),
    /// Several frames, copied together as they arrive (never a list of
    /// small slices, which would cost more than the bytes themselves).
    Joining(BytesMut),
}

/// The most a body being joined reserves up front; larger bodies grow as
/// their frames arrive, so a header announcing 128 MiB reserves no more.
const BODY_RESERVE: u64 = 1 << 20;

/// What a settled delivery turns into once it takes effect.
#[derive(Clone, Copy)]
enum Outcome {
    Ack,
    Requeue,
    Discard,
}

/// A message published inside a transaction, applied at commit.
struct TxPublish {
    exchange: String,
    mandatory: bool,
    message: Arc<Message>,
}

#[derive(Default)]
struct Tx {
    publishes: Vec<TxPublish>,
    settles: Vec<(Vec<Unacked>, Outcome)>,
}

/// What happened to a routed message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enqueued {
    /// In memory only: confirm at once.
    Memory,
    /// Written to the log: confirm once it is fsynced.
    Stored,
    /// The log write failed (disk full...): nack, nothing was enqueued.
    Failed,
    /// A queue refused it (`x-overflow` reject-publish): nack.
    Rejected,
}

enum Mode {
    Plain,
    Confirm { next_seq: u64 },
    Tx(Tx),
}

pub struct Channel {
    id: u16,
    delivery: Arc<DeliveryChannel>,
    /// We sent channel.close and wait for close-ok.
    closing: bool,
    content: Option<Content>,
    consumers: HashMap<String, (Arc<Consumer>, Arc<Queue>)>,
    /// basic.qos global=false: the prefetch of consumers created from now on.
    prefetch: u32,
    mode: Mode,
    /// The last queue declared on this channel (an empty queue name means it).
    last_queue: Option<String>,
    route: Route,
    /// Scratch list of a publish's destination queues, reused across publishes.
    targets: Vec<Arc<Queue>>,
    /// The reply name of this channel's direct reply-to consumer.
    reply_to: Option<String>,
}

impl Channel {
    pub fn open(id: u16, session: &Session) -> Self {
        debug!(channel = id, "channel opened");
        Self {
            id,
            delivery: DeliveryChannel::new(id, session.handle.clone()),
            closing: false,
            content: None,
            consumers: HashMap::new(),
            prefetch: 0,
            mode: Mode::Plain,
            last_queue: None,
            route: Route::default(),
            targets: Vec::new(),
            reply_to: None,
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    fn send(&self, session: &Session, method: AMQPClass) {
        session.send_method(self.id, method);
    }

    /// Handles one frame for this channel. Ok(true): the channel is finished
    /// and must be forgotten. Err: a connection-level error.
    pub fn handle(&mut self, session: &mut Session, frame: Frame) -> Result<bool, MethodError> {
        if self.closing {
            if let Frame::Method { method, .. } = frame {
                match *method {
                    AMQPClass::Channel(chan::AMQPMethod::CloseOk(_)) => return Ok(true),
                    AMQPClass::Channel(chan::AMQPMethod::Close(_)) => {
                        self.send(
                            session,
                            AMQPClass::Channel(chan::AMQPMethod::CloseOk(chan::CloseOk {})),
                        );
                        return Ok(true);
                    }
                    _ => {}
                }
            }
            return Ok(false);
        }
        let result = match frame {
            Frame::Method {
                method,
                class_id,
                method_id,
                payload,
                ..
            } => {
                if let Some(content) = &self.content {
                    let text = if content.header.is_none() {
                        "expected content header for class 60, got non content header frame instead"
                    } else {
                        "expected content body, got non content body frame instead"
                    };
                    // RabbitMQ names the publish whose content was cut short.
                    return Err(MethodError::new(
                        AmqpError::UnexpectedFrame(text.into()),
                        60,
                        40,
                    ));
                }
                self.handle_method(session, *method, &payload)
                    .map_err(|e| MethodError::new(e, class_id, method_id))
            }
            Frame::Header { header, .. } => self.handle_header(session, header),
            Frame::Refused {
                class_id,
                method_id,
                error,
                ..
            } => {
                if self.content.is_some() {
                    return Err(MethodError::new(
                        AmqpError::UnexpectedFrame(
                            "expected content body, got non content body frame instead".into(),
                        ),
                        60,
                        40,
                    ));
                }
                Err(MethodError::new(error, class_id, method_id))
            }
            Frame::Body { data, .. } => self.handle_body(session, data),
            Frame::Heartbeat { .. } => Ok(false),
        };
        match result {
            Err(e) if !e.error.closes_connection() => {
                self.fail(session, e);
                Ok(false)
            }
            other => other,
        }
    }

    /// Closes this channel with a channel-level error.
    fn fail(&mut self, session: &mut Session, e: MethodError) {
        debug!(channel = self.id, error = %e.error, "closing channel");
        self.send(
            session,
            AMQPClass::Channel(chan::AMQPMethod::Close(chan::Close {
                reply_code: e.error.code(),
                reply_text: ShortString::from(e.error.reply_text()),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
        self.closing = true;
        self.content = None;
        self.cleanup(session);
    }

    /// Releases consumers and unacked messages (channel or connection closing).
    pub fn cleanup(&mut self, session: &mut Session) {
        for (_, (consumer, queue)) in self.consumers.drain() {
            release_consumer(session, &consumer, &queue);
        }
        self.reply_to = None;
        if let Mode::Tx(tx) = &mut self.mode {
            // Acks of an uncommitted transaction never happened: those messages
            // are still unacked, and so are requeued below.
            let pending: Vec<Unacked> = tx.settles.drain(..).flat_map(|(e, _)| e).collect();
            self.delivery.restore(pending);
        }
        delivery::requeue(self.delivery.close());
    }

    fn handle_header(
        &mut self,
        session: &mut Session,
        header: ContentHeader,
    ) -> Result<bool, MethodError> {
        let (class_id, body_size) = (header.class_id, header.body_size);
        let Some(content) = &mut self.content else {
            return Err(AmqpError::UnexpectedFrame(
                "expected method frame, got non method frame instead".into(),
            )
            .into());
        };
        if content.header.is_some() {
            return Err(MethodError::new(
                AmqpError::UnexpectedFrame(
                    "expected content body, got non content body frame instead".into(),
                ),
                60,
                40,
            ));
        }
        if class_id != 60 {
            return Err(AmqpError::FrameError(format!(
                "content header for class {class_id} on a basic.publish"
            ))
            .into());
        }
        if body_size > MAX_MESSAGE_SIZE {
            return Err(MethodError::new(
                AmqpError::PreconditionFailed(format!(
                    "message size {body_size} is larger than configured max size {MAX_MESSAGE_SIZE}"
                )),
                60,
                40,
            ));
        }
        content.charge.grow(header.properties.raw().len());
        content.header = Some(header);
        if body_size == 0 {
            self.finish_publish(session)?;
        }
        Ok(false)
    }

    fn handle_body(&mut self, session: &mut Session, data: Bytes) -> Result<bool, MethodError> {
        let Some(content) = &mut self.content else {
            return Err(AmqpError::UnexpectedFrame(
                "expected method frame, got non method frame instead".into(),
            )
            .into());
        };
        let Some(header) = &content.header else {
            return Err(AmqpError::UnexpectedFrame(
                "expected content header for class 60, got non content header frame instead".into(),
            )
            .into());
        };
        let body_size = header.body_size;
        content.received += data.len() as u64;
        if content.received > body_size {
            return Err(AmqpError::UnexpectedFrame(format!(
                "content body is longer than the {body_size} bytes its header announced"
            ))
            .into());
        }
        content.charge.grow(data.len());
        content.body = match std::mem::replace(&mut content.body, PendingBody::Empty) {
            PendingBody::Empty if content.received == body_size => PendingBody::Whole(data),
            PendingBody::Empty => {
                let mut joined = BytesMut::with_capacity(body_size.min(BODY_RESERVE) as usize);
                joined.extend_from_slice(&data);
                PendingBody::Joining(joined)
            }
            PendingBody::Whole(first) => {
                let mut joined = BytesMut::from(&first[..]);
                joined.extend_from_slice(&data);
                PendingBody::Joining(joined)
            }
            PendingBody::Joining(mut joined) => {
                joined.extend_from_slice(&data);
                PendingBody::Joining(joined)
            }
        };
        if content.received == body_size {
            self.finish_publish(session)?;
        }
        Ok(false)
    }

    /// The whole message is in: build it, then route it (or stash it in the transaction).
    fn finish_publish(&mut self, session: &mut Session) -> Result<(), MethodError> {
        let Some(Content {
            publish,
            header: Some(header),
            body,
            ..
        }) = self.content.take()
        else {
            return Ok(());
        };
        let err = |e: AmqpError| MethodError::new(e, 60, 40);
        session
            .perms
            .publish(
                &*session.vhost,
                publish.exchange.as_str(),
                publish.routing_key.as_str(),
            )
            .map_err(err)?;
        let body = match body {
            PendingBody::Empty => Bytes::new(),
            PendingBody::Whole(body) => body,
            PendingBody::Joining(joined) => joined.freeze(),
        };
        let view = header.properties.view();
        if let Some(user_id) = view.user_id {
            if user_id != session.user.name {
                return Err(err(AmqpError::PreconditionFailed(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    user_id, session.user.name
                ))));
            }
        }
        if let Some(expiration) = view.expiration {
            if let Err(reason) = crate::engine::arguments::parse_expiration(expiration) {
                return Err(err(AmqpError::PreconditionFailed(format!(
                    "invalid expiration '{expiration}': {reason}"
                ))));
            }
        }
        let direct_reply = view.reply_to == Some(reply_to::QUEUE);
        publish::check_routing_headers(&header.properties).map_err(err)?;
        let mut message = Message::new(
            publish.exchange.clone(),
            publish.routing_key,
            header.properties,
            body,
        );
        if direct_reply {
            let Some(name) = &self.reply_to else {
                return Err(err(AmqpError::PreconditionFailed(
                    "fast reply consumer does not exist".into(),
                )));
            };
            let properties = crate::engine::rebuild::edit_properties(
                &message,
                crate::engine::rebuild::Edit {
                    reply_to: Some(ShortString::from(name.as_str())),
                    ..Default::default()
                },
            );
            message = crate::engine::rebuild::rebuild(
                &message,
                message.exchange.clone(),
                message.routing_key.clone(),
                properties,
            );
        }
        let message = Arc::new(message);
        let exchange = publish.exchange.as_str();
        match &mut self.mode {
            Mode::Tx(tx) => {
                // Refuse a bad exchange now, as RabbitMQ does, not at commit.
                check_exchange(session, exchange).map_err(err)?;
                tx.publishes.push(TxPublish {
                    exchange: exchange.to_string(),
                    mandatory: publish.mandatory,
                    message,
                });
                Ok(())
            }
            Mode::Confirm { next_seq } => {
                let seq = *next_seq;
                *next_seq += 1;
                let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: seq,
                    multiple: false,
                }));
                let nack = AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: seq,
                    multiple: false,
                    requeue: false,
                }));
                match self
                    .route_and_enqueue(session, exchange, publish.mandatory, message)
                    .map_err(err)?
                {
                    Enqueued::Memory => self.send(session, ack),
                    Enqueued::Failed | Enqueued::Rejected => self.send(session, nack),
                    Enqueued::Stored => session.vhost.log.after_sync(SyncWaiter {
                        listener: session.handle.outbox.clone(),
                        channel: self.id,
                        on_synced: ack,
                        on_failure: Some(nack),
                    }),
                }
                Ok(())
            }
            Mode::Plain => self
                .route_and_enqueue(session, exchange, publish.mandatory, message)
                .map(|_| ())
                .map_err(err),
        }
    }

    /// Routes a message and enqueues it on every queue it reaches; returns it
    /// to the publisher (312 NO_ROUTE) when mandatory and unroutable. A
    /// persistent message bound for durable queues is first written to the
    /// log, once for all of them. `CC` and `BCC` headers add routing keys;
    /// `BCC` is removed before the message is enqueued.
    fn route_and_enqueue(
        &mut self,
        session: &Session,
        exchange: &str,
        mandatory: bool,
        mut message: Arc<Message>,
    ) -> Result<Enqueued, AmqpError> {
        let snap = session.vhost.snapshot();
        let mut targets = std::mem::take(&mut self.targets);
        let (extra_keys, bcc) = publish::extra_keys(&message);
        if exchange.is_empty() {
            let keys = std::iter::once(message.routing_key.as_str())
                .chain(extra_keys.iter().map(String::as_str));
            for key in keys {
                if let Some(queue) = snap.queues.get(key) {
                    if !targets.iter().any(|q| Arc::ptr_eq(q, queue)) {
                        targets.push(queue.clone());
                    }
                } else if key.starts_with(reply_to::PREFIX) {
                    targets.extend(session.vhost.reply_to.get(key));
                }
            }
        } else {
            let x = session.vhost.exchange(&snap, exchange)?;
            if x.internal {
                return Err(internal_exchange(exchange, &session.vhost.name));
            }
            let skip = match &x.extension {
                Extension::None => false,
                Extension::Delayed => {
                    if let Some(delay) = delayed::delay_of(&message) {
                        self.targets = targets;
                        if bcc {
                            message = Arc::new(publish::strip_bcc(&message));
                        }
                        let held = session
                            .vhost
                            .delayed
                            .hold(&session.vhost, &x, message, delay);
                        return Ok(if held.failed {
                            Enqueued::Failed
                        } else if held.stored {
                            Enqueued::Stored
                        } else {
                            Enqueued::Memory
                        });
                    }
                    false
                }
                // A repeat within the window is not routed.
                Extension::Deduplication(cache) => cache.is_duplicate(&message),
            };
            if !skip {
                let headers = message.lazy_headers();
                let routable = message.routable(&headers);
                snap.topology.route(exchange, &routable, &mut self.route);
                targets.extend(
                    self.route
                        .queues
                        .iter()
                        .filter_map(|name| snap.queues.get(name).cloned()),
                );
                for key in &extra_keys {
                    snap.topology.route(
                        exchange,
                        &RoutableMessage {
                            routing_key: key,
                            ..routable
                        },
                        &mut self.route,
                    );
                    for name in &self.route.queues {
                        if let Some(queue) = snap.queues.get(name) {
                            if !targets.iter().any(|q| Arc::ptr_eq(q, queue)) {
                                targets.push(queue.clone());
                            }
                        }
                    }
                }
            }
        }
        if bcc {
            message = Arc::new(publish::strip_bcc(&message));
        }
        let outcome = publish::enqueue(&session.vhost.log, &targets, message.clone());
        let routed = targets.len();
        targets.clear();
        self.targets = targets;
        if outcome.failed {
            return Ok(Enqueued::Failed);
        }
        if routed == 0 && mandatory {
            let frame_max = session.handle.frame_max;
            let id = self.id;
            session.handle.outbox.send(|out| {
                frame::push_method(
                    out,
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                        reply_code: 312,
                        reply_text: ShortString::from("NO_ROUTE"),
                        exchange: message.exchange.clone(),
                        routing_key: message.routing_key.clone(),
                    })),
                );
                message.encode_content(out, id, frame_max);
            });
        }
        Ok(if outcome.rejected {
            Enqueued::Rejected
        } else if outcome.stored {
            Enqueued::Stored
        } else {
            Enqueued::Memory
        })
    }

    /// Dispatches a method; Ok(true) when the channel is finished.
    fn handle_method(
        &mut self,
        session: &mut Session,
        method: AMQPClass,
        payload: &[u8],
    ) -> Result<bool, AmqpError> {
        match method {
            AMQPClass::Channel(m) => return self.channel_method(session, m),
            AMQPClass::Access(access::AMQPMethod::Request(_)) => self.send(
                session,
                AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
            ),
            AMQPClass::Access(_) => return Err(unexpected()),
            AMQPClass::Exchange(m) => self.exchange_method(session, m)?,
            AMQPClass::Queue(m) => self.queue_method(session, m)?,
            AMQPClass::Basic(m) => self.basic_method(session, m, payload)?,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(select)) => {
                match self.mode {
                    Mode::Tx(_) => {
                        return Err(AmqpError::PreconditionFailed(
                            "cannot switch from tx to confirm mode".into(),
                        ))
                    }
                    Mode::Plain => self.mode = Mode::Confirm { next_seq: 1 },
                    Mode::Confirm { .. } => {}
                }
                if !select.nowait {
                    self.send(
                        session,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    );
                }
            }
            AMQPClass::Confirm(_) => return Err(unexpected()),
            AMQPClass::Tx(m) => self.tx_method(session, m)?,
            AMQPClass::Connection(_) => return Err(unexpected()),
        }
        Ok(false)
    }

    fn channel_method(
        &mut self,
        session: &mut Session,
        method: chan::AMQPMethod,
    ) -> Result<bool, AmqpError> {
        match method {
            chan::AMQPMethod::Close(_) => {
                self.cleanup(session);
                self.send(
                    session,
                    AMQPClass::Channel(chan::AMQPMethod::CloseOk(chan::CloseOk {})),
                );
                Ok(true)
            }
            chan::AMQPMethod::CloseOk(_) => Ok(true),
            chan::AMQPMethod::Flow(flow) => {
                if !flow.active {
                    return Err(AmqpError::NotImplemented("active=false".into()));
                }
                self.send(
                    session,
                    AMQPClass::Channel(chan::AMQPMethod::FlowOk(chan::FlowOk { active: true })),
                );
                Ok(false)
            }
            chan::AMQPMethod::FlowOk(_) => Ok(false),
            chan::AMQPMethod::Open(_) | chan::AMQPMethod::OpenOk(_) => Err(unexpected()),
        }
    }

    fn exchange_method(
        &mut self,
        session: &mut Session,
        method: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = session.vhost.clone();
        let conn = session.handle.id;
        let reply = |nowait: bool, ok: exchange::AMQPMethod| {
            if !nowait {
                session.send_method(self.id, AMQPClass::Exchange(ok));
            }
        };
        match method {
            exchange::AMQPMethod::Declare(d) => {
                if !d.passive {
                    let (name, kind) = (d.exchange.as_str(), d.kind.as_str());
                    session
                        .perms
                        .exchange_declare(&*vhost, name, kind, &d.arguments)?;
                }
                vhost.declare_exchange(&ExchangeDeclare {
                    name: d.exchange.as_str(),
                    kind: d.kind.as_str(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: &d.arguments,
                })?;
                reply(
                    d.nowait,
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                );
            }
            exchange::AMQPMethod::Delete(d) => {
                session.perms.exchange_delete(d.exchange.as_str())?;
                vhost.delete_exchange(d.exchange.as_str(), d.if_unused)?;
                reply(
                    d.nowait,
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                );
            }
            exchange::AMQPMethod::Bind(b) => {
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                let (source, key) = (b.source.as_str(), b.routing_key.as_str());
                session.perms.bind(&*vhost, source, &destination, key)?;
                vhost.bind(
                    b.source.as_str(),
                    destination,
                    b.routing_key.as_str(),
                    &b.arguments,
                    conn,
                )?;
                reply(b.nowait, exchange::AMQPMethod::BindOk(exchange::BindOk {}));
            }
            exchange::AMQPMethod::Unbind(b) => {
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                let (source, key) = (b.source.as_str(), b.routing_key.as_str());
                session.perms.bind(&*vhost, source, &destination, key)?;
                vhost.unbind(
                    b.source.as_str(),
                    destination,
                    b.routing_key.as_str(),
                    &b.arguments,
                    conn,
                )?;
                reply(
                    b.nowait,
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                );
            }
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    /// The queue a method names; empty means the last one declared on this channel.
    fn queue_name(&self, name: &ShortString) -> Result<String, AmqpError> {
        if !name.as_str().is_empty() {
            return Ok(name.to_string());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::NotFound("no previously declared queue".into()))
    }

    fn queue_method(
        &mut self,
        session: &mut Session,
        method: q::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = session.vhost.clone();
        let conn = session.handle.id;
        match method {
            q::AMQPMethod::Declare(d) if d.passive && d.queue.as_str() == reply_to::QUEUE => {
                // RabbitMQ answers for the pseudo-queue as if it had one consumer.
                if !d.nowait {
                    self.send(
                        session,
                        AMQPClass::Queue(q::AMQPMethod::DeclareOk(q::DeclareOk {
                            queue: d.queue,
                            message_count: 0,
                            consumer_count: 1,
                        })),
                    );
                }
            }
            q::AMQPMethod::Declare(d) => {
                let name = if d.queue.as_str().is_empty() {
                    format!(
                        "amq.gen-{}",
                        Alphanumeric.sample_string(&mut rand::rng(), 22)
                    )
                } else {
                    if !d.passive && d.queue.as_str().starts_with("amq.") {
                        return Err(AmqpError::AccessRefused(format!(
                            "queue name '{}' contains reserved prefix 'amq.*'",
                            d.queue
                        )));
                    }
                    d.queue.to_string()
                };
                if !d.passive {
                    session.perms.queue_declare(&*vhost, &name, &d.arguments)?;
                }
                let (queue, messages, consumers) = vhost.declare_queue(&QueueDeclare {
                    name: &name,
                    passive: d.passive,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: &d.arguments,
                    connection: conn,
                })?;
                if queue.config.exclusive_owner == Some(conn)
                    && !session
                        .exclusive_queues
                        .iter()
                        .any(|q| Arc::ptr_eq(q, &queue))
                {
                    session.exclusive_queues.push(queue.clone());
                }
                self.last_queue = Some(name.clone());
                if !d.nowait {
                    self.send(
                        session,
                        AMQPClass::Queue(q::AMQPMethod::DeclareOk(q::DeclareOk {
                            queue: ShortString::from(name),
                            message_count: messages,
                            consumer_count: consumers,
                        })),
                    );
                }
            }
            q::AMQPMethod::Bind(b) => {
                let name = self.queue_name(&b.queue)?;
                let destination = Destination::Queue(Arc::from(name.as_str()));
                let (source, key) = (b.exchange.as_str(), b.routing_key.as_str());
                session.perms.bind(&*vhost, source, &destination, key)?;
                vhost.bind(
                    b.exchange.as_str(),
                    destination,
                    b.routing_key.as_str(),
                    &b.arguments,
                    conn,
                )?;
                if !b.nowait {
                    self.send(
                        session,
                        AMQPClass::Queue(q::AMQPMethod::BindOk(q::BindOk {})),
                    );
                }
            }
            q::AMQPMethod::Unbind(b) => {
                let name = self.queue_name(&b.queue)?;
                let destination = Destination::Queue(Arc::from(name.as_str()));
                let (source, key) = (b.exchange.as_str(), b.routing_key.as_str());
                session.perms.bind(&*vhost, source, &destination, key)?;
                vhost.unbind(
                    b.exchange.as_str(),
                    destination,
                    b.routing_key.as_str(),
                    &b.arguments,
                    conn,
                )?;
                self.send(
                    session,
                    AMQPClass::Queue(q::AMQPMethod::UnbindOk(q::UnbindOk {})),
                );
            }
            q::AMQPMethod::Purge(p) => {
                let name = self.queue_name(&p.queue)?;
                session.perms.check(Perm::Read, Resource::Queue, &name)?;
                let count = vhost.queue(&name, conn)?.purge();
                if !p.nowait {
                    self.send(
                        session,
                        AMQPClass::Queue(q::AMQPMethod::PurgeOk(q::PurgeOk {
                            message_count: count,
                        })),
                    );
                }
            }
            q::AMQPMethod::Delete(d) => {
                let name = self.queue_name(&d.queue)?;
                session
                    .perms
                    .check(Perm::Configure, Resource::Queue, &name)?;
                let count = vhost.delete_queue(&name, conn, d.if_unused, d.if_empty)?;
                session
                    .exclusive_queues
                    .retain(|q| q.name().as_ref() != name);
                if !d.nowait {
                    self.send(
                        session,
                        AMQPClass::Queue(q::AMQPMethod::DeleteOk(q::DeleteOk {
                            message_count: count,
                        })),
                    );
                }
            }
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn basic_method(
        &mut self,
        session: &mut Session,
        method: basic::AMQPMethod,
        payload: &[u8],
    ) -> Result<(), AmqpError> {
        match method {
            basic::AMQPMethod::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::NotImplemented("immediate=true".into()));
                }
                self.content = Some(Content {
                    publish: p,
                    header: None,
                    body: PendingBody::Empty,
                    received: 0,
                    charge: MemoryCharge::default(),
                });
            }
            basic::AMQPMethod::Qos(qos) => {
                // amq-protocol drops prefetch_size; it is the u32 after the method ids.
                let prefetch_size = payload
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if prefetch_size != 0 {
                    return Err(AmqpError::NotImplemented(format!(
                        "prefetch_size!=0 ({prefetch_size})"
                    )));
                }
                let count = u32::from(qos.prefetch_count);
                if qos.global {
                    self.delivery.set_global_prefetch(count);
                    self.kick_consumers();
                } else {
                    self.prefetch = count;
                }
                self.send(
                    session,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
            }
            basic::AMQPMethod::Consume(c) => self.consume(session, c)?,
            basic::AMQPMethod::Cancel(c) => {
                if let Some((consumer, queue)) = self.consumers.remove(c.consumer_tag.as_str()) {
                    if reply_to::is_reply_queue(&queue) {
                        self.reply_to = None;
                    }
                    release_consumer(session, &consumer, &queue);
                }
                if !c.nowait {
                    self.send(
                        session,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: c.consumer_tag,
                        })),
                    );
                }
            }
            basic::AMQPMethod::Get(g) => {
                let name = self.queue_name(&g.queue)?;
                session.perms.check(Perm::Read, Resource::Queue, &name)?;
                let queue = session.vhost.queue(&name, session.handle.id)?;
                match queue.get(g.no_ack) {
                    Some((message, remaining)) => self
                        .delivery
                        .deliver_get(&queue, message, remaining, g.no_ack),
                    None => self.send(
                        session,
                        AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                    ),
                }
            }
            basic::AMQPMethod::Ack(a) => self.settle(a.delivery_tag, a.multiple, Outcome::Ack)?,
            basic::AMQPMethod::Reject(r) => {
                let outcome = if r.requeue {
                    Outcome::Requeue
                } else {
                    Outcome::Discard
                };
                self.settle(r.delivery_tag, false, outcome)?
            }
            basic::AMQPMethod::Nack(n) => {
                let outcome = if n.requeue {
                    Outcome::Requeue
                } else {
                    Outcome::Discard
                };
                self.settle(n.delivery_tag, n.multiple, outcome)?
            }
            basic::AMQPMethod::Recover(r) => {
                self.recover(r.requeue)?;
                self.send(
                    session,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
            }
            basic::AMQPMethod::RecoverAsync(r) => self.recover(r.requeue)?,
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn consume(&mut self, session: &mut Session, c: basic::Consume) -> Result<(), AmqpError> {
        let name = self.queue_name(&c.queue)?;
        let reply = name == reply_to::QUEUE;
        if reply {
            if !c.no_ack {
                return Err(AmqpError::PreconditionFailed(
                    "reply consumer cannot acknowledge".into(),
                ));
            }
            if self.reply_to.is_some() {
                return Err(AmqpError::PreconditionFailed(
                    "reply consumer already set".into(),
                ));
            }
        }
        let found = if reply {
            // RabbitMQ checks no permission for the reply pseudo-queue.
            None
        } else {
            session.perms.check(Perm::Read, Resource::Queue, &name)?;
            Some(session.vhost.queue(&name, session.handle.id)?)
        };
        if let Some(queue) = &found {
            if queue.args().is_quorum() && self.delivery.global_prefetch() > 0 {
                return Err(AmqpError::NotImplemented(format!(
                    "queue '{name}' in vhost '{}' does not support global qos",
                    session.vhost.name
                )));
            }
        }
        self.consumers
            .retain(|_, (consumer, _)| !consumer.is_cancelled());
        let tag = if c.consumer_tag.as_str().is_empty() {
            format!(
                "amq.ctag-{}",
                Alphanumeric.sample_string(&mut rand::rng(), 22)
            )
        } else {
            c.consumer_tag.to_string()
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::NotAllowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let priority = match c.arguments.inner().get("x-priority") {
            None => 0,
            Some(v) => value_as_i64(v)
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| {
                    AmqpError::PreconditionFailed(format!(
                        "invalid arg 'x-priority' for consumer '{tag}': expected an integer"
                    ))
                })?,
        };
        let queue = match found {
            Some(queue) => queue,
            None => session
                .vhost
                .reply_to
                .create(&session.vhost, session.handle.id),
        };
        let consumer = Consumer::new(
            ShortString::from(tag.clone()),
            queue.name().clone(),
            self.delivery.clone(),
            c.no_ack,
            c.exclusive,
            priority,
            self.prefetch,
        );
        let ok = (!c.nowait).then(|| {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: ShortString::from(tag.clone()),
            }))
        });
        let outbox = session.handle.outbox.clone();
        let id = self.id;
        queue.add_consumer(consumer.clone(), move || {
            if let Some(ok) = ok {
                outbox.send(|out| frame::push_method(out, id, ok));
            }
        })?;
        if reply {
            self.reply_to = Some(queue.name().to_string());
        }
        self.consumers.insert(tag, (consumer, queue));
        Ok(())
    }

    /// ack / nack / reject: takes the entries now (so a double ack is refused
    /// even inside a transaction) and applies them now or at commit.
    fn settle(&mut self, tag: u64, multiple: bool, outcome: Outcome) -> Result<(), AmqpError> {
        let entries = self.delivery.settle(tag, multiple)?;
        if let Mode::Tx(tx) = &mut self.mode {
            tx.settles.push((entries, outcome));
            return Ok(());
        }
        self.apply(entries, outcome);
        Ok(())
    }

    fn apply(&self, entries: Vec<Unacked>, outcome: Outcome) {
        match outcome {
            Outcome::Ack => {
                for entry in &entries {
                    entry.queue.settle(&entry.message);
                }
            }
            Outcome::Discard => {
                for entry in entries {
                    entry.queue.reject(entry.message);
                }
            }
            Outcome::Requeue => delivery::requeue(entries),
        }
        self.kick_consumers();
    }

    /// Lets this channel's queues deliver into prefetch room that just freed up.
    fn kick_consumers(&self) {
        let mut seen: Vec<&Arc<Queue>> = Vec::with_capacity(self.consumers.len());
        for (_, queue) in self.consumers.values() {
            if !seen.iter().any(|q| Arc::ptr_eq(q, queue)) {
                seen.push(queue);
                queue.dispatch();
            }
        }
    }

    fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::NotImplemented("requeue=false".into()));
        }
        delivery::requeue(self.delivery.take_all());
        self.kick_consumers();
        Ok(())
    }

    fn tx_method(
        &mut self,
        session: &mut Session,
        method: tx::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let not_tx = || AmqpError::PreconditionFailed("channel is not transactional".into());
        match method {
            tx::AMQPMethod::Select(_) => {
                match self.mode {
                    Mode::Confirm { .. } => {
                        return Err(AmqpError::PreconditionFailed(
                            "cannot switch from confirm to tx mode".into(),
                        ))
                    }
                    Mode::Plain => self.mode = Mode::Tx(Tx::default()),
                    Mode::Tx(_) => {}
                }
                self.send(
                    session,
                    AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                );
            }
            tx::AMQPMethod::Commit(_) => {
                let Mode::Tx(tx) = &mut self.mode else {
                    return Err(not_tx());
                };
                let tx = std::mem::take(tx);
                let mut stored = false;
                for p in tx.publishes {
                    // An exchange deleted since the publish just routes nowhere.
                    match self.route_and_enqueue(session, &p.exchange, p.mandatory, p.message) {
                        Ok(Enqueued::Stored) => stored = true,
                        Ok(Enqueued::Failed) => {
                            return Err(AmqpError::InternalError(
                                "cannot write a persistent message to the log".into(),
                            ))
                        }
                        Ok(Enqueued::Memory | Enqueued::Rejected) | Err(AmqpError::NotFound(_)) => {
                        }
                        Err(e) => return Err(e),
                    }
                }
                for (entries, outcome) in tx.settles {
                    self.apply(entries, outcome);
                }
                let ok = AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}));
                if stored {
                    // commit-ok means the transaction's persistent messages are on disk.
                    session.vhost.log.after_sync(SyncWaiter {
                        listener: session.handle.outbox.clone(),
                        channel: self.id,
                        on_synced: ok,
                        on_failure: None,
                    });
                } else {
                    self.send(session, ok);
                }
            }
            tx::AMQPMethod::Rollback(_) => {
                let Mode::Tx(tx) = &mut self.mode else {
                    return Err(not_tx());
                };
                let tx = std::mem::take(tx);
                let entries: Vec<Unacked> = tx.settles.into_iter().flat_map(|(e, _)| e).collect();
                self.delivery.restore(entries);
                self.send(
                    session,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
            }
            _ => return Err(unexpected()),
        }
        Ok(())
    }
}

/// Takes a consumer off its queue: auto-deletes the queue if that was its
/// last consumer, and drops a direct reply-to consumer's private queue.
fn release_consumer(session: &Session, consumer: &Arc<Consumer>, queue: &Arc<Queue>) {
    if reply_to::is_reply_queue(queue) {
        queue.remove_consumer(consumer);
        session.vhost.reply_to.remove(queue);
    } else if queue.remove_consumer(consumer) {
        session.vhost.remove_queue(queue);
    }
}

fn unexpected() -> AmqpError {
    AmqpError::CommandInvalid("unexpected method from client".into())
}

fn internal_exchange(name: &str, vhost: &str) -> AmqpError {
    AmqpError::AccessRefused(format!(
        "cannot publish to internal exchange '{name}' in vhost '{vhost}'"
    ))
}

/// Publish-time checks on the target exchange: it exists and is not internal.
fn check_exchange(session: &Session, name: &str) -> Result<(), AmqpError> {
    if name.is_empty() {
        return Ok(());
    }
    let snap = session.vhost.snapshot();
    let x = session.vhost.exchange(&snap, name)?;
    if x.internal {
        return Err(internal_exchange(name, &session.vhost.name));
    }
    Ok(())
}
