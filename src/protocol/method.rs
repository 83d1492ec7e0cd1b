//! Decoding a method frame's payload into amq-protocol's method structs.
//!
//! amq-protocol decodes field tables recursively, one stack frame per level
//! of nesting, so a client could exhaust a worker's stack with one deeply
//! nested table. The methods whose arguments carry a table (connection.start-ok,
//! exchange.declare/bind/unbind, queue.declare/bind/unbind, basic.consume) are
//! therefore read here, their tables through the iterative decoder of
//! [`field`]; every other method has no table and is left to
//! amq-protocol.

use amq_protocol::protocol::{basic, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString, ShortString};

use super::field::{self, FieldError};

/// Why a method payload could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MethodDecodeError {
    /// The arguments do not follow the method's layout.
    Malformed,
    /// A field table in the arguments is nested too deep (or otherwise broken).
    Table(FieldError),
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MethodDecodeError> {
        let bytes = self
            .data
            .get(self.at..self.at + n)
            .ok_or(MethodDecodeError::Malformed)?;
        self.at += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, MethodDecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn short_str(&mut self) -> Result<ShortString, MethodDecodeError> {
        let len = self.take(1)?[0] as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(ShortString::from)
            .map_err(|_| MethodDecodeError::Malformed)
    }

    fn long_str(&mut self) -> Result<LongString, MethodDecodeError> {
        let b = self.take(4)?;
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        Ok(LongString::from(self.take(len)?.to_vec()))
    }

    /// One octet of packed bits, the first argument in the lowest bit.
    fn bits(&mut self) -> Result<[bool; 8], MethodDecodeError> {
        let b = self.take(1)?[0];
        Ok(std::array::from_fn(|i| b & (1 << i) != 0))
    }

    fn table(&mut self) -> Result<FieldTable, MethodDecodeError> {
        let rest = self.data.get(self.at..).unwrap_or_default();
        let (table, used) = field::decode_table(rest).map_err(|e| match e {
            FieldError::Truncated => MethodDecodeError::Malformed,
            other => MethodDecodeError::Table(other),
        })?;
        self.at += used;
        Ok(table)
    }
}

/// Decodes a whole method payload (class id, method id, arguments).
pub(crate) fn decode(payload: &[u8]) -> Result<AMQPClass, MethodDecodeError> {
    if payload.len() < 4 {
        return Err(MethodDecodeError::Malformed);
    }
    let ids = (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    );
    let mut r = Reader {
        data: payload,
        at: 4,
    };
    let method = match ids {
        (10, 11) => AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: r.table()?,
            mechanism: r.short_str()?,
            response: r.long_str()?,
            locale: r.short_str()?,
        })),
        (40, 10) => {
            r.u16()?; // ticket
            let exchange = r.short_str()?;
            let kind = r.short_str()?;
            let [passive, durable, auto_delete, internal, nowait, ..] = r.bits()?;
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange,
                kind,
                passive,
                durable,
                auto_delete,
                internal,
                nowait,
                arguments: r.table()?,
            }))
        }
        (40, 30) | (40, 40) => {
            r.u16()?;
            let destination = r.short_str()?;
            let source = r.short_str()?;
            let routing_key = r.short_str()?;
            let [nowait, ..] = r.bits()?;
            let arguments = r.table()?;
            AMQPClass::Exchange(if ids.1 == 30 {
                exchange::AMQPMethod::Bind(exchange::Bind {
                    destination,
                    source,
                    routing_key,
                    nowait,
                    arguments,
                })
            } else {
                exchange::AMQPMethod::Unbind(exchange::Unbind {
                    destination,
                    source,
                    routing_key,
                    nowait,
                    arguments,
                })
            })
        }
        (50, 10) => {
            r.u16()?;
            let queue = r.short_str()?;
            let [passive, durable, exclusive, auto_delete, nowait, ..] = r.bits()?;
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue,
                passive,
                durable,
                exclusive,
                auto_delete,
                nowait,
                arguments: r.table()?,
            }))
        }
        (50, 20) => {
            r.u16()?;
            let queue = r.short_str()?;
            let exchange = r.short_str()?;
            let routing_key = r.short_str()?;
            let [nowait, ..] = r.bits()?;
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue,
                exchange,
                routing_key,
                nowait,
                arguments: r.table()?,
            }))
        }
        (50, 50) => {
            r.u16()?;
            AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                queue: r.short_str()?,
                exchange: r.short_str()?,
                routing_key: r.short_str()?,
                arguments: r.table()?,
            }))
        }
        (60, 20) => {
            r.u16()?;
            let queue = r.short_str()?;
            let consumer_tag = r.short_str()?;
            let [no_local, no_ack, exclusive, nowait, ..] = r.bits()?;
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue,
                consumer_tag,
                no_local,
                no_ack,
                exclusive,
                nowait,
                arguments: r.table()?,
            }))
        }
        _ => {
            return amq_protocol::protocol::parse_class(payload)
                .map(|(_, method)| method)
                .map_err(|_| MethodDecodeError::Malformed)
        }
    };
    Ok(method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    fn encoded(method: AMQPClass) -> Vec<u8> {
        let gen = amq_protocol::protocol::gen_class(&method);
        cookie_factory::gen_simple(gen, Vec::new()).expect("encodes")
    }

    fn args() -> FieldTable {
        let mut inner = FieldTable::default();
        inner.insert("deep".into(), AMQPValue::Boolean(true));
        let mut t = FieldTable::default();
        t.insert("x-max-length".into(), AMQPValue::LongInt(10));
        t.insert("nested".into(), AMQPValue::FieldTable(inner));
        t
    }

    #[test]
    fn table_methods_decode_as_amq_protocol_decodes_them() {
        let methods = [
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: args(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: "x".into(),
                kind: "topic".into(),
                passive: false,
                durable: true,
                auto_delete: false,
                internal: true,
                nowait: true,
                arguments: args(),
            })),
            AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                destination: "d".into(),
                source: "s".into(),
                routing_key: "k".into(),
                nowait: true,
                arguments: args(),
            })),
            AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                destination: "d".into(),
                source: "s".into(),
                routing_key: "k".into(),
                nowait: false,
                arguments: args(),
            })),
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "q".into(),
                passive: false,
                durable: true,
                exclusive: true,
                auto_delete: false,
                nowait: true,
                arguments: args(),
            })),
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: "q".into(),
                exchange: "x".into(),
                routing_key: "k".into(),
                nowait: true,
                arguments: args(),
            })),
            AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                queue: "q".into(),
                exchange: "x".into(),
                routing_key: "k".into(),
                arguments: args(),
            })),
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "q".into(),
                consumer_tag: "t".into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: true,
                arguments: args(),
            })),
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 7,
                global: true,
            })),
        ];
        for method in methods {
            let payload = encoded(method.clone());
            assert_eq!(decode(&payload), Ok(method));
        }
    }

    #[test]
    fn truncated_arguments_are_malformed() {
        let payload = encoded(AMQPClass::Queue(queue::AMQPMethod::Declare(
            queue::Declare {
                queue: "q".into(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: args(),
            },
        )));
        for cut in [5, 8, payload.len() - 1] {
            assert_eq!(
                decode(&payload[..cut]),
                Err(MethodDecodeError::Malformed),
                "{cut}"
            );
        }
    }
}
