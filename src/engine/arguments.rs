//! Declare arguments: how RabbitMQ compares them on redeclare and names them in errors.
//!
//! A redeclare with different properties is refused with 406 and a text such as
//! `inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received none but
//! current is the value '1000' of type 'signedint'`. Only the arguments RabbitMQ
//! knows are compared; unknown ones are stored but never cause a mismatch.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::error::{in_vhost, AmqpError};

/// Queue arguments RabbitMQ checks for equivalence on redeclare.
pub(crate) const QUEUE_COMPARED: &[&str] = &[
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
pub(crate) const EXCHANGE_COMPARED: &[&str] = &["alternate-exchange"];

pub(crate) use warren_routing::value::{display_value, rabbit_type_name as type_name};

/// Values equal for equivalence: same value and type class (strings of either
/// kind alike, integers of any width alike, as RabbitMQ's type_class does).
fn same(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Ok(x), Ok(y)) = (int_arg(a), int_arg(b)) {
        return x == y;
    }
    match (
        crate::protocol::field::value_as_str(a),
        crate::protocol::field::value_as_str(b),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Compares the arguments RabbitMQ compares; the error names the first that differs.
pub(crate) fn check_equivalent(
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
            // RabbitMQ prints bare values when both sides have one, and the
            // value with its type when one side is missing.
            let (rec, cur) = match (rec, cur) {
                (Some(r), Some(c)) => (
                    format!("'{}'", display_value(r)),
                    format!("'{}'", display_value(c)),
                ),
                _ => {
                    let show = |v: Option<&AMQPValue>| match v {
                        None => "none".to_string(),
                        Some(v) => format!(
                            "the value '{}' of type '{}'",
                            display_value(v),
                            type_name(v)
                        ),
                    };
                    (show(rec), show(cur))
                }
            };
            return Err(AmqpError::PreconditionFailed(format!(
                "inequivalent arg '{key}' for {}: received {rec} but current is {cur}",
                in_vhost(kind, name, vhost),
            )));
        }
    }
    Ok(())
}

use crate::protocol::content::check_expiry;

/// Checks queue.declare arguments as RabbitMQ does; the error text ends with
/// RabbitMQ's Erlang term for the problem (`{value_negative,-1}`).
pub(crate) fn validate_queue_arguments(
    name: &str,
    vhost: &str,
    args: &FieldTable,
) -> Result<(), AmqpError> {
    for (key, value) in args.inner() {
        let key = key.as_str();
        let problem = match key {
            "x-expires" => int_arg(value).and_then(|v| match v {
                0 => Err("{value_zero,0}".to_string()),
                v => check_expiry(v),
            }),
            "x-message-ttl" => int_arg(value).and_then(check_expiry),
            "x-max-length" | "x-max-length-bytes" | "x-delivery-limit" => {
                int_arg(value).and_then(non_negative)
            }
            "x-max-priority" => int_arg(value).and_then(non_negative).and_then(|v| {
                if v > 255 {
                    Err(format!("{{max_value_exceeded,{v}}}"))
                } else {
                    Ok(v)
                }
            }),
            "x-dead-letter-exchange" => match string_arg(value) {
                Ok(_) => Ok(0),
                // RabbitMQ words this one differently.
                Err(_) => {
                    return Err(AmqpError::PreconditionFailed(format!(
                        "invalid type '{}' for arg '{key}' in {}",
                        type_name(value),
                        in_vhost("queue", name, vhost)
                    )))
                }
            },
            "x-dead-letter-routing-key" => string_arg(value).and_then(|_| {
                if args.inner().contains_key("x-dead-letter-exchange") {
                    Ok(0)
                } else {
                    Err("routing_key_but_no_dlx_defined".to_string())
                }
            }),
            "x-overflow" => string_arg(value).and_then(|v| {
                if ["drop-head", "reject-publish", "reject-publish-dlx"].contains(&v) {
                    Ok(0)
                } else {
                    Err("invalid_overflow".to_string())
                }
            }),
            "x-queue-mode" => string_arg(value).and_then(|v| {
                if ["default", "lazy"].contains(&v) {
                    Ok(0)
                } else {
                    Err("invalid_queue_mode".to_string())
                }
            }),
            "x-single-active-consumer" => match value {
                AMQPValue::Boolean(_) => Ok(0),
                other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
            },
            "x-queue-type" => string_arg(value).and_then(|v| match v {
                "classic" | "quorum" => Ok(0),
                other => Err(format!("\"unsupported queue type '{other}'\"")),
            }),
            _ => Ok(0),
        };
        if let Err(problem) = problem {
            return Err(AmqpError::PreconditionFailed(format!(
                "invalid arg '{key}' for {}: {problem}",
                in_vhost("queue", name, vhost)
            )));
        }
    }
    Ok(())
}

/// An integer argument; RabbitMQ 3.10's text for another type (quotes included).
fn int_arg(value: &AMQPValue) -> Result<i64, String> {
    warren_routing::value::as_integer(value)
        .ok_or_else(|| format!("\"expected integer, got {}\"", type_name(value)))
}

fn string_arg(value: &AMQPValue) -> Result<&str, String> {
    match value {
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
            crate::protocol::field::value_as_str(value).ok_or_else(|| "{invalid_utf8}".to_string())
        }
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
    }
}

fn non_negative(v: i64) -> Result<i64, String> {
    if v < 0 {
        Err(format!("{{value_negative,{v}}}"))
    } else {
        Ok(v)
    }
}

/// A property mismatch on redeclare (durable, auto_delete, type, internal).
pub(crate) fn inequivalent_property(
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
    fn argument_validation_texts() {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(-1));
        assert_eq!(
            validate_queue_arguments("q", "/", &args).unwrap_err().to_string(),
            "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("bogus".into()));
        assert!(validate_queue_arguments("q", "/", &args)
            .unwrap_err()
            .to_string()
            .ends_with(": \"unsupported queue type 'bogus'\""));
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
