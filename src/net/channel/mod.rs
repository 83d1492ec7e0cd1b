//! One AMQP channel: the frames its connection hands it, and what each method
//! does, one file per AMQP class: `exchange.rs`, `queue.rs`, `basic.rs`,
//! `publish.rs` (basic.publish and its content frames), `tx.rs` (confirm and
//! tx), `confirms.rs` (the acks and nacks owed to a confirming publisher,
//! coalesced). `session.rs` is what a channel needs of its connection.
//!
//! A `Channel` lives on its connection's task and is only touched there. It
//! turns methods into calls on the engine: the vhost (declare, bind, delete),
//! queues (consume, get, purge), the publish pipeline, and its own
//! [`DeliveryChannel`] (acks, qos). Channel-level errors (403, 404, 405, 406)
//! close only the channel: it sends channel.close, releases its consumers and
//! unacked messages, and ignores the client until channel.close-ok.
//!
//! This module must not route (the engine's publish pipeline does) nor touch
//! the socket (everything goes through the session's client link).

mod basic;
mod confirms;
mod exchange;
mod publish;
mod queue;
mod session;
mod tx;

pub(crate) use session::Session;

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::protocol::{access, channel as chan, confirm, AMQPClass};
use amq_protocol::types::{FieldTable, ShortString};
use tracing::debug;
use warren_routing::Destination;

use crate::engine::publish::Router;
use crate::engine::queue::consumer::Consumer;
use crate::engine::queue::delivery::{self, DeliveryChannel, Unacked};
use crate::engine::queue::Queue;
use crate::engine::reply_to;
use crate::protocol::constants::BASIC_PUBLISH;
use crate::protocol::error::{AmqpError, MethodError};
use crate::protocol::frame::Frame;

use publish::Content;
use tx::Mode;

pub(crate) struct Channel {
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
    /// The publish pipeline's scratch, reused across publishes.
    router: Router,
    /// The reply name of this channel's direct reply-to consumer.
    reply_to: Option<String>,
}

impl Channel {
    pub(crate) fn open(id: u16, session: &Session) -> Self {
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
            router: Router::default(),
            reply_to: None,
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    fn send(&self, session: &Session, method: AMQPClass) {
        session.send_method(self.id, method);
    }

    /// Handles one frame for this channel. Ok(true): the channel is finished
    /// and must be forgotten. Err: a connection-level error.
    pub(crate) fn handle(
        &mut self,
        session: &mut Session,
        frame: Frame,
    ) -> Result<bool, MethodError> {
        if self.closing {
            return Ok(self.while_closing(session, frame));
        }
        if !is_publish(&frame) {
            // Whatever this frame makes the channel say comes after the
            // confirms of the publishes before it.
            self.flush_confirms();
        }
        let result = match frame {
            Frame::Method {
                method,
                class_id,
                method_id,
                payload,
                ..
            } => {
                self.no_content_pending()?;
                self.handle_method(session, *method, &payload)
                    .map_err(|e| MethodError::new(e, class_id, method_id))
            }
            Frame::Refused {
                class_id,
                method_id,
                error,
                ..
            } => {
                self.no_content_pending()?;
                Err(MethodError::new(error, class_id, method_id))
            }
            Frame::Header { header, .. } => self.handle_header(session, header),
            Frame::Body { data, .. } => self.handle_body(session, data),
            Frame::Heartbeat => Ok(false),
        };
        match result {
            Err(e) if !e.error.closes_connection() => {
                self.fail(session, e);
                Ok(false)
            }
            other => other,
        }
    }

    /// After this channel sent channel.close, only close-ok (or the client's
    /// own close) matters. True when the channel is done.
    fn while_closing(&mut self, session: &mut Session, frame: Frame) -> bool {
        let Frame::Method { method, .. } = frame else {
            return false;
        };
        match *method {
            AMQPClass::Channel(chan::AMQPMethod::CloseOk(_)) => true,
            AMQPClass::Channel(chan::AMQPMethod::Close(_)) => {
                self.send(
                    session,
                    AMQPClass::Channel(chan::AMQPMethod::CloseOk(chan::CloseOk {})),
                );
                true
            }
            _ => false,
        }
    }

    /// A method while a publish's content is still expected is a connection
    /// error naming the publish, as RabbitMQ does.
    fn no_content_pending(&self) -> Result<(), MethodError> {
        let Some(content) = &self.content else {
            return Ok(());
        };
        let text = if content.header.is_none() {
            "expected content header for class 60, got non content header frame instead"
        } else {
            "expected content body, got non content body frame instead"
        };
        Err(MethodError::on(
            AmqpError::UnexpectedFrame(text.into()),
            BASIC_PUBLISH,
        ))
    }

    fn flush_confirms(&self) {
        if let Mode::Confirm { confirms, .. } = &self.mode {
            confirms.flush();
        }
    }

    /// Closes this channel with a channel-level error.
    fn fail(&mut self, session: &mut Session, e: MethodError) {
        debug!(channel = self.id, error = %e.error, "closing channel");
        self.flush_confirms();
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
    pub(crate) fn cleanup(&mut self, session: &mut Session) {
        if let Mode::Confirm { confirms, .. } = &self.mode {
            // Publishes still waiting for the disk go unanswered, as in RabbitMQ.
            confirms.close();
        }
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

    /// Dispatches a method to its class; Ok(true) when the channel is finished.
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
                self.confirm_select(session, select)?
            }
            AMQPClass::Confirm(_) => return Err(unexpected()),
            AMQPClass::Tx(m) => self.tx_method(session, m)?,
            AMQPClass::Connection(_) => return Err(unexpected()),
        }
        Ok(false)
    }

    /// The channel class: close, close-ok, flow.
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
}

impl Channel {
    /// queue.bind / exchange.bind (`bind`) or their unbinds: write permission
    /// on the destination, read on the source (and the topic permission),
    /// then the vhost.
    fn change_binding(
        &self,
        session: &Session,
        bind: bool,
        source: &ShortString,
        destination: Destination,
        routing_key: &ShortString,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        let vhost = &session.vhost;
        let (source, key) = (source.as_str(), routing_key.as_str());
        session.perms.bind(&**vhost, source, &destination, key)?;
        let conn = session.handle.id;
        if bind {
            vhost.bind(source, destination, key, arguments, conn)
        } else {
            vhost.unbind(source, destination, key, arguments, conn)
        }
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

/// A basic.publish or its content: frames whose confirms may be coalesced.
fn is_publish(frame: &Frame) -> bool {
    match frame {
        Frame::Method {
            class_id,
            method_id,
            ..
        } => (*class_id, *method_id) == BASIC_PUBLISH,
        Frame::Header { .. } | Frame::Body { .. } | Frame::Heartbeat => true,
        Frame::Refused { .. } => false,
    }
}
