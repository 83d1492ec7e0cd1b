//! The queue class on a channel: declare (server-named queues, exclusive
//! ownership, the direct reply-to pseudo-queue), bind, unbind, purge, delete.
//! An empty queue name means the last queue declared on this channel.

use std::sync::Arc;

use amq_protocol::protocol::{queue as q, AMQPClass};
use amq_protocol::types::ShortString;
use rand::distr::{Alphanumeric, SampleString};
use warren_routing::Destination;

use super::{unexpected, Channel, Session};
use crate::access::permissions::{Perm, Resource};
use crate::engine::reply_to;
use crate::engine::vhost::{notify_cancel, QueueDeclare};
use crate::protocol::error::AmqpError;

impl Channel {
    /// The queue a method names; empty means the last one declared on this channel.
    pub(super) fn queue_name(&self, name: &ShortString) -> Result<String, AmqpError> {
        if !name.as_str().is_empty() {
            return Ok(name.to_string());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::NotFound("no previously declared queue".into()))
    }

    pub(super) fn queue_method(
        &mut self,
        session: &mut Session,
        method: q::AMQPMethod,
    ) -> Result<(), AmqpError> {
        match method {
            q::AMQPMethod::Declare(d) => self.queue_declare(session, d),
            q::AMQPMethod::Bind(b) => {
                let name = self.queue_name(&b.queue)?;
                let destination = Destination::Queue(Arc::from(name.as_str()));
                self.change_binding(
                    session,
                    true,
                    &b.exchange,
                    destination,
                    &b.routing_key,
                    &b.arguments,
                )?;
                if !b.nowait {
                    self.send(
                        session,
                        AMQPClass::Queue(q::AMQPMethod::BindOk(q::BindOk {})),
                    );
                }
                Ok(())
            }
            q::AMQPMethod::Unbind(b) => {
                let name = self.queue_name(&b.queue)?;
                let destination = Destination::Queue(Arc::from(name.as_str()));
                self.change_binding(
                    session,
                    false,
                    &b.exchange,
                    destination,
                    &b.routing_key,
                    &b.arguments,
                )?;
                self.send(
                    session,
                    AMQPClass::Queue(q::AMQPMethod::UnbindOk(q::UnbindOk {})),
                );
                Ok(())
            }
            q::AMQPMethod::Purge(p) => self.queue_purge(session, p),
            q::AMQPMethod::Delete(d) => self.queue_delete(session, d),
            _ => Err(unexpected()),
        }
    }

    /// queue.declare: a server-named queue gets `amq.gen-...`; `amq.` names
    /// are reserved; a passive declare of the direct reply-to pseudo-queue is
    /// answered as RabbitMQ does.
    fn queue_declare(&mut self, session: &mut Session, d: q::Declare) -> Result<(), AmqpError> {
        let ok = |name: String, messages: u32, consumers: u32| {
            AMQPClass::Queue(q::AMQPMethod::DeclareOk(q::DeclareOk {
                queue: ShortString::from(name),
                message_count: messages,
                consumer_count: consumers,
            }))
        };
        if d.passive && d.queue.as_str() == reply_to::QUEUE {
            // RabbitMQ answers for the pseudo-queue as if it had one consumer.
            if !d.nowait {
                self.send(session, ok(d.queue.to_string(), 0, 1));
            }
            return Ok(());
        }
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
        let vhost = session.vhost.clone();
        let conn = session.handle.id;
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
            self.send(session, ok(name, messages, consumers));
        }
        Ok(())
    }

    /// queue.purge: drops the ready messages (unacked ones stay).
    fn queue_purge(&mut self, session: &mut Session, p: q::Purge) -> Result<(), AmqpError> {
        let name = self.queue_name(&p.queue)?;
        session.perms.check(Perm::Read, Resource::Queue, &name)?;
        let count = session.vhost.queue(&name, session.handle.id)?.purge();
        if !p.nowait {
            self.send(
                session,
                AMQPClass::Queue(q::AMQPMethod::PurgeOk(q::PurgeOk {
                    message_count: count,
                })),
            );
        }
        Ok(())
    }

    /// queue.delete, with `if_unused` / `if_empty`; a missing queue is fine.
    fn queue_delete(&mut self, session: &mut Session, d: q::Delete) -> Result<(), AmqpError> {
        let name = self.queue_name(&d.queue)?;
        session
            .perms
            .check(Perm::Configure, Resource::Queue, &name)?;
        let (count, consumers) =
            session
                .vhost
                .delete_queue(&name, session.handle.id, d.if_unused, d.if_empty)?;
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
        // As RabbitMQ: delete-ok first, then the consumers' basic.cancel.
        for consumer in &consumers {
            notify_cancel(consumer);
        }
        Ok(())
    }
}
