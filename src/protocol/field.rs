//! Field tables and arrays on the wire, read and written without recursion.
//!
//! A field table nests: a value may be a table or an array, which may hold
//! tables and arrays, as deep as a client cares to send. A decoder that
//! recursed once per level would let one `connection.start-ok` exhaust a
//! worker's stack and abort the process (amq-protocol's decoder does recurse),
//! so every walk here keeps its own stack on the heap, and nothing deeper than
//! [`MAX_NESTING`] is accepted: [`check_table`] measures a table in one linear
//! pass before anything is built, and [`decode_table`] refuses the same.
//!
//! The type codes are RabbitMQ's (`s` is a signed short, `l` and `L` a signed
//! long long, `x` a byte array), as amq-protocol reads them, so a table decodes
//! to the same [`FieldTable`] as before.
//!
//! This module owns the encoding only; what a header or argument means is for
//! the layers above.

use std::collections::btree_map;
use std::collections::BTreeMap;

use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};

/// How many tables and arrays may enclose each other, the outermost table
/// included. RabbitMQ accepts 1,000 levels; deeper input is refused before it
/// is decoded.
pub(crate) const MAX_NESTING: usize = 1024;

/// Why a field table could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldError {
    /// A length runs past the end of the data.
    Truncated,
    /// A value type code that AMQP 0-9-1 (as RabbitMQ reads it) does not define.
    UnknownType(u8),
    /// A table key or short string that is not UTF-8.
    InvalidUtf8,
    /// Tables and arrays nested deeper than [`MAX_NESTING`].
    TooDeep,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldError::Truncated => f.write_str("field table truncated"),
            FieldError::UnknownType(t) => {
                write!(
                    f,
                    "unknown field type '{}'",
                    char::from(*t).escape_default()
                )
            }
            FieldError::InvalidUtf8 => f.write_str("field name is not valid UTF-8"),
            FieldError::TooDeep => write!(
                f,
                "field tables and arrays nested deeper than {MAX_NESTING} levels"
            ),
        }
    }
}

/// What [`check_table`] learnt about a well-formed table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableShape {
    /// Bytes the table occupies, its 4-byte length included.
    pub(crate) len: usize,
    /// The deepest nesting, the table itself counting as 1.
    pub(crate) depth: usize,
    /// Fields and array elements at every level.
    pub(crate) values: usize,
}

/// Bytes taken by a value of type `kind` whose payload starts at `data[0]`,
/// for the fixed-size and length-prefixed types; None for tables and arrays.
fn scalar_len(kind: u8, data: &[u8]) -> Result<Option<usize>, FieldError> {
    let fixed = match kind {
        b'V' => 0,
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'S' | b'x' => 4 + read_u32(data, 0)? as usize,
        b'F' | b'A' => return Ok(None),
        other => return Err(FieldError::UnknownType(other)),
    };
    if fixed > data.len() {
        return Err(FieldError::Truncated);
    }
    Ok(Some(fixed))
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, FieldError> {
    let b = data.get(at..at + 4).ok_or(FieldError::Truncated)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a short string (a table key) at `at`; returns it and where it ends.
fn short_str(data: &[u8], at: usize) -> Result<(&str, usize), FieldError> {
    let len = *data.get(at).ok_or(FieldError::Truncated)? as usize;
    let bytes = data
        .get(at + 1..at + 1 + len)
        .ok_or(FieldError::Truncated)?;
    let s = std::str::from_utf8(bytes).map_err(|_| FieldError::InvalidUtf8)?;
    Ok((s, at + 1 + len))
}

/// Checks the encoding of the table at the start of `data` (its 4-byte length,
/// then its fields) in one pass, without allocating: every length in bounds,
/// every type known, every key UTF-8, nothing nested deeper than
/// [`MAX_NESTING`]. Bytes after the table are not looked at.
pub(crate) fn check_table(data: &[u8]) -> Result<TableShape, FieldError> {
    let len = read_u32(data, 0)? as usize;
    let end = 4usize.checked_add(len).ok_or(FieldError::Truncated)?;
    if end > data.len() {
        return Err(FieldError::Truncated);
    }
    // The open containers: (end offset, is a table).
    let mut open: Vec<(usize, bool)> = vec![(end, true)];
    let mut shape = TableShape {
        len: end,
        depth: 1,
        values: 0,
    };
    let mut at = 4;
    while let Some(&(until, table)) = open.last() {
        if at == until {
            open.pop();
            continue;
        }
        if table {
            at = short_str(&data[..until], at)?.1;
        }
        let kind = *data[..until].get(at).ok_or(FieldError::Truncated)?;
        at += 1;
        shape.values += 1;
        match scalar_len(kind, &data[at..until])? {
            Some(n) => at += n,
            None => {
                let inner = read_u32(&data[..until], at)? as usize;
                let inner_end = at + 4 + inner;
                if inner_end > until {
                    return Err(FieldError::Truncated);
                }
                if open.len() == MAX_NESTING {
                    return Err(FieldError::TooDeep);
                }
                open.push((inner_end, kind == b'F'));
                shape.depth = shape.depth.max(open.len());
                at += 4;
            }
        }
    }
    Ok(shape)
}

/// A container being filled by [`decode_table`].
enum Building {
    Table {
        map: BTreeMap<ShortString, AMQPValue>,
        end: usize,
        /// The key under which this table goes into its parent table.
        key: Option<ShortString>,
    },
    Array {
        items: Vec<AMQPValue>,
        end: usize,
        key: Option<ShortString>,
    },
}

impl Building {
    fn end(&self) -> usize {
        match self {
            Building::Table { end, .. } | Building::Array { end, .. } => *end,
        }
    }
}

/// Decodes the table at the start of `data`; returns it and the bytes it took.
/// Iterative: the depth of the input costs heap, never stack, and past
/// [`MAX_NESTING`] it is refused.
pub(crate) fn decode_table(data: &[u8]) -> Result<(FieldTable, usize), FieldError> {
    match decode_container(data, true)? {
        (AMQPValue::FieldTable(table), used) => Ok((table, used)),
        _ => Err(FieldError::Truncated),
    }
}

/// Decodes the table (`table`) or array at the start of `data`.
fn decode_container(data: &[u8], table: bool) -> Result<(AMQPValue, usize), FieldError> {
    let len = read_u32(data, 0)? as usize;
    let end = 4usize.checked_add(len).ok_or(FieldError::Truncated)?;
    if end > data.len() {
        return Err(FieldError::Truncated);
    }
    let mut stack = vec![open_container(table, end, None)];
    let mut at = 4;
    loop {
        let Some(top) = stack.last_mut() else {
            return Err(FieldError::Truncated);
        };
        let until = top.end();
        if at == until {
            let (value, key) = match stack.pop() {
                Some(Building::Table { map, key, .. }) => {
                    (AMQPValue::FieldTable(FieldTable::from(map)), key)
                }
                Some(Building::Array { items, key, .. }) => {
                    (AMQPValue::FieldArray(FieldArray::from(items)), key)
                }
                None => return Err(FieldError::Truncated),
            };
            match stack.last_mut() {
                None => return Ok((value, end)),
                Some(parent) => attach(parent, key, value),
            }
            continue;
        }
        let window = &data[..until];
        let key = match top {
            Building::Table { .. } => {
                let (k, next) = short_str(window, at)?;
                at = next;
                Some(ShortString::from(k))
            }
            Building::Array { .. } => None,
        };
        let kind = *window.get(at).ok_or(FieldError::Truncated)?;
        at += 1;
        match kind {
            b'F' | b'A' => {
                let inner = read_u32(window, at)? as usize;
                let inner_end = at + 4 + inner;
                if inner_end > until {
                    return Err(FieldError::Truncated);
                }
                if stack.len() == MAX_NESTING {
                    return Err(FieldError::TooDeep);
                }
                at += 4;
                stack.push(open_container(kind == b'F', inner_end, key));
            }
            _ => {
                let (value, used) = scalar(kind, &window[at..])?;
                at += used;
                if let Some(top) = stack.last_mut() {
                    attach(top, key, value);
                }
            }
        }
    }
}

fn open_container(table: bool, end: usize, key: Option<ShortString>) -> Building {
    if table {
        Building::Table {
            map: BTreeMap::new(),
            end,
            key,
        }
    } else {
        Building::Array {
            items: Vec::new(),
            end,
            key,
        }
    }
}

fn attach(parent: &mut Building, key: Option<ShortString>, value: AMQPValue) {
    match parent {
        Building::Table { map, .. } => {
            if let Some(key) = key {
                map.insert(key, value);
            }
        }
        Building::Array { items, .. } => items.push(value),
    }
}

/// Decodes one scalar value of type `kind` from the start of `data`.
fn scalar(kind: u8, data: &[u8]) -> Result<(AMQPValue, usize), FieldError> {
    let Some(len) = scalar_len(kind, data)? else {
        return Err(FieldError::UnknownType(kind));
    };
    let b = &data[..len];
    let be2 = || [b[0], b[1]];
    let be4 = || [b[0], b[1], b[2], b[3]];
    let be8 = || [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    let value = match kind {
        b'V' => AMQPValue::Void,
        b't' => AMQPValue::Boolean(b[0] != 0),
        b'b' => AMQPValue::ShortShortInt(b[0] as i8),
        b'B' => AMQPValue::ShortShortUInt(b[0]),
        b's' | b'U' => AMQPValue::ShortInt(i16::from_be_bytes(be2())),
        b'u' => AMQPValue::ShortUInt(u16::from_be_bytes(be2())),
        b'I' => AMQPValue::LongInt(i32::from_be_bytes(be4())),
        b'i' => AMQPValue::LongUInt(u32::from_be_bytes(be4())),
        b'f' => AMQPValue::Float(f32::from_be_bytes(be4())),
        b'D' => AMQPValue::DecimalValue(DecimalValue {
            scale: b[0],
            value: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
        }),
        b'l' | b'L' => AMQPValue::LongLongInt(i64::from_be_bytes(be8())),
        b'd' => AMQPValue::Double(f64::from_be_bytes(be8())),
        b'T' => AMQPValue::Timestamp(u64::from_be_bytes(be8())),
        b'S' => AMQPValue::LongString(LongString::from(b[4..].to_vec())),
        b'x' => AMQPValue::ByteArray(ByteArray::from(&b[4..])),
        other => return Err(FieldError::UnknownType(other)),
    };
    Ok((value, len))
}

/// The value of `key` in the table at the start of `data` (a top-level field
/// only), decoded alone: finding `CC` in a message's headers does not decode
/// the rest. `data` must have passed [`check_table`]; anything malformed reads
/// as absent.
pub(crate) fn table_get(data: &[u8], key: &str) -> Option<AMQPValue> {
    let end = 4 + read_u32(data, 0).ok()? as usize;
    let window = data.get(..end)?;
    let mut at = 4;
    while at < end {
        let (k, next) = short_str(window, at).ok()?;
        let kind = *window.get(next)?;
        let start = next + 1;
        let len = match scalar_len(kind, &window[start..]).ok()? {
            Some(n) => n,
            None => 4 + read_u32(window, start).ok()? as usize,
        };
        if k == key {
            return match kind {
                b'F' | b'A' => decode_container(&window[start..start + len], kind == b'F')
                    .ok()
                    .map(|(v, _)| v),
                _ => scalar(kind, &window[start..]).ok().map(|(v, _)| v),
            };
        }
        at = start + len;
    }
    None
}

/// An open container while encoding: its entries still to write and where its
/// length prefix sits.
enum Writing<'a> {
    Table(btree_map::Iter<'a, ShortString, AMQPValue>, usize),
    Array(std::slice::Iter<'a, AMQPValue>, usize),
}

/// Appends `table` (4-byte length, then fields), iteratively. Short-string
/// values, which AMQP 0-9-1 as RabbitMQ speaks it cannot carry in a table,
/// are written as long strings.
pub(crate) fn encode_table(out: &mut Vec<u8>, table: &FieldTable) {
    let open = vec![Writing::Table(table.inner().iter(), out.len())];
    out.extend_from_slice(&[0; 4]);
    encode_open(out, open);
}

/// Appends one value (its type code, then its encoding), iteratively.
pub(crate) fn encode_value(out: &mut Vec<u8>, value: &AMQPValue) {
    match value {
        AMQPValue::FieldTable(t) => {
            out.push(b'F');
            encode_table(out, t);
        }
        AMQPValue::FieldArray(a) => {
            out.push(b'A');
            let open = vec![Writing::Array(a.as_slice().iter(), out.len())];
            out.extend_from_slice(&[0; 4]);
            encode_open(out, open);
        }
        scalar => encode_scalar(out, scalar),
    }
}

/// Writes the entries of the open containers, innermost first, filling in
/// each one's length once it is done.
fn encode_open(out: &mut Vec<u8>, mut open: Vec<Writing<'_>>) {
    while let Some(top) = open.last_mut() {
        let next = match top {
            Writing::Table(entries, _) => entries.next().map(|(k, v)| {
                let k = k.as_str().as_bytes();
                out.push(k.len() as u8);
                out.extend_from_slice(k);
                v
            }),
            Writing::Array(items, _) => items.next(),
        };
        let Some(value) = next else {
            let at = match open.pop() {
                Some(Writing::Table(_, at) | Writing::Array(_, at)) => at,
                None => break,
            };
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            continue;
        };
        match value {
            AMQPValue::FieldTable(t) => {
                out.push(b'F');
                open.push(Writing::Table(t.inner().iter(), out.len()));
                out.extend_from_slice(&[0; 4]);
            }
            AMQPValue::FieldArray(a) => {
                out.push(b'A');
                open.push(Writing::Array(a.as_slice().iter(), out.len()));
                out.extend_from_slice(&[0; 4]);
            }
            scalar => encode_scalar(out, scalar),
        }
    }
}

fn encode_scalar(out: &mut Vec<u8>, value: &AMQPValue) {
    let long = |out: &mut Vec<u8>, kind: u8, bytes: &[u8]| {
        out.push(kind);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        AMQPValue::Boolean(b) => out.extend_from_slice(&[b't', u8::from(*b)]),
        AMQPValue::ShortShortInt(v) => out.extend_from_slice(&[b'b', *v as u8]),
        AMQPValue::ShortShortUInt(v) => out.extend_from_slice(&[b'B', *v]),
        AMQPValue::ShortInt(v) => {
            out.push(b's');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::ShortUInt(v) => {
            out.push(b'u');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::LongInt(v) => {
            out.push(b'I');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::LongUInt(v) => {
            out.push(b'i');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::LongLongInt(v) => {
            out.push(b'l');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::Float(v) => {
            out.push(b'f');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::Double(v) => {
            out.push(b'd');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::DecimalValue(d) => {
            out.extend_from_slice(&[b'D', d.scale]);
            out.extend_from_slice(&d.value.to_be_bytes());
        }
        AMQPValue::ShortString(s) => long(out, b'S', s.as_str().as_bytes()),
        AMQPValue::LongString(s) => long(out, b'S', s.as_bytes()),
        AMQPValue::Timestamp(v) => {
            out.push(b'T');
            out.extend_from_slice(&v.to_be_bytes());
        }
        AMQPValue::ByteArray(a) => long(out, b'x', a.as_slice()),
        AMQPValue::Void => out.push(b'V'),
        // Containers are opened by encode_table.
        AMQPValue::FieldTable(_) | AMQPValue::FieldArray(_) => {}
    }
}

/// `table` encoded on its own (length prefix included).
pub(crate) fn encoded_table(table: &FieldTable) -> Vec<u8> {
    let mut out = Vec::new();
    encode_table(&mut out, table);
    out
}

/// A header value as a string, whichever string type the client used.
pub(crate) fn value_as_str(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        _ => None,
    }
}

/// A header or argument value as an integer, whichever integer type the client used.
pub(crate) fn value_as_i64(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::Timestamp(v) => i64::try_from(v).ok(),
        _ => warren_routing::value::as_integer(value),
    }
}

/// A table of these fields, for tests.
#[cfg(test)]
pub(crate) fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table whose field "x" nests `levels` containers, innermost empty.
    pub(crate) fn nested(levels: usize, arrays: bool) -> Vec<u8> {
        let mut value = vec![if arrays { b'A' } else { b'F' }, 0, 0, 0, 0];
        for _ in 1..levels {
            let mut outer = Vec::with_capacity(value.len() + 7);
            if arrays {
                outer.push(b'A');
                outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
            } else {
                outer.push(b'F');
                outer.extend_from_slice(&((value.len() + 2) as u32).to_be_bytes());
                outer.extend_from_slice(&[1, b'x']);
            }
            outer.extend_from_slice(&value);
            value = outer;
        }
        let mut table = ((value.len() + 2) as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&[1, b'x']);
        table.extend_from_slice(&value);
        table
    }

    fn sample() -> FieldTable {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongLongInt(-3));
        let mut t = FieldTable::default();
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
                    AMQPValue::FieldArray(FieldArray::default()),
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
            t.insert(k.into(), v);
        }
        t
    }

    fn amq_protocol_encoding(t: &FieldTable) -> Vec<u8> {
        let gen = amq_protocol::types::generation::gen_field_table(t);
        match cookie_factory::gen_simple(gen, Vec::new()) {
            Ok(v) => v,
            Err(e) => panic!("encode: {e}"),
        }
    }

    #[test]
    fn encodes_and_decodes_as_amq_protocol_does() {
        let t = sample();
        let ours = encoded_table(&t);
        assert_eq!(ours, amq_protocol_encoding(&t));
        let (_, theirs) = amq_protocol::types::parsing::parse_field_table(&ours[..])
            .expect("amq-protocol parses");
        let (decoded, used) = decode_table(&ours).expect("decodes");
        assert_eq!(used, ours.len());
        assert_eq!(decoded, theirs);
        assert_eq!(decoded, t);
        let shape = check_table(&ours).expect("checks");
        assert_eq!(shape.len, ours.len());
        assert_eq!(shape.depth, 3);
    }

    #[test]
    fn lookups_decode_one_field() {
        let t = sample();
        let raw = encoded_table(&t);
        assert_eq!(table_get(&raw, "i32"), Some(AMQPValue::LongInt(-70000)));
        assert_eq!(table_get(&raw, "a"), t.inner().get("a").cloned());
        assert_eq!(table_get(&raw, "tbl"), t.inner().get("tbl").cloned());
        assert_eq!(table_get(&raw, "missing"), None);
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        for arrays in [false, true] {
            let ok = nested(MAX_NESTING - 1, arrays);
            assert_eq!(check_table(&ok).map(|s| s.depth), Ok(MAX_NESTING));
            let (table, _) = decode_table(&ok).expect("at the limit");
            assert_eq!(encoded_table(&table), ok);
            let deep = nested(100_000, arrays);
            assert_eq!(check_table(&deep), Err(FieldError::TooDeep));
            assert_eq!(decode_table(&deep).map(|_| ()), Err(FieldError::TooDeep));
        }
    }

    #[test]
    fn a_table_at_the_limit_is_handled_on_a_small_stack() {
        // Clone, compare, drop (std's own recursion) of the deepest table
        // accepted, on a thread with a 2 MiB stack (tokio's default).
        let raw = nested(MAX_NESTING - 1, false);
        let expected = raw.len();
        let worker = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let (table, _) = decode_table(&raw).expect("decodes");
                let copy = table.clone();
                assert!(copy == table);
                drop(copy);
                encoded_table(&table).len()
            });
        let len = worker.expect("spawn").join().expect("no stack overflow");
        assert_eq!(len, expected);
    }

    #[test]
    fn malformed_tables_are_refused() {
        assert_eq!(check_table(&[0, 0]), Err(FieldError::Truncated));
        assert_eq!(check_table(&[0, 0, 0, 9, 1]), Err(FieldError::Truncated));
        let unknown = [0, 0, 0, 3, 1, b'k', b'?'];
        assert_eq!(check_table(&unknown), Err(FieldError::UnknownType(b'?')));
        assert_eq!(
            decode_table(&unknown).map(|_| ()),
            Err(FieldError::UnknownType(b'?'))
        );
        let bad_key = [0, 0, 0, 3, 1, 0xff, b'V'];
        assert_eq!(check_table(&bad_key), Err(FieldError::InvalidUtf8));
        // An inner length that runs past its parent.
        let overrun = [0, 0, 0, 7, 1, b'k', b'F', 0, 0, 0, 9];
        assert_eq!(check_table(&overrun), Err(FieldError::Truncated));
        assert_eq!(
            decode_table(&overrun).map(|_| ()),
            Err(FieldError::Truncated)
        );
    }
}
