//! A published message, as queues hold it.
//!
//! A message is built once by the publishing channel and shared (`Arc`) by every
//! queue it is routed to; its body is a `Bytes` cut straight out of the
//! connection's read buffer, so routing to N queues copies nothing. The content
//! header is kept in its received encoding too: a delivery writes those bytes
//! back unchanged, which both saves re-encoding and guarantees that header tables
//! round-trip exactly as the publisher sent them.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use bytes::Bytes;
use warren_routing::{MessageProperties, RoutableMessage};

use crate::frame;
use crate::memory::MemoryCharge;
use crate::store::record::StoredMessage;
use crate::store::{Location, MessageLog};

/// An immutable published message.
#[derive(Debug)]
pub struct Message {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    pub properties: AMQPProperties,
    /// The content-header payload as the publisher sent it, if it still matches
    /// `properties` (None once the broker changed the properties).
    pub raw_header: Option<Bytes>,
    pub body: Bytes,
    /// This message's share of the memory alarm's counter.
    _charge: MemoryCharge,
}

impl Message {
    pub fn new(
        exchange: ShortString,
        routing_key: ShortString,
        properties: AMQPProperties,
        raw_header: Option<Bytes>,
        body: Bytes,
    ) -> Self {
        Self {
            _charge: MemoryCharge::new(body.len()),
            exchange,
            routing_key,
            properties,
            raw_header,
            body,
        }
    }

    pub fn headers(&self) -> Option<&FieldTable> {
        self.properties.headers().as_ref()
    }

    /// What routing reads of this message (binding selectors included),
    /// borrowed: building it allocates nothing.
    pub fn routable(&self) -> RoutableMessage<'_> {
        let p = &self.properties;
        RoutableMessage {
            routing_key: self.routing_key.as_str(),
            headers: self.headers(),
            exchange: self.exchange.as_str(),
            properties: MessageProperties {
                content_type: text(p.content_type()),
                content_encoding: text(p.content_encoding()),
                delivery_mode: *p.delivery_mode(),
                priority: *p.priority(),
                correlation_id: text(p.correlation_id()),
                reply_to: text(p.reply_to()),
                expiration: text(p.expiration()),
                message_id: text(p.message_id()),
                timestamp: *p.timestamp(),
                message_type: text(p.kind()),
                user_id: text(p.user_id()),
                app_id: text(p.app_id()),
            },
            body: &self.body,
        }
    }

    /// Whether the publisher asked for persistence (delivery-mode 2).
    pub fn is_persistent(&self) -> bool {
        *self.properties.delivery_mode() == Some(2)
    }

    /// Size as RabbitMQ counts it for byte limits: the body.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The content-header payload: as received, or encoded from the properties.
    pub fn header_bytes(&self) -> Bytes {
        if let Some(raw) = &self.raw_header {
            return raw.clone();
        }
        let mut out = Vec::new();
        frame::push_header(&mut out, 0, self.body.len() as u64, self.properties.clone());
        // Strip the framing around the payload: type, channel, size ... frame-end.
        let payload_len = out.len().saturating_sub(frame::FRAME_OVERHEAD);
        Bytes::from(out).slice(7..7 + payload_len)
    }

    /// Writes this message to `log` once, for the durable queues `queues`.
    pub fn store_in(&self, log: &MessageLog, queues: Vec<u32>) -> std::io::Result<Location> {
        log.append(
            queues,
            self.exchange.as_str(),
            self.routing_key.as_str(),
            &self.header_bytes(),
            &self.body,
        )
    }

    /// Rebuilds a message read back from the store.
    pub fn from_stored(stored: StoredMessage) -> Option<Self> {
        let (_, header) =
            amq_protocol::frame::parsing::parse_content_header(&stored.raw_header[..]).ok()?;
        Some(Self::new(
            ShortString::from(stored.exchange),
            ShortString::from(stored.routing_key),
            header.properties,
            Some(stored.raw_header),
            stored.body,
        ))
    }

    /// Appends the content header and body frames of this message on `channel`.
    pub fn encode_content(&self, out: &mut Vec<u8>, channel: u16, frame_max: u32) {
        match &self.raw_header {
            Some(raw) => frame::push_raw_header(out, channel, raw),
            None => frame::push_header(
                out,
                channel,
                self.body.len() as u64,
                self.properties.clone(),
            ),
        }
        frame::push_body(out, channel, &self.body, frame_max);
    }
}

fn text(v: &Option<ShortString>) -> Option<&str> {
    v.as_ref().map(ShortString::as_str)
}

/// A header value as a string, whichever string type the client used.
pub fn value_as_str(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        _ => None,
    }
}

/// A header or argument value as an integer, whichever integer type the client used.
pub fn value_as_i64(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::Timestamp(v) => i64::try_from(v).ok(),
        _ => warren_routing::value::as_integer(value),
    }
}
