//! Evaluation of a compiled selector against one message, with SQL's
//! three-valued logic.
//!
//! Every expression yields a [`Value`]. Comparisons and logical operators
//! yield `Bool` or `Null`, `Null` standing for UNKNOWN: anything compared with
//! NULL is UNKNOWN, `NOT UNKNOWN` is UNKNOWN, `FALSE AND UNKNOWN` is FALSE and
//! `TRUE OR UNKNOWN` is TRUE. A value of the wrong type for an operation
//! (a string compared with a number, a number where a condition is expected,
//! arithmetic on a string) is UNKNOWN as well, never an error.
//!
//! Numbers compare across integer and decimal types by exact value. Integer
//! arithmetic is checked and falls back to decimal on overflow; `/` of two
//! integers truncates toward zero, as in SQL and JMS; division or remainder by
//! zero is NULL. Strings compare by their bytes (`=`, `<>` and ordering);
//! booleans only by `=` and `<>`.
//!
//! Lookups borrow: a header, property or body field is read in place and
//! strings are never copied, so evaluation allocates nothing (the one
//! exception being the JSON body's first parse, see `json`).

use std::cmp::Ordering;

use amq_protocol_types::AMQPValue;
use serde_json::Value as Json;

use super::ast::{ArithOp, CmpOp, Expr, Literal, Property, UnaryOp};
use super::json;
use super::SelectorInput;

/// A value during evaluation, borrowing from the selector and the message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value<'v> {
    /// Absent, SQL NULL, or (as a condition) UNKNOWN.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'v str),
    /// Present but not a scalar (an array, a table, a JSON object, bytes):
    /// `IS NULL` is false, every comparison UNKNOWN.
    Opaque,
}

impl Value<'_> {
    fn truth(self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn from_truth(truth: Option<bool>) -> Self {
        truth.map_or(Value::Null, Value::Bool)
    }
}

fn literal(literal: &Literal) -> Value<'_> {
    match literal {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Str(s) => Value::Str(s),
    }
}

/// A header value as a selector value.
fn amqp(value: &AMQPValue) -> Value<'_> {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(v) => Value::Int((*v).into()),
        AMQPValue::ShortShortUInt(v) => Value::Int((*v).into()),
        AMQPValue::ShortInt(v) => Value::Int((*v).into()),
        AMQPValue::ShortUInt(v) => Value::Int((*v).into()),
        AMQPValue::LongInt(v) => Value::Int((*v).into()),
        AMQPValue::LongUInt(v) => Value::Int((*v).into()),
        AMQPValue::LongLongInt(v) => Value::Int(*v),
        AMQPValue::Timestamp(v) => unsigned(*v),
        AMQPValue::Float(v) => Value::Float((*v).into()),
        AMQPValue::Double(v) => Value::Float(*v),
        AMQPValue::DecimalValue(d) => {
            Value::Float(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::Str(s.as_str()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(s) => Value::Str(s),
            Err(_) => Value::Opaque,
        },
        AMQPValue::Void => Value::Null,
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) | AMQPValue::ByteArray(_) => {
            Value::Opaque
        }
    }
}

fn unsigned<'v>(v: u64) -> Value<'v> {
    i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
}

/// A JSON value as a selector value.
fn json(value: &Json) -> Value<'_> {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        Json::String(s) => Value::Str(s),
        Json::Array(_) | Json::Object(_) => Value::Opaque,
    }
}

fn text(v: Option<&str>) -> Value<'_> {
    v.map_or(Value::Null, Value::Str)
}

fn property<'v>(property: Property, input: &SelectorInput<'v>) -> Value<'v> {
    let m = input.message;
    let p = &m.properties;
    match property {
        Property::RoutingKey => Value::Str(m.routing_key),
        Property::Exchange => Value::Str(m.exchange),
        Property::ContentType => text(p.content_type),
        Property::ContentEncoding => text(p.content_encoding),
        Property::Priority => p.priority.map_or(Value::Null, |v| Value::Int(v.into())),
        Property::DeliveryMode => p
            .delivery_mode
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Property::CorrelationId => text(p.correlation_id),
        Property::ReplyTo => text(p.reply_to),
        Property::Expiration => text(p.expiration),
        Property::MessageId => text(p.message_id),
        Property::Timestamp => p.timestamp.map_or(Value::Null, unsigned),
        Property::Type => text(p.message_type),
        Property::UserId => text(p.user_id),
        Property::AppId => text(p.app_id),
    }
}

/// Compares an integer with a decimal by exact value.
fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // Every i64 lies in [-2^63, 2^63).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range, so exact.
    match i.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

/// Orders two values; `None` when they are not comparable (UNKNOWN).
fn order(a: Value<'_>, b: Value<'_>) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(&y),
        (Value::Int(x), Value::Float(y)) => cmp_int_float(x, y),
        (Value::Float(x), Value::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `=`: like [`order`], and booleans compare for equality too.
fn equal(a: Value<'_>, b: Value<'_>) -> Option<bool> {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Some(x == y),
        _ => order(a, b).map(Ordering::is_eq),
    }
}

pub(crate) fn compare(op: CmpOp, a: Value<'_>, b: Value<'_>) -> Option<bool> {
    match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => equal(a, b).map(|eq| !eq),
        CmpOp::Lt => order(a, b).map(Ordering::is_lt),
        CmpOp::Le => order(a, b).map(Ordering::is_le),
        CmpOp::Gt => order(a, b).map(Ordering::is_gt),
        CmpOp::Ge => order(a, b).map(Ordering::is_ge),
    }
}

fn float_result<'v>(f: f64) -> Value<'v> {
    if f.is_nan() {
        Value::Null
    } else {
        Value::Float(f)
    }
}

pub(crate) fn arith<'v>(op: ArithOp, a: Value<'_>, b: Value<'_>) -> Value<'v> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let checked = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div | ArithOp::Rem if y == 0 => return Value::Null,
                ArithOp::Div => x.checked_div(y),
                ArithOp::Rem => Some(x.wrapping_rem(y)),
            };
            match checked {
                Some(v) => Value::Int(v),
                None => float_arith(op, x as f64, y as f64),
            }
        }
        (Value::Int(x), Value::Float(y)) => float_arith(op, x as f64, y),
        (Value::Float(x), Value::Int(y)) => float_arith(op, x, y as f64),
        (Value::Float(x), Value::Float(y)) => float_arith(op, x, y),
        _ => Value::Null,
    }
}

fn float_arith<'v>(op: ArithOp, x: f64, y: f64) -> Value<'v> {
    match op {
        ArithOp::Add => float_result(x + y),
        ArithOp::Sub => float_result(x - y),
        ArithOp::Mul => float_result(x * y),
        ArithOp::Div | ArithOp::Rem if y == 0.0 => Value::Null,
        ArithOp::Div => float_result(x / y),
        ArithOp::Rem => float_result(x % y),
    }
}

fn unary<'v>(op: UnaryOp, v: Value<'v>) -> Value<'v> {
    match (op, v) {
        (UnaryOp::Plus, Value::Int(_) | Value::Float(_)) => v,
        (UnaryOp::Neg, Value::Int(i)) => i
            .checked_neg()
            .map_or(Value::Float(-(i as f64)), Value::Int),
        (UnaryOp::Neg, Value::Float(f)) => Value::Float(-f),
        _ => Value::Null,
    }
}

fn not(truth: Option<bool>) -> Option<bool> {
    truth.map(|b| !b)
}

impl Expr {
    /// Evaluates this expression for one message.
    pub(crate) fn eval<'v>(&'v self, input: &'v SelectorInput<'_>) -> Value<'v> {
        match self {
            Expr::Literal(l) => literal(l),
            Expr::Header(name) => input
                .message
                .headers
                .get()
                .and_then(|h| h.inner().get(&**name))
                .map_or(Value::Null, amqp),
            Expr::Property(p) => property(*p, input),
            Expr::Body(path) => input
                .body()
                .and_then(|doc| json::lookup(doc, path))
                .map_or(Value::Null, json),
            Expr::Unary(op, e) => unary(*op, e.eval(input)),
            Expr::Arith(op, a, b) => arith(*op, a.eval(input), b.eval(input)),
            Expr::Compare(op, a, b) => {
                Value::from_truth(compare(*op, a.eval(input), b.eval(input)))
            }
            Expr::And(all) => {
                let mut unknown = false;
                for e in all.iter() {
                    match e.eval(input).truth() {
                        Some(false) => return Value::Bool(false),
                        Some(true) => {}
                        None => unknown = true,
                    }
                }
                Value::from_truth((!unknown).then_some(true))
            }
            Expr::Or(any) => {
                let mut unknown = false;
                for e in any.iter() {
                    match e.eval(input).truth() {
                        Some(true) => return Value::Bool(true),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                Value::from_truth((!unknown).then_some(false))
            }
            Expr::Not(e) => Value::from_truth(not(e.eval(input).truth())),
            Expr::Between {
                value,
                low,
                high,
                negated,
            } => {
                let v = value.eval(input);
                let above = compare(CmpOp::Ge, v, low.eval(input));
                // FALSE AND x is FALSE: skip the upper bound.
                let within = if above == Some(false) {
                    Some(false)
                } else {
                    match (above, compare(CmpOp::Le, v, high.eval(input))) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    }
                };
                Value::from_truth(if *negated { not(within) } else { within })
            }
            Expr::In {
                value,
                list,
                negated,
            } => {
                let v = value.eval(input);
                let mut found = Some(false);
                if v == Value::Null {
                    found = None;
                } else {
                    for item in list.iter() {
                        match equal(v, item.eval(input)) {
                            Some(true) => {
                                found = Some(true);
                                break;
                            }
                            Some(false) => {}
                            None => found = None,
                        }
                    }
                }
                Value::from_truth(if *negated { not(found) } else { found })
            }
            Expr::Like {
                value,
                pattern,
                negated,
            } => {
                let hit = match value.eval(input) {
                    Value::Str(s) => Some(pattern.matches(s)),
                    _ => None,
                };
                Value::from_truth(if *negated { not(hit) } else { hit })
            }
            Expr::Matches {
                value,
                regex,
                negated,
            } => {
                let hit = match value.eval(input) {
                    Value::Str(s) => Some(regex.is_match(s)),
                    _ => None,
                };
                Value::from_truth(if *negated { not(hit) } else { hit })
            }
            Expr::IsNull { value, negated } => {
                let null = value.eval(input) == Value::Null;
                Value::Bool(null != *negated)
            }
        }
    }

    /// Evaluates this expression as a condition: `Some(true)` is TRUE, `None` UNKNOWN.
    pub(crate) fn truth(&self, input: &SelectorInput<'_>) -> Option<bool> {
        self.eval(input).truth()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_float_comparison_is_exact() {
        assert_eq!(cmp_int_float(1, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_int_float(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_float(2, 1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_float(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_float(-2, -1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_float(i64::MAX, 9.3e18), Some(Ordering::Less));
        assert_eq!(cmp_int_float(i64::MIN, -9.3e18), Some(Ordering::Greater));
        // 2^53 + 1 is not representable as f64; a lossy comparison says equal.
        assert_eq!(
            cmp_int_float(9_007_199_254_740_993, 9_007_199_254_740_992.0),
            Some(Ordering::Greater)
        );
        assert_eq!(cmp_int_float(0, f64::NAN), None);
        assert_eq!(cmp_int_float(0, f64::INFINITY), Some(Ordering::Less));
    }

    #[test]
    fn arithmetic_rules() {
        use Value::*;
        assert_eq!(arith(ArithOp::Add, Int(2), Int(3)), Int(5));
        assert_eq!(arith(ArithOp::Add, Int(2), Float(0.5)), Float(2.5));
        assert_eq!(arith(ArithOp::Div, Int(7), Int(2)), Int(3));
        assert_eq!(arith(ArithOp::Div, Int(-7), Int(2)), Int(-3));
        assert_eq!(arith(ArithOp::Div, Int(7), Float(2.0)), Float(3.5));
        assert_eq!(arith(ArithOp::Rem, Int(7), Int(3)), Int(1));
        assert_eq!(arith(ArithOp::Rem, Int(i64::MIN), Int(-1)), Int(0));
        assert_eq!(arith(ArithOp::Div, Int(1), Int(0)), Null);
        assert_eq!(arith(ArithOp::Rem, Int(1), Int(0)), Null);
        assert_eq!(arith(ArithOp::Div, Float(1.0), Float(0.0)), Null);
        assert_eq!(
            arith(ArithOp::Add, Int(i64::MAX), Int(1)),
            Float(i64::MAX as f64 + 1.0)
        );
        assert_eq!(
            arith(ArithOp::Div, Int(i64::MIN), Int(-1)),
            Float(-(i64::MIN as f64))
        );
        assert_eq!(arith(ArithOp::Add, Str("a"), Int(1)), Null);
        assert_eq!(arith(ArithOp::Add, Null, Int(1)), Null);
        assert_eq!(
            unary(UnaryOp::Neg, Int(i64::MIN)),
            Float(-(i64::MIN as f64))
        );
        assert_eq!(unary(UnaryOp::Plus, Str("a")), Null);
    }

    #[test]
    fn comparison_types() {
        use Value::*;
        assert_eq!(compare(CmpOp::Eq, Int(1), Float(1.0)), Some(true));
        assert_eq!(compare(CmpOp::Eq, Str("1"), Int(1)), None);
        assert_eq!(compare(CmpOp::Ne, Str("1"), Int(1)), None);
        assert_eq!(compare(CmpOp::Lt, Str("a"), Str("b")), Some(true));
        assert_eq!(compare(CmpOp::Eq, Bool(true), Bool(true)), Some(true));
        assert_eq!(compare(CmpOp::Lt, Bool(false), Bool(true)), None);
        assert_eq!(compare(CmpOp::Eq, Null, Null), None);
        assert_eq!(compare(CmpOp::Eq, Opaque, Opaque), None);
        assert_eq!(compare(CmpOp::Eq, Float(f64::NAN), Float(f64::NAN)), None);
    }
}
