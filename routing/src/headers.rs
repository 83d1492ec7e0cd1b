//! Headers exchange matching, after RabbitMQ's `rabbit_exchange_type_headers`.
//!
//! Each binding's arguments are compiled once into a [`HeadersRule`]: the
//! `x-match` mode (`all`, the default, `any`, `all-with-x` or `any-with-x`) and
//! the conditions to test against the message headers. `x-match` itself is
//! never a condition, nor is a selector (`x-selector`,
//! `x-filter-jms-selector`); other `x-` arguments are conditions only in the
//! `-with-x` modes. A `Void` argument asks only that the header be present;
//! any other asks for an equal value, where a short and a long string with the
//! same bytes count as equal (clients differ in which they send). `all` with no
//! conditions matches every message, `any` with none matches nothing, and a
//! message without headers is matched as an empty table.
//!
//! RabbitMQ tests every binding against every message. Here rules are indexed
//! by *anchors*, hashes of a header name and, where the value can be hashed
//! consistently with equality, of its value: an `all` rule can only match if
//! one chosen condition holds, so it is filed under that condition's anchor;
//! an `any` rule is filed under each of its conditions' anchors. Routing
//! looks up the anchors of the message's own headers and evaluates only the
//! rules found there, so its cost follows the candidates, not the bindings.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use amq_protocol_types::{AMQPValue, FieldTable, ShortString};

use crate::value::{as_integer, display_value, rabbit_type_name};
use foldhash::HashMap;
use smallvec::SmallVec;

use crate::binding::{BindError, Destination};
use crate::selector::is_selector_argument;

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
                key != "x-match" && !is_selector_argument(key) && (with_x || !key.starts_with("x-"))
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

    /// `all` with no conditions: matches every message.
    pub(crate) fn match_everything() -> Self {
        Self {
            match_all: true,
            conditions: Box::new([]),
        }
    }

    pub(crate) fn matches(&self, headers: &FieldTable) -> bool {
        if self.match_all {
            self.conditions.iter().all(|c| holds(c, headers))
        } else {
            self.conditions.iter().any(|c| holds(c, headers))
        }
    }

    /// The position of the condition on header `name` (conditions are sorted by name).
    fn condition_on(&self, name: &str) -> Option<usize> {
        self.conditions
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
    }
}

fn holds((key, condition): &(ShortString, Condition), headers: &FieldTable) -> bool {
    match (headers.inner().get(key.as_str()), condition) {
        (None, _) => false,
        (Some(_), Condition::Present) => true,
        (Some(value), Condition::Equals(wanted)) => values_equal(value, wanted),
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
                display_value(other)
            )))
        }
    };
    match &*text {
        "all" => Ok((true, false)),
        "any" => Ok((false, false)),
        "all-with-x" => Ok((true, true)),
        "any-with-x" => Ok((false, true)),
        other => Err(BindError::InvalidArgument(format!(
            "Invalid x-match field value <<\"{other}\">>; expected all, any, all-with-x, or any-with-x"
        ))),
    }
}

/// AMQP value equality, except that short and long strings with the same
/// bytes are equal, and integers of different widths with the same value
/// (also inside arrays and tables).
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (as_integer(a), as_integer(b)) {
        return x == y;
    }
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

/// Hashes anchors: header names, and names with values. Values are hashed only
/// for types whose equality is plain data equality (strings hashed as bytes,
/// whether short or long); floats, arrays and tables are anchored by name.
#[derive(Clone, Debug, Default)]
struct AnchorHasher(foldhash::fast::RandomState);

impl AnchorHasher {
    fn name(&self, name: &str) -> u64 {
        let mut h = self.0.build_hasher();
        h.write_u8(0);
        h.write(name.as_bytes());
        h.finish()
    }

    fn value(&self, name: &str, value: &AMQPValue) -> Option<u64> {
        let mut h = self.0.build_hasher();
        h.write_u8(1);
        h.write(name.as_bytes());
        h.write_u8(0xff); // names cannot contain it as a UTF-8 byte: ends the name
        let (tag, bits): (u8, u64) = match value {
            AMQPValue::ShortString(s) => {
                h.write(s.as_str().as_bytes());
                (b'S', 0)
            }
            AMQPValue::LongString(s) => {
                h.write(s.as_bytes());
                (b'S', 0)
            }
            AMQPValue::ByteArray(b) => {
                h.write(b.as_slice());
                (b'x', 0)
            }
            AMQPValue::Boolean(v) => (b't', u64::from(*v)),
            AMQPValue::ShortShortInt(_)
            | AMQPValue::ShortShortUInt(_)
            | AMQPValue::ShortInt(_)
            | AMQPValue::ShortUInt(_)
            | AMQPValue::LongInt(_)
            | AMQPValue::LongUInt(_)
            | AMQPValue::LongLongInt(_) => (b'I', as_integer(value).unwrap_or_default() as u64),
            AMQPValue::Timestamp(v) => (b'T', *v),
            AMQPValue::DecimalValue(d) => (b'D', u64::from(d.scale) << 32 | u64::from(d.value)),
            AMQPValue::Float(_)
            | AMQPValue::Double(_)
            | AMQPValue::FieldArray(_)
            | AMQPValue::FieldTable(_)
            | AMQPValue::Void => return None,
        };
        h.write_u8(tag);
        h.write_u64(bits);
        Some(h.finish())
    }

    /// Where a rule with this condition is filed.
    fn condition(&self, (name, condition): &(ShortString, Condition)) -> u64 {
        match condition {
            Condition::Equals(value) => self.value(name.as_str(), value),
            Condition::Present => None,
        }
        .unwrap_or_else(|| self.name(name.as_str()))
    }
}

#[derive(Clone, Debug)]
struct HeadersBinding<T> {
    destination: T,
    routing_key: Arc<str>,
    arguments: FieldTable,
    rule: HeadersRule,
    /// For an `all` rule with conditions: the condition it is filed under.
    anchor: Option<usize>,
}

type Slot = u32;

/// Generic over what a match reports: a [`Destination`] for plain bindings,
/// a binding slot for bindings with a selector (see `selected`).
#[derive(Clone, Debug)]
pub(crate) struct HeadersMatcher<T = Destination> {
    /// Bindings by slot; removed ones leave `None`, recycled through `free`.
    slots: Vec<Option<HeadersBinding<T>>>,
    free: Vec<Slot>,
    /// `all` rules without conditions: they match every message.
    always: Vec<Slot>,
    /// Rules by anchor hash. Every rule able to match is under at least one.
    by_anchor: HashMap<u64, SmallVec<[Slot; 2]>>,
    hasher: AnchorHasher,
}

impl<T> Default for HeadersMatcher<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            always: Vec::new(),
            by_anchor: HashMap::default(),
            hasher: AnchorHasher::default(),
        }
    }
}

impl<T: PartialEq> HeadersMatcher<T> {
    /// Adds a binding the registry reports as new, with its compiled rule.
    pub(crate) fn insert(
        &mut self,
        destination: T,
        routing_key: Arc<str>,
        arguments: FieldTable,
        rule: HeadersRule,
    ) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                Slot::try_from(self.slots.len() - 1).expect("headers exchange exceeds u32 bindings")
            }
        };
        let mut anchor = None;
        if rule.match_all && rule.conditions.is_empty() {
            self.always.push(slot);
        } else if rule.match_all {
            // File under the condition with the fewest rules already there.
            let (at, hash) = (rule
                .conditions
                .iter()
                .map(|c| self.hasher.condition(c))
                .enumerate())
            .min_by_key(|(_, hash)| self.by_anchor.get(hash).map_or(0, |rules| rules.len()))
            .expect("conditions are not empty");
            anchor = Some(at);
            self.file(hash, slot);
        } else {
            for condition in rule.conditions.iter() {
                self.file(self.hasher.condition(condition), slot);
            }
        }
        self.slots[slot as usize] = Some(HeadersBinding {
            destination,
            routing_key,
            arguments,
            rule,
            anchor,
        });
    }

    fn file(&mut self, hash: u64, slot: Slot) {
        let rules = self.by_anchor.entry(hash).or_default();
        // Two conditions of one rule could only share a hash by collision.
        if !rules.contains(&slot) {
            rules.push(slot);
        }
    }

    fn unfile(&mut self, hash: u64, slot: Slot) {
        if let Some(rules) = self.by_anchor.get_mut(&hash) {
            rules.retain(|s| *s != slot);
            if rules.is_empty() {
                self.by_anchor.remove(&hash);
            }
        }
    }

    fn remove_slot(&mut self, slot: Slot) {
        let Some(binding) = self.slots[slot as usize].take() else {
            return;
        };
        let rule = &binding.rule;
        if rule.match_all && rule.conditions.is_empty() {
            self.always.retain(|s| *s != slot);
        } else if let Some(at) = binding.anchor {
            self.unfile(self.hasher.condition(&rule.conditions[at]), slot);
        } else {
            for condition in rule.conditions.iter() {
                self.unfile(self.hasher.condition(condition), slot);
            }
        }
        self.free.push(slot);
    }

    /// Drops a binding the registry reports as gone.
    pub(crate) fn remove(&mut self, destination: &T, routing_key: &str, arguments: &FieldTable) {
        let found = self.slots.iter().position(|b| {
            b.as_ref().is_some_and(|b| {
                b.destination == *destination
                    && *b.routing_key == *routing_key
                    && b.arguments == *arguments
            })
        });
        if let Some(slot) = found {
            self.remove_slot(slot as Slot);
        }
    }

    /// Drops every binding to `destination`.
    pub(crate) fn remove_destination(&mut self, destination: &T) {
        for slot in 0..self.slots.len() {
            if self.slots[slot]
                .as_ref()
                .is_some_and(|b| b.destination == *destination)
            {
                self.remove_slot(slot as Slot);
            }
        }
    }

    fn binding(&self, slot: Slot) -> &HeadersBinding<T> {
        self.slots[slot as usize]
            .as_ref()
            .expect("indexed slots are occupied")
    }

    /// Reports the destination of every binding whose rule the headers
    /// satisfy: first the rules matching everything, then by header name.
    pub(crate) fn route<'a>(
        &'a self,
        headers: Option<&FieldTable>,
        out: &mut impl FnMut(&'a T),
    ) -> bool {
        let mut matched = false;
        for &slot in &self.always {
            out(&self.binding(slot).destination);
            matched = true;
        }
        let Some(headers) = headers else {
            return matched;
        };
        for (name, value) in headers {
            let name = name.as_str();
            let by_name = self.hasher.name(name);
            matched |= self.visit(by_name, name, headers, out);
            if let Some(by_value) = self.hasher.value(name, value) {
                if by_value != by_name {
                    matched |= self.visit(by_value, name, headers, out);
                }
            }
        }
        matched
    }

    /// Evaluates the rules filed under `hash` for header `name`. Each matching
    /// rule is reported from exactly one header: an `all` rule from its anchor,
    /// an `any` rule from its first condition that holds.
    fn visit<'a>(
        &'a self,
        hash: u64,
        name: &str,
        headers: &FieldTable,
        out: &mut impl FnMut(&'a T),
    ) -> bool {
        let Some(rules) = self.by_anchor.get(&hash) else {
            return false;
        };
        let mut matched = false;
        for &slot in rules {
            let binding = self.binding(slot);
            let rule = &binding.rule;
            // A different header's anchor hashing alike is a collision: skip.
            let Some(at) = rule.condition_on(name) else {
                continue;
            };
            let hit = if rule.match_all {
                binding.anchor == Some(at) && rule.matches(headers)
            } else {
                holds(&rule.conditions[at], headers)
                    && !rule.conditions[..at].iter().any(|c| holds(c, headers))
            };
            if hit {
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
    fn values_compare_by_kind_and_value() {
        let r = rule(&[("n", AMQPValue::LongInt(1))]);
        assert!(r.matches(&table(&[("n", AMQPValue::LongInt(1))])));
        assert!(!r.matches(&table(&[("n", AMQPValue::LongInt(2))])));
        // Integer widths differ between clients; the number is what counts.
        assert!(r.matches(&table(&[("n", AMQPValue::LongLongInt(1))])));
        assert!(r.matches(&table(&[("n", AMQPValue::ShortShortUInt(1))])));
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
            r#"Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x"#
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
        assert!(m.by_anchor.is_empty() && m.always.is_empty());
        assert_eq!(m.free.len(), m.slots.len());
    }

    fn route_sorted(m: &HeadersMatcher, headers: Option<&FieldTable>) -> Vec<String> {
        let mut out = Vec::new();
        let matched = m.route(headers, &mut |d| out.push(d.name().to_string()));
        assert_eq!(matched, !out.is_empty());
        out.sort();
        out
    }

    fn add(m: &mut HeadersMatcher, name: &str, args: &FieldTable) {
        let rule = HeadersRule::compile(args).unwrap();
        m.insert(
            Destination::Queue(name.into()),
            "".into(),
            args.clone(),
            rule,
        );
    }

    #[test]
    fn any_rule_is_reported_once_when_several_conditions_hold() {
        let mut m = HeadersMatcher::default();
        let args = table(&[
            ("x-match", long("any")),
            ("a", long("1")),
            ("b", AMQPValue::Void),
            ("c", long("3")),
        ]);
        add(&mut m, "q", &args);
        let h = table(&[("a", long("1")), ("b", long("2")), ("c", short("3"))]);
        assert_eq!(route_sorted(&m, Some(&h)), ["q"]);
        let h = table(&[("a", long("0")), ("c", short("3"))]);
        assert_eq!(route_sorted(&m, Some(&h)), ["q"]);
    }

    #[test]
    fn unhashable_values_are_found_by_name() {
        let mut m = HeadersMatcher::default();
        add(&mut m, "float", &table(&[("f", AMQPValue::Double(1.5))]));
        add(
            &mut m,
            "array",
            &table(&[("a", AMQPValue::FieldArray(vec![short("x")].into()))]),
        );
        let h = table(&[
            ("f", AMQPValue::Double(1.5)),
            ("a", AMQPValue::FieldArray(vec![long("x")].into())),
        ]);
        assert_eq!(route_sorted(&m, Some(&h)), ["array", "float"]);
        let h = table(&[("f", AMQPValue::Double(2.5))]);
        assert!(route_sorted(&m, Some(&h)).is_empty());
    }

    #[test]
    fn removed_slots_are_recycled() {
        let mut m = HeadersMatcher::default();
        let a = table(&[("a", long("1"))]);
        let b = table(&[("x-match", long("any")), ("b", long("1")), ("c", long("1"))]);
        add(&mut m, "qa", &a);
        add(&mut m, "qb", &b);
        m.remove(&Destination::Queue("qa".into()), "", &a);
        add(&mut m, "qa2", &a);
        assert_eq!(m.slots.len(), 2);
        let h = table(&[("a", long("1")), ("c", long("1"))]);
        assert_eq!(route_sorted(&m, Some(&h)), ["qa2", "qb"]);
        m.remove(&Destination::Queue("qb".into()), "", &b);
        m.remove(&Destination::Queue("qa2".into()), "", &a);
        assert!(m.by_anchor.is_empty());
    }

    /// The index must find exactly what testing every rule finds.
    #[test]
    fn index_agrees_with_testing_every_rule() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let names = ["a", "b", "c", "x-d"];
        let values = [
            long("1"),
            short("1"),
            long("2"),
            AMQPValue::LongInt(1),
            AMQPValue::Double(1.0),
            AMQPValue::Void,
        ];
        let modes = ["all", "any", "all-with-x", "any-with-x"];
        let mut random_table = |with_mode: bool| {
            let mut t = FieldTable::default();
            if with_mode && rand(4) != 0 {
                t.insert("x-match".into(), long(modes[rand(4)]));
            }
            for name in names {
                if rand(2) == 0 {
                    t.insert(name.into(), values[rand(values.len())].clone());
                }
            }
            (t, rand(1 << 20))
        };
        let mut m = HeadersMatcher::default();
        let mut rules: Vec<(String, FieldTable)> = Vec::new();
        for i in 0..300 {
            let (args, r) = random_table(true);
            let name = format!("q{i}");
            add(&mut m, &name, &args);
            rules.push((name, args));
            if r % 5 == 0 {
                let (gone, args) = rules.swap_remove(r % rules.len());
                m.remove(&Destination::Queue(gone.as_str().into()), "", &args);
            }
        }
        for _ in 0..500 {
            let (headers, _) = random_table(false);
            let mut expected: Vec<String> = rules
                .iter()
                .filter(|(_, args)| HeadersRule::compile(args).unwrap().matches(&headers))
                .map(|(name, _)| name.clone())
                .collect();
            expected.sort();
            assert_eq!(
                route_sorted(&m, Some(&headers)),
                expected,
                "headers {headers:?}"
            );
        }
    }
}
