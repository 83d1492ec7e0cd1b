//! Building messages whose properties the broker changed (dead-lettering,
//! direct reply-to, BCC removal, delivery counts, delayed delivery), and reading
//! the few properties recovery needs straight from a raw content header.
//!
//! Messages are shared (`Arc`) and never mutated: a change makes a new
//! [`Message`] whose `raw_header` is encoded once from the new properties, so
//! deliveries still write bytes without re-encoding.

use std::collections::BTreeMap;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

use crate::message::Message;

/// A message with new properties (and possibly a new exchange and routing key);
/// the content header is encoded once here.
pub fn rebuild(
    original: &Message,
    exchange: ShortString,
    routing_key: ShortString,
    properties: AMQPProperties,
) -> Message {
    let mut message = Message {
        exchange,
        routing_key,
        properties,
        raw_header: None,
        body: original.body.clone(),
    };
    message.raw_header = Some(message.header_bytes());
    message
}

/// What to change when copying properties.
#[derive(Default)]
pub struct Edit {
    /// Replace the headers table (Some(None) removes it).
    pub headers: Option<Option<FieldTable>>,
    pub drop_expiration: bool,
    pub reply_to: Option<ShortString>,
}

/// Copies `p` with the changes in `edit` (amq-protocol has setters only, so
/// removing a property means copying the others).
pub fn edit_properties(p: &AMQPProperties, edit: Edit) -> AMQPProperties {
    let mut out = AMQPProperties::default();
    if let Some(v) = p.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    let headers = match edit.headers {
        Some(h) => h,
        None => p.headers().clone(),
    };
    if let Some(v) = headers {
        out = out.with_headers(v);
    }
    if let Some(v) = p.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    match edit.reply_to {
        Some(v) => out = out.with_reply_to(v),
        None => {
            if let Some(v) = p.reply_to() {
                out = out.with_reply_to(v.clone());
            }
        }
    }
    if !edit.drop_expiration {
        if let Some(v) = p.expiration() {
            out = out.with_expiration(v.clone());
        }
    }
    if let Some(v) = p.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        out = out.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// The message's headers as an editable map (empty when it has none).
pub fn headers_map(message: &Message) -> BTreeMap<ShortString, AMQPValue> {
    message
        .headers()
        .map(|h| h.inner().clone())
        .unwrap_or_default()
}

/// `message` with one header set to `value` (used for `x-delivery-count`).
pub fn with_header(message: &Message, key: &str, value: AMQPValue) -> Message {
    let mut map = headers_map(message);
    map.insert(ShortString::from(key), value);
    let properties = edit_properties(
        &message.properties,
        Edit {
            headers: Some(Some(FieldTable::from(map))),
            ..Edit::default()
        },
    );
    rebuild(
        message,
        message.exchange.clone(),
        message.routing_key.clone(),
        properties,
    )
}

/// The properties recovery needs, read from a raw content-header payload
/// without decoding it: priority and the expiration in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderScan {
    pub priority: u8,
    pub expiration: Option<u64>,
}

/// Reads priority and expiration from a content-header payload (class, weight,
/// body size, property flags, properties). Skips the headers table by its
/// length, so the cost does not depend on the headers.
pub fn scan_header(raw: &[u8]) -> HeaderScan {
    scan(raw).unwrap_or_default()
}

fn scan(raw: &[u8]) -> Option<HeaderScan> {
    let flags = raw.get(12..14)?;
    let flags = u16::from_be_bytes([flags[0], flags[1]]);
    let mut at = 14;
    let mut out = HeaderScan::default();
    let skip_short = |at: &mut usize| -> Option<()> {
        *at += 1 + *raw.get(*at)? as usize;
        Some(())
    };
    if flags & (1 << 15) != 0 {
        skip_short(&mut at)?; // content-type
    }
    if flags & (1 << 14) != 0 {
        skip_short(&mut at)?; // content-encoding
    }
    if flags & (1 << 13) != 0 {
        let len = raw.get(at..at + 4)?;
        at += 4 + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        // headers
    }
    if flags & (1 << 12) != 0 {
        at += 1; // delivery-mode
    }
    if flags & (1 << 11) != 0 {
        out.priority = *raw.get(at)?;
        at += 1;
    }
    if flags & (1 << 10) != 0 {
        skip_short(&mut at)?; // correlation-id
    }
    if flags & (1 << 9) != 0 {
        skip_short(&mut at)?; // reply-to
    }
    if flags & (1 << 8) != 0 {
        let len = *raw.get(at)? as usize;
        let text = raw.get(at + 1..at + 1 + len)?;
        out.expiration = std::str::from_utf8(text)
            .ok()
            .and_then(|t| crate::arguments::parse_expiration(t).ok());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;
    use bytes::Bytes;

    fn encoded(p: AMQPProperties) -> Bytes {
        let m = Message {
            exchange: "".into(),
            routing_key: "".into(),
            properties: p,
            raw_header: None,
            body: Bytes::from_static(b"abc"),
        };
        m.header_bytes()
    }

    #[test]
    fn scans_priority_and_expiration_past_headers() {
        let mut h = FieldTable::default();
        h.insert(
            "k".into(),
            AMQPValue::LongString(LongString::from("v".repeat(300))),
        );
        let p = AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(h)
            .with_delivery_mode(2)
            .with_priority(7)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_expiration("1500".into())
            .with_message_id("m".into());
        assert_eq!(
            scan_header(&encoded(p)),
            HeaderScan {
                priority: 7,
                expiration: Some(1500)
            }
        );
        assert_eq!(
            scan_header(&encoded(AMQPProperties::default())),
            HeaderScan::default()
        );
        assert_eq!(scan_header(&[0, 60]), HeaderScan::default());
    }

    #[test]
    fn edit_drops_expiration_and_keeps_the_rest() {
        let p = AMQPProperties::default()
            .with_expiration("5".into())
            .with_app_id("a".into())
            .with_priority(3);
        let q = edit_properties(
            &p,
            Edit {
                drop_expiration: true,
                ..Edit::default()
            },
        );
        assert_eq!(q.expiration(), &None);
        assert_eq!(q.app_id().as_ref().map(|s| s.as_str()), Some("a"));
        assert_eq!(*q.priority(), Some(3));
    }
}
