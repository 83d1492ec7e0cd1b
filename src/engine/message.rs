//! A published message, as queues hold it.
//!
//! A message is built once by the publishing channel and shared (`Arc`) by every
//! queue it is routed to, so routing to N queues copies nothing. Its properties
//! are kept as the content-header bytes the publisher sent
//! ([`Properties`]): a delivery writes them back unchanged (header tables
//! round-trip exactly), and the headers table is decoded only when something
//! reads it (a headers exchange, a selector, dead-lettering). A small message
//! is copied out of the connection's read buffer into one allocation of its
//! own, so that what it holds in memory is what it is, and what the memory
//! alarm is charged ([`MemoryCharge`]).

use std::cell::OnceCell;

use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use bytes::{Bytes, BytesMut};
use warren_routing::{HeaderSource, Headers, MessageProperties, RoutableMessage};

use crate::engine::memory::MemoryCharge;
use crate::protocol::content::{ContentHeader, Properties};
use crate::protocol::field::{value_as_i64, value_as_str};
use crate::protocol::frame;
use crate::store::record::StoredMessage;
use crate::store::{Location, MessageLog};

/// Messages (header and body) smaller than this are copied into an
/// allocation of their own instead of keeping the buffer they were read into.
const COPY_BELOW: usize = 64 * 1024;

/// What a message costs beyond its bytes: the `Message` in its `Arc` (two
/// counters), the shared header of its bytes, allocator rounding for those
/// three allocations, and a queue entry (56 bytes) with the slack a growing
/// deque keeps. Measured: 334 bytes a 16-byte message in a 2.4 M backlog;
/// this charges 390, so the alarm errs on the side of firing early.
const OVERHEAD: usize = std::mem::size_of::<Message>() + 16 + 32 + 3 * 16 + 2 * 56;

/// An immutable published message.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) exchange: ShortString,
    pub(crate) routing_key: ShortString,
    /// The content header, as received or as the broker re-encoded it.
    pub(crate) properties: Properties,
    pub(crate) body: Bytes,
    /// This message's share of the memory alarm's counter.
    _charge: MemoryCharge,
}

impl Message {
    /// A message whose header and body were cut out of a larger buffer (a
    /// connection's read buffer, a batch read from the log): a small one is
    /// copied out, so it does not keep that buffer alive.
    pub(crate) fn new(
        exchange: ShortString,
        routing_key: ShortString,
        mut properties: Properties,
        mut body: Bytes,
    ) -> Self {
        let header_len = properties.raw().len();
        if header_len + body.len() < COPY_BELOW {
            let mut own = BytesMut::with_capacity(header_len + body.len());
            own.extend_from_slice(properties.raw());
            own.extend_from_slice(&body);
            let own = own.freeze();
            properties = properties.rebased(own.slice(..header_len));
            body = own.slice(header_len..);
        }
        Self::from_parts(exchange, routing_key, properties, body)
    }

    /// A message made of parts that hold no one else's bytes (a header the
    /// broker encoded, the body of another message).
    pub(crate) fn from_parts(
        exchange: ShortString,
        routing_key: ShortString,
        properties: Properties,
        body: Bytes,
    ) -> Self {
        let header_len = properties.raw().len();
        let bytes = OVERHEAD + exchange.as_str().len() + routing_key.as_str().len();
        Self {
            _charge: MemoryCharge::new(bytes + header_len + body.len()),
            exchange,
            routing_key,
            properties,
            body,
        }
    }

    /// The headers table, decoded (None without one).
    pub(crate) fn headers(&self) -> Option<FieldTable> {
        self.properties.headers()
    }

    /// One top-level header, decoded alone.
    pub(crate) fn header(&self, key: &str) -> Option<AMQPValue> {
        self.properties.header(key)
    }

    /// The key the deduplication plugin identifies this message by: its
    /// `x-deduplication-header` header's value (strings of either kind and
    /// integers of any width compare by value).
    pub(crate) fn dedup_key(&self) -> Option<String> {
        self.header(DEDUP_HEADER).as_ref().map(dedup_key_of)
    }

    /// The headers as routing reads them: decoded at most once, and only if a
    /// headers exchange or a selector asks.
    pub(crate) fn lazy_headers(&self) -> LazyHeaders<'_> {
        LazyHeaders {
            message: self,
            table: OnceCell::new(),
        }
    }

    /// What routing reads of this message (binding selectors included),
    /// borrowed: building it allocates nothing.
    pub(crate) fn routable<'a>(&'a self, headers: &'a LazyHeaders<'a>) -> RoutableMessage<'a> {
        let p = self.properties.view();
        RoutableMessage {
            routing_key: self.routing_key.as_str(),
            headers: if self.properties.has_headers() {
                Headers::Lazy(headers)
            } else {
                Headers::None
            },
            exchange: self.exchange.as_str(),
            properties: MessageProperties {
                content_type: p.content_type,
                content_encoding: p.content_encoding,
                delivery_mode: p.delivery_mode,
                priority: p.priority,
                correlation_id: p.correlation_id,
                reply_to: p.reply_to,
                expiration: p.expiration,
                message_id: p.message_id,
                timestamp: p.timestamp,
                message_type: p.kind,
                user_id: p.user_id,
                app_id: p.app_id,
            },
            body: &self.body,
        }
    }

    /// Whether the publisher asked for persistence (delivery-mode 2).
    pub(crate) fn is_persistent(&self) -> bool {
        self.properties.delivery_mode() == Some(2)
    }

    /// The content-header payload, as it is sent.
    #[cfg(test)]
    pub(crate) fn header_bytes(&self) -> Bytes {
        self.properties.raw().clone()
    }

    /// Writes this message to `log` once, for the durable queues `queues`.
    pub(crate) fn store_in(&self, log: &MessageLog, queues: Vec<u32>) -> std::io::Result<Location> {
        log.append(
            queues,
            self.exchange.as_str(),
            self.routing_key.as_str(),
            self.properties.raw(),
            &self.body,
        )
    }

    /// Rebuilds a message read back from the store (None if its header does
    /// not read back, which the record's checksum makes unlikely).
    pub(crate) fn from_stored(stored: StoredMessage) -> Option<Self> {
        let header = ContentHeader::parse(stored.raw_header).ok()?;
        Some(Self::new(
            ShortString::try_new(stored.exchange).ok()?,
            ShortString::try_new(stored.routing_key).ok()?,
            header.properties,
            stored.body,
        ))
    }

    /// Appends `method` (a deliver, get-ok or return) and this message's
    /// content header and body frames on `channel`, contiguous.
    pub(crate) fn encode(
        &self,
        out: &mut Vec<u8>,
        channel: u16,
        method: amq_protocol::protocol::AMQPClass,
        frame_max: u32,
    ) {
        frame::push_method(out, channel, method);
        frame::push_raw_header(out, channel, self.properties.raw());
        frame::push_body(out, channel, &self.body, frame_max);
    }
}

/// A message's headers, decoded the first time routing asks for them.
pub(crate) struct LazyHeaders<'m> {
    message: &'m Message,
    table: OnceCell<Option<FieldTable>>,
}

impl HeaderSource for LazyHeaders<'_> {
    fn table(&self) -> Option<&FieldTable> {
        self.table.get_or_init(|| self.message.headers()).as_ref()
    }
}

/// The header whose value identifies a message for deduplication.
pub(crate) const DEDUP_HEADER: &str = "x-deduplication-header";

fn dedup_key_of(value: &AMQPValue) -> String {
    if let Some(s) = value_as_str(value) {
        return format!("s:{s}");
    }
    if let Some(n) = value_as_i64(value) {
        return format!("i:{n}");
    }
    // Anything else (tables, arrays, bytes...) by its wire encoding, written
    // without recursion however deeply it nests.
    let mut encoded = Vec::new();
    crate::protocol::field::encode_value(&mut encoded, value);
    let hex: String = encoded.iter().map(|b| format!("{b:02x}")).collect();
    format!("v:{hex}")
}
