//! Publishing on a channel: frames to a message, the engine's publish
//! pipeline, then what the publisher is told (a basic.return, a confirm).
//!
//! `basic.publish` opens a pending content; the header gives the size; a
//! single-frame body is kept as its slice of the read buffer, a multi-frame
//! one is joined as its frames arrive (charged to the memory alarm
//! meanwhile). Once complete, the checks that need the whole message run
//! (permissions, user_id, expiration, CC/BCC, direct reply-to) and the
//! message goes to [`Router::publish`](crate::engine::publish::Router::publish),
//! which owns every routing decision. This file decides only what to answer.

use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::ShortString;
use bytes::{Bytes, BytesMut};

use super::confirms::Confirms;
use super::tx::{Mode, TxPublish};
use super::{Channel, Session};
use crate::engine::memory::MemoryCharge;
use crate::engine::message::Message;
use crate::engine::publish::{self, Outcome};
use crate::engine::rebuild::{self, Edit};
use crate::engine::reply_to;
use crate::protocol::constants::{BASIC, BASIC_PUBLISH};
use crate::protocol::content::ContentHeader;
use crate::protocol::error::{AmqpError, MethodError};

/// RabbitMQ's default max_message_size.
pub(crate) const MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

/// A publish whose content is still arriving.
pub(super) struct Content {
    publish: basic::Publish,
    pub(super) header: Option<ContentHeader>,
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

impl Channel {
    /// basic.publish: the content follows in header and body frames.
    pub(super) fn start_publish(&mut self, publish: basic::Publish) -> Result<(), AmqpError> {
        if publish.immediate {
            return Err(AmqpError::NotImplemented("immediate=true".into()));
        }
        self.content = Some(Content {
            publish,
            header: None,
            body: PendingBody::Empty,
            received: 0,
            charge: MemoryCharge::default(),
        });
        Ok(())
    }

    pub(super) fn handle_header(
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
            return Err(MethodError::on(
                AmqpError::UnexpectedFrame(
                    "expected content body, got non content body frame instead".into(),
                ),
                BASIC_PUBLISH,
            ));
        }
        if class_id != BASIC {
            return Err(AmqpError::FrameError(format!(
                "content header for class {class_id} on a basic.publish"
            ))
            .into());
        }
        if body_size > MAX_MESSAGE_SIZE {
            return Err(MethodError::on(
                AmqpError::PreconditionFailed(format!(
                    "message size {body_size} is larger than configured max size {MAX_MESSAGE_SIZE}"
                )),
                BASIC_PUBLISH,
            ));
        }
        content.charge.grow(header.properties.raw().len());
        content.header = Some(header);
        if body_size == 0 {
            self.finish_publish(session)?;
        }
        Ok(false)
    }

    pub(super) fn handle_body(
        &mut self,
        session: &mut Session,
        data: Bytes,
    ) -> Result<bool, MethodError> {
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

    /// The whole message is in: build it, then publish it (or keep it for
    /// the transaction) and answer as the channel's mode says.
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
        let err = |e: AmqpError| MethodError::on(e, BASIC_PUBLISH);
        let exchange = publish.exchange.as_str();
        session
            .perms
            .publish(&*session.vhost, exchange, publish.routing_key.as_str())
            .map_err(err)?;
        let message = self.message(session, &publish, header, body).map_err(err)?;
        if let Mode::Tx(tx) = &mut self.mode {
            // Refuse a bad exchange now, as RabbitMQ does, not at commit.
            if !exchange.is_empty() {
                let snap = session.vhost.snapshot();
                publish::check_target(&session.vhost, &snap, exchange).map_err(err)?;
            }
            tx.publishes.push(TxPublish {
                exchange: exchange.to_string(),
                mandatory: publish.mandatory,
                message,
            });
            return Ok(());
        }
        let confirm = match &mut self.mode {
            Mode::Confirm { next_seq, confirms } => {
                *next_seq += 1;
                Some((*next_seq - 1, confirms.clone()))
            }
            _ => None,
        };
        let outcome = self
            .publish(session, exchange, publish.mandatory, message)
            .map_err(err)?;
        if let Some((seq, confirms)) = confirm {
            Self::confirm(&confirms, session, seq, outcome);
        }
        Ok(())
    }

    /// The message, from its frames, with the checks that need it whole:
    /// `user_id` must be the user's, `expiration` must read, `CC`/`BCC` must be
    /// arrays; a `reply_to` of `amq.rabbitmq.reply-to` becomes this channel's
    /// reply name (direct reply-to).
    fn message(
        &self,
        session: &Session,
        publish: &basic::Publish,
        header: ContentHeader,
        body: PendingBody,
    ) -> Result<Arc<Message>, AmqpError> {
        let body = match body {
            PendingBody::Empty => Bytes::new(),
            PendingBody::Whole(body) => body,
            PendingBody::Joining(joined) => joined.freeze(),
        };
        let view = header.properties.view();
        if let Some(user_id) = view.user_id {
            if user_id != session.user.name {
                return Err(AmqpError::PreconditionFailed(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    user_id, session.user.name
                )));
            }
        }
        if let Some(expiration) = view.expiration {
            if let Err(reason) = crate::protocol::content::parse_expiration(expiration) {
                return Err(AmqpError::PreconditionFailed(format!(
                    "invalid expiration '{expiration}': {reason}"
                )));
            }
        }
        let direct_reply = view.reply_to == Some(reply_to::QUEUE);
        publish::check_routing_headers(&header.properties)?;
        let message = Message::new(
            publish.exchange.clone(),
            publish.routing_key.clone(),
            header.properties,
            body,
        );
        if !direct_reply {
            return Ok(Arc::new(message));
        }
        let Some(name) = &self.reply_to else {
            return Err(AmqpError::PreconditionFailed(
                "fast reply consumer does not exist".into(),
            ));
        };
        let properties = rebuild::edit_properties(
            &message,
            Edit {
                reply_to: Some(ShortString::from(name.as_str())),
                ..Default::default()
            },
        );
        Ok(Arc::new(rebuild::rebuild(
            &message,
            message.exchange.clone(),
            message.routing_key.clone(),
            properties,
        )))
    }

    /// Publishes through the engine's pipeline; a mandatory message that
    /// reached no queue comes back (basic.return 312 NO_ROUTE, before its
    /// confirm: both go through the same outbox, in order).
    pub(super) fn publish(
        &mut self,
        session: &Session,
        exchange: &str,
        mandatory: bool,
        message: Arc<Message>,
    ) -> Result<Outcome, AmqpError> {
        let published = self.router.publish(&session.vhost, exchange, message)?;
        if mandatory && !published.routed && !published.outcome.failed {
            let frame_max = session.handle.frame_max;
            let id = self.id;
            let message = published.message;
            session.handle.send(|out| {
                message.encode(
                    out,
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                        reply_code: 312,
                        reply_text: ShortString::from("NO_ROUTE"),
                        exchange: message.exchange.clone(),
                        routing_key: message.routing_key.clone(),
                    })),
                    frame_max,
                );
            });
        }
        Ok(published.outcome)
    }

    /// The confirm of publish `seq`: a nack if a queue refused it or the log
    /// could not take it, an ack once it is on disk if it was stored, an ack
    /// now otherwise. Answers go out coalesced (see [`Confirms`]).
    fn confirm(confirms: &Arc<Confirms>, session: &mut Session, seq: u64, outcome: Outcome) {
        if outcome.stored && !outcome.failed && !outcome.rejected {
            session.vhost.log.after_sync(confirms.after_sync(seq));
        } else if confirms.decided(seq, !(outcome.failed || outcome.rejected)) {
            session.confirms_to_flush.push(confirms.clone());
        }
    }
}
