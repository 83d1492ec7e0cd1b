//! The broker's state in RabbitMQ's definitions format.
//!
//! Like RabbitMQ, the export leaves out exclusive queues (and bindings to
//! them), the default exchange and the `amq.*` system exchanges; every list is
//! sorted so that two exports of the same state are the same document.

use serde_json::{Map, Value};
use warren_routing::Destination;

use super::model::*;
use super::RABBIT_VERSION;
use crate::engine::broker::Broker;

/// Everything, as `GET /api/definitions` and `rabbitmqctl export_definitions` give it.
pub(crate) fn export(broker: &Broker) -> Definitions {
    let mut d = Definitions {
        rabbit_version: Some(RABBIT_VERSION.into()),
        rabbitmq_version: Some(RABBIT_VERSION.into()),
        product_name: Some("Warren".into()),
        product_version: Some(env!("CARGO_PKG_VERSION").into()),
        ..Definitions::default()
    };
    for u in broker.users.list() {
        let default_loopback = u.name == "guest" && !broker.options.guest_remote;
        d.users.push(UserDef {
            name: u.name.clone(),
            password: None,
            password_hash: Some(u.password_hash.clone()),
            hashing_algorithm: Some(u.hashing_algorithm.as_str().into()),
            tags: u.tags.clone(),
            limits: Some(u.limits.clone()),
            loopback_only: (u.loopback_only != default_loopback).then_some(u.loopback_only),
        });
    }
    for (user, vhost, access) in broker.permissions.list() {
        if let Some(p) = &access.permission {
            d.permissions.push(PermissionDef {
                user: user.clone(),
                vhost: vhost.clone(),
                configure: p.configure.as_str().into(),
                write: p.write.as_str().into(),
                read: p.read.as_str().into(),
            });
        }
        let mut topics: Vec<_> = access.topic.iter().collect();
        topics.sort_by(|a, b| a.0.cmp(b.0));
        for (exchange, t) in topics {
            d.topic_permissions.push(TopicPermissionDef {
                user: user.clone(),
                vhost: vhost.clone(),
                exchange: exchange.clone(),
                write: t.write.as_str().into(),
                read: t.read.as_str().into(),
            });
        }
    }
    for p in broker.parameters.list() {
        d.parameters.push(ParameterDef {
            value: p.value,
            vhost: p.vhost,
            component: p.component,
            name: p.name,
        });
    }
    for (name, value) in broker.parameters.list_global() {
        d.global_parameters.push(GlobalParameterDef { name, value });
    }
    for name in broker.vhost_names() {
        let info = broker
            .vhost_info(&name)
            .unwrap_or_else(|| crate::engine::broker::VhostInfo::new(""));
        d.vhosts.push(VhostDef {
            name: name.clone(),
            limits: Some(info.limits),
            metadata: Some(info.metadata),
            description: None,
        });
        let mut part = export_vhost_objects(broker, &name);
        d.policies.append(&mut part.policies);
        d.queues.append(&mut part.queues);
        d.exchanges.append(&mut part.exchanges);
        d.bindings.append(&mut part.bindings);
    }
    d
}

/// Policies, queues, exchanges and bindings of one vhost.
pub(crate) fn export_vhost_objects(broker: &Broker, vhost_name: &str) -> Definitions {
    let mut d = Definitions::default();
    let Some(vhost) = broker.vhost(vhost_name) else {
        return d;
    };
    for p in vhost.policies.list() {
        d.policies.push(PolicyDef {
            vhost: vhost_name.into(),
            name: p.name.clone(),
            pattern: p.pattern.clone(),
            apply_to: p.apply_to.as_str().into(),
            definition: p.definition.clone(),
            priority: p.priority,
        });
    }
    let snap = vhost.snapshot();
    let mut queues: Vec<_> = snap
        .queues
        .values()
        .filter(|q| q.config.exclusive_owner.is_none())
        .collect();
    queues.sort_by(|a, b| a.name().cmp(b.name()));
    for q in queues {
        let arguments = from_field_table(&q.config.arguments);
        let kind = arguments
            .get("x-queue-type")
            .and_then(Value::as_str)
            .unwrap_or("classic")
            .to_string();
        d.queues.push(QueueDef {
            name: q.name().to_string(),
            vhost: vhost_name.into(),
            durable: q.config.durable,
            auto_delete: q.config.auto_delete,
            arguments,
            kind: Some(kind),
        });
    }
    let mut exchanges: Vec<_> = snap
        .exchanges
        .values()
        .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."))
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    for x in exchanges {
        d.exchanges.push(ExchangeDef {
            name: x.name.to_string(),
            vhost: vhost_name.into(),
            kind: x.extension.type_name(x.kind).into(),
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: from_field_table(&x.arguments),
        });
    }
    for b in snap.topology.bindings() {
        let (destination_type, destination) = match &b.destination {
            Destination::Queue(q) => {
                let exclusive = snap
                    .queues
                    .get(q)
                    .is_some_and(|q| q.config.exclusive_owner.is_some());
                if exclusive {
                    continue;
                }
                ("queue", q)
            }
            Destination::Exchange(x) => ("exchange", x),
        };
        d.bindings.push(BindingDef {
            source: b.source.to_string(),
            vhost: vhost_name.into(),
            destination: destination.to_string(),
            destination_type: destination_type.into(),
            routing_key: b.routing_key.to_string(),
            arguments: from_field_table(&b.arguments),
        });
    }
    d.bindings.sort_by_key(BindingDef::key);
    d
}

/// One vhost, as `GET /api/definitions/{vhost}` gives it: no users, vhosts or
/// permissions, and no `vhost` key in the entries.
pub(crate) fn export_vhost(broker: &Broker, vhost: &str) -> Option<Value> {
    broker.vhost(vhost)?;
    let d = export_vhost_objects(broker, vhost);
    let strip = |items: Value| -> Value {
        match items {
            Value::Array(list) => Value::Array(
                list.into_iter()
                    .map(|mut item| {
                        if let Value::Object(m) = &mut item {
                            m.remove("vhost");
                        }
                        item
                    })
                    .collect(),
            ),
            other => other,
        }
    };
    let mut out = Map::new();
    out.insert("rabbit_version".into(), RABBIT_VERSION.into());
    out.insert("rabbitmq_version".into(), RABBIT_VERSION.into());
    out.insert("product_name".into(), "Warren".into());
    out.insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
    let parameters: Vec<ParameterDef> = broker
        .parameters
        .list()
        .into_iter()
        .filter(|p| p.vhost == vhost)
        .map(|p| ParameterDef {
            value: p.value,
            vhost: p.vhost,
            component: p.component,
            name: p.name,
        })
        .collect();
    let to_value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Array(Vec::new()));
    out.insert(
        "parameters".into(),
        strip(to_value(serde_json::to_value(parameters))),
    );
    out.insert(
        "policies".into(),
        strip(to_value(serde_json::to_value(&d.policies))),
    );
    out.insert(
        "queues".into(),
        strip(to_value(serde_json::to_value(&d.queues))),
    );
    out.insert(
        "exchanges".into(),
        strip(to_value(serde_json::to_value(&d.exchanges))),
    );
    out.insert(
        "bindings".into(),
        strip(to_value(serde_json::to_value(&d.bindings))),
    );
    Some(Value::Object(out))
}
