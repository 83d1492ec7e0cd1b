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
use bytes::Bytes;

use crate::message::Message;

/// A message with new properties (and possibly a new exchange and routing key);
/// the content header is encoded once here.
pub fn rebuild(
    original: &Message,
    exchange: ShortString,
    routing_key: ShortString,
    properties: AMQPProperties,
) -> Message {
    let raw = encode_header(original.body.len() as u64, &properties);
    Message::new(
        exchange,
        routing_key,
        properties,
        Some(Bytes::from(raw)),
        original.body.clone(),
    )
}

/// Encodes a basic content-header payload (class 60, weight 0, body size,
/// property flags, properties) exactly as amq-protocol does, but directly:
/// dead-lettering re-encodes every message it moves, and amq-protocol's
/// combinators cost several times more.
pub fn encode_header(body_size: u64, p: &AMQPProperties) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&body_size.to_be_bytes());
    let flags_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut flags = 0u16;
    let short = |out: &mut Vec<u8>, s: &ShortString| {
        let b = s.as_str().as_bytes();
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    };
    if let Some(v) = p.content_type() {
        flags |= 1 << 15;
        short(&mut out, v);
    }
    if let Some(v) = p.content_encoding() {
        flags |= 1 << 14;
        short(&mut out, v);
    }
    if let Some(v) = p.headers() {
        flags |= 1 << 13;
        encode_table(&mut out, v);
    }
    if let Some(v) = p.delivery_mode() {
        flags |= 1 << 12;
        out.push(*v);
    }
    if let Some(v) = p.priority() {
        flags |= 1 << 11;
        out.push(*v);
    }
    if let Some(v) = p.correlation_id() {
        flags |= 1 << 10;
        short(&mut out, v);
    }
    if let Some(v) = p.reply_to() {
        flags |= 1 << 9;
        short(&mut out, v);
    }
    if let Some(v) = p.expiration() {
        flags |= 1 << 8;
        short(&mut out, v);
    }
    if let Some(v) = p.message_id() {
        flags |= 1 << 7;
        short(&mut out, v);
    }
    if let Some(v) = p.timestamp() {
        flags |= 1 << 6;
        out.extend_from_slice(&v.to_be_bytes());
    }
    if let Some(v) = p.kind() {
        flags |= 1 << 5;
        short(&mut out, v);
    }
    if let Some(v) = p.user_id() {
        flags |= 1 << 4;
        short(&mut out, v);
    }
    if let Some(v) = p.app_id() {
        flags |= 1 << 3;
        short(&mut out, v);
    }
    if let Some(v) = p.cluster_id() {
        flags |= 1 << 2;
        short(&mut out, v);
    }
    out[flags_at..flags_at + 2].copy_from_slice(&flags.to_be_bytes());
    out
}

fn with_len(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    f(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn encode_table(out: &mut Vec<u8>, table: &FieldTable) {
    with_len(out, |out| {
        for (key, value) in table.inner() {
            let k = key.as_str().as_bytes();
            out.push(k.len() as u8);
            out.extend_from_slice(k);
            encode_value(out, value);
        }
    });
}

fn encode_value(out: &mut Vec<u8>, value: &AMQPValue) {
    out.push(value.get_type().get_id() as u8);
    match value {
        AMQPValue::Boolean(b) => out.push(u8::from(*b)),
        AMQPValue::ShortShortInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::ShortShortUInt(v) => out.push(*v),
        AMQPValue::ShortInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::ShortUInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::LongInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::LongUInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::LongLongInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::Float(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::Double(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::DecimalValue(d) => {
            out.push(d.scale);
            out.extend_from_slice(&d.value.to_be_bytes());
        }
        AMQPValue::ShortString(s) => {
            let b = s.as_str().as_bytes();
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
        AMQPValue::LongString(s) => {
            out.extend_from_slice(&(s.as_bytes().len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        AMQPValue::FieldArray(a) => with_len(out, |out| {
            for v in a.as_slice() {
                encode_value(out, v);
            }
        }),
        AMQPValue::Timestamp(v) => out.extend_from_slice(&v.to_be_bytes()),
        AMQPValue::FieldTable(t) => encode_table(out, t),
        AMQPValue::ByteArray(a) => {
            out.extend_from_slice(&(a.as_slice().len() as u32).to_be_bytes());
            out.extend_from_slice(a.as_slice());
        }
        AMQPValue::Void => {}
    }
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
        let m = Message::new("".into(), "".into(), p, None, Bytes::from_static(b"abc"));
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
    fn encodes_headers_as_amq_protocol_does() {
        use amq_protocol::types::{ByteArray, DecimalValue, FieldArray};
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongLongInt(-3));
        let mut h = FieldTable::default();
        for (k, v) in [
            ("bool", AMQPValue::Boolean(true)),
            ("i8", AMQPValue::ShortShortInt(-1)),
            ("u8", AMQPValue::ShortShortUInt(200)),
            ("i16", AMQPValue::ShortInt(-300)),
            ("u16", AMQPValue::ShortUInt(60000)),
            ("i32", AMQPValue::LongInt(-70000)),
            ("u32", AMQPValue::LongUInt(4_000_000_000)),
            ("i64", AMQPValue::LongLongInt(1 << 40)),
            ("f32", AMQPValue::Float(1.5)),
            ("f64", AMQPValue::Double(-2.25)),
            (
                "dec",
                AMQPValue::DecimalValue(DecimalValue {
                    scale: 2,
                    value: 314,
                }),
            ),
            ("s", AMQPValue::LongString(LongString::from("text"))),
            (
                "a",
                AMQPValue::FieldArray(FieldArray::from(vec![
                    AMQPValue::LongString(LongString::from("x")),
                    AMQPValue::FieldTable(inner.clone()),
                ])),
            ),
            ("t", AMQPValue::Timestamp(1_700_000_000)),
            ("tbl", AMQPValue::FieldTable(inner)),
            (
                "bin",
                AMQPValue::ByteArray(ByteArray::from(vec![1u8, 2, 3])),
            ),
            ("void", AMQPValue::Void),
        ] {
            h.insert(k.into(), v);
        }
        let all = AMQPProperties::default()
            .with_content_type("a".into())
            .with_content_encoding("b".into())
            .with_headers(h)
            .with_delivery_mode(2)
            .with_priority(4)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_expiration("10".into())
            .with_message_id("m".into())
            .with_timestamp(99)
            .with_type("t".into())
            .with_user_id("u".into())
            .with_app_id("app".into())
            .with_cluster_id("cl".into());
        for p in [
            all,
            AMQPProperties::default(),
            AMQPProperties::default().with_priority(1),
        ] {
            assert_eq!(&encode_header(3, &p)[..], &encoded(p)[..]);
        }
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
