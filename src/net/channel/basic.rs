//! The basic class on a channel, but for publishing (`publish.rs`): qos,
//! consume and cancel, get, ack / nack / reject, recover.
//!
//! Deliveries themselves are the queues' doing, through this channel's
//! [`DeliveryChannel`](crate::engine::queue::delivery::DeliveryChannel);
//! settling takes entries out of it first and only then goes back to their
//! queues (the lock order of `docs/ARCHITECTURE.md`).

use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::ShortString;
use rand::distr::{Alphanumeric, SampleString};

use super::{release_consumer, unexpected, Channel, Mode, Session};
use crate::access::permissions::{Perm, Resource};
use crate::engine::queue::consumer::Consumer;
use crate::engine::queue::delivery::{self, Unacked};
use crate::engine::queue::Queue;
use crate::engine::reply_to;
use crate::protocol::error::AmqpError;
use crate::protocol::field::value_as_i64;
use crate::protocol::frame;

/// What a settled delivery turns into once it takes effect.
#[derive(Clone, Copy)]
pub(super) enum Settle {
    Ack,
    Requeue,
    Discard,
}

impl Channel {
    pub(super) fn basic_method(
        &mut self,
        session: &mut Session,
        method: basic::AMQPMethod,
        payload: &[u8],
    ) -> Result<(), AmqpError> {
        match method {
            basic::AMQPMethod::Publish(p) => self.start_publish(p)?,
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
            basic::AMQPMethod::Ack(a) => self.settle(a.delivery_tag, a.multiple, Settle::Ack)?,
            basic::AMQPMethod::Reject(r) => {
                let outcome = if r.requeue {
                    Settle::Requeue
                } else {
                    Settle::Discard
                };
                self.settle(r.delivery_tag, false, outcome)?
            }
            basic::AMQPMethod::Nack(n) => {
                let outcome = if n.requeue {
                    Settle::Requeue
                } else {
                    Settle::Discard
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

    pub(super) fn consume(
        &mut self,
        session: &mut Session,
        c: basic::Consume,
    ) -> Result<(), AmqpError> {
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
            None => session.vhost.reply_to.create(
                session.vhost.name.clone(),
                &session.vhost,
                session.handle.id,
            ),
        };
        let consumer = Consumer::new(
            ShortString::from(tag.clone()),
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
        let link = session.handle.clone();
        let id = self.id;
        queue.add_consumer(consumer.clone(), move || {
            if let Some(ok) = ok {
                link.send(|out| frame::push_method(out, id, ok));
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
    pub(super) fn settle(
        &mut self,
        tag: u64,
        multiple: bool,
        outcome: Settle,
    ) -> Result<(), AmqpError> {
        let entries = self.delivery.settle(tag, multiple)?;
        if let Mode::Tx(tx) = &mut self.mode {
            tx.settles.push((entries, outcome));
            return Ok(());
        }
        self.apply(entries, outcome);
        Ok(())
    }

    pub(super) fn apply(&self, entries: Vec<Unacked>, outcome: Settle) {
        match outcome {
            Settle::Ack => {
                for entry in &entries {
                    entry.queue.settle(&entry.message);
                }
            }
            Settle::Discard => {
                for entry in entries {
                    entry.queue.reject(entry.message);
                }
            }
            Settle::Requeue => delivery::requeue(entries),
        }
        self.kick_consumers();
    }

    /// Lets this channel's queues deliver into prefetch room that just freed up.
    pub(super) fn kick_consumers(&self) {
        let mut seen: Vec<&Arc<Queue>> = Vec::with_capacity(self.consumers.len());
        for (_, queue) in self.consumers.values() {
            if !seen.iter().any(|q| Arc::ptr_eq(q, queue)) {
                seen.push(queue);
                queue.dispatch();
            }
        }
    }

    pub(super) fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::NotImplemented("requeue=false".into()));
        }
        delivery::requeue(self.delivery.take_all());
        self.kick_consumers();
        Ok(())
    }
}
