//! The exchange class on a channel: declare, delete, bind, unbind
//! (exchange-to-exchange). Permissions are checked here, in RabbitMQ's order;
//! the vhost decides the rest.

use std::sync::Arc;

use amq_protocol::protocol::{exchange, AMQPClass};
use warren_routing::Destination;

use super::{unexpected, Channel, Session};
use crate::engine::vhost::ExchangeDeclare;
use crate::protocol::error::AmqpError;

impl Channel {
    pub(super) fn exchange_method(
        &mut self,
        session: &mut Session,
        method: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = session.vhost.clone();
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
                self.change_binding(
                    session,
                    true,
                    &b.source,
                    destination,
                    &b.routing_key,
                    &b.arguments,
                )?;
                reply(b.nowait, exchange::AMQPMethod::BindOk(exchange::BindOk {}));
            }
            exchange::AMQPMethod::Unbind(b) => {
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                self.change_binding(
                    session,
                    false,
                    &b.source,
                    destination,
                    &b.routing_key,
                    &b.arguments,
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
}
