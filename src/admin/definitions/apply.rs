//! Putting a definitions file into the broker.
//!
//! * [`import`] (boot-time `--definitions`, `POST /api/definitions`): creates
//!   what is missing; users, vhost metadata, permissions, policies and
//!   parameters that differ are updated as RabbitMQ's import does, and
//!   reported; a queue or exchange whose properties differ is reported by name
//!   and left as it is (changing it would drop messages or bindings).
//!   Importing the same file twice changes nothing.
//! * [`apply`] (`warren definitions apply`): makes the broker match the file:
//!   import, plus replacing queues/exchanges that differ and, with prune,
//!   deleting what the file does not mention.
//!
//! Both validate the whole file first: a bad file changes nothing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_routing::Destination;

use super::export::export;
use super::model::*;
use super::plan::{self, Op, Plan, Target};
use super::validate::{validate, SYSTEM_EXCHANGES};
use super::{Definitions, DefinitionsError};
use crate::access::auth::User;
use crate::access::password::{self, HashingAlgorithm};
use crate::access::permissions::{Permission, TopicPermission};
use crate::engine::broker::{Broker, VhostInfo};
use crate::engine::policy::{Parameter, Policy};
use crate::engine::vhost::{ExchangeDeclare, QueueDeclare};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) created: Vec<String>,
    pub(crate) updated: Vec<String>,
    /// Objects whose properties differ from the file's, left unchanged.
    pub(crate) conflicts: Vec<String>,
    /// Things stored but not enforced yet, skipped entries, dangling references.
    pub(crate) warnings: Vec<String>,
}

impl Report {
    /// Nothing was created or changed.
    #[cfg(test)]
    pub(crate) fn is_noop(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty()
    }
}

/// Validates the file, then creates what is missing (see the module docs).
pub(crate) fn import(broker: &Broker, desired: &Definitions) -> Result<Report, DefinitionsError> {
    let existing = export(broker);
    let warnings = validate(desired, &existing)?;
    let mut report = Report {
        warnings,
        ..Report::default()
    };
    apply_objects(broker, desired, &mut report)?;
    persist(broker)?;
    Ok(report)
}

/// Saves the access-control part of the broker's state after a change.
fn persist(broker: &Broker) -> Result<(), DefinitionsError> {
    broker
        .persist_access()
        .map_err(|e| DefinitionsError::Apply(format!("cannot persist users and permissions: {e}")))
}

/// Makes the broker match the file; returns the plan that was carried out.
pub(crate) fn apply(
    broker: &Broker,
    desired: &Definitions,
    prune: bool,
) -> Result<(Plan, Report), DefinitionsError> {
    let existing = export(broker);
    let warnings = validate(desired, &validation_context(&existing, prune))?;
    let plan = plan::plan(&existing, desired, prune);
    for change in &plan.changes {
        if matches!(change.op, Op::Delete | Op::Replace) {
            if let Some(target) = &change.target {
                delete(broker, target)?;
            }
        }
    }
    let mut report = Report {
        warnings,
        ..Report::default()
    };
    apply_objects(broker, desired, &mut report)?;
    persist(broker)?;
    Ok((plan, report))
}

/// What a file may refer to without defining it: everything the broker has,
/// or with prune (what the file does not mention goes) only the defaults.
pub(crate) fn validation_context(existing: &Definitions, prune: bool) -> Definitions {
    if !prune {
        return existing.clone();
    }
    Definitions {
        vhosts: existing
            .vhosts
            .iter()
            .filter(|v| v.name == "/")
            .cloned()
            .collect(),
        users: existing
            .users
            .iter()
            .filter(|u| u.name == "guest")
            .cloned()
            .collect(),
        ..Definitions::default()
    }
}

/// Reads a definitions file at boot and imports it, logging what it did.
pub(crate) fn load_at_boot(
    broker: &Broker,
    path: &std::path::Path,
) -> Result<Report, DefinitionsError> {
    let defs = super::load_file(path)?;
    let report = import(broker, &defs)?;
    for w in &report.warnings {
        tracing::warn!("definitions: {w}");
    }
    for c in &report.conflicts {
        tracing::warn!("definitions: {c}");
    }
    tracing::info!(
        file = %path.display(),
        created = report.created.len(),
        updated = report.updated.len(),
        conflicts = report.conflicts.len(),
        "definitions loaded"
    );
    Ok(report)
}

/// Deletes one object. A replaced queue/exchange is deleted whatever its state.
fn delete(broker: &Broker, target: &Target) -> Result<(), DefinitionsError> {
    match target {
        Target::Vhost(name) => {
            broker
                .delete_vhost(name)
                .map_err(|e| DefinitionsError::Apply(format!("vhost '{name}': {e}")))?;
        }
        Target::User(name) => {
            broker.delete_user(name);
        }
        Target::Permission { user, vhost } => broker.clear_permissions(user, vhost),
        Target::TopicPermission {
            user,
            vhost,
            exchange,
        } => broker.clear_topic_permissions(user, vhost, exchange),
        Target::Parameter {
            vhost,
            component,
            name,
        } => broker.parameters.clear(vhost, component, name),
        Target::GlobalParameter(name) => broker.parameters.clear_global(name),
        Target::Policy { vhost, name } => {
            broker.clear_policy(vhost, name);
        }
        Target::Exchange { vhost, name } => {
            if let Some(v) = broker.vhost(vhost) {
                let _ = v.delete_exchange(name, false);
            }
        }
        Target::Queue { vhost, name } => {
            if let Some(v) = broker.vhost(vhost) {
                if let Some(q) = v.snapshot().queues.get(name.as_str()) {
                    v.remove_queue(q);
                }
            }
        }
        Target::Binding(b) => {
            let Some(v) = broker.vhost(&b.vhost) else {
                return Ok(());
            };
            let destination = destination_of(b);
            let wanted = Value::Object(b.arguments.clone());
            let found = v.snapshot().topology.bindings().into_iter().find(|x| {
                *x.source == *b.source
                    && x.destination == destination
                    && *x.routing_key == *b.routing_key
                    && Value::Object(from_field_table(&x.arguments)) == wanted
            });
            if let Some(x) = found {
                let _ = v.unbind(&x.source, x.destination, &x.routing_key, &x.arguments, 0);
            }
        }
    }
    Ok(())
}

fn destination_of(b: &BindingDef) -> Destination {
    let name: Arc<str> = Arc::from(b.destination.as_str());
    if b.destination_type == "exchange" {
        Destination::Exchange(name)
    } else {
        Destination::Queue(name)
    }
}

/// The user an entry describes; a plain password that the existing user
/// already has keeps its hash, so loading the same file twice changes nothing.
fn user_from(broker: &Broker, u: &UserDef, existing: Option<&User>) -> User {
    let mut alg = u
        .hashing_algorithm
        .as_deref()
        .and_then(HashingAlgorithm::parse)
        .unwrap_or_default();
    let hash = match (&u.password_hash, &u.password) {
        (Some(hash), _) => hash.clone(),
        (None, Some(pw)) => match existing {
            Some(e) if e.check_password(pw) => {
                alg = e.hashing_algorithm;
                e.password_hash.clone()
            }
            _ => password::hash_password(alg, pw),
        },
        (None, None) => match existing {
            Some(e) => {
                alg = e.hashing_algorithm;
                e.password_hash.clone()
            }
            None => String::new(),
        },
    };
    User {
        name: u.name.clone(),
        password_hash: hash,
        hashing_algorithm: alg,
        tags: u.tags.clone(),
        limits: u.limits.clone().unwrap_or_default(),
        loopback_only: u
            .loopback_only
            .unwrap_or(u.name == "guest" && !broker.options.guest_remote),
    }
}

/// A failure to apply one entry.
fn invalid(e: String) -> DefinitionsError {
    DefinitionsError::Apply(e)
}

/// Makes the broker hold every object of `d` (import semantics: creates and
/// updates, never deletes), kind by kind in dependency order.
fn apply_objects(broker: &Broker, d: &Definitions, r: &mut Report) -> Result<(), DefinitionsError> {
    apply_vhosts(broker, d, r)?;
    apply_users(broker, d, r)?;
    apply_permissions(broker, d, r)?;
    apply_topic_permissions(broker, d, r)?;
    apply_parameters(broker, d, r)?;
    apply_global_parameters(broker, d, r)?;
    apply_policies(broker, d, r)?;
    apply_exchanges(broker, d, r)?;
    apply_queues(broker, d, r)?;
    apply_bindings(broker, d, r)?;
    Ok(())
}

/// Vhosts: created, or their metadata updated.
fn apply_vhosts(broker: &Broker, d: &Definitions, r: &mut Report) -> Result<(), DefinitionsError> {
    for v in &d.vhosts {
        let info = VhostInfo {
            metadata: plan::vhost_metadata(v),
            limits: plan::vhost_limits(v),
        };
        match broker.vhost_info(&v.name) {
            None => {
                broker
                    .add_vhost_with(&v.name, info)
                    .map_err(|e| invalid(format!("vhost '{}': {e}", v.name)))?;
                r.created.push(format!("vhost '{}'", v.name));
            }
            Some(current) if current != info => {
                broker.set_vhost_info(&v.name, info);
                r.updated.push(format!("vhost '{}' (metadata)", v.name));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Users: created or replaced (password, tags, limits, loopback_only).
fn apply_users(broker: &Broker, d: &Definitions, r: &mut Report) -> Result<(), DefinitionsError> {
    for u in &d.users {
        let existing = broker.users.get(&u.name);
        let user = user_from(broker, u, existing.as_ref());
        match existing {
            None => r.created.push(format!("user '{}'", u.name)),
            Some(e) if e == user => continue,
            Some(e) => {
                let mut what = Vec::new();
                if e.password_hash != user.password_hash {
                    what.push("password");
                }
                if e.tags != user.tags {
                    what.push("tags");
                }
                if e.limits != user.limits {
                    what.push("limits");
                }
                if e.loopback_only != user.loopback_only {
                    what.push("loopback_only");
                }
                r.updated
                    .push(format!("user '{}' ({})", u.name, what.join(", ")));
            }
        }
        broker.put_user(user);
    }
    Ok(())
}

/// Permissions: set where they differ.
fn apply_permissions(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for p in &d.permissions {
        let permission = Permission::new(&p.configure, &p.write, &p.read).map_err(invalid)?;
        let current = broker.permissions.get(&p.user, &p.vhost);
        let label = format!("permissions of user '{}' in vhost '{}'", p.user, p.vhost);
        match &current.permission {
            Some(c) if *c == permission => continue,
            Some(_) => r.updated.push(label),
            None => r.created.push(label),
        }
        broker.set_permissions(&p.user, &p.vhost, permission);
    }
    Ok(())
}

/// Topic permissions: set where they differ.
fn apply_topic_permissions(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for p in &d.topic_permissions {
        let topic = TopicPermission::new(&p.user, &p.vhost, &p.write, &p.read).map_err(invalid)?;
        let current = broker.permissions.get(&p.user, &p.vhost);
        let label = format!(
            "topic permissions of user '{}' on exchange '{}' in vhost '{}'",
            p.user, p.exchange, p.vhost
        );
        match current.topic.get(&p.exchange) {
            Some(c) if *c == topic => continue,
            Some(_) => r.updated.push(label),
            None => r.created.push(label),
        }
        broker.set_topic_permissions(&p.user, &p.vhost, &p.exchange, topic);
    }
    Ok(())
}

/// Runtime parameters: set where they differ.
fn apply_parameters(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for p in &d.parameters {
        let param = Parameter {
            vhost: p.vhost.clone(),
            component: p.component.clone(),
            name: p.name.clone(),
            value: p.value.clone(),
        };
        let current = broker
            .parameters
            .list()
            .into_iter()
            .find(|c| c.vhost == p.vhost && c.component == p.component && c.name == p.name);
        let label = format!(
            "parameter '{}' of component '{}' in vhost '{}'",
            p.name, p.component, p.vhost
        );
        match current {
            Some(c) if c == param => continue,
            Some(_) => r.updated.push(label),
            None => r.created.push(label),
        }
        broker.parameters.set(param);
    }
    Ok(())
}

/// Global parameters: set where they differ.
fn apply_global_parameters(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for p in &d.global_parameters {
        let current = broker
            .parameters
            .list_global()
            .into_iter()
            .find(|(n, _)| *n == p.name);
        let label = format!("global parameter '{}'", p.name);
        match current {
            Some((_, v)) if v == p.value => continue,
            Some(_) => r.updated.push(label),
            None => r.created.push(label),
        }
        broker.parameters.set_global(&p.name, p.value.clone());
    }
    Ok(())
}

/// Policies: set where they differ (applied to existing objects at once).
fn apply_policies(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for p in &d.policies {
        let policy = Policy::new(
            &p.name,
            &p.pattern,
            &p.apply_to,
            p.definition.clone(),
            p.priority,
        )
        .map_err(invalid)?;
        let vhost = broker
            .vhost(&p.vhost)
            .ok_or_else(|| invalid(format!("{}: no such vhost", p.label())))?;
        match vhost.policies.list().into_iter().find(|c| c.name == p.name) {
            Some(c) if *c == policy => continue,
            Some(_) => r.updated.push(p.label()),
            None => r.created.push(p.label()),
        }
        broker.set_policy(&p.vhost, policy);
    }
    Ok(())
}

/// Exchanges: declared when missing; one that exists with other properties is left as it is and reported as a conflict (import never replaces).
fn apply_exchanges(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for x in &d.exchanges {
        if SYSTEM_EXCHANGES.iter().any(|(n, _)| *n == x.name) {
            continue;
        }
        let vhost = broker
            .vhost(&x.vhost)
            .ok_or_else(|| invalid(format!("{}: no such vhost", x.label())))?;
        let current = vhost.snapshot().exchanges.get(x.name.as_str()).cloned();
        if let Some(c) = current {
            let have = ExchangeDef {
                name: x.name.clone(),
                vhost: x.vhost.clone(),
                kind: c.extension.type_name(c.kind).into(),
                durable: c.durable,
                auto_delete: c.auto_delete,
                internal: c.internal,
                arguments: from_field_table(&c.arguments),
            };
            let differences = plan::exchange_differences(&have, x);
            if !differences.is_empty() {
                r.conflicts.push(format!(
                    "{} differs from the broker's ({}); left unchanged",
                    x.label(),
                    differences.join("; ")
                ));
            }
            continue;
        }
        let arguments = to_field_table(&x.arguments);
        vhost
            .declare_exchange(&ExchangeDeclare {
                name: &x.name,
                kind: &x.kind,
                passive: false,
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: &arguments,
            })
            .map_err(|e| invalid(format!("{}: {e}", x.label())))?;
        r.created.push(x.label());
    }
    Ok(())
}

/// Queues: declared when missing; one that exists with other properties is left as it is and reported as a conflict.
fn apply_queues(broker: &Broker, d: &Definitions, r: &mut Report) -> Result<(), DefinitionsError> {
    for q in &d.queues {
        let vhost = broker
            .vhost(&q.vhost)
            .ok_or_else(|| invalid(format!("{}: no such vhost", q.label())))?;
        let current = vhost.snapshot().queues.get(q.name.as_str()).cloned();
        if let Some(c) = current {
            let have = QueueDef {
                name: q.name.clone(),
                vhost: q.vhost.clone(),
                durable: c.config.durable,
                auto_delete: c.config.auto_delete,
                arguments: from_field_table(&c.config.arguments),
                kind: None,
            };
            let mut differences = plan::queue_differences(&have, q);
            if c.config.exclusive_owner.is_some() {
                differences.push("exclusive: true -> false".into());
            }
            if !differences.is_empty() {
                r.conflicts.push(format!(
                    "{} differs from the broker's ({}); left unchanged",
                    q.label(),
                    differences.join("; ")
                ));
            }
            continue;
        }
        let arguments = to_field_table(&q.arguments);
        vhost
            .declare_queue(&QueueDeclare {
                name: &q.name,
                passive: false,
                durable: q.durable,
                exclusive: false,
                auto_delete: q.auto_delete,
                arguments: &arguments,
                connection: 0,
            })
            .map_err(|e| invalid(format!("{}: {e}", q.label())))?;
        r.created.push(q.label());
    }
    Ok(())
}

/// Bindings: added when missing.
fn apply_bindings(
    broker: &Broker,
    d: &Definitions,
    r: &mut Report,
) -> Result<(), DefinitionsError> {
    for b in &d.bindings {
        let vhost = broker
            .vhost(&b.vhost)
            .ok_or_else(|| invalid(format!("{}: no such vhost", b.label())))?;
        let destination = destination_of(b);
        let wanted = Value::Object(b.arguments.clone());
        let exists = vhost
            .snapshot()
            .topology
            .exchange(&b.source)
            .is_some_and(|x| {
                x.bindings().iter().any(|(d, k, a)| {
                    *d == destination
                        && **k == b.routing_key
                        && Value::Object(from_field_table(a)) == wanted
                })
            });
        if exists {
            continue;
        }
        vhost
            .bind(
                &b.source,
                destination,
                &b.routing_key,
                &to_field_table(&b.arguments),
                0,
            )
            .map_err(|e| invalid(format!("{}: {e}", b.label())))?;
        r.created.push(b.label());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::definitions::{export, parse, Format};
    use crate::engine::broker::{test_broker, BrokerOptions};

    const SHOP: &str = r##"{
        "vhosts": [{"name": "shop"}],
        "users": [{"name": "alice", "password": "pw", "tags": ["management"]}],
        "permissions": [{"user": "alice", "vhost": "shop", "configure": "^$", "write": "^orders$", "read": "^eu$"}],
        "policies": [{"vhost": "shop", "name": "ae", "pattern": "^orders$", "apply-to": "exchanges",
                      "definition": {"alternate-exchange": "unrouted"}, "priority": 1}],
        "exchanges": [{"name": "orders", "vhost": "shop", "type": "topic"},
                      {"name": "unrouted", "vhost": "shop", "type": "fanout"}],
        "queues": [{"name": "eu", "vhost": "shop", "arguments": {"x-max-length": 100}},
                   {"name": "lost", "vhost": "shop"}],
        "bindings": [{"source": "orders", "vhost": "shop", "destination": "eu", "destination_type": "queue", "routing_key": "eu.#"},
                     {"source": "unrouted", "vhost": "shop", "destination": "lost", "destination_type": "queue"}]
    }"##;

    fn shop() -> Definitions {
        parse(SHOP, Format::Json).unwrap()
    }

    #[test]
    fn import_twice_changes_nothing() {
        let (broker, _dir) = test_broker(BrokerOptions::default());
        let r = import(&broker, &shop()).unwrap();
        assert!(
            r.created
                .contains(&"queue 'eu' in vhost 'shop'".to_string()),
            "{r:?}"
        );
        // Queue arguments are enforced (issue 5): nothing stored-but-ignored.
        assert!(!r.warnings.iter().any(|w| w.contains("x-max-length")));
        let before = export::export(&broker);
        let r = import(&broker, &shop()).unwrap();
        assert!(r.is_noop(), "{r:?}");
        assert!(r.conflicts.is_empty());
        assert_eq!(export::export(&broker), before);
        // The policy gave the exchange its alternate exchange.
        let v = broker.vhost("shop").unwrap();
        let ae = v
            .snapshot()
            .topology
            .exchange("orders")
            .unwrap()
            .alternate_exchange()
            .cloned();
        assert_eq!(ae.as_deref(), Some("unrouted"));
    }

    #[test]
    fn differing_queues_are_reported_not_changed() {
        let (broker, _dir) = test_broker(BrokerOptions::default());
        import(&broker, &shop()).unwrap();
        let mut changed = shop();
        changed.queues[0].durable = false;
        let r = import(&broker, &changed).unwrap();
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        assert!(
            r.conflicts[0].starts_with("queue 'eu' in vhost 'shop' differs"),
            "{r:?}"
        );
        let v = broker.vhost("shop").unwrap();
        assert!(v.snapshot().queues["eu"].config.durable);
    }

    #[test]
    fn a_bad_file_changes_nothing() {
        let (broker, _dir) = test_broker(BrokerOptions::default());
        let before = export::export(&broker);
        let mut bad = shop();
        bad.exchanges[1].kind = "x-consistent-hash".into();
        assert!(matches!(
            import(&broker, &bad),
            Err(DefinitionsError::Invalid(_))
        ));
        assert_eq!(export::export(&broker), before);
    }

    #[test]
    fn export_import_export_round_trips() {
        let (a, _a) = test_broker(BrokerOptions::default());
        import(&a, &shop()).unwrap();
        let first = export::export(&a);
        let (b, _b) = test_broker(BrokerOptions::default());
        import(&b, &first).unwrap();
        assert_eq!(export::export(&b), first);
        let (c, _c) = test_broker(BrokerOptions {
            seed_defaults: false,
            guest_remote: false,
        });
        import(&c, &first).unwrap();
        assert_eq!(export::export(&c), first);
    }

    #[test]
    fn apply_and_prune() {
        let (broker, _dir) = test_broker(BrokerOptions::default());
        let (p, _) = apply(&broker, &shop(), false).unwrap();
        assert_eq!(p.count(Op::Create), shop_objects());
        let (p, _) = apply(&broker, &shop(), false).unwrap();
        assert!(p.is_empty(), "{p}");
        // Change a queue and drop a binding from the file.
        let mut next = shop();
        next.queues[0]
            .arguments
            .insert("x-max-length".into(), 5.into());
        next.bindings.pop();
        let (p, _) = apply(&broker, &next, false).unwrap();
        assert_eq!(p.count(Op::Replace), 1, "{p}");
        assert_eq!(p.count(Op::Delete), 0, "{p}");
        let (p, _) = apply(&broker, &next, true).unwrap();
        assert_eq!(p.count(Op::Delete), 1, "{p}");
        let now = export::export(&broker);
        assert!(plan::plan(&now, &next, true).is_empty());
        // Defaults survive a prune.
        assert!(broker.vhost("/").is_some());
        assert!(broker.users.get("guest").is_some());
    }

    fn shop_objects() -> usize {
        let d = shop();
        d.vhosts.len()
            + d.users.len()
            + d.permissions.len()
            + d.policies.len()
            + d.exchanges.len()
            + d.queues.len()
            + d.bindings.len()
    }
}
