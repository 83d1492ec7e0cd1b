//! Building messages whose properties the broker changed (dead-lettering,
//! direct reply-to, BCC removal, delivery counts, delayed delivery).
//!
//! Messages are shared (`Arc`) and never mutated: a change decodes the
//! properties, edits them, and makes a new [`Message`] whose content header is
//! encoded once, so deliveries still write bytes without re-encoding.

use std::collections::BTreeMap;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

use crate::engine::message::Message;
use crate::protocol::content::Properties;

/// A message with new properties (and possibly a new exchange and routing key);
/// the content header is encoded once here.
pub(crate) fn rebuild(
    original: &Message,
    exchange: ShortString,
    routing_key: ShortString,
    properties: AMQPProperties,
) -> Message {
    Message::from_parts(
        exchange,
        routing_key,
        Properties::encode(original.body.len() as u64, &properties),
        original.body.clone(),
    )
}

/// What to change when copying properties.
#[derive(Default)]
pub(crate) struct Edit {
    /// Replace the headers table (Some(None) removes it).
    pub(crate) headers: Option<Option<FieldTable>>,
    pub(crate) drop_expiration: bool,
    pub(crate) reply_to: Option<ShortString>,
}

/// The properties of `message` with the changes in `edit`.
pub(crate) fn edit_properties(message: &Message, edit: Edit) -> AMQPProperties {
    let headers = match edit.headers {
        Some(h) => h,
        None => message.headers(),
    };
    let mut p = message
        .properties
        .decode_edited(headers, !edit.drop_expiration);
    if let Some(reply_to) = edit.reply_to {
        p = p.with_reply_to(reply_to);
    }
    p
}

/// The message's headers as an editable map (empty when it has none).
pub(crate) fn headers_map(message: &Message) -> BTreeMap<ShortString, AMQPValue> {
    message
        .headers()
        .map(|h| h.inner().clone())
        .unwrap_or_default()
}

/// `message` with one header set to `value` (used for `x-delivery-count`).
pub(crate) fn with_header(message: &Message, key: &str, value: AMQPValue) -> Message {
    let mut map = headers_map(message);
    map.insert(ShortString::from(key), value);
    let properties = edit_properties(
        message,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn edit_drops_expiration_and_keeps_the_rest() {
        let p = AMQPProperties::default()
            .with_expiration("5".into())
            .with_app_id("a".into())
            .with_priority(3);
        let m = Message::new(
            "".into(),
            "".into(),
            Properties::encode(0, &p),
            Bytes::new(),
        );
        let q = edit_properties(
            &m,
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
