//! Frames on the wire: cutting the read buffer into frames and encoding frames
//! into the write buffer.
//!
//! The method and content-header codecs are amq-protocol's; this module only
//! does the framing around them (type, channel, size, frame-end), because that
//! is where a broker must check limits *before* parsing: a frame over frame_max,
//! a wrong frame-end byte or an unknown frame type is a connection error with a
//! specific text. Body payloads are cut out of the read buffer as `Bytes`
//! without a copy, and a content header keeps its raw encoding so deliveries can
//! re-send the properties byte for byte without re-encoding them.

use amq_protocol::frame::{gen_frame, AMQPFrame};
use amq_protocol::protocol::AMQPClass;
use bytes::{Buf, Bytes, BytesMut};

use crate::protocol::constants::{is_client_method, method_name};
use crate::protocol::content::{ContentError, ContentHeader};
use crate::protocol::error::AmqpError;
use crate::protocol::field::FieldError;
use crate::protocol::method::{self, MethodDecodeError};

pub(crate) const FRAME_METHOD: u8 = 1;
pub(crate) const FRAME_HEADER: u8 = 2;
pub(crate) const FRAME_BODY: u8 = 3;
pub(crate) const FRAME_HEARTBEAT: u8 = 8;
pub(crate) const FRAME_END: u8 = 0xCE;
/// Bytes of framing around a payload: type, channel, size, frame-end.
pub(crate) const FRAME_OVERHEAD: usize = 8;

/// One frame read from a client.
#[derive(Debug)]
pub(crate) enum Frame {
    Method {
        channel: u16,
        class_id: u16,
        method_id: u16,
        method: Box<AMQPClass>,
        /// The raw method payload (for the few fields amq-protocol does not keep,
        /// such as basic.qos prefetch_size).
        payload: Bytes,
    },
    Header {
        channel: u16,
        /// Checked, kept as received.
        header: ContentHeader,
    },
    Body {
        channel: u16,
        data: Bytes,
    },
    /// A heartbeat (on whichever channel the client sent it).
    Heartbeat,
    /// A channel method whose arguments the channel must refuse (a field
    /// table nested too deep): a channel error, not a connection error.
    Refused {
        channel: u16,
        class_id: u16,
        method_id: u16,
        error: AmqpError,
    },
}

/// Renders bytes the way Erlang prints a binary, as RabbitMQ's error texts do.
fn erlang_binary(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        format!("<<\"{}\">>", String::from_utf8_lossy(bytes))
    } else {
        let parts: Vec<String> = bytes.iter().take(64).map(|b| b.to_string()).collect();
        format!("<<{}>>", parts.join(","))
    }
}

/// RabbitMQ's description of a bad frame's payload: all of it, or the first 16 octets.
fn payload_snippet(payload: &[u8]) -> String {
    if payload.len() <= 16 {
        format!("all octets = {}", erlang_binary(payload))
    } else {
        format!("first 16 octets = {}", erlang_binary(&payload[..16]))
    }
}

/// Cuts the next complete frame off `buf`. `Ok(None)` means more bytes are needed.
///
/// `frame_max` is the negotiated maximum frame size (payload plus 8 bytes of framing).
pub(crate) fn parse(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, AmqpError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let max_payload = (frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    // RabbitMQ allows 8 bytes of slack (its FRAME_SIZE_FUDGE) over the
    // payload frame_max leaves, and names the strict figure in its text.
    if size > max_payload + FRAME_OVERHEAD {
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(AmqpError::FrameError(format!(
                "type {kind}, first 16 octets = {}: frame_too_large",
                erlang_binary(&buf[..buf.len().min(16)])
            )));
        }
        return Err(AmqpError::FrameError(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{max_payload}}}"
        )));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        buf.reserve(size + FRAME_OVERHEAD - buf.len());
        return Ok(None);
    }
    let end = buf[7 + size];
    if end != FRAME_END {
        return Err(AmqpError::FrameError(format!(
            "type {kind}, {}: {{invalid_frame_end_marker,{end}}}",
            payload_snippet(&buf[7..7 + size])
        )));
    }
    let mut frame = buf.split_to(size + FRAME_OVERHEAD).freeze();
    frame.advance(7);
    let payload = frame.slice(..size);
    match kind {
        FRAME_METHOD => parse_method(channel, payload).map(Some),
        FRAME_HEADER => parse_header(channel, payload).map(Some),
        FRAME_BODY => Ok(Some(Frame::Body {
            channel,
            data: payload,
        })),
        FRAME_HEARTBEAT => Ok(Some(Frame::Heartbeat)),
        other => Err(AmqpError::FrameError(format!(
            "type {other}, {}: unknown_frame",
            payload_snippet(&payload)
        ))),
    }
}

fn parse_method(channel: u16, payload: Bytes) -> Result<Frame, AmqpError> {
    if payload.len() < 4 {
        return Err(AmqpError::FrameError(format!(
            "method frame too short: {} octets",
            payload.len()
        )));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    if !is_client_method((class_id, method_id)) {
        return Err(AmqpError::CommandInvalid(format!(
            "unknown method: class {class_id}, method {method_id}"
        )));
    }
    match method::decode(&payload) {
        Ok(method) => Ok(Frame::Method {
            channel,
            class_id,
            method_id,
            method: Box::new(method),
            payload,
        }),
        // Deep arguments are the channel's to refuse; before login (channel
        // 0, connection.start-ok) they close the connection.
        Err(MethodDecodeError::Table(FieldError::TooDeep)) if channel != 0 => Ok(Frame::Refused {
            channel,
            class_id,
            method_id,
            error: AmqpError::PreconditionFailed(format!(
                "arguments of {}: {}",
                method_name((class_id, method_id)),
                FieldError::TooDeep
            )),
        }),
        Err(MethodDecodeError::Table(e)) => Err(AmqpError::SyntaxError(format!(
            "malformed arguments for method {}: {e}",
            method_name((class_id, method_id))
        ))),
        Err(MethodDecodeError::Malformed) => Err(AmqpError::SyntaxError(format!(
            "malformed arguments for method {}",
            method_name((class_id, method_id))
        ))),
    }
}

fn parse_header(channel: u16, payload: Bytes) -> Result<Frame, AmqpError> {
    match ContentHeader::parse(payload) {
        Ok(header) => Ok(Frame::Header { channel, header }),
        Err(ContentError::Headers(FieldError::TooDeep)) => Err(AmqpError::SyntaxError(format!(
            "content header: headers: {}",
            FieldError::TooDeep
        ))),
        Err(_) => Err(AmqpError::FrameError(
            "malformed content header frame".to_string(),
        )),
    }
}

/// Appends one frame, encoded by amq-protocol, to `out`.
fn push_frame(out: &mut Vec<u8>, frame: &AMQPFrame) {
    let buf = std::mem::take(out);
    match cookie_factory::gen_simple(gen_frame(frame), buf) {
        Ok(buf) => *out = buf,
        // Encoding into a Vec cannot run out of space; the only failure is a
        // value that does not fit its field, which our own code never builds.
        Err(e) => tracing::error!(error = %e, "failed to encode frame"),
    }
}

/// Appends a method frame.
pub(crate) fn push_method(out: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    push_frame(out, &AMQPFrame::Method(channel, method));
}

/// Appends a content header whose payload was received from a publisher.
pub(crate) fn push_raw_header(out: &mut Vec<u8>, channel: u16, raw: &[u8]) {
    push_raw(out, FRAME_HEADER, channel, raw);
}

/// Appends the body as as many body frames as `frame_max` requires.
pub(crate) fn push_body(out: &mut Vec<u8>, channel: u16, body: &[u8], frame_max: u32) {
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for piece in body.chunks(chunk) {
        push_raw(out, FRAME_BODY, channel, piece);
    }
}

pub(crate) fn push_heartbeat(out: &mut Vec<u8>) {
    push_raw(out, FRAME_HEARTBEAT, 0, &[]);
}

fn push_raw(out: &mut Vec<u8>, kind: u8, channel: u16, payload: &[u8]) {
    out.reserve(payload.len() + FRAME_OVERHEAD);
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::channel;

    fn encoded(method: AMQPClass) -> BytesMut {
        let mut out = Vec::new();
        push_method(&mut out, 1, method);
        BytesMut::from(&out[..])
    }

    #[test]
    fn parses_a_method_and_waits_for_more() {
        let mut buf = encoded(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )));
        let mut partial = buf.split_to(5);
        assert!(parse(&mut partial, 4096).unwrap().is_none());
        partial.unsplit(buf);
        match parse(&mut partial, 4096).unwrap() {
            Some(Frame::Method {
                channel,
                class_id,
                method_id,
                ..
            }) => assert_eq!((channel, class_id, method_id), (1, 20, 10)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(partial.is_empty());
    }

    #[test]
    fn rejects_wrong_frame_end() {
        let mut buf = encoded(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )));
        let last = buf.len() - 1;
        buf[last] = 0;
        let err = parse(&mut buf, 4096).unwrap_err();
        assert_eq!(err.code(), 501);
        assert_eq!(
            err.to_string(),
            "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}"
        );
    }

    #[test]
    fn rejects_oversized_frame() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[3, 0, 1, 0, 0, 0x13, 0x88]);
        let err = parse(&mut buf, 4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}"
        );
    }

    #[test]
    fn rejects_unknown_frame_type() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[9, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', FRAME_END]);
        let err = parse(&mut buf, 4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FRAME_ERROR - type 9, all octets = <<\"abc\">>: unknown_frame"
        );
    }

    #[test]
    fn rejects_unknown_method() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, FRAME_END]);
        assert_eq!(parse(&mut buf, 4096).unwrap_err().code(), 503);
    }

    #[test]
    fn bodies_split_by_frame_max() {
        let mut out = Vec::new();
        push_body(&mut out, 1, &[7u8; 10_000], 4096);
        let mut buf = BytesMut::from(&out[..]);
        let mut total = 0;
        while let Some(Frame::Body { data, .. }) = parse(&mut buf, 4096).unwrap() {
            assert!(data.len() <= 4088);
            total += data.len();
        }
        assert_eq!(total, 10_000);
    }
}
