//! Exchanges: what one was declared with ([`Exchange`]; its bindings live in
//! the vhost's routing topology), and the exchange types beyond the four
//! standard ones, which Warren implements with their plugins' interfaces.
//!
//! * `x-delayed-message` (rabbitmq-delayed-message-exchange): routes as its
//!   `x-delayed-type`, after the `x-delay` header's milliseconds (`delayed.rs`);
//! * `x-message-deduplication` (rabbitmq-message-deduplication): routes as a
//!   fanout exchange, except repeats of an `x-deduplication-header` value seen
//!   within the cache's window (`dedup.rs`).
//!
//! The routing crate sees only the standard kind each one routes as; what the
//! plugin type adds is the [`Extension`] kept with the exchange.

pub(crate) mod dedup;
pub(crate) mod delayed;

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};
use warren_routing::ExchangeKind;

use crate::engine::exchange::dedup::Cache;
use crate::protocol::error::AmqpError;
use crate::protocol::field::value_as_str;

pub(crate) const DELAYED: &str = "x-delayed-message";
pub(crate) const DEDUPLICATION: &str = "x-message-deduplication";

/// An exchange's declared properties (its bindings live in the topology).
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) name: Arc<str>,
    pub(crate) kind: ExchangeKind,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: FieldTable,
    /// What a plugin exchange type (delayed, deduplication) adds.
    pub(crate) extension: Extension,
}

/// What a plugin exchange type adds to routing.
#[derive(Clone, Debug, Default)]
pub(crate) enum Extension {
    #[default]
    None,
    /// Holds messages with a positive `x-delay` header, then routes them.
    Delayed,
    /// Drops repeats of a deduplication key within the cache's window.
    Deduplication(Arc<Cache>),
}

impl Extension {
    /// The type name the exchange was declared with.
    pub(crate) fn type_name(&self, kind: ExchangeKind) -> &'static str {
        match self {
            Extension::None => kind.as_str(),
            Extension::Delayed => DELAYED,
            Extension::Deduplication(_) => DEDUPLICATION,
        }
    }
}

/// Resolves an exchange type name (with the declare's arguments, which the
/// plugin types read) to the kind it routes as and its extension.
pub(crate) fn resolve(
    kind: &str,
    arguments: &FieldTable,
) -> Result<(ExchangeKind, Extension), AmqpError> {
    let invalid_type =
        |kind: &str| AmqpError::CommandInvalid(format!("invalid exchange type '{kind}'"));
    match kind {
        DELAYED => {
            let Some(inner) = arguments
                .inner()
                .get("x-delayed-type")
                .and_then(value_as_str)
            else {
                // The plugin's text, as it sends it.
                return Err(AmqpError::PreconditionFailed(
                    "Invalid argument, 'x-delayed-type' must bean existing exchnage type".into(),
                ));
            };
            let routed = ExchangeKind::parse(inner).ok_or_else(|| invalid_type(inner))?;
            Ok((routed, Extension::Delayed))
        }
        DEDUPLICATION => {
            let args = arguments.inner();
            let size = args.get("x-cache-size").and_then(positive).ok_or_else(|| {
                AmqpError::PreconditionFailed(
                    "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"
                        .into(),
                )
            })?;
            let ttl = match args.get("x-cache-ttl") {
                None => None,
                Some(v) => Some(positive(v).ok_or_else(|| {
                    AmqpError::PreconditionFailed(
                        "Invalid argument, 'x-cache-ttl' must be an integer greater than 0".into(),
                    )
                })?),
            };
            match args.get("x-cache-persistence") {
                None => {}
                Some(AMQPValue::LongString(s))
                    if [&b"disk"[..], b"memory"].contains(&s.as_bytes()) => {}
                Some(_) => {
                    return Err(AmqpError::PreconditionFailed(
                        "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"
                            .into(),
                    ))
                }
            }
            Ok((
                ExchangeKind::Fanout,
                Extension::Deduplication(Arc::new(Cache::new(size, ttl))),
            ))
        }
        other => Ok((
            ExchangeKind::parse(other).ok_or_else(|| invalid_type(other))?,
            Extension::None,
        )),
    }
}

/// A positive integer argument, given as any integer type or as digits.
fn positive(value: &AMQPValue) -> Option<u64> {
    let n = match crate::protocol::field::value_as_i64(value) {
        Some(n) => n,
        None => value_as_str(value)?.trim().parse().ok()?,
    };
    u64::try_from(n).ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::field::table;
    use amq_protocol::types::LongString;

    #[test]
    fn plugin_types_resolve_with_their_texts() {
        let delayed = table(&[(
            "x-delayed-type",
            AMQPValue::LongString(LongString::from("topic")),
        )]);
        assert!(matches!(
            resolve(DELAYED, &delayed),
            Ok((ExchangeKind::Topic, Extension::Delayed))
        ));
        assert_eq!(
            resolve(DELAYED, &FieldTable::default()).unwrap_err().to_string(),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must bean existing exchnage type"
        );
        let bad = table(&[(
            "x-delayed-type",
            AMQPValue::LongString(LongString::from("nope")),
        )]);
        assert_eq!(resolve(DELAYED, &bad).unwrap_err().code(), 503);
        let dedup = table(&[(
            "x-cache-size",
            AMQPValue::LongString(LongString::from("10")),
        )]);
        assert!(matches!(
            resolve(DEDUPLICATION, &dedup),
            Ok((ExchangeKind::Fanout, Extension::Deduplication(_)))
        ));
        assert_eq!(
            resolve(
                DEDUPLICATION,
                &table(&[("x-cache-size", AMQPValue::LongInt(0))])
            )
            .unwrap_err()
            .code(),
            406
        );
        assert!(matches!(
            resolve("direct", &FieldTable::default()),
            Ok((ExchangeKind::Direct, Extension::None))
        ));
        assert_eq!(
            resolve("foo", &FieldTable::default()).unwrap_err().code(),
            503
        );
    }
}
