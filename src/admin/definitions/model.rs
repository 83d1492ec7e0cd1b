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
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

/// A whole definitions document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    #[serde(default)]
    pub users: Vec<UserDef>,
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermissionDef>,
    #[serde(default)]
    pub parameters: Vec<ParameterDef>,
    #[serde(default)]
    pub global_parameters: Vec<GlobalParameterDef>,
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
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
pub struct UserDef {
    pub name: String,
    /// A plain password (hashed on load; never exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashing_algorithm: Option<String>,
    /// A list, or RabbitMQ's older comma-separated string.
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Map<String, Value>>,
    /// Warren's extension: whether the user may connect only from loopback
    /// (default: guest only, unless `--guest-remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback_only: Option<bool>,
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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
pub struct VhostDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// RabbitMQ 3.8's place for the description (before `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PermissionDef {
    pub user: String,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicPermissionDef {
    pub user: String,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterDef {
    #[serde(default)]
    pub value: Value,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub component: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalParameterDef {
    pub name: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyDef {
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default = "default_apply_to")]
    pub apply_to: String,
    #[serde(default)]
    pub definition: Map<String, Value>,
    #[serde(default)]
    pub priority: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// RabbitMQ 3.10 exports the queue type here too (`classic`, `quorum`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingDef {
    pub source: String,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

impl QueueDef {
    /// "queue 'q' in vhost 'v'", as RabbitMQ names it.
    pub fn label(&self) -> String {
        crate::protocol::error::in_vhost("queue", &self.name, &self.vhost)
    }
}

impl ExchangeDef {
    pub fn label(&self) -> String {
        crate::protocol::error::in_vhost("exchange", &self.name, &self.vhost)
    }
}

impl BindingDef {
    pub fn label(&self) -> String {
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
    pub fn key(&self) -> (String, String, String, String, String, String) {
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
    pub fn label(&self) -> String {
        crate::protocol::error::in_vhost("policy", &self.name, &self.vhost)
    }
}

/// A JSON value as an AMQP field value, as RabbitMQ's importer converts it
/// (integers are `long`, other numbers `double`, objects tables).
pub fn to_amqp(value: &Value) -> AMQPValue {
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

pub fn to_field_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in map {
        table.insert(k.as_str().into(), to_amqp(v));
    }
    table
}

/// An AMQP field value as JSON, as RabbitMQ's exporter writes it.
pub fn from_amqp(value: &AMQPValue) -> Value {
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

pub fn from_field_table(table: &FieldTable) -> Map<String, Value> {
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
