//! The on-disk record format of the message log, and how to read it back safely.
//!
//! A segment file is a sequence of records: `[u32 len][u32 crc32][payload]`,
//! little-endian, the CRC over the payload. The length and checksum are what
//! let recovery tell a clean end from a torn tail (power loss mid-write: the
//! last record is short or fails its CRC, and is truncated away) and from
//! corruption in the middle (a record that fails its CRC with valid data after
//! it: reported with file and offset, skipped, and the scan resynchronises).
//!
//! The payload keeps the message exactly as it came off the wire: exchange,
//! routing key, the raw content-header payload (so properties and header
//! tables round-trip byte for byte) and the body, plus the ids of the queues it
//! was routed to, so a message for several durable queues is written once.

use bytes::{Buf, BufMut, Bytes};

/// Bytes before the payload: length and CRC.
pub(crate) const RECORD_HEADER: usize = 8;
const KIND_MESSAGE: u8 = 1;
/// Larger than any record we write (128 MiB message plus metadata); a length
/// above this is corruption, not a record.
pub(crate) const MAX_RECORD: usize = 130 * 1024 * 1024;

/// A message as stored: everything needed to deliver it again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredMessage {
    pub(crate) id: u64,
    /// Milliseconds since the epoch when it was published.
    pub(crate) timestamp: u64,
    pub(crate) queues: Vec<u32>,
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) raw_header: Bytes,
    pub(crate) body: Bytes,
}

/// Appends one record for `msg` to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, msg: &StoredMessage) {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u32_le(0);
    out.put_u8(KIND_MESSAGE);
    out.put_u64_le(msg.id);
    out.put_u64_le(msg.timestamp);
    out.put_u16_le(msg.queues.len() as u16);
    for q in &msg.queues {
        out.put_u32_le(*q);
    }
    put_short(out, msg.exchange.as_bytes());
    put_short(out, msg.routing_key.as_bytes());
    out.put_u32_le(msg.raw_header.len() as u32);
    out.put_slice(&msg.raw_header);
    out.put_u64_le(msg.body.len() as u64);
    out.put_slice(&msg.body);
    let payload_len = out.len() - start - RECORD_HEADER;
    let crc = crc32fast::hash(&out[start + RECORD_HEADER..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_short(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len().min(255);
    out.put_u8(len as u8);
    out.put_slice(&s[..len]);
}

/// What reading a record at some offset found.
#[derive(Debug, PartialEq)]
pub(crate) enum Read {
    /// A valid record of `len` bytes (header included).
    Record { len: usize, payload: Bytes },
    /// Not enough bytes for the record the header announces (or for a header).
    Truncated,
    /// A record whose checksum or structure is wrong; `len` is what its header
    /// claims (usable only if the length itself is plausible).
    Corrupt { len: Option<usize> },
}

/// Reads the record starting at `data[0]`.
pub(crate) fn read(data: &Bytes) -> Read {
    if data.len() < RECORD_HEADER {
        return Read::Truncated;
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len == 0 || len > MAX_RECORD {
        return Read::Corrupt { len: None };
    }
    if data.len() < RECORD_HEADER + len {
        return Read::Truncated;
    }
    let payload = data.slice(RECORD_HEADER..RECORD_HEADER + len);
    if crc32fast::hash(&payload) != crc {
        return Read::Corrupt {
            len: Some(RECORD_HEADER + len),
        };
    }
    Read::Record {
        len: RECORD_HEADER + len,
        payload,
    }
}

/// Decodes a record payload (whose CRC was already checked). Returns None when
/// the structure does not add up, which a valid CRC makes a bug, not bad disk.
pub(crate) fn decode(payload: Bytes) -> Option<StoredMessage> {
    let mut p = payload;
    if p.remaining() < 1 + 8 + 8 + 2 || p.get_u8() != KIND_MESSAGE {
        return None;
    }
    let id = p.get_u64_le();
    let timestamp = p.get_u64_le();
    let n = p.get_u16_le() as usize;
    if p.remaining() < n * 4 {
        return None;
    }
    let queues = (0..n).map(|_| p.get_u32_le()).collect();
    let exchange = get_short(&mut p)?;
    let routing_key = get_short(&mut p)?;
    if p.remaining() < 4 {
        return None;
    }
    let header_len = p.get_u32_le() as usize;
    if p.remaining() < header_len {
        return None;
    }
    let raw_header = p.split_to(header_len);
    if p.remaining() < 8 {
        return None;
    }
    let body_len = p.get_u64_le() as usize;
    if p.remaining() != body_len {
        return None;
    }
    Some(StoredMessage {
        id,
        timestamp,
        queues,
        exchange,
        routing_key,
        raw_header,
        body: p,
    })
}

/// Reads only the queue ids of a record payload (recovery does not need bodies).
#[cfg(test)]
pub(crate) fn decode_queues(payload: &[u8]) -> Option<Vec<u32>> {
    let mut p = payload;
    if p.len() < 19 || p[0] != KIND_MESSAGE {
        return None;
    }
    p.advance(17);
    let n = p.get_u16_le() as usize;
    if p.len() < n * 4 {
        return None;
    }
    Some((0..n).map(|_| p.get_u32_le()).collect())
}

fn get_short(p: &mut Bytes) -> Option<String> {
    if p.remaining() < 1 {
        return None;
    }
    let len = p.get_u8() as usize;
    if p.remaining() < len {
        return None;
    }
    String::from_utf8(p.split_to(len).to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredMessage {
        StoredMessage {
            id: 7,
            timestamp: 1_700_000_000_000,
            queues: vec![1, 5],
            exchange: "x".into(),
            routing_key: "a.b".into(),
            raw_header: Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]),
            body: Bytes::from_static(b"abc"),
        }
    }

    #[test]
    fn round_trips() {
        let mut out = Vec::new();
        encode(&mut out, &sample());
        let data = Bytes::from(out);
        let Read::Record { len, payload } = read(&data) else {
            panic!("not a record")
        };
        assert_eq!(len, data.len());
        assert_eq!(decode_queues(&payload), Some(vec![1, 5]));
        assert_eq!(decode(payload), Some(sample()));
    }

    #[test]
    fn detects_torn_and_corrupt_records() {
        let mut out = Vec::new();
        encode(&mut out, &sample());
        let full = Bytes::from(out.clone());
        assert_eq!(read(&full.slice(..full.len() - 1)), Read::Truncated);
        assert_eq!(read(&full.slice(..5)), Read::Truncated);
        let mut flipped = out.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x10;
        assert_eq!(
            read(&Bytes::from(flipped)),
            Read::Corrupt {
                len: Some(full.len())
            }
        );
        let mut bad_len = out;
        bad_len[3] = 0xff;
        assert_eq!(read(&Bytes::from(bad_len)), Read::Corrupt { len: None });
    }
}
