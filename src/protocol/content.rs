//! Content headers (the properties of a published message), read and written
//! by hand so that a message can be kept as the bytes it arrived in.
//!
//! A message's properties are stored as the content-header payload the
//! publisher sent ([`Properties`]): deliveries write those bytes back
//! unchanged, the memory a message holds is the size of what it was sent
//! with, and nothing is decoded that no one reads. Parsing checks the whole
//! header once (every short string UTF-8, the headers table well formed and
//! nested no deeper than [`MAX_NESTING`](super::field::MAX_NESTING)) and notes
//! the three properties the broker reads on every message: delivery mode,
//! priority and where the headers table is. The others are read on demand
//! ([`Properties::view`]) and the headers table is decoded only by whoever
//! needs it ([`Properties::headers`], [`Properties::header`]).
//!
//! This module knows the encoding only; what a property means is for the
//! engine.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use bytes::Bytes;

use super::field::{self, FieldError};

/// The class of content headers (basic).
pub(crate) const BASIC_CLASS: u16 = 60;
/// Bytes before the property flags: class, weight, body size.
const PREFIX: usize = 12;

// Property flags, most significant bit first, as AMQP 0-9-1 lists them.
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;

/// Why a content header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContentError {
    /// Too short, a length past the end, a string that is not UTF-8.
    Malformed,
    /// The headers table is malformed or nested too deep.
    Headers(FieldError),
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentError::Malformed => f.write_str("malformed content header"),
            ContentError::Headers(e) => write!(f, "content header: headers: {e}"),
        }
    }
}

/// A content header as received (or as the broker re-encoded it), with the
/// properties read on every message noted.
#[derive(Clone, Debug)]
pub(crate) struct Properties {
    /// The content-header payload: class, weight, body size, flags, properties.
    raw: Bytes,
    flags: u16,
    delivery_mode: Option<u8>,
    priority: Option<u8>,
    /// Where the headers table (length prefix included) is in `raw`.
    headers: Option<(u32, u32)>,
    /// Where the expiration's text is in `raw`.
    expiration: Option<(u32, u32)>,
}

/// The content header of a publish: its class, body size and properties.
#[derive(Clone, Debug)]
pub(crate) struct ContentHeader {
    pub(crate) class_id: u16,
    pub(crate) body_size: u64,
    pub(crate) properties: Properties,
}

/// Every property, borrowed from the raw header ([`Properties::view`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PropertyView<'a> {
    pub(crate) content_type: Option<&'a str>,
    pub(crate) content_encoding: Option<&'a str>,
    pub(crate) delivery_mode: Option<u8>,
    pub(crate) priority: Option<u8>,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) expiration: Option<&'a str>,
    pub(crate) message_id: Option<&'a str>,
    pub(crate) timestamp: Option<u64>,
    pub(crate) kind: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) app_id: Option<&'a str>,
    pub(crate) cluster_id: Option<&'a str>,
}

/// A cursor over the properties of a raw header.
struct Cursor<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, ContentError> {
        let b = *self.raw.get(self.at).ok_or(ContentError::Malformed)?;
        self.at += 1;
        Ok(b)
    }

    /// Skips a short string (checked), returning where its text is.
    fn short_str_range(&mut self) -> Result<(u32, u32), ContentError> {
        let start = self.at + 1;
        self.short_str()?;
        Ok((start as u32, self.at as u32))
    }

    fn short_str(&mut self) -> Result<&'a str, ContentError> {
        let len = self.byte()? as usize;
        let bytes = self
            .raw
            .get(self.at..self.at + len)
            .ok_or(ContentError::Malformed)?;
        self.at += len;
        std::str::from_utf8(bytes).map_err(|_| ContentError::Malformed)
    }

    fn u64(&mut self) -> Result<u64, ContentError> {
        let b = self
            .raw
            .get(self.at..self.at + 8)
            .ok_or(ContentError::Malformed)?;
        self.at += 8;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    /// The headers table at the cursor, checked; returns its range.
    fn table(&mut self) -> Result<(u32, u32), ContentError> {
        let rest = self.raw.get(self.at..).ok_or(ContentError::Malformed)?;
        let shape = field::check_table(rest).map_err(ContentError::Headers)?;
        let range = (self.at as u32, (self.at + shape.len) as u32);
        self.at += shape.len;
        Ok(range)
    }
}

impl ContentHeader {
    /// Reads and checks a content-header payload (as amq-protocol would, but
    /// without building the properties): every string UTF-8, the headers
    /// table well formed and not nested too deep. Bytes after the last
    /// property are ignored, as amq-protocol ignores them.
    pub(crate) fn parse(raw: Bytes) -> Result<Self, ContentError> {
        if raw.len() < PREFIX + 2 {
            return Err(ContentError::Malformed);
        }
        let class_id = u16::from_be_bytes([raw[0], raw[1]]);
        let body_size = u64::from_be_bytes([
            raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11],
        ]);
        let flags = u16::from_be_bytes([raw[12], raw[13]]);
        let mut delivery_mode = None;
        let mut priority = None;
        let mut headers = None;
        let mut expiration = None;
        {
            let mut c = Cursor {
                raw: &raw,
                at: PREFIX + 2,
            };
            for bit in (2..16).rev() {
                let flag = 1u16 << bit;
                if flags & flag == 0 {
                    continue;
                }
                match flag {
                    HEADERS => headers = Some(c.table()?),
                    DELIVERY_MODE => delivery_mode = Some(c.byte()?),
                    PRIORITY => priority = Some(c.byte()?),
                    TIMESTAMP => {
                        c.u64()?;
                    }
                    EXPIRATION => expiration = Some(c.short_str_range()?),
                    _ => {
                        c.short_str()?;
                    }
                }
            }
        }
        Ok(Self {
            class_id,
            body_size,
            properties: Properties {
                raw,
                flags,
                delivery_mode,
                priority,
                headers,
                expiration,
            },
        })
    }
}

impl Properties {
    /// A content header for a body of `body_size` bytes with these properties,
    /// encoded once (for messages the broker changed).
    pub(crate) fn encode(body_size: u64, p: &AMQPProperties) -> Self {
        let mut raw = Vec::with_capacity(64);
        let (flags, headers, expiration) = encode_into(&mut raw, body_size, p);
        Self {
            raw: Bytes::from(raw),
            flags,
            delivery_mode: *p.delivery_mode(),
            priority: *p.priority(),
            headers,
            expiration,
        }
    }

    /// The same properties over another copy of the same bytes (a message
    /// moving out of the read buffer into an allocation of its own).
    pub(crate) fn rebased(self, raw: Bytes) -> Self {
        if raw[..] != self.raw[..] {
            return self;
        }
        Self { raw, ..self }
    }

    /// The content-header payload, to send as it is.
    pub(crate) fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub(crate) fn delivery_mode(&self) -> Option<u8> {
        self.delivery_mode
    }

    pub(crate) fn priority(&self) -> Option<u8> {
        self.priority
    }

    /// The `expiration` property (a TTL in milliseconds, as text).
    pub(crate) fn expiration(&self) -> Option<&str> {
        let (from, to) = self.expiration?;
        std::str::from_utf8(self.raw.get(from as usize..to as usize)?).ok()
    }

    /// The headers table as sent (length prefix included), if there is one.
    pub(crate) fn headers_raw(&self) -> Option<&[u8]> {
        let (from, to) = self.headers?;
        self.raw.get(from as usize..to as usize)
    }

    /// Whether the message has a headers table (possibly empty).
    pub(crate) fn has_headers(&self) -> bool {
        self.headers.is_some()
    }

    /// The headers table, decoded (a new table each call: callers that read
    /// several fields keep it).
    pub(crate) fn headers(&self) -> Option<FieldTable> {
        field::decode_table(self.headers_raw()?)
            .ok()
            .map(|(table, _)| table)
    }

    /// One top-level header, decoded alone.
    pub(crate) fn header(&self, key: &str) -> Option<AMQPValue> {
        field::table_get(self.headers_raw()?, key)
    }

    /// Every property but the headers, borrowed.
    pub(crate) fn view(&self) -> PropertyView<'_> {
        let mut v = PropertyView {
            delivery_mode: self.delivery_mode,
            priority: self.priority,
            ..PropertyView::default()
        };
        let mut c = Cursor {
            raw: &self.raw,
            at: PREFIX + 2,
        };
        for bit in (2..16).rev() {
            let flag = 1u16 << bit;
            if self.flags & flag == 0 {
                continue;
            }
            let read = match flag {
                HEADERS => match self.headers {
                    Some((_, end)) => {
                        c.at = end as usize;
                        Ok(())
                    }
                    None => Err(ContentError::Malformed),
                },
                DELIVERY_MODE | PRIORITY => c.byte().map(|_| ()),
                TIMESTAMP => c.u64().map(|t| v.timestamp = Some(t)),
                _ => c.short_str().map(|s| {
                    let slot = match flag {
                        CONTENT_TYPE => &mut v.content_type,
                        CONTENT_ENCODING => &mut v.content_encoding,
                        CORRELATION_ID => &mut v.correlation_id,
                        REPLY_TO => &mut v.reply_to,
                        EXPIRATION => &mut v.expiration,
                        MESSAGE_ID => &mut v.message_id,
                        TYPE => &mut v.kind,
                        USER_ID => &mut v.user_id,
                        APP_ID => &mut v.app_id,
                        _ => &mut v.cluster_id,
                    };
                    *slot = Some(s);
                }),
            };
            // Checked when parsed: an error cannot happen; stop if it does.
            if read.is_err() {
                break;
            }
        }
        v
    }

    /// Every property, headers included, as amq-protocol's struct (for the
    /// broker's edits: dead-lettering, delivery counts, direct reply-to).
    #[cfg(test)]
    pub(crate) fn decode(&self) -> AMQPProperties {
        self.decode_edited(self.headers(), true)
    }

    /// Every property, with `headers` in place of the message's own (an
    /// edit that replaces them need not decode them), and the expiration
    /// only if `keep_expiration`.
    pub(crate) fn decode_edited(
        &self,
        headers: Option<FieldTable>,
        keep_expiration: bool,
    ) -> AMQPProperties {
        let mut v = self.view();
        if !keep_expiration {
            v.expiration = None;
        }
        let s = |o: Option<&str>| o.map(ShortString::from);
        let mut p = AMQPProperties::default();
        if let Some(x) = s(v.content_type) {
            p = p.with_content_type(x);
        }
        if let Some(x) = s(v.content_encoding) {
            p = p.with_content_encoding(x);
        }
        if let Some(h) = headers {
            p = p.with_headers(h);
        }
        if let Some(x) = v.delivery_mode {
            p = p.with_delivery_mode(x);
        }
        if let Some(x) = v.priority {
            p = p.with_priority(x);
        }
        if let Some(x) = s(v.correlation_id) {
            p = p.with_correlation_id(x);
        }
        if let Some(x) = s(v.reply_to) {
            p = p.with_reply_to(x);
        }
        if let Some(x) = s(v.expiration) {
            p = p.with_expiration(x);
        }
        if let Some(x) = s(v.message_id) {
            p = p.with_message_id(x);
        }
        if let Some(x) = v.timestamp {
            p = p.with_timestamp(x);
        }
        if let Some(x) = s(v.kind) {
            p = p.with_type(x);
        }
        if let Some(x) = s(v.user_id) {
            p = p.with_user_id(x);
        }
        if let Some(x) = s(v.app_id) {
            p = p.with_app_id(x);
        }
        if let Some(x) = s(v.cluster_id) {
            p = p.with_cluster_id(x);
        }
        p
    }
}

/// The priority and expiration of a stored message, read from its raw
/// content header without checking or decoding the headers table (skipped
/// by its length), so recovery costs the same whatever the headers hold.
/// Anything unreadable reads as absent.
pub(crate) fn scan_priority_and_expiration(raw: &[u8]) -> (u8, Option<u64>) {
    let Some(flags) = raw.get(PREFIX..PREFIX + 2) else {
        return (0, None);
    };
    let flags = u16::from_be_bytes([flags[0], flags[1]]);
    let mut c = Cursor {
        raw,
        at: PREFIX + 2,
    };
    let mut priority = 0;
    for bit in (8..16).rev() {
        let flag = 1u16 << bit;
        if flags & flag == 0 {
            continue;
        }
        let read = match flag {
            HEADERS => match raw.get(c.at..c.at + 4) {
                Some(b) => {
                    c.at += 4 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    Ok(())
                }
                None => Err(ContentError::Malformed),
            },
            DELIVERY_MODE => c.byte().map(|_| ()),
            PRIORITY => c.byte().map(|p| priority = p),
            EXPIRATION => {
                let expiration = c.short_str().ok().and_then(|e| parse_expiration(e).ok());
                return (priority, expiration);
            }
            _ => c.short_str().map(|_| ()),
        };
        if read.is_err() {
            break;
        }
    }
    (priority, None)
}

/// The longest TTL RabbitMQ accepts (its timer limit), in milliseconds.
pub(crate) const MAX_EXPIRY: i64 = 4_294_967_295;

/// RabbitMQ's check_expiry: a TTL is 0..=MAX_EXPIRY milliseconds.
pub(crate) fn check_expiry(v: i64) -> Result<i64, String> {
    if v < 0 {
        Err(format!("{{value_negative,{v}}}"))
    } else if v > MAX_EXPIRY {
        Err(format!("{{value_too_large,{v}}}"))
    } else {
        Ok(v)
    }
}

/// Parses a message's `expiration` property (milliseconds as decimal text) as
/// RabbitMQ does; the error is the reason printed in
/// `invalid expiration '...': <reason>`.
pub(crate) fn parse_expiration(text: &str) -> Result<u64, String> {
    let digits_end = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, rest) = text.split_at(digits_end);
    let Ok(n) = number.parse::<i64>() else {
        return Err("no_integer".to_string());
    };
    if !rest.is_empty() {
        return Err(format!("{{leftover_string,\"{rest}\"}}"));
    }
    check_expiry(n).map(|n| n as u64)
}

/// Encodes a basic content-header payload (class 60, weight 0, body size,
/// property flags, properties) exactly as amq-protocol does, directly and
/// without recursion (the headers table goes through [`field::encode_table`]).
#[cfg(test)]
pub(crate) fn encode_header(body_size: u64, p: &AMQPProperties) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, body_size, p);
    out
}

type Range = Option<(u32, u32)>;

/// Appends the header to `out`; returns the flags and where the headers
/// table and the expiration went.
fn encode_into(out: &mut Vec<u8>, body_size: u64, p: &AMQPProperties) -> (u16, Range, Range) {
    let base = out.len();
    out.extend_from_slice(&BASIC_CLASS.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&body_size.to_be_bytes());
    let flags_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut flags = 0u16;
    let mut headers = None;
    let mut expiration = None;
    let short = |out: &mut Vec<u8>, flags: &mut u16, flag: u16, s: &Option<ShortString>| {
        let s = s.as_ref()?;
        *flags |= flag;
        let b = s.as_str().as_bytes();
        out.push(b.len() as u8);
        let start = out.len() - base;
        out.extend_from_slice(b);
        Some((start as u32, (out.len() - base) as u32))
    };
    short(out, &mut flags, CONTENT_TYPE, p.content_type());
    short(out, &mut flags, CONTENT_ENCODING, p.content_encoding());
    if let Some(v) = p.headers() {
        flags |= HEADERS;
        let start = out.len() - base;
        field::encode_table(out, v);
        headers = Some((start as u32, (out.len() - base) as u32));
    }
    if let Some(v) = p.delivery_mode() {
        flags |= DELIVERY_MODE;
        out.push(*v);
    }
    if let Some(v) = p.priority() {
        flags |= PRIORITY;
        out.push(*v);
    }
    short(out, &mut flags, CORRELATION_ID, p.correlation_id());
    short(out, &mut flags, REPLY_TO, p.reply_to());
    if let Some(range) = short(out, &mut flags, EXPIRATION, p.expiration()) {
        expiration = Some(range);
    }
    short(out, &mut flags, MESSAGE_ID, p.message_id());
    if let Some(v) = p.timestamp() {
        flags |= TIMESTAMP;
        out.extend_from_slice(&v.to_be_bytes());
    }
    short(out, &mut flags, TYPE, p.kind());
    short(out, &mut flags, USER_ID, p.user_id());
    short(out, &mut flags, APP_ID, p.app_id());
    short(out, &mut flags, CLUSTER_ID, p.cluster_id());
    out[flags_at..flags_at + 2].copy_from_slice(&flags.to_be_bytes());
    (flags, headers, expiration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn amq_protocol_encoding(body_size: u64, p: &AMQPProperties) -> Vec<u8> {
        use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame};
        let frame = AMQPFrame::Header(
            0,
            AMQPContentHeader {
                class_id: 60,
                body_size,
                properties: p.clone(),
            },
        );
        let out = cookie_factory::gen_simple(gen_frame(&frame), Vec::new()).expect("encodes");
        out[7..out.len() - 1].to_vec()
    }

    fn everything() -> AMQPProperties {
        let mut h = FieldTable::default();
        h.insert("k".into(), AMQPValue::LongString(LongString::from("v")));
        AMQPProperties::default()
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
            .with_cluster_id("cl".into())
    }

    #[test]
    fn encodes_as_amq_protocol_and_reads_back() {
        for p in [
            everything(),
            AMQPProperties::default(),
            AMQPProperties::default().with_priority(1),
        ] {
            let raw = encode_header(3, &p);
            assert_eq!(raw, amq_protocol_encoding(3, &p));
            let header = ContentHeader::parse(Bytes::from(raw)).expect("parses");
            assert_eq!((header.class_id, header.body_size), (60, 3));
            assert_eq!(header.properties.decode(), p);
            assert_eq!(header.properties.delivery_mode(), *p.delivery_mode());
            assert_eq!(header.properties.priority(), *p.priority());
            // Encoding notes what parsing notes.
            let encoded = Properties::encode(3, &p);
            assert_eq!(encoded.flags, header.properties.flags);
            assert_eq!(encoded.headers, header.properties.headers);
            assert_eq!(encoded.expiration, header.properties.expiration);
        }
    }

    #[test]
    fn view_and_lookups_read_the_raw_bytes() {
        let header =
            ContentHeader::parse(Bytes::from(encode_header(0, &everything()))).expect("parses");
        let v = header.properties.view();
        assert_eq!(v.reply_to, Some("r"));
        assert_eq!(v.expiration, Some("10"));
        assert_eq!(v.timestamp, Some(99));
        assert_eq!(v.cluster_id, Some("cl"));
        assert_eq!(
            header.properties.header("k"),
            Some(AMQPValue::LongString(LongString::from("v")))
        );
        assert!(header.properties.header("nope").is_none());
    }

    #[test]
    fn recovery_scan_skips_the_headers() {
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
            scan_priority_and_expiration(&encode_header(3, &p)),
            (7, Some(1500))
        );
        let none = encode_header(3, &AMQPProperties::default());
        assert_eq!(scan_priority_and_expiration(&none), (0, None));
        assert_eq!(scan_priority_and_expiration(&[0, 60]), (0, None));
    }

    #[test]
    fn expiration_parsing() {
        assert_eq!(parse_expiration("1000"), Ok(1000));
        assert_eq!(parse_expiration("abc"), Err("no_integer".to_string()));
        assert_eq!(
            parse_expiration("10abc"),
            Err("{leftover_string,\"abc\"}".to_string())
        );
        assert_eq!(
            parse_expiration("-5"),
            Err("{value_negative,-5}".to_string())
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            ContentHeader::parse(Bytes::from_static(&[0, 60])).map(|_| ()),
            Err(ContentError::Malformed)
        );
        // A short string running past the end.
        let mut raw = encode_header(0, &AMQPProperties::default().with_app_id("abc".into()));
        raw.truncate(raw.len() - 1);
        assert_eq!(
            ContentHeader::parse(Bytes::from(raw)).map(|_| ()),
            Err(ContentError::Malformed)
        );
        // Not UTF-8.
        let mut raw = encode_header(0, &AMQPProperties::default().with_app_id("abc".into()));
        let last = raw.len() - 1;
        raw[last] = 0xff;
        assert_eq!(
            ContentHeader::parse(Bytes::from(raw)).map(|_| ()),
            Err(ContentError::Malformed)
        );
    }
}
