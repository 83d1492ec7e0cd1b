//! RabbitMQ's definitions format, as serde types.
//!
//! The field names are RabbitMQ's (`rabbitmqctl export_definitions`, the
//! management API's `/api/definitions`), so a RabbitMQ 3.x export loads
//! unchanged. Where RabbitMQ's importer needs a key, Warren takes a default
//! instead so that hand-written files stay short: `vhost` is `/`, `durable`
//! true, `auto_delete` and `internal` false, `arguments` empty, `apply-to`
//! `all`, `priority` 0. Unknown keys are ignored. A user may carry a plain
//! `password`, hashed when it is loaded.

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// A whole definitions document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Definitions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rabbit_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rabbitmq_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) product_version: Option<String>,
    #[serde(default)]
    pub(crate) users: Vec<UserDef>,
    #[serde(default)]
    pub(crate) vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub(crate) permissions: Vec<PermissionDef>,
    #[serde(default)]
    pub(crate) topic_permissions: Vec<TopicPermissionDef>,
    #[serde(default)]
    pub(crate) parameters: Vec<ParameterDef>,
    #[serde(default)]
    pub(crate) global_parameters: Vec<GlobalParameterDef>,
    #[serde(default)]
    pub(crate) policies: Vec<PolicyDef>,
    #[serde(default)]
    pub(crate) queues: Vec<QueueDef>,
    #[serde(default)]
    pub(crate) exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    pub(crate) bindings: Vec<BindingDef>,
}

fn default_vhost() -> String {
    "/".to_string()
}

fn yes() -> bool {
    true
}

fn default_apply_to() -> String {
    "all".to_string()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserDef {
    pub(crate) name: String,
    /// A plain password (hashed on load; never exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hashing_algorithm: Option<String>,
    /// A list, or RabbitMQ's older comma-separated string.
    #[serde(default, deserialize_with = "crate::store::access::tags")]
    pub(crate) tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) limits: Option<Map<String, Value>>,
    /// Warren's extension: whether the user may connect only from loopback
    /// (default: guest only, unless `--guest-remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) loopback_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct VhostDef {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) limits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Map<String, Value>>,
    /// RabbitMQ 3.8's place for the description (before `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PermissionDef {
    pub(crate) user: String,
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    pub(crate) configure: String,
    pub(crate) write: String,
    pub(crate) read: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TopicPermissionDef {
    pub(crate) user: String,
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    pub(crate) exchange: String,
    pub(crate) write: String,
    pub(crate) read: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ParameterDef {
    #[serde(default)]
    pub(crate) value: Value,
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    pub(crate) component: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GlobalParameterDef {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyDef {
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    pub(crate) name: String,
    pub(crate) pattern: String,
    #[serde(rename = "apply-to", default = "default_apply_to")]
    pub(crate) apply_to: String,
    #[serde(default)]
    pub(crate) definition: Map<String, Value>,
    #[serde(default)]
    pub(crate) priority: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueDef {
    pub(crate) name: String,
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    #[serde(default = "yes")]
    pub(crate) durable: bool,
    #[serde(default)]
    pub(crate) auto_delete: bool,
    #[serde(default)]
    pub(crate) arguments: Map<String, Value>,
    /// RabbitMQ 3.10 exports the queue type here too (`classic`, `quorum`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExchangeDef {
    pub(crate) name: String,
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default = "yes")]
    pub(crate) durable: bool,
    #[serde(default)]
    pub(crate) auto_delete: bool,
    #[serde(default)]
    pub(crate) internal: bool,
    #[serde(default)]
    pub(crate) arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BindingDef {
    pub(crate) source: String,
    #[serde(default = "default_vhost")]
    pub(crate) vhost: String,
    pub(crate) destination: String,
    pub(crate) destination_type: String,
    #[serde(default)]
    pub(crate) routing_key: String,
    #[serde(default)]
    pub(crate) arguments: Map<String, Value>,
}

impl QueueDef {
    /// "queue 'q' in vhost 'v'", as RabbitMQ names it.
    pub(crate) fn label(&self) -> String {
        crate::protocol::error::in_vhost("queue", &self.name, &self.vhost)
    }
}

impl ExchangeDef {
    pub(crate) fn label(&self) -> String {
        crate::protocol::error::in_vhost("exchange", &self.name, &self.vhost)
    }
}

impl BindingDef {
    pub(crate) fn label(&self) -> String {
        let args = if self.arguments.is_empty() {
            String::new()
        } else {
            format!(" arguments {}", Value::Object(self.arguments.clone()))
        };
        format!(
            "binding from exchange '{}' to {} '{}' with key '{}'{args} in vhost '{}'",
            self.source, self.destination_type, self.destination, self.routing_key, self.vhost
        )
    }

    /// Identity for comparisons: everything, arguments as canonical JSON.
    pub(crate) fn key(&self) -> (String, String, String, String, String, String) {
        (
            self.vhost.clone(),
            self.source.clone(),
            self.destination_type.clone(),
            self.destination.clone(),
            self.routing_key.clone(),
            Value::Object(self.arguments.clone()).to_string(),
        )
    }
}

impl PolicyDef {
    pub(crate) fn label(&self) -> String {
        crate::protocol::error::in_vhost("policy", &self.name, &self.vhost)
    }
}

/// A JSON value as an AMQP field value, as RabbitMQ's importer converts it
/// (integers are `long`, other numbers `double`, objects tables).
pub(crate) fn to_amqp(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(to_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(to_field_table(map)),
    }
}

pub(crate) fn to_field_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in map {
        table.insert(k.as_str().into(), to_amqp(v));
    }
    table
}

/// An AMQP field value as JSON, as RabbitMQ's exporter writes it.
pub(crate) fn from_amqp(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(v) => Value::from(*v),
        AMQPValue::ShortShortUInt(v) => Value::from(*v),
        AMQPValue::ShortInt(v) => Value::from(*v),
        AMQPValue::ShortUInt(v) => Value::from(*v),
        AMQPValue::LongInt(v) => Value::from(*v),
        AMQPValue::LongUInt(v) => Value::from(*v),
        AMQPValue::LongLongInt(v) => Value::from(*v),
        AMQPValue::Timestamp(v) => Value::from(*v),
        AMQPValue::Float(v) => Number::from_f64(f64::from(*v)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let v = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::ByteArray(b) => {
            Value::String(String::from_utf8_lossy(b.as_slice()).into_owned())
        }
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(from_amqp).collect()),
        AMQPValue::FieldTable(t) => Value::Object(from_field_table(t)),
        AMQPValue::Void => Value::Null,
    }
}

pub(crate) fn from_field_table(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), from_amqp(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_rabbitmq_export() {
        let text = r#"{"rabbit_version":"3.10.8","rabbitmq_version":"3.10.8","product_name":"RabbitMQ",
          "product_version":"3.10.8",
          "users":[{"name":"guest","password_hash":"gazAFGVV/80faOacbcUuHSl6coVME00XPTabyILpBPc245Pn",
                    "hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"],"limits":{}}],
          "vhosts":[{"name":"/","limits":[],"metadata":{"description":"Default virtual host","tags":[]}}],
          "permissions":[{"user":"guest","vhost":"/","configure":".*","write":".*","read":".*"}],
          "topic_permissions":[],"parameters":[],"global_parameters":[{"name":"internal_cluster_id","value":"rabbitmq-cluster-id-x"}],
          "policies":[{"vhost":"/","name":"ttl","pattern":"^q","apply-to":"queues","definition":{"message-ttl":1000},"priority":1}],
          "queues":[{"name":"q","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-max-length":10},"type":"classic"}],
          "exchanges":[{"name":"x","vhost":"/","type":"topic","durable":true,"auto_delete":false,"internal":false,"arguments":{}}],
          "bindings":[{"source":"x","vhost":"/","destination":"q","destination_type":"queue","routing_key":"a.#","arguments":{}}]}"#;
        let d: Definitions = serde_json::from_str(text).unwrap();
        assert_eq!(d.users[0].tags, vec!["administrator"]);
        assert_eq!(d.policies[0].apply_to, "queues");
        assert_eq!(d.queues[0].kind.as_deref(), Some("classic"));
        assert_eq!(d.bindings[0].routing_key, "a.#");
    }

    #[test]
    fn defaults_and_old_tag_strings() {
        let d: Definitions = serde_json::from_str(
            r#"{"users":[{"name":"a","password":"p","tags":"administrator, management"}],
                "queues":[{"name":"q"}],"exchanges":[{"name":"x","type":"direct"}]}"#,
        )
        .unwrap();
        assert_eq!(d.users[0].tags, vec!["administrator", "management"]);
        assert_eq!(d.queues[0].vhost, "/");
        assert!(d.queues[0].durable);
        assert!(!d.exchanges[0].internal);
    }

    #[test]
    fn field_tables_round_trip() {
        let v = json!({"x-max-length": 10, "x-dead-letter-exchange": "dlx", "flag": true,
                       "list": [1, "a"], "nested": {"k": 1.5}});
        let map = v.as_object().unwrap().clone();
        assert_eq!(from_field_table(&to_field_table(&map)), map);
    }
}
