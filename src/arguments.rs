//! Declare arguments: how RabbitMQ compares them on redeclare and names them in errors.
//!
//! A redeclare with different properties is refused with 406 and a text such as
//! `inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received none but
//! current is the value '1000' of type 'signedint'`. Only the arguments RabbitMQ
//! knows are compared; unknown ones are stored but never cause a mismatch.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::error::{in_vhost, AmqpError};

/// Queue arguments RabbitMQ checks for equivalence on redeclare.
pub const QUEUE_COMPARED: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-queue-master-locator",
];

/// Exchange arguments RabbitMQ checks for equivalence on redeclare.
pub const EXCHANGE_COMPARED: &[&str] = &["alternate-exchange"];

/// RabbitMQ's name for a field type, as its error texts print it.
pub fn type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// A value printed as RabbitMQ prints it inside quotes.
pub fn display_value(value: &AMQPValue) -> String {
    match value {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(v) => v.to_string(),
        AMQPValue::ShortShortUInt(v) => v.to_string(),
        AMQPValue::ShortInt(v) => v.to_string(),
        AMQPValue::ShortUInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::LongUInt(v) => v.to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::Float(v) => v.to_string(),
        AMQPValue::Double(v) => v.to_string(),
        AMQPValue::Timestamp(v) => v.to_string(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => format!("{other:?}"),
    }
}

/// Values equal for equivalence: same type and value, strings of either kind alike.
fn same(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (
        crate::message::value_as_str(a),
        crate::message::value_as_str(b),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Compares the arguments RabbitMQ compares; the error names the first that differs.
pub fn check_equivalent(
    kind: &str,
    name: &str,
    vhost: &str,
    compared: &[&str],
    current: &FieldTable,
    received: &FieldTable,
) -> Result<(), AmqpError> {
    for key in compared {
        let cur = current.inner().get(*key);
        let rec = received.inner().get(*key);
        let differs = match (cur, rec) {
            (None, None) => false,
            (Some(a), Some(b)) => !same(a, b),
            _ => true,
        };
        if differs {
            let show = |v: Option<&AMQPValue>| match v {
                None => "none".to_string(),
                Some(v) => format!(
                    "the value '{}' of type '{}'",
                    display_value(v),
                    type_name(v)
                ),
            };
            return Err(AmqpError::PreconditionFailed(format!(
                "inequivalent arg '{key}' for {}: received {} but current is {}",
                in_vhost(kind, name, vhost),
                show(rec),
                show(cur)
            )));
        }
    }
    Ok(())
}

/// A property mismatch on redeclare (durable, auto_delete, type, internal).
pub fn inequivalent_property(
    kind: &str,
    name: &str,
    vhost: &str,
    property: &str,
    received: impl std::fmt::Display,
    current: impl std::fmt::Display,
) -> AmqpError {
    AmqpError::PreconditionFailed(format!(
        "inequivalent arg '{property}' for {}: received '{received}' but current is '{current}'",
        in_vhost(kind, name, vhost)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_argument_text_matches_rabbitmq() {
        let mut current = FieldTable::default();
        current.insert("x-max-length".into(), AMQPValue::LongInt(1000));
        let err = check_equivalent(
            "queue",
            "q",
            "/",
            QUEUE_COMPARED,
            &current,
            &FieldTable::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': \
             received none but current is the value '1000' of type 'signedint'"
        );
    }

    #[test]
    fn unknown_arguments_are_not_compared() {
        let mut received = FieldTable::default();
        received.insert("x-custom".into(), AMQPValue::LongInt(1));
        assert!(check_equivalent(
            "queue",
            "q",
            "/",
            QUEUE_COMPARED,
            &FieldTable::default(),
            &received
        )
        .is_ok());
    }
}
