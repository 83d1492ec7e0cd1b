//! Policies and runtime parameters.
//!
//! A policy applies a definition (message-ttl, max-length, alternate-exchange,
//! ...) to the queues and/or exchanges of a vhost whose names match its
//! pattern (an unanchored regex, as RabbitMQ's `re:run`). Of the policies that
//! match an object, the one with the highest priority wins; an argument given
//! at declare time wins over the same key from a policy. Policies apply to
//! existing and future objects alike: the vhost asks [`Policies`] when an
//! exchange is declared and again whenever the set of policies changes.
//!
//! `alternate-exchange` applies to exchanges; the queue keys (message-ttl,
//! expires, max-length, max-length-bytes, overflow, dead-letter-exchange,
//! dead-letter-routing-key, delivery-limit) are merged with the queue's own
//! arguments by `queue_args.rs`. The other keys (mirroring, federation,
//! streams...) are stored, exported and validated, and [`not_enforced`] names
//! them for the warning.
//! Runtime parameters (federation upstreams, shovels, vhost limits, ...) are
//! stored and exported unchanged.

use std::sync::Arc;

use crate::access::permissions::{compile_regex, regex_excerpt};
use parking_lot::RwLock;
use regex::Regex;
use serde_json::{Map, Value};

/// What a policy applies to (RabbitMQ 3.10's `apply-to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApplyTo {
    All,
    Queues,
    Exchanges,
}

impl ApplyTo {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "queues" => Some(Self::Queues),
            "exchanges" => Some(Self::Exchanges),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Queues => "queues",
            Self::Exchanges => "exchanges",
        }
    }
}

/// One policy of a vhost.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) name: String,
    pub(crate) pattern: String,
    regex: Regex,
    pub(crate) apply_to: ApplyTo,
    pub(crate) definition: Map<String, Value>,
    pub(crate) priority: i64,
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.pattern == other.pattern
            && self.apply_to == other.apply_to
            && self.definition == other.definition
            && self.priority == other.priority
    }
}

/// Keys RabbitMQ 3.10 accepts in a policy definition, with what Warren does with them.
/// `true`: enforced by Warren today.
const KNOWN_KEYS: &[(&str, bool)] = &[
    ("alternate-exchange", true),
    ("dead-letter-exchange", true),
    ("dead-letter-routing-key", true),
    ("message-ttl", true),
    ("expires", true),
    ("max-length", true),
    ("max-length-bytes", true),
    ("overflow", true),
    ("delivery-limit", true),
    ("max-in-memory-length", false),
    ("max-in-memory-bytes", false),
    ("queue-mode", true),
    ("queue-master-locator", true),
    ("queue-leader-locator", false),
    ("ha-mode", false),
    ("ha-params", false),
    ("ha-sync-mode", false),
    ("ha-sync-batch-size", false),
    ("ha-promote-on-shutdown", false),
    ("ha-promote-on-failure", false),
    ("federation-upstream", false),
    ("federation-upstream-set", false),
    ("max-age", false),
    ("stream-max-segment-size-bytes", false),
    ("initial-cluster-size", false),
];

/// Checks a policy's pattern, apply-to and definition; the error says what is wrong.
pub(crate) fn validate(
    pattern: &str,
    apply_to: &str,
    definition: &Map<String, Value>,
) -> Result<(), String> {
    compile_regex(pattern)
        .map_err(|e| format!("invalid pattern '{}': {e}", regex_excerpt(pattern)))?;
    ApplyTo::parse(apply_to).ok_or_else(|| {
        format!("invalid apply-to '{apply_to}' (expected all, queues or exchanges)")
    })?;
    if definition.is_empty() {
        return Err("the definition is empty".into());
    }
    for (key, value) in definition {
        validate_key(key, value)?;
    }
    Ok(())
}

fn validate_key(key: &str, value: &Value) -> Result<(), String> {
    let non_negative = || match value.as_i64() {
        Some(v) if v >= 0 => Ok(()),
        _ => Err(format!(
            "'{key}' must be a non-negative integer, got {value}"
        )),
    };
    let positive = || match value.as_i64() {
        Some(v) if v > 0 => Ok(()),
        _ => Err(format!("'{key}' must be a positive integer, got {value}")),
    };
    let string = || match value {
        Value::String(_) => Ok(()),
        _ => Err(format!("'{key}' must be a string, got {value}")),
    };
    match key {
        "message-ttl"
        | "max-length"
        | "max-length-bytes"
        | "delivery-limit"
        | "max-in-memory-length"
        | "max-in-memory-bytes"
        | "ha-sync-batch-size"
        | "stream-max-segment-size-bytes" => non_negative(),
        "expires" | "initial-cluster-size" => positive(),
        "alternate-exchange"
        | "dead-letter-exchange"
        | "dead-letter-routing-key"
        | "queue-master-locator"
        | "queue-leader-locator"
        | "ha-mode"
        | "ha-sync-mode"
        | "ha-promote-on-shutdown"
        | "ha-promote-on-failure"
        | "federation-upstream"
        | "federation-upstream-set"
        | "max-age" => string(),
        "overflow" => match value.as_str() {
            Some("drop-head" | "reject-publish" | "reject-publish-dlx") => Ok(()),
            _ => Err(format!(
                "'overflow' must be drop-head, reject-publish or reject-publish-dlx, got {value}"
            )),
        },
        "queue-mode" => match value.as_str() {
            Some("default" | "lazy") => Ok(()),
            _ => Err(format!("'queue-mode' must be default or lazy, got {value}")),
        },
        "ha-params" => Ok(()),
        _ => Err(format!("unrecognised policy key '{key}'")),
    }
}

/// The keys of a definition Warren stores but does not enforce yet.
pub(crate) fn not_enforced(definition: &Map<String, Value>) -> Vec<String> {
    definition
        .keys()
        .filter(|k| {
            !KNOWN_KEYS
                .iter()
                .any(|(known, enforced)| known == k && *enforced)
        })
        .cloned()
        .collect()
}

impl Policy {
    /// Builds a policy; the inputs are validated with [`validate`].
    pub(crate) fn new(
        name: &str,
        pattern: &str,
        apply_to: &str,
        definition: Map<String, Value>,
        priority: i64,
    ) -> Result<Self, String> {
        validate(pattern, apply_to, &definition)?;
        Ok(Self {
            name: name.to_string(),
            pattern: pattern.to_string(),
            regex: compile_regex(pattern)?,
            apply_to: ApplyTo::parse(apply_to).unwrap_or(ApplyTo::All),
            definition,
            priority,
        })
    }

    fn applies_to(&self, exchange: bool, name: &str) -> bool {
        let kind_ok = match self.apply_to {
            ApplyTo::All => true,
            ApplyTo::Queues => !exchange,
            ApplyTo::Exchanges => exchange,
        };
        kind_ok && self.regex.is_match(name)
    }
}

/// The policies of one vhost.
#[derive(Default)]
pub(crate) struct Policies {
    list: RwLock<Vec<Arc<Policy>>>,
}

impl Policies {
    /// Adds or replaces a policy (by name).
    pub(crate) fn set(&self, policy: Policy) {
        let mut list = self.list.write();
        list.retain(|p| p.name != policy.name);
        list.push(Arc::new(policy));
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub(crate) fn clear(&self, name: &str) -> bool {
        let mut list = self.list.write();
        let before = list.len();
        list.retain(|p| p.name != name);
        list.len() != before
    }

    pub(crate) fn list(&self) -> Vec<Arc<Policy>> {
        self.list.read().clone()
    }

    /// The policy in force for an exchange (`exchange`) or a queue called `name`:
    /// the matching one with the highest priority (ties: the first by name).
    pub(crate) fn effective(&self, exchange: bool, name: &str) -> Option<Arc<Policy>> {
        let list = self.list.read();
        let mut best: Option<&Arc<Policy>> = None;
        for p in list.iter().filter(|p| p.applies_to(exchange, name)) {
            if best.is_none_or(|b| p.priority > b.priority) {
                best = Some(p);
            }
        }
        best.cloned()
    }

    /// The `alternate-exchange` a policy gives the exchange `name`, if any.
    pub(crate) fn alternate_exchange(&self, name: &str) -> Option<Arc<str>> {
        self.effective(true, name)?
            .definition
            .get("alternate-exchange")?
            .as_str()
            .map(Arc::from)
    }
}

/// A vhost-scoped runtime parameter (component, name, value).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Parameter {
    pub(crate) vhost: String,
    pub(crate) component: String,
    pub(crate) name: String,
    pub(crate) value: Value,
}

/// Runtime parameters and global parameters of the broker, stored as given.
#[derive(Default)]
pub(crate) struct Parameters {
    vhost_scoped: RwLock<Vec<Parameter>>,
    global: RwLock<Vec<(String, Value)>>,
}

impl Parameters {
    pub(crate) fn set(&self, p: Parameter) {
        let mut list = self.vhost_scoped.write();
        list.retain(|q| !(q.vhost == p.vhost && q.component == p.component && q.name == p.name));
        list.push(p);
        list.sort_by(|a, b| {
            (&a.vhost, &a.component, &a.name).cmp(&(&b.vhost, &b.component, &b.name))
        });
    }

    pub(crate) fn clear(&self, vhost: &str, component: &str, name: &str) {
        self.vhost_scoped
            .write()
            .retain(|q| !(q.vhost == vhost && q.component == component && q.name == name));
    }

    pub(crate) fn clear_vhost(&self, vhost: &str) {
        self.vhost_scoped.write().retain(|q| q.vhost != vhost);
    }

    pub(crate) fn list(&self) -> Vec<Parameter> {
        self.vhost_scoped.read().clone()
    }

    pub(crate) fn set_global(&self, name: &str, value: Value) {
        let mut list = self.global.write();
        list.retain(|(n, _)| n != name);
        list.push((name.to_string(), value));
        list.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub(crate) fn clear_global(&self, name: &str) {
        self.global.write().retain(|(n, _)| n != name);
    }

    pub(crate) fn list_global(&self) -> Vec<(String, Value)> {
        self.global.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn highest_priority_wins() {
        let p = Policies::default();
        p.set(
            Policy::new(
                "low",
                ".*",
                "all",
                def(json!({"alternate-exchange": "ae1"})),
                0,
            )
            .unwrap(),
        );
        p.set(
            Policy::new(
                "high",
                "^orders",
                "exchanges",
                def(json!({"alternate-exchange": "ae2"})),
                5,
            )
            .unwrap(),
        );
        p.set(Policy::new("queues", ".*", "queues", def(json!({"max-length": 10})), 9).unwrap());
        assert_eq!(p.alternate_exchange("orders.eu").as_deref(), Some("ae2"));
        assert_eq!(p.alternate_exchange("other").as_deref(), Some("ae1"));
        assert_eq!(p.effective(false, "q").unwrap().name, "queues");
        assert!(p.clear("low"));
        assert_eq!(p.alternate_exchange("other"), None);
    }

    #[test]
    fn validation() {
        assert!(validate(".*", "all", &def(json!({"max-length": 10}))).is_ok());
        assert!(validate("(", "all", &def(json!({"max-length": 10})))
            .unwrap_err()
            .starts_with("invalid pattern '('"));
        assert!(validate(".*", "bogus", &def(json!({"max-length": 10}))).is_err());
        assert!(validate(".*", "all", &def(json!({"max-length": -1}))).is_err());
        assert!(validate(".*", "all", &def(json!({"overflow": "sideways"}))).is_err());
        assert_eq!(
            validate(".*", "all", &def(json!({"colour": "blue"}))).unwrap_err(),
            "unrecognised policy key 'colour'"
        );
        assert!(validate(".*", "all", &Map::new()).is_err());
        assert_eq!(
            not_enforced(&def(
                json!({"alternate-exchange": "x", "message-ttl": 5, "ha-mode": "all"})
            )),
            vec!["ha-mode".to_string()]
        );
    }
}
