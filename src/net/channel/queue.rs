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
use crate::engine::vhost::QueueDeclare;
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
}
