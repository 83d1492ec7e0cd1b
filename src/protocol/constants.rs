//! Class and method ids of AMQP 0-9-1 (with RabbitMQ's extensions), by name,
//! and the methods a client may send.

/// A method's (class id, method id).
pub(crate) type MethodId = (u16, u16);

pub(crate) const CONNECTION: u16 = 10;
pub(crate) const CHANNEL: u16 = 20;
pub(crate) const ACCESS: u16 = 30;
pub(crate) const EXCHANGE: u16 = 40;
pub(crate) const QUEUE: u16 = 50;
pub(crate) const BASIC: u16 = 60;
pub(crate) const CONFIRM: u16 = 85;
pub(crate) const TX: u16 = 90;

pub(crate) const CONNECTION_START_OK: MethodId = (CONNECTION, 11);
pub(crate) const CONNECTION_OPEN: MethodId = (CONNECTION, 40);
pub(crate) const CHANNEL_OPEN: MethodId = (CHANNEL, 10);
pub(crate) const EXCHANGE_DECLARE: MethodId = (EXCHANGE, 10);
pub(crate) const EXCHANGE_BIND: MethodId = (EXCHANGE, 30);
pub(crate) const EXCHANGE_UNBIND: MethodId = (EXCHANGE, 40);
pub(crate) const QUEUE_DECLARE: MethodId = (QUEUE, 10);
pub(crate) const QUEUE_BIND: MethodId = (QUEUE, 20);
pub(crate) const QUEUE_UNBIND: MethodId = (QUEUE, 50);
pub(crate) const BASIC_CONSUME: MethodId = (BASIC, 20);
pub(crate) const BASIC_PUBLISH: MethodId = (BASIC, 40);

/// Whether a client may send this method (AMQP 0-9-1 plus RabbitMQ's extensions).
pub(crate) fn is_client_method((class_id, method_id): MethodId) -> bool {
    matches!(
        (class_id, method_id),
        (CONNECTION, 11 | 21 | 31 | 40 | 50 | 51 | 60 | 61 | 70 | 71)
            | (CHANNEL, 10 | 20 | 21 | 40 | 41)
            | (ACCESS, 10)
            | (EXCHANGE, 10 | 20 | 30 | 40)
            | (QUEUE, 10 | 20 | 30 | 40 | 50)
            | (BASIC, 10 | 20 | 30 | 40 | 70 | 80 | 90 | 100 | 110 | 120)
            | (CONFIRM, 10)
            | (TX, 10 | 20 | 30)
    )
}

/// RabbitMQ-style method names, for error texts (`basic.publish`,
/// `queue.declare`; a method without a name here shows its number).
pub(crate) fn method_name(id: MethodId) -> String {
    let class = match id.0 {
        CONNECTION => "connection",
        CHANNEL => "channel",
        ACCESS => "access",
        EXCHANGE => "exchange",
        QUEUE => "queue",
        BASIC => "basic",
        CONFIRM => "confirm",
        TX => "tx",
        _ => return format!("{}.{}", id.0, id.1),
    };
    let method = match id {
        CONNECTION_START_OK => "start_ok",
        (CONNECTION, 31) => "tune_ok",
        CONNECTION_OPEN => "open",
        EXCHANGE_DECLARE | QUEUE_DECLARE => "declare",
        EXCHANGE_BIND | QUEUE_BIND => "bind",
        EXCHANGE_UNBIND | QUEUE_UNBIND => "unbind",
        BASIC_CONSUME => "consume",
        BASIC_PUBLISH => "publish",
        _ => return format!("{class}.{}", id.1),
    };
    format!("{class}.{method}")
}
