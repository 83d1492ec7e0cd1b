//! Headers exchange matching, after RabbitMQ's `rabbit_exchange_type_headers`.
//!
//! Each binding's arguments are compiled once into a [`HeadersRule`]: the
//! `x-match` mode (`all`, the default, `any`, `all-with-x` or `any-with-x`) and
//! the conditions to test against the message headers. `x-match` itself is
//! never a condition; other `x-` arguments are conditions only in the
//! `-with-x` modes. A `Void` argument asks only that the header be present;
//! any other asks for an equal value, where a short and a long string with the
//! same bytes count as equal (clients differ in which they send). `all` with no
//! conditions matches every message, `any` with none matches nothing, and a
//! message without headers is matched as an empty table.
//!
//! Routing tests every binding in turn: headers exchanges rarely have many
//! bindings, and each test stops at the first decisive condition.

use std::sync::Arc;

use amq_protocol_types::{AMQPValue, FieldTable, ShortString};

use crate::binding::{BindError, Destination};

/// What a binding argument asks of the message header of the same name.
#[derive(Clone, Debug)]
enum Condition {
    /// The header is present, whatever its value (a `Void` argument).
    Present,
    /// The header is present with an equal value.
    Equals(AMQPValue),
}

/// One binding's arguments, compiled for matching.
#[derive(Clone, Debug)]
pub(crate) struct HeadersRule {
    /// `all`/`all-with-x` when true, `any`/`any-with-x` when false.
    match_all: bool,
    conditions: Box<[(ShortString, Condition)]>,
}

impl HeadersRule {
    /// Compiles binding arguments, refusing a bad `x-match` as RabbitMQ does.
    pub(crate) fn compile(arguments: &FieldTable) -> Result<Self, BindError> {
        let (match_all, with_x) = match arguments.inner().get("x-match") {
            None => (true, false),
            Some(value) => parse_x_match(value)?,
        };
        let conditions = arguments
            .into_iter()
            .filter(|(key, _)| {
                let key = key.as_str();
                key != "x-match" && (with_x || !key.starts_with("x-"))
            })
            .map(|(key, value)| {
                let condition = match value {
                    AMQPValue::Void => Condition::Present,
                    other => Condition::Equals(other.clone()),
                };
                (key.clone(), condition)
            })
            .collect();
        Ok(Self {
            match_all,
            conditions,
        })
    }

    pub(crate) fn matches(&self, headers: &FieldTable) -> bool {
        let headers = headers.inner();
        let holds = |(key, condition): &(ShortString, Condition)| match (
            headers.get(key.as_str()),
            condition,
        ) {
            (None, _) => false,
            (Some(_), Condition::Present) => true,
            (Some(value), Condition::Equals(wanted)) => values_equal(value, wanted),
        };
        if self.match_all {
            self.conditions.iter().all(holds)
        } else {
            self.conditions.iter().any(holds)
        }
    }
}

/// Reads `x-match` as (match all, count `x-` arguments).
fn parse_x_match(value: &AMQPValue) -> Result<(bool, bool), BindError> {
    let text = match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()),
        AMQPValue::ShortString(s) => s.as_str().into(),
        other => {
            return Err(BindError::InvalidArgument(format!(
                "Invalid x-match field type {} (value {}); expected longstr",
                rabbit_type_name(other),
                describe(other)
            )))
        }
    };
    match &*text {
        "all" => Ok((true, false)),
        "any" => Ok((false, false)),
        "all-with-x" => Ok((true, true)),
        "any-with-x" => Ok((false, true)),
        other => Err(BindError::InvalidArgument(format!(
            "Invalid x-match field value {other:?}; expected all, any, all-with-x, or any-with-x"
        ))),
    }
}

/// The field type names RabbitMQ uses in its error texts.
fn rabbit_type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

fn describe(value: &AMQPValue) -> String {
    match value {
        AMQPValue::Boolean(v) => v.to_string(),
        AMQPValue::ShortShortInt(v) => v.to_string(),
        AMQPValue::ShortShortUInt(v) => v.to_string(),
        AMQPValue::ShortInt(v) => v.to_string(),
        AMQPValue::ShortUInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::LongUInt(v) => v.to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::Float(v) => v.to_string(),
        AMQPValue::Double(v) => v.to_string(),
        AMQPValue::Timestamp(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}

/// AMQP value equality, except that short and long strings with the same
/// bytes are equal (also inside arrays and tables).
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (a, b) {
        (AMQPValue::ShortString(s), AMQPValue::LongString(l))
        | (AMQPValue::LongString(l), AMQPValue::ShortString(s)) => {
            s.as_str().as_bytes() == l.as_bytes()
        }
        (AMQPValue::FieldArray(x), AMQPValue::FieldArray(y)) => {
            let (x, y) = (x.as_slice(), y.as_slice());
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_equal(x, y))
        }
        (AMQPValue::FieldTable(x), AMQPValue::FieldTable(y)) => {
            let (x, y) = (x.inner(), y.inner());
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && values_equal(vx, vy))
        }
        _ => a == b,
    }
}

#[derive(Clone, Debug)]
struct HeadersBinding {
    destination: Destination,
    routing_key: Arc<str>,
    arguments: FieldTable,
    rule: HeadersRule,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct HeadersMatcher {
    bindings: Vec<HeadersBinding>,
}

impl HeadersMatcher {
    /// Adds a binding the registry reports as new, with its compiled rule.
    pub(crate) fn insert(
        &mut self,
        destination: Destination,
        routing_key: Arc<str>,
        arguments: FieldTable,
        rule: HeadersRule,
    ) {
        self.bindings.push(HeadersBinding {
            destination,
            routing_key,
            arguments,
            rule,
        });
    }

    /// Drops a binding the registry reports as gone.
    pub(crate) fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) {
        if let Some(at) = self.bindings.iter().position(|b| {
            b.destination == *destination
                && *b.routing_key == *routing_key
                && b.arguments == *arguments
        }) {
            self.bindings.remove(at);
        }
    }

    /// Drops every binding to `destination`.
    pub(crate) fn remove_destination(&mut self, destination: &Destination) {
        self.bindings.retain(|b| b.destination != *destination);
    }

    /// Reports the destination of every binding whose rule the headers satisfy.
    pub(crate) fn route<'a>(
        &'a self,
        headers: Option<&FieldTable>,
        out: &mut impl FnMut(&'a Destination),
    ) -> bool {
        let empty = FieldTable::default();
        let headers = headers.unwrap_or(&empty);
        let mut matched = false;
        for binding in &self.bindings {
            if binding.rule.matches(headers) {
                out(&binding.destination);
                matched = true;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::{FieldArray, LongString};

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn long(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn short(s: &str) -> AMQPValue {
        AMQPValue::ShortString(s.into())
    }

    fn rule(pairs: &[(&str, AMQPValue)]) -> HeadersRule {
        HeadersRule::compile(&table(pairs)).expect("valid rule")
    }

    fn refused(pairs: &[(&str, AMQPValue)]) -> String {
        match HeadersRule::compile(&table(pairs)) {
            Err(BindError::InvalidArgument(text)) => text,
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn x_match_defaults_to_all() {
        let r = rule(&[("a", long("1")), ("b", long("2"))]);
        assert!(r.matches(&table(&[
            ("a", long("1")),
            ("b", long("2")),
            ("c", long("3"))
        ])));
        assert!(!r.matches(&table(&[("a", long("1"))])));
    }

    #[test]
    fn x_match_all_needs_every_condition() {
        let r = rule(&[("x-match", long("all")), ("a", long("1")), ("b", long("2"))]);
        assert!(r.matches(&table(&[("a", long("1")), ("b", long("2"))])));
        assert!(!r.matches(&table(&[("a", long("1")), ("b", long("3"))])));
        assert!(!r.matches(&table(&[])));
    }

    #[test]
    fn x_match_any_needs_one_condition() {
        let r = rule(&[("x-match", long("any")), ("a", long("1")), ("b", long("2"))]);
        assert!(r.matches(&table(&[("b", long("2"))])));
        assert!(r.matches(&table(&[("a", long("1")), ("b", long("x"))])));
        assert!(!r.matches(&table(&[("a", long("2")), ("b", long("1"))])));
        assert!(!r.matches(&table(&[])));
    }

    #[test]
    fn all_without_conditions_matches_everything() {
        assert!(rule(&[]).matches(&table(&[])));
        assert!(rule(&[("x-match", long("all"))]).matches(&table(&[("a", long("1"))])));
        // x- arguments are not conditions for plain all.
        assert!(rule(&[("x-match", long("all")), ("x-foo", long("1"))]).matches(&table(&[])));
    }

    #[test]
    fn any_without_conditions_matches_nothing() {
        let r = rule(&[("x-match", long("any"))]);
        assert!(!r.matches(&table(&[])));
        assert!(!r.matches(&table(&[("a", long("1"))])));
        let r = rule(&[("x-match", long("any")), ("x-foo", long("1"))]);
        assert!(!r.matches(&table(&[("x-foo", long("1"))])));
    }

    #[test]
    fn x_arguments_ignored_by_all_and_any() {
        let r = rule(&[
            ("x-match", long("all")),
            ("x-foo", long("1")),
            ("a", long("1")),
        ]);
        assert!(r.matches(&table(&[("a", long("1"))])));
        let r = rule(&[
            ("x-match", long("any")),
            ("x-foo", long("1")),
            ("a", long("1")),
        ]);
        assert!(!r.matches(&table(&[("x-foo", long("1"))])));
    }

    #[test]
    fn x_arguments_count_with_x() {
        let r = rule(&[
            ("x-match", long("all-with-x")),
            ("x-foo", long("1")),
            ("a", long("1")),
        ]);
        assert!(r.matches(&table(&[("a", long("1")), ("x-foo", long("1"))])));
        assert!(!r.matches(&table(&[("a", long("1"))])));
        let r = rule(&[
            ("x-match", long("any-with-x")),
            ("x-foo", long("1")),
            ("a", long("1")),
        ]);
        assert!(r.matches(&table(&[("x-foo", long("1"))])));
        assert!(!r.matches(&table(&[("x-foo", long("2"))])));
    }

    #[test]
    fn x_match_is_never_a_condition() {
        // With -with-x, the message need not carry x-match itself.
        let r = rule(&[("x-match", long("all-with-x")), ("a", long("1"))]);
        assert!(r.matches(&table(&[("a", long("1"))])));
        let r = rule(&[("x-match", long("all-with-x"))]);
        assert!(r.matches(&table(&[])));
        let r = rule(&[("x-match", long("any-with-x"))]);
        assert!(!r.matches(&table(&[("x-match", long("any-with-x"))])));
    }

    #[test]
    fn void_argument_means_present() {
        let r = rule(&[("a", AMQPValue::Void)]);
        assert!(r.matches(&table(&[("a", long("anything"))])));
        assert!(r.matches(&table(&[("a", AMQPValue::LongInt(7))])));
        assert!(r.matches(&table(&[("a", AMQPValue::Void)])));
        assert!(!r.matches(&table(&[("b", long("1"))])));
        let r = rule(&[
            ("x-match", long("any")),
            ("a", AMQPValue::Void),
            ("b", long("1")),
        ]);
        assert!(r.matches(&table(&[("a", AMQPValue::Boolean(false))])));
    }

    #[test]
    fn values_compare_by_type_and_value() {
        let r = rule(&[("n", AMQPValue::LongInt(1))]);
        assert!(r.matches(&table(&[("n", AMQPValue::LongInt(1))])));
        assert!(!r.matches(&table(&[("n", AMQPValue::LongInt(2))])));
        assert!(!r.matches(&table(&[("n", AMQPValue::LongLongInt(1))])));
        assert!(!r.matches(&table(&[("n", long("1"))])));
        // A Void header does not equal a non-void argument.
        assert!(!r.matches(&table(&[("n", AMQPValue::Void)])));
    }

    #[test]
    fn short_and_long_strings_are_equal() {
        let r = rule(&[("s", short("eu"))]);
        assert!(r.matches(&table(&[("s", long("eu"))])));
        assert!(r.matches(&table(&[("s", short("eu"))])));
        assert!(!r.matches(&table(&[("s", long("us"))])));
        let r = rule(&[("s", long("eu"))]);
        assert!(r.matches(&table(&[("s", short("eu"))])));
        // Byte arrays are not strings.
        assert!(!r.matches(&table(&[(
            "s",
            AMQPValue::ByteArray(b"eu".to_vec().into())
        )])));
    }

    #[test]
    fn strings_unify_inside_arrays_and_tables() {
        let arr =
            |v: AMQPValue| AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongInt(1), v]));
        let r = rule(&[("a", arr(short("x")))]);
        assert!(r.matches(&table(&[("a", arr(long("x")))])));
        assert!(!r.matches(&table(&[("a", arr(long("y")))])));
        let nested = |v: AMQPValue| AMQPValue::FieldTable(table(&[("k", v)]));
        let r = rule(&[("t", nested(long("x")))]);
        assert!(r.matches(&table(&[("t", nested(short("x")))])));
        assert!(!r.matches(&table(&[("t", nested(short("y")))])));
        assert!(!r.matches(&table(&[("t", AMQPValue::FieldTable(table(&[])))])));
    }

    #[test]
    fn x_match_accepts_short_string() {
        let r = rule(&[("x-match", short("any")), ("a", long("1"))]);
        assert!(r.matches(&table(&[("a", long("1")), ("b", long("1"))])));
        assert!(!r.match_all);
    }

    #[test]
    fn bad_x_match_value_is_refused() {
        assert_eq!(
            refused(&[("x-match", long("foo"))]),
            r#"Invalid x-match field value "foo"; expected all, any, all-with-x, or any-with-x"#
        );
        assert!(refused(&[("x-match", long("ALL"))]).contains("\"ALL\""));
        assert!(refused(&[("x-match", long(""))]).contains("\"\""));
    }

    #[test]
    fn non_string_x_match_is_refused() {
        assert_eq!(
            refused(&[("x-match", AMQPValue::LongInt(1))]),
            "Invalid x-match field type signedint (value 1); expected longstr"
        );
        assert!(refused(&[("x-match", AMQPValue::Boolean(true))])
            .starts_with("Invalid x-match field type bool"));
        assert!(
            refused(&[("x-match", AMQPValue::Void)]).starts_with("Invalid x-match field type void")
        );
    }

    #[test]
    fn matcher_routes_and_treats_missing_headers_as_empty() {
        let mut m = HeadersMatcher::default();
        let q = |n: &str| Destination::Queue(n.into());
        let all_empty = table(&[]);
        let any_a = table(&[("x-match", long("any")), ("a", long("1"))]);
        m.insert(
            q("everything"),
            "".into(),
            all_empty.clone(),
            HeadersRule::compile(&all_empty).unwrap(),
        );
        m.insert(
            q("a"),
            "".into(),
            any_a.clone(),
            HeadersRule::compile(&any_a).unwrap(),
        );
        let mut out = Vec::new();
        assert!(m.route(None, &mut |d| out.push(d.clone())));
        assert_eq!(out, vec![q("everything")]);
        out.clear();
        let h = table(&[("a", long("1"))]);
        m.route(Some(&h), &mut |d| out.push(d.clone()));
        assert_eq!(out, vec![q("everything"), q("a")]);

        m.remove(&q("everything"), "other-key", &all_empty);
        m.remove(&q("everything"), "", &all_empty);
        out.clear();
        assert!(!m.route(None, &mut |d| out.push(d.clone())));
        m.remove_destination(&q("a"));
        assert!(m.bindings.is_empty());
    }
}
