//! Property-based test of selectors: random expression trees are printed as
//! selector text, compiled with `Selector::parse` and evaluated against random
//! messages (headers, properties, JSON or non-JSON bodies); the result must
//! equal that of a deliberately simple reference interpreter working on the
//! generated tree itself (Kleene truth tables, numbers as f64, a recursive
//! `LIKE`). This checks the parser (precedence, literals, quoting, keyword
//! case) and the evaluator (types, NULLs, three-valued logic) together.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use warren_routing::{
    AMQPValue, FieldTable, MessageProperties, RoutableMessage, Selector, SelectorInput, Truth,
};

// ---------------------------------------------------------------- the model

#[derive(Clone, Debug)]
enum Pat {
    Char(char),
    Percent,
    Underscore,
    /// `!%` or `!_` with ESCAPE '!': a literal wildcard character.
    Escaped(char),
}

#[derive(Clone, Debug)]
enum E {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Header(&'static str),
    Prop(&'static str),
    Body(&'static str),
    Neg(Box<E>),
    Arith(&'static str, Box<E>, Box<E>),
    Cmp(&'static str, Box<E>, Box<E>),
    And(Vec<E>),
    Or(Vec<E>),
    Not(Box<E>),
    Between(Box<E>, Box<E>, Box<E>, bool),
    In(Box<E>, Vec<E>, bool),
    Like(Box<E>, Vec<Pat>, bool),
    Matches(Box<E>, &'static str, bool),
    IsNull(Box<E>, bool),
}

#[derive(Clone, Debug)]
enum H {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Void,
    Array,
}

#[derive(Clone, Debug)]
struct Msg {
    headers: Option<BTreeMap<&'static str, H>>,
    routing_key: &'static str,
    priority: Option<u8>,
    app_id: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Option<Json>,
}

const HEADERS: [&str; 5] = ["a", "b", "c", "s", "x-h"];
const PROPS: [&str; 3] = ["priority", "routing_key", "app_id"];
const BODY_PATHS: [&str; 6] = ["x", "y", "obj", "obj.k", "arr[0]", "arr[5]"];
const REGEXES: [&str; 4] = ["^a", "b$", "a.b", "(?i)A"];

// ---------------------------------------------------------------- printing

struct Printer {
    upper: bool,
}

impl Printer {
    fn kw(&self, k: &str) -> String {
        if self.upper {
            k.to_uppercase()
        } else {
            k.to_lowercase()
        }
    }

    fn quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    fn print(&self, e: &E) -> String {
        match e {
            E::Null => self.kw("null"),
            E::Bool(b) => self.kw(if *b { "true" } else { "false" }),
            E::Int(i) if *i < 0 => format!("({i})"),
            E::Int(i) => i.to_string(),
            E::Float(f) if *f < 0.0 => format!("({f:?})"),
            E::Float(f) => format!("{f:?}"),
            E::Str(s) => Self::quote(s),
            E::Header(h) if h.contains('-') => format!("\"{h}\""),
            E::Header(h) => h.to_string(),
            E::Prop(p) => format!("sys.{p}"),
            E::Body(p) => format!("body.{p}"),
            E::Neg(x) => format!("(-{})", self.print(x)),
            E::Arith(op, a, b) | E::Cmp(op, a, b) => {
                format!("({} {op} {})", self.print(a), self.print(b))
            }
            E::And(items) | E::Or(items) => {
                let op = if matches!(e, E::And(_)) { "and" } else { "or" };
                let parts: Vec<String> = items.iter().map(|i| self.print(i)).collect();
                format!("({})", parts.join(&format!(" {} ", self.kw(op))))
            }
            E::Not(x) => format!("({} {})", self.kw("not"), self.print(x)),
            E::Between(v, lo, hi, neg) => format!(
                "({} {}{} {} {} {})",
                self.print(v),
                self.not(*neg),
                self.kw("between"),
                self.print(lo),
                self.kw("and"),
                self.print(hi)
            ),
            E::In(v, items, neg) => {
                let parts: Vec<String> = items.iter().map(|i| self.print(i)).collect();
                format!(
                    "({} {}{} ({}))",
                    self.print(v),
                    self.not(*neg),
                    self.kw("in"),
                    parts.join(", ")
                )
            }
            E::Like(v, pattern, neg) => {
                let text: String = pattern
                    .iter()
                    .map(|p| match p {
                        Pat::Char(c) => c.to_string(),
                        Pat::Percent => "%".into(),
                        Pat::Underscore => "_".into(),
                        Pat::Escaped(c) => format!("!{c}"),
                    })
                    .collect();
                format!(
                    "({} {}{} {} {} '!')",
                    self.print(v),
                    self.not(*neg),
                    self.kw("like"),
                    Self::quote(&text),
                    self.kw("escape")
                )
            }
            E::Matches(v, re, neg) => format!(
                "({} {}{} {})",
                self.print(v),
                self.not(*neg),
                self.kw("matches"),
                Self::quote(re)
            ),
            E::IsNull(v, neg) => format!(
                "({} {} {}{})",
                self.print(v),
                self.kw("is"),
                self.not(*neg),
                self.kw("null")
            ),
        }
    }

    fn not(&self, negated: bool) -> String {
        if negated {
            format!("{} ", self.kw("not"))
        } else {
            String::new()
        }
    }
}

// ---------------------------------------------------------------- reference

#[derive(Clone, Debug, PartialEq)]
enum R {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Opaque,
}

fn num(v: &R) -> Option<f64> {
    match v {
        R::Int(i) => Some(*i as f64), // generated numbers are small: exact
        R::Float(f) => Some(*f),
        _ => None,
    }
}

fn truth(v: &R) -> Option<bool> {
    match v {
        R::Bool(b) => Some(*b),
        _ => None,
    }
}

fn kleene_and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn kleene_or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn cmp(op: &str, a: &R, b: &R) -> Option<bool> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Some(match op {
            "=" => x == y,
            "<>" | "!=" => x != y,
            "<" => x < y,
            "<=" => x <= y,
            ">" => x > y,
            ">=" => x >= y,
            _ => unreachable!(),
        });
    }
    match (a, b) {
        (R::Str(x), R::Str(y)) => Some(match op {
            "=" => x == y,
            "<>" | "!=" => x != y,
            "<" => x < y,
            "<=" => x <= y,
            ">" => x > y,
            ">=" => x >= y,
            _ => unreachable!(),
        }),
        (R::Bool(x), R::Bool(y)) => match op {
            "=" => Some(x == y),
            "<>" | "!=" => Some(x != y),
            _ => None,
        },
        _ => None,
    }
}

fn arith(op: &str, a: &R, b: &R) -> R {
    match (a, b) {
        (R::Int(x), R::Int(y)) => match op {
            "+" => R::Int(x + y),
            "-" => R::Int(x - y),
            "*" => R::Int(x * y),
            "/" if *y == 0 => R::Null,
            "%" if *y == 0 => R::Null,
            "/" => R::Int(x / y),
            "%" => R::Int(x % y),
            _ => unreachable!(),
        },
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => {
                let r = match op {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    "/" | "%" if y == 0.0 => return R::Null,
                    "/" => x / y,
                    "%" => x % y,
                    _ => unreachable!(),
                };
                if r.is_nan() {
                    R::Null
                } else {
                    R::Float(r)
                }
            }
            _ => R::Null,
        },
    }
}

fn like(p: &[Pat], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((Pat::Percent, rest)) => (0..=s.len()).any(|i| like(rest, &s[i..])),
        Some((Pat::Underscore, rest)) => !s.is_empty() && like(rest, &s[1..]),
        Some((Pat::Char(c) | Pat::Escaped(c), rest)) => s.first() == Some(c) && like(rest, &s[1..]),
    }
}

fn json_value(v: &Json) -> R {
    match v {
        Json::Null => R::Null,
        Json::Bool(b) => R::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => R::Int(i),
            None => R::Float(n.as_f64().unwrap()),
        },
        Json::String(s) => R::Str(s.clone()),
        _ => R::Opaque,
    }
}

fn body_field(m: &Msg, path: &str) -> R {
    let json_type = matches!(m.content_type, None | Some("application/json"));
    let Some(doc) = m.body.as_ref().filter(|_| json_type) else {
        return R::Null;
    };
    let node = match path {
        "x" => doc.get("x"),
        "y" => doc.get("y"),
        "obj" => doc.get("obj"),
        "obj.k" => doc.get("obj").and_then(|o| o.get("k")),
        "arr[0]" => doc.get("arr").and_then(|a| a.get(0)),
        "arr[5]" => doc.get("arr").and_then(|a| a.get(5)),
        _ => unreachable!(),
    };
    node.map_or(R::Null, json_value)
}

fn eval(e: &E, m: &Msg) -> R {
    let b = |o: Option<bool>| o.map_or(R::Null, R::Bool);
    match e {
        E::Null => R::Null,
        E::Bool(v) => R::Bool(*v),
        E::Int(i) => R::Int(*i),
        E::Float(f) => R::Float(*f),
        E::Str(s) => R::Str(s.clone()),
        E::Header(h) => match m.headers.as_ref().and_then(|hs| hs.get(h)) {
            None | Some(H::Void) => R::Null,
            Some(H::Int(i)) => R::Int(*i),
            Some(H::Float(f)) => R::Float(*f),
            Some(H::Bool(v)) => R::Bool(*v),
            Some(H::Str(s)) => R::Str(s.clone()),
            Some(H::Array) => R::Opaque,
        },
        E::Prop(p) => match *p {
            "priority" => m.priority.map_or(R::Null, |p| R::Int(p.into())),
            "routing_key" => R::Str(m.routing_key.into()),
            "app_id" => m.app_id.map_or(R::Null, |s| R::Str(s.into())),
            _ => unreachable!(),
        },
        E::Body(p) => body_field(m, p),
        E::Neg(x) => match eval(x, m) {
            R::Int(i) => R::Int(-i),
            R::Float(f) => R::Float(-f),
            _ => R::Null,
        },
        E::Arith(op, x, y) => arith(op, &eval(x, m), &eval(y, m)),
        E::Cmp(op, x, y) => b(cmp(op, &eval(x, m), &eval(y, m))),
        E::And(items) => b(items
            .iter()
            .map(|i| truth(&eval(i, m)))
            .fold(Some(true), kleene_and)),
        E::Or(items) => b(items
            .iter()
            .map(|i| truth(&eval(i, m)))
            .fold(Some(false), kleene_or)),
        E::Not(x) => b(truth(&eval(x, m)).map(|t| !t)),
        E::Between(v, lo, hi, neg) => {
            let v = eval(v, m);
            let within = kleene_and(cmp(">=", &v, &eval(lo, m)), cmp("<=", &v, &eval(hi, m)));
            b(if *neg { within.map(|t| !t) } else { within })
        }
        E::In(v, items, neg) => {
            let v = eval(v, m);
            let found = if v == R::Null {
                None
            } else {
                items
                    .iter()
                    .map(|i| cmp("=", &v, &eval(i, m)))
                    .fold(Some(false), kleene_or)
            };
            b(if *neg { found.map(|t| !t) } else { found })
        }
        E::Like(v, p, neg) => {
            let hit = match eval(v, m) {
                R::Str(s) => Some(like(p, &s.chars().collect::<Vec<_>>())),
                _ => None,
            };
            b(if *neg { hit.map(|t| !t) } else { hit })
        }
        E::Matches(v, re, neg) => {
            let hit = match eval(v, m) {
                R::Str(s) => Some(regex::Regex::new(re).unwrap().is_match(&s)),
                _ => None,
            };
            b(if *neg { hit.map(|t| !t) } else { hit })
        }
        E::IsNull(v, neg) => R::Bool((eval(v, m) == R::Null) != *neg),
    }
}

// ---------------------------------------------------------------- strategies

fn small_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', '\'', '%', '_', 'é']),
        0..4,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn leaf() -> impl Strategy<Value = E> {
    prop_oneof![
        Just(E::Null),
        any::<bool>().prop_map(E::Bool),
        (-4i64..5).prop_map(E::Int),
        (-6i32..7).prop_map(|h| E::Float(h as f64 / 2.0)),
        small_string().prop_map(E::Str),
        prop::sample::select(HEADERS.to_vec()).prop_map(E::Header),
        prop::sample::select(HEADERS.to_vec()).prop_map(E::Header),
        prop::sample::select(PROPS.to_vec()).prop_map(E::Prop),
        prop::sample::select(BODY_PATHS.to_vec()).prop_map(E::Body),
        prop::sample::select(BODY_PATHS.to_vec()).prop_map(E::Body),
    ]
}

fn pattern() -> impl Strategy<Value = Vec<Pat>> {
    proptest::collection::vec(
        prop_oneof![
            prop::sample::select(vec!['a', 'b', '\'', 'é']).prop_map(Pat::Char),
            Just(Pat::Percent),
            Just(Pat::Underscore),
            prop::sample::select(vec!['%', '_']).prop_map(Pat::Escaped),
        ],
        0..5,
    )
}

fn expr() -> impl Strategy<Value = E> {
    leaf().prop_recursive(4, 40, 4, |inner| {
        let b = |s: BoxedStrategy<E>| s.prop_map(Box::new);
        let inner = inner.boxed();
        prop_oneof![
            b(inner.clone()).prop_map(E::Neg),
            (
                prop::sample::select(vec!["+", "-", "*", "/", "%"]),
                b(inner.clone()),
                b(inner.clone())
            )
                .prop_map(|(op, x, y)| E::Arith(op, x, y)),
            (
                prop::sample::select(vec!["=", "<>", "!=", "<", "<=", ">", ">="]),
                b(inner.clone()),
                b(inner.clone())
            )
                .prop_map(|(op, x, y)| E::Cmp(op, x, y)),
            (
                prop::sample::select(vec!["=", "<>", "<", ">="]),
                b(inner.clone()),
                b(inner.clone())
            )
                .prop_map(|(op, x, y)| E::Cmp(op, x, y)),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(E::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(E::Or),
            b(inner.clone()).prop_map(E::Not),
            (
                b(inner.clone()),
                b(inner.clone()),
                b(inner.clone()),
                any::<bool>()
            )
                .prop_map(|(v, lo, hi, n)| E::Between(v, lo, hi, n)),
            (
                b(inner.clone()),
                proptest::collection::vec(inner.clone(), 1..4),
                any::<bool>()
            )
                .prop_map(|(v, items, n)| E::In(v, items, n)),
            (b(inner.clone()), pattern(), any::<bool>()).prop_map(|(v, p, n)| E::Like(v, p, n)),
            (
                b(inner.clone()),
                prop::sample::select(REGEXES.to_vec()),
                any::<bool>()
            )
                .prop_map(|(v, r, n)| E::Matches(v, r, n)),
            (b(inner), any::<bool>()).prop_map(|(v, n)| E::IsNull(v, n)),
        ]
    })
}

fn header_value() -> impl Strategy<Value = H> {
    prop_oneof![
        (-4i64..5).prop_map(H::Int),
        (-6i32..7).prop_map(|h| H::Float(h as f64 / 2.0)),
        any::<bool>().prop_map(H::Bool),
        small_string().prop_map(H::Str),
        Just(H::Void),
        Just(H::Array),
    ]
}

fn json_scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        (-4i64..5).prop_map(Json::from),
        (-6i32..7).prop_map(|h| json!(h as f64 / 2.0 + 0.25)),
        small_string().prop_map(Json::from),
    ]
}

fn message() -> impl Strategy<Value = Msg> {
    let headers = proptest::option::weighted(
        0.9,
        proptest::collection::btree_map(
            prop::sample::select(HEADERS.to_vec()),
            header_value(),
            0..5,
        ),
    );
    let body = proptest::option::weighted(
        0.8,
        (json_scalar(), json_scalar(), json_scalar(), json_scalar())
            .prop_map(|(x, y, k, a)| json!({"x": x, "y": y, "obj": {"k": k}, "arr": [a]})),
    );
    (
        headers,
        prop::sample::select(vec!["", "a.b", "ab"]),
        proptest::option::of(0u8..10),
        proptest::option::of(prop::sample::select(vec!["ab", "ba", "A"])),
        prop::sample::select(vec![None, Some("application/json"), Some("text/plain")]),
        body,
    )
        .prop_map(
            |(headers, routing_key, priority, app_id, content_type, body)| Msg {
                headers,
                routing_key,
                priority,
                app_id,
                content_type,
                body,
            },
        )
}

// ---------------------------------------------------------------- the property

fn field_table(m: &Msg) -> Option<FieldTable> {
    let hs = m.headers.as_ref()?;
    let mut t = FieldTable::default();
    for (k, v) in hs {
        let value = match v {
            H::Int(i) => AMQPValue::LongLongInt(*i),
            H::Float(f) => AMQPValue::Double(*f),
            H::Bool(b) => AMQPValue::Boolean(*b),
            H::Str(s) => AMQPValue::LongString(s.as_bytes().to_vec().into()),
            H::Void => AMQPValue::Void,
            H::Array => AMQPValue::FieldArray(vec![AMQPValue::Boolean(true)].into()),
        };
        t.insert((*k).into(), value);
    }
    Some(t)
}

fn to_truth(v: &R) -> Truth {
    match truth(v) {
        Some(true) => Truth::True,
        Some(false) => Truth::False,
        None => Truth::Unknown,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn evaluator_agrees_with_reference(e in expr(), m in message(), upper in any::<bool>()) {
        let text = Printer { upper }.print(&e);
        let selector = Selector::parse(&text)
            .unwrap_or_else(|err| panic!("{text:?} does not parse: {err}"));
        let headers = field_table(&m);
        let body = m.body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let message = RoutableMessage {
            routing_key: m.routing_key,
            headers: headers.as_ref().into(),
            exchange: "x",
            properties: MessageProperties {
                priority: m.priority,
                app_id: m.app_id,
                content_type: m.content_type,
                ..Default::default()
            },
            body: &body,
        };
        let input = SelectorInput::new(&message);
        let expected = to_truth(&eval(&e, &m));
        prop_assert_eq!(selector.evaluate(&input), expected, "{}", text);
        // Evaluating again (body already parsed) gives the same answer.
        prop_assert_eq!(selector.evaluate(&input), expected, "{}", text);
        if !selector.reads_body() {
            prop_assert!(!input.body_parsed());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~é]{0,80}") {
        let _ = Selector::parse(&text);
    }

    #[test]
    fn selector_like_text_never_panics(
        parts in proptest::collection::vec(prop::sample::select(vec![
            "a", "sys.", "body.", "[", "]", "0", "1.5", "'x'", "'", "\"", "(", ")", ",", "=", "<>",
            "<", "-", "+", "*", "/", "%", " AND ", " OR ", " NOT ", " IN ", " BETWEEN ", " LIKE ",
            " ESCAPE ", " IS ", " NULL", " MATCHES ", "TRUE", " ", ".", "e5", "é",
        ]), 0..30)
    ) {
        let text: String = parts.concat();
        let _ = Selector::parse(&text);
    }
}
