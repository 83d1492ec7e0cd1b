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
pub(crate) enum Op {
    Create,
    Update,
    Replace,
    Delete,
}

/// The object a change is about, with what is needed to delete it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
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
pub(crate) struct Change {
    pub(crate) op: Op,
    /// "vhost 'shop'", "queue 'orders' in vhost 'shop'", ...
    pub(crate) object: String,
    /// What differs: "durable: true -> false".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) details: Vec<String>,
    #[serde(skip)]
    pub(crate) target: Option<Target>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub(crate) changes: Vec<Change>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub(crate) fn count(&self, op: Op) -> usize {
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
pub(crate) fn vhost_metadata(v: &VhostDef) -> Map<String, Value> {
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

pub(crate) fn vhost_limits(v: &VhostDef) -> Value {
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
pub(crate) fn user_differences(current: &UserDef, desired: &UserDef) -> Vec<String> {
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

pub(crate) fn exchange_differences(current: &ExchangeDef, desired: &ExchangeDef) -> Vec<String> {
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

pub(crate) fn queue_differences(current: &QueueDef, desired: &QueueDef) -> Vec<String> {
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

/// One kind of object in a definitions file, as the plan compares it.
trait Planned {
    /// What identifies it (two entries with the same key are the same object).
    type Key: Eq + std::hash::Hash;
    fn key(&self) -> Self::Key;
    /// "queue 'orders' in vhost 'shop'", as the plan prints it.
    fn label(&self) -> String;
    fn target(&self) -> Target;
    /// What differs from `current`, one line each.
    fn differences(&self, current: &Self) -> Vec<String>;
    /// Changed in place (users, permissions...) rather than replaced (queues,
    /// exchanges: deleted and declared again).
    const IN_PLACE: bool = true;
}

impl Planned for VhostDef {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
    fn label(&self) -> String {
        format!("vhost '{}'", self.name)
    }
    fn target(&self) -> Target {
        Target::Vhost(self.name.clone())
    }
    fn differences(&self, c: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff(
            &mut out,
            "metadata",
            &vhost_metadata(c),
            &vhost_metadata(self),
        );
        diff(&mut out, "limits", &vhost_limits(c), &vhost_limits(self));
        out
    }
}

impl Planned for UserDef {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
    fn label(&self) -> String {
        format!("user '{}'", self.name)
    }
    fn target(&self) -> Target {
        Target::User(self.name.clone())
    }
    fn differences(&self, current: &Self) -> Vec<String> {
        user_differences(current, self)
    }
}

impl Planned for PermissionDef {
    type Key = (String, String);
    fn key(&self) -> Self::Key {
        (self.user.clone(), self.vhost.clone())
    }
    fn label(&self) -> String {
        format!(
            "permissions of user '{}' in vhost '{}'",
            self.user, self.vhost
        )
    }
    fn target(&self) -> Target {
        Target::Permission {
            user: self.user.clone(),
            vhost: self.vhost.clone(),
        }
    }
    fn differences(&self, c: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff(&mut out, "configure", &c.configure, &self.configure);
        diff(&mut out, "write", &c.write, &self.write);
        diff(&mut out, "read", &c.read, &self.read);
        out
    }
}

impl Planned for TopicPermissionDef {
    type Key = (String, String, String);
    fn key(&self) -> Self::Key {
        (self.user.clone(), self.vhost.clone(), self.exchange.clone())
    }
    fn label(&self) -> String {
        format!(
            "topic permissions of user '{}' on exchange '{}' in vhost '{}'",
            self.user, self.exchange, self.vhost
        )
    }
    fn target(&self) -> Target {
        Target::TopicPermission {
            user: self.user.clone(),
            vhost: self.vhost.clone(),
            exchange: self.exchange.clone(),
        }
    }
    fn differences(&self, c: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff(&mut out, "write", &c.write, &self.write);
        diff(&mut out, "read", &c.read, &self.read);
        out
    }
}

impl Planned for ParameterDef {
    type Key = (String, String, String);
    fn key(&self) -> Self::Key {
        (
            self.vhost.clone(),
            self.component.clone(),
            self.name.clone(),
        )
    }
    fn label(&self) -> String {
        format!(
            "parameter '{}' of component '{}' in vhost '{}'",
            self.name, self.component, self.vhost
        )
    }
    fn target(&self) -> Target {
        Target::Parameter {
            vhost: self.vhost.clone(),
            component: self.component.clone(),
            name: self.name.clone(),
        }
    }
    fn differences(&self, c: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff(&mut out, "value", &c.value, &self.value);
        out
    }
}

impl Planned for GlobalParameterDef {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
    fn label(&self) -> String {
        format!("global parameter '{}'", self.name)
    }
    fn target(&self) -> Target {
        Target::GlobalParameter(self.name.clone())
    }
    fn differences(&self, c: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff(&mut out, "value", &c.value, &self.value);
        out
    }
}

impl Planned for PolicyDef {
    type Key = (String, String);
    fn key(&self) -> Self::Key {
        (self.vhost.clone(), self.name.clone())
    }
    fn label(&self) -> String {
        PolicyDef::label(self)
    }
    fn target(&self) -> Target {
        Target::Policy {
            vhost: self.vhost.clone(),
            name: self.name.clone(),
        }
    }
    fn differences(&self, c: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff(&mut out, "pattern", &c.pattern, &self.pattern);
        diff(&mut out, "apply-to", &c.apply_to, &self.apply_to);
        diff(&mut out, "definition", &c.definition, &self.definition);
        diff(&mut out, "priority", &c.priority, &self.priority);
        out
    }
}

impl Planned for ExchangeDef {
    type Key = (String, String);
    fn key(&self) -> Self::Key {
        (self.vhost.clone(), self.name.clone())
    }
    fn label(&self) -> String {
        ExchangeDef::label(self)
    }
    fn target(&self) -> Target {
        Target::Exchange {
            vhost: self.vhost.clone(),
            name: self.name.clone(),
        }
    }
    fn differences(&self, current: &Self) -> Vec<String> {
        exchange_differences(current, self)
    }
    const IN_PLACE: bool = false;
}

impl Planned for QueueDef {
    type Key = (String, String);
    fn key(&self) -> Self::Key {
        (self.vhost.clone(), self.name.clone())
    }
    fn label(&self) -> String {
        QueueDef::label(self)
    }
    fn target(&self) -> Target {
        Target::Queue {
            vhost: self.vhost.clone(),
            name: self.name.clone(),
        }
    }
    fn differences(&self, current: &Self) -> Vec<String> {
        queue_differences(current, self)
    }
    const IN_PLACE: bool = false;
}

impl Planned for BindingDef {
    type Key = (String, String, String, String, String, String);
    fn key(&self) -> Self::Key {
        BindingDef::key(self)
    }
    fn label(&self) -> String {
        BindingDef::label(self)
    }
    fn target(&self) -> Target {
        Target::Binding(self.clone())
    }
    /// A binding is its key: there is nothing else to differ.
    fn differences(&self, _: &Self) -> Vec<String> {
        Vec::new()
    }
}

/// One kind of object: compares by key, in the file's order, then the deletes.
fn compare<T: Planned>(changes: &mut Vec<Change>, current: &[T], desired: &[T], prune: bool) {
    let by_key: HashMap<T::Key, &T> = current.iter().map(|c| (c.key(), c)).collect();
    let wanted: HashMap<T::Key, &T> = desired.iter().map(|d| (d.key(), d)).collect();
    if prune {
        for c in current {
            let t = c.target();
            if !wanted.contains_key(&c.key()) && !is_default(&t) {
                changes.push(Change {
                    op: Op::Delete,
                    object: c.label(),
                    details: Vec::new(),
                    target: Some(t),
                });
            }
        }
    }
    for d in desired {
        let (op, details) = match by_key.get(&d.key()) {
            None => (Op::Create, Vec::new()),
            Some(c) => {
                let details = d.differences(c);
                if details.is_empty() {
                    continue;
                }
                let op = if T::IN_PLACE { Op::Update } else { Op::Replace };
                (op, details)
            }
        };
        changes.push(Change {
            op,
            object: d.label(),
            details,
            target: Some(d.target()),
        });
    }
}

/// The changes that make `current` (an export) match `desired`, kind by kind
/// in the order they are applied.
pub(crate) fn plan(current: &Definitions, desired: &Definitions, prune: bool) -> Plan {
    let mut changes = Vec::new();
    compare(&mut changes, &current.vhosts, &desired.vhosts, prune);
    compare(&mut changes, &current.users, &desired.users, prune);
    compare(
        &mut changes,
        &current.permissions,
        &desired.permissions,
        prune,
    );
    compare(
        &mut changes,
        &current.topic_permissions,
        &desired.topic_permissions,
        prune,
    );
    compare(
        &mut changes,
        &current.parameters,
        &desired.parameters,
        prune,
    );
    compare(
        &mut changes,
        &current.global_parameters,
        &desired.global_parameters,
        prune,
    );
    compare(&mut changes, &current.policies, &desired.policies, prune);
    // The system exchanges are the broker's, never the file's.
    let desired_exchanges: Vec<ExchangeDef> = desired
        .exchanges
        .iter()
        .filter(|x| !x.name.starts_with("amq."))
        .cloned()
        .collect();
    compare(&mut changes, &current.exchanges, &desired_exchanges, prune);
    compare(&mut changes, &current.queues, &desired.queues, prune);
    compare(&mut changes, &current.bindings, &desired.bindings, prune);
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
