//! The stored form of users, permissions, topic permissions, policies,
//! runtime parameters and vhost metadata: one JSON document in the meta
//! database, written whole after every change to any of them.
//!
//! The field names are those of RabbitMQ's definitions format (which earlier
//! versions of Warren stored), so a data directory written by them reads back.
//! This module owns the format only; the engine's broker decides what goes in.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Everything about access and policies, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AccessRecords {
    #[serde(default)]
    pub(crate) users: Vec<UserRecord>,
    #[serde(default)]
    pub(crate) vhosts: Vec<VhostRecord>,
    #[serde(default)]
    pub(crate) permissions: Vec<PermissionRecord>,
    #[serde(default)]
    pub(crate) topic_permissions: Vec<TopicPermissionRecord>,
    #[serde(default)]
    pub(crate) parameters: Vec<ParameterRecord>,
    #[serde(default)]
    pub(crate) global_parameters: Vec<GlobalParameterRecord>,
    #[serde(default)]
    pub(crate) policies: Vec<PolicyRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) password_hash: String,
    #[serde(default)]
    pub(crate) hashing_algorithm: String,
    #[serde(default, deserialize_with = "tags")]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) limits: Option<Map<String, Value>>,
    /// Only when it differs from the default (guest: loopback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) loopback_only: Option<bool>,
}

/// Tags as a list, or RabbitMQ's older comma-separated string (shared with
/// the definitions format, which reads them the same way).
pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Tags>::deserialize(d)? {
        None => Vec::new(),
        Some(Tags::List(list)) => list,
        Some(Tags::Text(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct VhostRecord {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) limits: Option<Value>,
    #[serde(default)]
    pub(crate) metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PermissionRecord {
    pub(crate) user: String,
    pub(crate) vhost: String,
    pub(crate) configure: String,
    pub(crate) write: String,
    pub(crate) read: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TopicPermissionRecord {
    pub(crate) user: String,
    pub(crate) vhost: String,
    pub(crate) exchange: String,
    pub(crate) write: String,
    pub(crate) read: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ParameterRecord {
    #[serde(default)]
    pub(crate) value: Value,
    pub(crate) vhost: String,
    pub(crate) component: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GlobalParameterRecord {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    pub(crate) vhost: String,
    pub(crate) name: String,
    pub(crate) pattern: String,
    #[serde(rename = "apply-to")]
    pub(crate) apply_to: String,
    #[serde(default)]
    pub(crate) definition: Map<String, Value>,
    #[serde(default)]
    pub(crate) priority: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_written_in_the_definitions_format_reads_back() {
        // What earlier versions stored: an export in RabbitMQ's format.
        let old = r#"{"rabbit_version":"3.10.8","users":[{"name":"guest",
            "password_hash":"abc","hashing_algorithm":"rabbit_password_hashing_sha256",
            "tags":["administrator"],"limits":{}}],
            "vhosts":[{"name":"/","limits":[],"metadata":{"description":"d","tags":[]}}],
            "permissions":[{"user":"guest","vhost":"/","configure":".*","write":".*","read":".*"}],
            "topic_permissions":[],"parameters":[],"global_parameters":[],
            "policies":[{"vhost":"/","name":"p","pattern":"^q","apply-to":"queues",
            "definition":{"max-length":1},"priority":2}],
            "queues":[],"exchanges":[],"bindings":[]}"#;
        let records: AccessRecords = serde_json::from_str(old).expect("reads");
        assert_eq!(records.users[0].tags, vec!["administrator".to_string()]);
        assert_eq!(records.policies[0].apply_to, "queues");
        assert_eq!(records.permissions[0].configure, ".*");
        let again: AccessRecords =
            serde_json::from_slice(&serde_json::to_vec(&records).expect("writes")).expect("reads");
        assert_eq!(again, records);
    }
}
