//! What applying a file would do: the difference between the broker (an
//! export of it) and the file, as a list of changes printed like a diff.
//!
//! `+` creates, `~` changes in place (users, vhost metadata, permissions,
//! policies, parameters), `-/+` replaces (a queue or exchange whose properties
//! cannot change in place: it is deleted and declared again, which drops a
//! queue's messages), `-` deletes (only with prune, and never the defaults:
//! the vhost `/`, the user guest and guest's permission in `/`).

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::model::*;
use crate::access::password::{self, HashingAlgorithm};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Replace,
    Delete,
}

/// The object a change is about, with what is needed to delete it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Vhost(String),
    User(String),
    Permission {
        user: String,
        vhost: String,
    },
    TopicPermission {
        user: String,
        vhost: String,
        exchange: String,
    },
    Parameter {
        vhost: String,
        component: String,
        name: String,
    },
    GlobalParameter(String),
    Policy {
        vhost: String,
        name: String,
    },
    Exchange {
        vhost: String,
        name: String,
    },
    Queue {
        vhost: String,
        name: String,
    },
    Binding(BindingDef),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub op: Op,
    /// "vhost 'shop'", "queue 'orders' in vhost 'shop'", ...
    pub object: String,
    /// What differs: "durable: true -> false".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    #[serde(skip)]
    pub target: Option<Target>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, op: Op) -> usize {
        self.changes.iter().filter(|c| c.op == op).count()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "No changes: the broker matches the file.");
        }
        for c in &self.changes {
            let sign = match c.op {
                Op::Create => "+",
                Op::Update => "~",
                Op::Replace => "-/+",
                Op::Delete => "-",
            };
            if c.details.is_empty() {
                writeln!(f, "{sign} {}", c.object)?;
            } else {
                writeln!(f, "{sign} {}", c.object)?;
                for d in &c.details {
                    writeln!(f, "      {d}")?;
                }
            }
        }
        writeln!(
            f,
            "\nPlan: {} to create, {} to change, {} to replace, {} to delete.",
            self.count(Op::Create),
            self.count(Op::Update),
            self.count(Op::Replace),
            self.count(Op::Delete)
        )
    }
}

/// Whether an object is one of the defaults that prune never deletes.
fn is_default(target: &Target) -> bool {
    match target {
        Target::Vhost(v) => v == "/",
        Target::User(u) => u == "guest",
        Target::Permission { user, vhost } => user == "guest" && vhost == "/",
        _ => false,
    }
}

/// The metadata a vhost entry stands for (RabbitMQ fills in an empty description).
pub fn vhost_metadata(v: &VhostDef) -> Map<String, Value> {
    let mut m = v.metadata.clone().unwrap_or_default();
    if !m.contains_key("description") {
        m.insert(
            "description".into(),
            Value::String(v.description.clone().unwrap_or_default()),
        );
    }
    if !m.contains_key("tags") {
        m.insert("tags".into(), json!([]));
    }
    m
}

pub fn vhost_limits(v: &VhostDef) -> Value {
    v.limits.clone().unwrap_or_else(|| json!([]))
}

fn show(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn diff<T: PartialEq + Serialize>(out: &mut Vec<String>, what: &str, current: &T, desired: &T) {
    if current != desired {
        out.push(format!("{what}: {} -> {}", show(current), show(desired)));
    }
}

/// The differences of a user entry from the broker's user (password checked
/// by hash, or by verifying a plain password against the broker's hash).
pub fn user_differences(current: &UserDef, desired: &UserDef) -> Vec<String> {
    let mut out = Vec::new();
    let cur_alg = current
        .hashing_algorithm
        .as_deref()
        .and_then(HashingAlgorithm::parse)
        .unwrap_or_default();
    let cur_hash = current.password_hash.clone().unwrap_or_default();
    let password_differs = match (&desired.password_hash, &desired.password) {
        (Some(hash), _) => {
            let alg = desired
                .hashing_algorithm
                .as_deref()
                .and_then(HashingAlgorithm::parse)
                .unwrap_or_default();
            *hash != cur_hash || alg != cur_alg
        }
        (None, Some(pw)) => !password::verify(cur_alg, &cur_hash, pw),
        (None, None) => false,
    };
    if password_differs {
        out.push("password: changed".into());
    }
    let tags = |u: &UserDef| u.tags.iter().cloned().collect::<BTreeSet<_>>();
    diff(&mut out, "tags", &tags(current), &tags(desired));
    diff(
        &mut out,
        "limits",
        &current.limits.clone().unwrap_or_default(),
        &desired.limits.clone().unwrap_or_default(),
    );
    if let Some(want) = desired.loopback_only {
        let have = current.loopback_only.unwrap_or(current.name == "guest");
        diff(&mut out, "loopback_only", &have, &want);
    }
    out
}

pub fn exchange_differences(current: &ExchangeDef, desired: &ExchangeDef) -> Vec<String> {
    let mut out = Vec::new();
    diff(&mut out, "type", &current.kind, &desired.kind);
    diff(&mut out, "durable", &current.durable, &desired.durable);
    diff(
        &mut out,
        "auto_delete",
        &current.auto_delete,
        &desired.auto_delete,
    );
    diff(&mut out, "internal", &current.internal, &desired.internal);
    diff(
        &mut out,
        "arguments",
        &current.arguments,
        &desired.arguments,
    );
    out
}

pub fn queue_differences(current: &QueueDef, desired: &QueueDef) -> Vec<String> {
    let mut out = Vec::new();
    diff(&mut out, "durable", &current.durable, &desired.durable);
    diff(
        &mut out,
        "auto_delete",
        &current.auto_delete,
        &desired.auto_delete,
    );
    diff(
        &mut out,
        "arguments",
        &current.arguments,
        &desired.arguments,
    );
    out
}

/// One kind of object: compares by key, in the file's order, then the deletes.
#[allow(clippy::too_many_arguments)]
fn compare<T, K: Eq + std::hash::Hash + Clone>(
    changes: &mut Vec<Change>,
    current: &[T],
    desired: &[T],
    prune: bool,
    key: impl Fn(&T) -> K,
    label: impl Fn(&T) -> String,
    target: impl Fn(&T) -> Target,
    differences: impl Fn(&T, &T) -> Vec<String>,
    in_place: bool,
) {
    let by_key: HashMap<K, &T> = current.iter().map(|c| (key(c), c)).collect();
    let wanted: HashMap<K, &T> = desired.iter().map(|d| (key(d), d)).collect();
    if prune {
        for c in current {
            let t = target(c);
            if !wanted.contains_key(&key(c)) && !is_default(&t) {
                changes.push(Change {
                    op: Op::Delete,
                    object: label(c),
                    details: Vec::new(),
                    target: Some(t),
                });
            }
        }
    }
    for d in desired {
        match by_key.get(&key(d)) {
            None => changes.push(Change {
                op: Op::Create,
                object: label(d),
                details: Vec::new(),
                target: Some(target(d)),
            }),
            Some(c) => {
                let details = differences(c, d);
                if !details.is_empty() {
                    changes.push(Change {
                        op: if in_place { Op::Update } else { Op::Replace },
                        object: label(d),
                        details,
                        target: Some(target(d)),
                    });
                }
            }
        }
    }
}

/// The changes that make `current` (an export) match `desired`.
pub fn plan(current: &Definitions, desired: &Definitions, prune: bool) -> Plan {
    let mut changes = Vec::new();
    compare(
        &mut changes,
        &current.vhosts,
        &desired.vhosts,
        prune,
        |v| v.name.clone(),
        |v| format!("vhost '{}'", v.name),
        |v| Target::Vhost(v.name.clone()),
        |c, d| {
            let mut out = Vec::new();
            diff(&mut out, "metadata", &vhost_metadata(c), &vhost_metadata(d));
            diff(&mut out, "limits", &vhost_limits(c), &vhost_limits(d));
            out
        },
        true,
    );
    compare(
        &mut changes,
        &current.users,
        &desired.users,
        prune,
        |u| u.name.clone(),
        |u| format!("user '{}'", u.name),
        |u| Target::User(u.name.clone()),
        user_differences,
        true,
    );
    compare(
        &mut changes,
        &current.permissions,
        &desired.permissions,
        prune,
        |p| (p.user.clone(), p.vhost.clone()),
        |p| format!("permissions of user '{}' in vhost '{}'", p.user, p.vhost),
        |p| Target::Permission {
            user: p.user.clone(),
            vhost: p.vhost.clone(),
        },
        |c, d| {
            let mut out = Vec::new();
            diff(&mut out, "configure", &c.configure, &d.configure);
            diff(&mut out, "write", &c.write, &d.write);
            diff(&mut out, "read", &c.read, &d.read);
            out
        },
        true,
    );
    compare(
        &mut changes,
        &current.topic_permissions,
        &desired.topic_permissions,
        prune,
        |p| (p.user.clone(), p.vhost.clone(), p.exchange.clone()),
        |p| {
            format!(
                "topic permissions of user '{}' on exchange '{}' in vhost '{}'",
                p.user, p.exchange, p.vhost
            )
        },
        |p| Target::TopicPermission {
            user: p.user.clone(),
            vhost: p.vhost.clone(),
            exchange: p.exchange.clone(),
        },
        |c, d| {
            let mut out = Vec::new();
            diff(&mut out, "write", &c.write, &d.write);
            diff(&mut out, "read", &c.read, &d.read);
            out
        },
        true,
    );
    compare(
        &mut changes,
        &current.parameters,
        &desired.parameters,
        prune,
        |p| (p.vhost.clone(), p.component.clone(), p.name.clone()),
        |p| {
            format!(
                "parameter '{}' of component '{}' in vhost '{}'",
                p.name, p.component, p.vhost
            )
        },
        |p| Target::Parameter {
            vhost: p.vhost.clone(),
            component: p.component.clone(),
            name: p.name.clone(),
        },
        |c, d| {
            let mut out = Vec::new();
            diff(&mut out, "value", &c.value, &d.value);
            out
        },
        true,
    );
    compare(
        &mut changes,
        &current.global_parameters,
        &desired.global_parameters,
        prune,
        |p| p.name.clone(),
        |p| format!("global parameter '{}'", p.name),
        |p| Target::GlobalParameter(p.name.clone()),
        |c, d| {
            let mut out = Vec::new();
            diff(&mut out, "value", &c.value, &d.value);
            out
        },
        true,
    );
    compare(
        &mut changes,
        &current.policies,
        &desired.policies,
        prune,
        |p| (p.vhost.clone(), p.name.clone()),
        PolicyDef::label,
        |p| Target::Policy {
            vhost: p.vhost.clone(),
            name: p.name.clone(),
        },
        |c, d| {
            let mut out = Vec::new();
            diff(&mut out, "pattern", &c.pattern, &d.pattern);
            diff(&mut out, "apply-to", &c.apply_to, &d.apply_to);
            diff(&mut out, "definition", &c.definition, &d.definition);
            diff(&mut out, "priority", &c.priority, &d.priority);
            out
        },
        true,
    );
    let desired_exchanges: Vec<ExchangeDef> = desired
        .exchanges
        .iter()
        .filter(|x| !x.name.starts_with("amq."))
        .cloned()
        .collect();
    compare(
        &mut changes,
        &current.exchanges,
        &desired_exchanges,
        prune,
        |x| (x.vhost.clone(), x.name.clone()),
        ExchangeDef::label,
        |x| Target::Exchange {
            vhost: x.vhost.clone(),
            name: x.name.clone(),
        },
        exchange_differences,
        false,
    );
    compare(
        &mut changes,
        &current.queues,
        &desired.queues,
        prune,
        |q| (q.vhost.clone(), q.name.clone()),
        QueueDef::label,
        |q| Target::Queue {
            vhost: q.vhost.clone(),
            name: q.name.clone(),
        },
        queue_differences,
        false,
    );
    compare(
        &mut changes,
        &current.bindings,
        &desired.bindings,
        prune,
        BindingDef::key,
        BindingDef::label,
        |b| Target::Binding(b.clone()),
        |_, _| Vec::new(),
        true,
    );
    for c in &mut changes {
        if c.op == Op::Replace {
            c.details.push(if c.object.starts_with("queue") {
                "replaced: deleted (with its messages) and declared again".into()
            } else {
                "replaced: deleted (with its bindings) and declared again".into()
            });
        }
    }
    Plan { changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::definitions::{parse, Format};

    fn defs(text: &str) -> Definitions {
        parse(text, Format::Json).unwrap()
    }

    #[test]
    fn same_document_gives_an_empty_plan() {
        let d = defs(r#"{"vhosts":[{"name":"a"}],"queues":[{"name":"q","vhost":"a"}]}"#);
        assert!(plan(&d, &d, true).is_empty());
    }

    #[test]
    fn creates_changes_replaces_and_deletes() {
        let current = defs(
            r#"{"vhosts":[{"name":"/"},{"name":"old"}],
                "users":[{"name":"guest","password_hash":"","tags":["administrator"]},{"name":"bob","tags":[]}],
                "permissions":[{"user":"bob","vhost":"/","configure":".*","write":".*","read":".*"}],
                "queues":[{"name":"q","vhost":"/","durable":true}]}"#,
        );
        let desired = defs(
            r#"{"vhosts":[{"name":"new"}],
                "users":[{"name":"bob","tags":["management"]}],
                "permissions":[{"user":"bob","vhost":"/","configure":"^b","write":".*","read":".*"}],
                "queues":[{"name":"q","vhost":"/","durable":false}]}"#,
        );
        let p = plan(&current, &desired, false);
        assert_eq!(p.count(Op::Delete), 0);
        assert_eq!(p.count(Op::Create), 1);
        assert_eq!(p.count(Op::Update), 2);
        assert_eq!(p.count(Op::Replace), 1);
        let text = p.to_string();
        assert!(text.contains("+ vhost 'new'"), "{text}");
        assert!(
            text.contains("~ user 'bob'\n      tags: [] -> [\"management\"]"),
            "{text}"
        );
        assert!(
            text.contains("-/+ queue 'q' in vhost '/'\n      durable: true -> false"),
            "{text}"
        );
        let p = plan(&current, &desired, true);
        // 'old' goes; '/' and guest never do.
        assert_eq!(p.count(Op::Delete), 1, "{p}");
        assert!(p.to_string().contains("- vhost 'old'"));
    }

    #[test]
    fn plain_passwords_compare_by_verification() {
        let hash = password::hash_password(HashingAlgorithm::Sha256, "s3cret");
        let current = Definitions {
            users: vec![UserDef {
                name: "u".into(),
                password_hash: Some(hash),
                hashing_algorithm: Some("rabbit_password_hashing_sha256".into()),
                ..UserDef::default()
            }],
            ..Definitions::default()
        };
        let same = defs(r#"{"users":[{"name":"u","password":"s3cret"}]}"#);
        assert!(plan(&current, &same, false).is_empty());
        let other = defs(r#"{"users":[{"name":"u","password":"other"}]}"#);
        assert_eq!(
            plan(&current, &other, false).changes[0].details,
            vec!["password: changed"]
        );
    }

    #[test]
    fn bindings_are_identified_by_all_their_parts() {
        let current = defs(
            r#"{"bindings":[{"source":"x","destination":"q","destination_type":"queue","routing_key":"a"}]}"#,
        );
        let desired = defs(
            r#"{"bindings":[{"source":"x","destination":"q","destination_type":"queue","routing_key":"b"}]}"#,
        );
        let p = plan(&current, &desired, true);
        assert_eq!((p.count(Op::Create), p.count(Op::Delete)), (1, 1));
    }
}
