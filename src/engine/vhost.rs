//! A virtual host: its exchanges, queues and bindings.
//!
//! Publishers read a vhost through an immutable [`Snapshot`] loaded from an
//! `ArcSwap`: routing a message takes no lock at all. Declares, deletes and
//! binds are rare next to publishes; they serialise on one admin mutex, copy the
//! snapshot (queues and exchanges are `Arc`s, the topology copies only the
//! exchange it changes) and swap the copy in. This module owns those metadata
//! rules (naming, equivalence, exclusivity, auto-delete); it does not touch
//! message state, which belongs to each [`Queue`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::FieldTable;
use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;
use warren_routing::{Destination, ExchangeKind, Topology};

use crate::engine::arguments::{self, check_equivalent, inequivalent_property};
use crate::engine::dead_lettering;
use crate::engine::exchange::{self, delayed, Exchange, Extension};
use crate::engine::message::Message;
use crate::engine::policy::Policies;
use crate::engine::publish::{self, routing_keys, Router};
use crate::engine::queue::consumer::Consumer;
use crate::engine::queue::dead_letter::DeadLetter;
use crate::engine::queue::QueueOwner;
use crate::engine::queue::{Queue, QueueConfig};
use crate::protocol::error::{in_vhost, AmqpError};
use crate::protocol::frame;
use crate::store::meta::{BindingDef, ExchangeDef, QueueDef};
use crate::store::{MessageLog, Meta};

/// Everything a publisher needs to route, as one immutable value.
#[derive(Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) topology: Topology,
    pub(crate) exchanges: HashMap<Arc<str>, Arc<Exchange>>,
    pub(crate) queues: HashMap<Arc<str>, Arc<Queue>>,
}

/// exchange.declare as the vhost sees it.
pub(crate) struct ExchangeDeclare<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: &'a FieldTable,
}

/// queue.declare as the vhost sees it (the name already generated if it was empty).
pub(crate) struct QueueDeclare<'a> {
    pub(crate) name: &'a str,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: &'a FieldTable,
    /// The declaring connection.
    pub(crate) connection: u64,
}

/// The system exchanges every vhost has.
const SYSTEM_EXCHANGES: &[(&str, ExchangeKind, bool)] = &[
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

pub(crate) struct VHost {
    pub(crate) name: Arc<str>,
    /// Itself, handed to queues (dead-lettering, x-expires).
    me: Weak<VHost>,
    /// Direct reply-to consumers.
    pub(crate) reply_to: crate::engine::reply_to::Registry,
    /// Messages held by delayed-message exchanges.
    pub(crate) delayed: crate::engine::exchange::delayed::Delayed,
    state: ArcSwap<Snapshot>,
    admin: Mutex<()>,
    meta: Arc<Meta>,
    /// Persistent messages of this vhost's durable queues.
    pub(crate) log: Arc<MessageLog>,
    /// Policies of this vhost (`crate::engine::policy`); they apply to existing and future objects.
    pub(crate) policies: Policies,
}

fn persist_error(e: std::io::Error) -> AmqpError {
    tracing::error!(error = %e, "cannot persist a definition");
    AmqpError::InternalError(format!("cannot persist definition: {e}"))
}

impl VHost {
    pub(crate) fn new(name: &str, meta: Arc<Meta>, log: Arc<MessageLog>) -> Arc<Self> {
        let mut snap = Snapshot::default();
        for (xname, kind, internal) in SYSTEM_EXCHANGES {
            let xname: Arc<str> = Arc::from(*xname);
            snap.topology.add_exchange(&xname, *kind);
            snap.exchanges.insert(
                xname.clone(),
                Arc::new(Exchange {
                    name: xname,
                    kind: *kind,
                    durable: true,
                    auto_delete: false,
                    internal: *internal,
                    arguments: FieldTable::default(),
                    extension: Extension::None,
                }),
            );
        }
        Arc::new_cyclic(|me| Self {
            name: Arc::from(name),
            me: me.clone(),
            reply_to: Default::default(),
            delayed: Default::default(),
            state: ArcSwap::from_pointee(snap),
            admin: Mutex::new(()),
            policies: Policies::default(),
            meta,
            log,
        })
    }

    /// Rebuilds the durable definitions read from the store at start-up.
    /// Returns the durable queues by log id, for the recovered messages.
    pub(crate) fn restore(
        &self,
        exchanges: &[ExchangeDef],
        queues: &[QueueDef],
        bindings: &[BindingDef],
    ) -> HashMap<u32, Arc<Queue>> {
        let mut by_id = HashMap::new();
        let _ = self.update(|snap| {
            for x in exchanges.iter().filter(|x| *x.vhost == *self.name) {
                let Ok((kind, extension)) = exchange::resolve(&x.kind, &x.arguments) else {
                    tracing::error!(exchange = %x.name, kind = %x.kind, "stored exchange has an unknown type; skipped");
                    continue;
                };
                let name: Arc<str> = Arc::from(x.name.as_str());
                snap.topology.add_exchange(&name, kind);
                if let Some(table) = snap.topology.exchange_mut(&name) {
                    table.set_alternate_exchange(alternate_exchange(&x.arguments));
                }
                snap.exchanges.insert(
                    name.clone(),
                    Arc::new(Exchange {
                        name,
                        kind,
                        durable: true,
                        auto_delete: x.auto_delete,
                        internal: x.internal,
                        arguments: x.arguments.clone(),
                        extension,
                    }),
                );
            }
            for q in queues.iter().filter(|q| *q.vhost == *self.name) {
                let name: Arc<str> = Arc::from(q.name.as_str());
                let queue = Queue::new(
                    QueueConfig {
                        name: name.clone(),
                        vhost: self.name.clone(),
                        durable: true,
                        exclusive_owner: None,
                        auto_delete: q.auto_delete,
                        arguments: q.arguments.clone(),
                    },
                    Some((self.log.clone(), q.id)),
                    self.me.clone(),
                );
                if let Some(policy) = self.policies.effective(false, &name) {
                    queue.apply_policy(Some(&policy.definition));
                }
                by_id.insert(q.id, queue.clone());
                snap.queues.insert(name, queue);
            }
            for b in bindings.iter().filter(|b| *b.vhost == *self.name) {
                let destination = if b.destination_type == "exchange" {
                    Destination::Exchange(Arc::from(b.destination.as_str()))
                } else {
                    Destination::Queue(Arc::from(b.destination.as_str()))
                };
                if let Err(e) =
                    snap.topology
                        .bind(&b.source, destination, &b.routing_key, &b.arguments)
                {
                    tracing::error!(source = %b.source, destination = %b.destination, error = ?e, "stored binding skipped");
                }
            }
            Ok(())
        });
        by_id
    }

    /// The current state, for routing and lookups. Cheap; takes no lock.
    pub(crate) fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.state.load()
    }

    /// Applies a change to a copy of the state and publishes it.
    fn update<R>(
        &self,
        change: impl FnOnce(&mut Snapshot) -> Result<R, AmqpError>,
    ) -> Result<R, AmqpError> {
        let _admin = self.admin.lock();
        let mut snap = Snapshot::clone(&self.state.load());
        let result = change(&mut snap)?;
        self.state.store(Arc::new(snap));
        Ok(result)
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::NotFound(format!("no {}", in_vhost("exchange", name, &self.name)))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::NotFound(format!("no {}", in_vhost("queue", name, &self.name)))
    }

    fn locked(&self, name: &str) -> AmqpError {
        AmqpError::ResourceLocked(format!(
            "cannot obtain exclusive access to locked {}. It could be originally declared on \
             another connection or the exclusive property value does not match that of the \
             original declaration.",
            in_vhost("queue", name, &self.name)
        ))
    }

    /// Looks up an exchange for publishing (404 when missing).
    pub(crate) fn exchange(&self, snap: &Snapshot, name: &str) -> Result<Arc<Exchange>, AmqpError> {
        snap.exchanges
            .get(name)
            .cloned()
            .ok_or_else(|| self.no_exchange(name))
    }

    /// Looks up a queue as `connection` may use it (404 missing, 405 someone else's exclusive queue).
    pub(crate) fn queue(&self, name: &str, connection: u64) -> Result<Arc<Queue>, AmqpError> {
        let snap = self.snapshot();
        let queue = snap.queues.get(name).ok_or_else(|| self.no_queue(name))?;
        match queue.config.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked(name)),
            _ => Ok(queue.clone()),
        }
    }

    pub(crate) fn declare_exchange(&self, req: &ExchangeDeclare<'_>) -> Result<(), AmqpError> {
        if req.name.is_empty() {
            return Err(AmqpError::AccessRefused(
                "operation not permitted on the default exchange".into(),
            ));
        }
        if req.passive {
            return self.exchange(&self.snapshot(), req.name).map(|_| ());
        }
        if let Some(existing) = self.snapshot().exchanges.get(req.name) {
            return self.check_exchange_equivalent(existing, req);
        }
        let (kind, extension) = exchange::resolve(req.kind, req.arguments)?;
        if req.name.starts_with("amq.") {
            return Err(AmqpError::AccessRefused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                req.name
            )));
        }
        self.update(|snap| {
            if let Some(existing) = snap.exchanges.get(req.name) {
                return self.check_exchange_equivalent(existing, req);
            }
            let name: Arc<str> = Arc::from(req.name);
            snap.topology.add_exchange(&name, kind);
            if let Some(table) = snap.topology.exchange_mut(&name) {
                let ae = alternate_exchange(req.arguments)
                    .or_else(|| self.policies.alternate_exchange(&name));
                table.set_alternate_exchange(ae);
            }
            if req.durable {
                self.meta
                    .put_exchange(&ExchangeDef {
                        vhost: self.name.to_string(),
                        name: req.name.to_string(),
                        kind: extension.type_name(kind).to_string(),
                        durable: true,
                        auto_delete: req.auto_delete,
                        internal: req.internal,
                        arguments: req.arguments.clone(),
                    })
                    .map_err(persist_error)?;
            }
            snap.exchanges.insert(
                name.clone(),
                Arc::new(Exchange {
                    name,
                    kind,
                    durable: req.durable,
                    auto_delete: req.auto_delete,
                    internal: req.internal,
                    arguments: req.arguments.clone(),
                    extension,
                }),
            );
            Ok(())
        })
    }

    /// Re-applies the policies to every exchange (after a policy changed):
    /// an `alternate-exchange` argument wins over the policy's. Queues take
    /// their policy's limits, TTLs and dead-lettering too (`queue_args.rs`).
    pub(crate) fn refresh_policies(&self) {
        for queue in self.snapshot().queues.values() {
            self.apply_queue_policy(queue);
        }
        let _ = self.update(|snap| {
            for x in snap.exchanges.values() {
                let ae = alternate_exchange(&x.arguments)
                    .or_else(|| self.policies.alternate_exchange(&x.name));
                let current = snap
                    .topology
                    .exchange(&x.name)
                    .map(|t| t.alternate_exchange());
                if current.is_some_and(|c| c != ae.as_ref()) {
                    if let Some(table) = snap.topology.exchange_mut(&x.name) {
                        table.set_alternate_exchange(ae);
                    }
                }
            }
            Ok(())
        });
    }

    /// Gives a queue the policy that matches it now (or none).
    fn apply_queue_policy(&self, queue: &Arc<Queue>) {
        let policy = self.policies.effective(false, queue.name());
        queue.apply_policy(policy.as_ref().map(|p| &p.definition));
    }

    fn check_exchange_equivalent(
        &self,
        existing: &Exchange,
        req: &ExchangeDeclare<'_>,
    ) -> Result<(), AmqpError> {
        let differ = |property: &str, received: String, current: String| {
            inequivalent_property(
                "exchange", req.name, &self.name, property, received, current,
            )
        };
        let current = existing.extension.type_name(existing.kind);
        if current != req.kind {
            if ExchangeKind::parse(req.kind).is_none()
                && ![exchange::DELAYED, exchange::DEDUPLICATION].contains(&req.kind)
            {
                return Err(AmqpError::CommandInvalid(format!(
                    "invalid exchange type '{}'",
                    req.kind
                )));
            }
            return Err(differ("type", req.kind.into(), current.into()));
        }
        if existing.durable != req.durable {
            return Err(differ(
                "durable",
                req.durable.to_string(),
                existing.durable.to_string(),
            ));
        }
        if existing.auto_delete != req.auto_delete {
            return Err(differ(
                "auto_delete",
                req.auto_delete.to_string(),
                existing.auto_delete.to_string(),
            ));
        }
        if existing.internal != req.internal {
            return Err(differ(
                "internal",
                req.internal.to_string(),
                existing.internal.to_string(),
            ));
        }
        check_equivalent(
            "exchange",
            req.name,
            &self.name,
            arguments::EXCHANGE_COMPARED,
            &existing.arguments,
            req.arguments,
        )
    }

    pub(crate) fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(AmqpError::AccessRefused(
                "operation not permitted on the default exchange".into(),
            ));
        }
        if SYSTEM_EXCHANGES.iter().any(|(n, _, _)| *n == name) {
            return Err(AmqpError::AccessRefused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        if !self.snapshot().exchanges.contains_key(name) {
            return Ok(());
        }
        self.update(|snap| {
            if !snap.exchanges.contains_key(name) {
                return Ok(());
            }
            let in_use = snap
                .topology
                .exchange(name)
                .is_some_and(|x| x.binding_count() > 0);
            if if_unused && in_use {
                return Err(AmqpError::PreconditionFailed(format!(
                    "{} in use",
                    in_vhost("exchange", name, &self.name)
                )));
            }
            let before = auto_delete_counts(snap);
            if let Some(x) = snap.exchanges.remove(name) {
                if x.durable {
                    self.forget_exchange(name)?;
                }
            }
            snap.topology.remove_exchange(name);
            self.reap_auto_delete(snap, before)?;
            Ok(())
        })
    }

    /// Declares (or checks) a queue; returns it with its ready and consumer counts.
    pub(crate) fn declare_queue(
        &self,
        req: &QueueDeclare<'_>,
    ) -> Result<(Arc<Queue>, u32, u32), AmqpError> {
        if !req.passive {
            arguments::validate_queue_arguments(req.name, &self.name, req.arguments)?;
            crate::engine::queue::args::check_queue_type(
                req.name,
                &self.name,
                req.durable,
                req.exclusive,
                req.auto_delete,
                req.arguments,
            )?;
        }
        let existing = self.snapshot().queues.get(req.name).cloned();
        let queue = match existing {
            Some(queue) => {
                self.check_queue_equivalent(&queue, req)?;
                queue
            }
            None if req.passive => return Err(self.no_queue(req.name)),
            None => self.update(|snap| {
                if let Some(queue) = snap.queues.get(req.name) {
                    self.check_queue_equivalent(queue, req)?;
                    return Ok(queue.clone());
                }
                let name: Arc<str> = Arc::from(req.name);
                // Exclusive queues die with their connection, so a restart never
                // finds them: only durable, non-exclusive queues are stored.
                let store = if req.durable && !req.exclusive {
                    let id = self.meta.next_queue_id().map_err(persist_error)?;
                    self.meta
                        .put_queue(&QueueDef {
                            vhost: self.name.to_string(),
                            name: req.name.to_string(),
                            id,
                            auto_delete: req.auto_delete,
                            arguments: req.arguments.clone(),
                        })
                        .map_err(persist_error)?;
                    Some((self.log.clone(), id))
                } else {
                    None
                };
                let queue = Queue::new(
                    QueueConfig {
                        name: name.clone(),
                        vhost: self.name.clone(),
                        durable: req.durable,
                        exclusive_owner: req.exclusive.then_some(req.connection),
                        auto_delete: req.auto_delete,
                        arguments: req.arguments.clone(),
                    },
                    store,
                    self.me.clone(),
                );
                if let Some(policy) = self.policies.effective(false, &name) {
                    queue.apply_policy(Some(&policy.definition));
                }
                snap.queues.insert(name, queue.clone());
                Ok(queue)
            })?,
        };
        queue.touch();
        Ok((queue.clone(), queue.message_count(), queue.consumer_count()))
    }

    fn check_queue_equivalent(
        &self,
        queue: &Queue,
        req: &QueueDeclare<'_>,
    ) -> Result<(), AmqpError> {
        let cfg = &queue.config;
        if let Some(owner) = cfg.exclusive_owner {
            if owner != req.connection {
                return Err(self.locked(req.name));
            }
        }
        if req.passive {
            return Ok(());
        }
        if cfg.exclusive_owner.is_some() != req.exclusive {
            return Err(self.locked(req.name));
        }
        let differ = |property: &str, received: bool, current: bool| {
            inequivalent_property("queue", req.name, &self.name, property, received, current)
        };
        if cfg.durable != req.durable {
            return Err(differ("durable", req.durable, cfg.durable));
        }
        if cfg.auto_delete != req.auto_delete {
            return Err(differ("auto_delete", req.auto_delete, cfg.auto_delete));
        }
        check_equivalent(
            "queue",
            req.name,
            &self.name,
            arguments::QUEUE_COMPARED,
            &cfg.arguments,
            req.arguments,
        )
    }

    /// Deletes a queue (missing is fine) for queue.delete; returns its ready
    /// count and the consumers it had, whose clients the caller tells
    /// (basic.cancel) once it has answered delete-ok, in RabbitMQ's order.
    pub(crate) fn delete_queue(
        &self,
        name: &str,
        connection: u64,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<(u32, Vec<Arc<Consumer>>), AmqpError> {
        let queue = match self.queue(name, connection) {
            Ok(queue) => queue,
            Err(AmqpError::NotFound(_)) => return Ok((0, Vec::new())),
            Err(e) => return Err(e),
        };
        queue.check_delete(if_unused, if_empty)?;
        Ok(self.take_queue(&queue).unwrap_or_default())
    }

    /// Removes a queue unconditionally (exclusive owner gone, auto-delete,
    /// `x-expires`) and cancels its consumers; returns its ready count.
    pub(crate) fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        let Some((count, consumers)) = self.take_queue(queue) else {
            return 0;
        };
        for consumer in consumers {
            notify_cancel(&consumer);
        }
        count
    }

    /// Takes a queue out of the vhost (and the store); returns its ready
    /// count and its consumers, not told yet. None if it was already gone.
    fn take_queue(&self, queue: &Arc<Queue>) -> Option<(u32, Vec<Arc<Consumer>>)> {
        let removed = self.update(|snap| {
            let Some(current) = snap.queues.get(queue.name()) else {
                return Ok(false);
            };
            if !Arc::ptr_eq(current, queue) {
                return Ok(false);
            }
            let before = auto_delete_counts(snap);
            snap.queues.remove(queue.name());
            snap.topology.remove_queue(queue.name());
            if queue.log_id().is_some() {
                self.meta
                    .remove_queue(&self.name, queue.name())
                    .and_then(|_| {
                        self.meta
                            .remove_bindings_of(&self.name, "queue", queue.name())
                    })
                    .map_err(persist_error)?;
            }
            self.reap_auto_delete(snap, before)?;
            Ok(true)
        });
        if !matches!(removed, Ok(true)) {
            return None;
        }
        Some(queue.delete())
    }

    pub(crate) fn bind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
        connection: u64,
    ) -> Result<(), AmqpError> {
        self.check_binding_ends(source, &destination, connection)?;
        if self.snapshot().topology.exchange(source).is_some_and(|x| {
            x.bindings()
                .iter()
                .any(|(d, k, a)| d == &destination && &**k == routing_key && a == arguments)
        }) {
            return Ok(());
        }
        self.update(|snap| {
            if !snap.exchanges.contains_key(source) {
                return Err(self.no_exchange(source));
            }
            snap.topology
                .bind(source, destination.clone(), routing_key, arguments)
                .map_err(|e| match e {
                    warren_routing::BindError::InvalidArgument(text) => {
                        AmqpError::PreconditionFailed(text)
                    }
                    warren_routing::BindError::NoSourceExchange => self.no_exchange(source),
                })?;
            if let Some(def) = durable_binding(
                snap,
                &self.name,
                source,
                &destination,
                routing_key,
                arguments,
            ) {
                self.meta.put_binding(&def).map_err(persist_error)?;
            }
            Ok(())
        })
    }

    pub(crate) fn unbind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
        connection: u64,
    ) -> Result<(), AmqpError> {
        refuse_default_exchange(source, &destination)?;
        let exists = self.snapshot().topology.exchange(source).is_some_and(|x| {
            x.bindings()
                .iter()
                .any(|(d, k, a)| d == &destination && &**k == routing_key && a == arguments)
        });
        if !exists {
            // RabbitMQ 3.10 answers unbind-ok for a binding that does not
            // exist, whether or not its exchange or queue does (aio-pika's
            // RPC unbinds a queue that auto-deleted a moment before).
            return Ok(());
        }
        self.check_binding_ends(source, &destination, connection)?;
        self.update(|snap| {
            let before = auto_delete_counts(snap);
            if let Some(def) = durable_binding(
                snap,
                &self.name,
                source,
                &destination,
                routing_key,
                arguments,
            ) {
                self.meta.remove_binding(&def).map_err(persist_error)?;
            }
            snap.topology
                .unbind(source, &destination, routing_key, arguments);
            self.reap_auto_delete(snap, before)?;
            Ok(())
        })
    }

    fn check_binding_ends(
        &self,
        source: &str,
        destination: &Destination,
        connection: u64,
    ) -> Result<(), AmqpError> {
        refuse_default_exchange(source, destination)?;
        // The source is checked first: RabbitMQ names a missing source even
        // when the queue is missing or another connection's exclusive one.
        if !self.snapshot().exchanges.contains_key(source) {
            return Err(self.no_exchange(source));
        }
        match destination {
            Destination::Queue(q) => {
                self.queue(q, connection)?;
            }
            Destination::Exchange(x) => {
                if !self.snapshot().exchanges.contains_key(&**x) {
                    return Err(self.no_exchange(x));
                }
            }
        }
        Ok(())
    }
}

/// The default exchange takes no bindings and loses none (403, before any
/// other check, as in RabbitMQ).
fn refuse_default_exchange(source: &str, destination: &Destination) -> Result<(), AmqpError> {
    if source.is_empty() || matches!(destination, Destination::Exchange(x) if x.is_empty()) {
        return Err(AmqpError::AccessRefused(
            "operation not permitted on the default exchange".into(),
        ));
    }
    Ok(())
}

impl VHost {
    fn forget_exchange(&self, name: &str) -> Result<(), AmqpError> {
        self.meta
            .remove_exchange(&self.name, name)
            .and_then(|_| self.meta.remove_bindings_of(&self.name, "exchange", name))
            .map_err(persist_error)
    }

    /// Deletes auto-delete exchanges that lost their last binding in this change
    /// (and, transitively, those that lost theirs because of that).
    fn reap_auto_delete(
        &self,
        snap: &mut Snapshot,
        mut before: Vec<(Arc<str>, usize)>,
    ) -> Result<(), AmqpError> {
        loop {
            let doomed: Vec<Arc<str>> = before
                .iter()
                .filter(|(name, count)| {
                    *count > 0
                        && snap
                            .topology
                            .exchange(name)
                            .is_some_and(|t| t.binding_count() == 0)
                })
                .map(|(name, _)| name.clone())
                .collect();
            if doomed.is_empty() {
                return Ok(());
            }
            before = auto_delete_counts(snap);
            for name in doomed {
                if let Some(x) = snap.exchanges.remove(&name) {
                    if x.durable {
                        self.forget_exchange(&name)?;
                    }
                }
                snap.topology.remove_exchange(&name);
            }
        }
    }
}

fn alternate_exchange(arguments: &FieldTable) -> Option<Arc<str>> {
    arguments
        .inner()
        .get("alternate-exchange")
        .and_then(crate::protocol::field::value_as_str)
        .map(Arc::from)
}

/// The stored form of a binding, if both its ends are durable (RabbitMQ keeps
/// only bindings between durable objects across a restart).
fn durable_binding(
    snap: &Snapshot,
    vhost: &str,
    source: &str,
    destination: &Destination,
    routing_key: &str,
    arguments: &FieldTable,
) -> Option<BindingDef> {
    if !snap.exchanges.get(source).is_some_and(|x| x.durable) {
        return None;
    }
    let (kind, name) = match destination {
        Destination::Queue(q) => {
            snap.queues.get(&**q)?.log_id()?;
            ("queue", q)
        }
        Destination::Exchange(x) => {
            if !snap.exchanges.get(&**x)?.durable {
                return None;
            }
            ("exchange", x)
        }
    };
    Some(BindingDef {
        vhost: vhost.to_string(),
        source: source.to_string(),
        destination_type: kind.to_string(),
        destination: name.to_string(),
        routing_key: routing_key.to_string(),
        arguments: arguments.clone(),
    })
}

/// Binding counts of the auto-delete exchanges, taken before a change.
fn auto_delete_counts(snap: &Snapshot) -> Vec<(Arc<str>, usize)> {
    snap.exchanges
        .values()
        .filter(|x| x.auto_delete)
        .map(|x| {
            let count = snap
                .topology
                .exchange(&x.name)
                .map_or(0, |t| t.binding_count());
            (x.name.clone(), count)
        })
        .collect()
}

/// Tells a consumer's client that the server cancelled it (queue deleted), if
/// the client announced consumer_cancel_notify.
pub(crate) fn notify_cancel(consumer: &Arc<Consumer>) {
    let conn = &consumer.channel.conn;
    if !conn.consumer_cancel_notify {
        return;
    }
    let channel = consumer.channel.id;
    let tag = consumer.tag.clone();
    conn.send(|out| {
        frame::push_method(
            out,
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: tag,
                nowait: true,
            })),
        )
    });
}

impl crate::access::permissions::VhostObjects for VHost {
    fn has_exchange(&self, name: &str) -> bool {
        self.snapshot().exchanges.contains_key(name)
    }

    fn has_queue(&self, name: &str) -> bool {
        self.snapshot().queues.contains_key(name)
    }

    fn exchange_kind(&self, name: &str) -> Option<(ExchangeKind, bool)> {
        self.snapshot()
            .exchanges
            .get(name)
            .map(|x| (x.kind, x.internal))
    }
}

impl QueueOwner for VHost {
    fn dead_letter(&self, queue: &Arc<Queue>, letters: Vec<DeadLetter>) {
        match self.me.upgrade() {
            Some(me) => dead_lettering::emit(&me, queue, letters),
            None => {
                for letter in letters {
                    queue.settle_location(letter.location);
                }
            }
        }
    }

    fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        VHost::remove_queue(self, queue)
    }
}

impl delayed::Owner for VHost {
    fn delayed(&self) -> &delayed::Delayed {
        &self.delayed
    }

    fn log(&self) -> &MessageLog {
        &self.log
    }

    /// A released message goes through its exchange as the exchange's type
    /// and bindings are now (nowhere if the exchange is gone).
    fn release(&self, exchange: &str, message: Arc<Message>) -> bool {
        let snap = self.snapshot();
        let mut router = Router::default();
        let (keys, _) = routing_keys(&message);
        let targets: &[Arc<Queue>] = if snap.exchanges.contains_key(exchange) {
            router.collect(&snap, self, exchange, &keys, &message)
        } else {
            &[]
        };
        !publish::enqueue(&self.log, targets, message).failed
    }
}
