//! Unit tests of the selector language: one per operator, one per NULL rule,
//! the identifier forms, the error messages and the limits.

use amq_protocol_types::{AMQPValue, DecimalValue, FieldArray, FieldTable, LongString};

use super::*;
use crate::route::MessageProperties;

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

fn headers() -> FieldTable {
    table(&[
        ("region", long("eu")),
        ("amount", AMQPValue::LongInt(1500)),
        ("small", AMQPValue::ShortShortInt(-3)),
        ("ratio", AMQPValue::Double(0.25)),
        (
            "price",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 1999,
            }),
        ),
        ("vip", AMQPValue::Boolean(true)),
        ("blocked", AMQPValue::Boolean(false)),
        ("nothing", AMQPValue::Void),
        ("x-tenant", AMQPValue::ShortString("acme".into())),
        ("order.id", long("o-17")),
        (
            "list",
            AMQPValue::FieldArray(FieldArray::from(vec![long("a")])),
        ),
        (
            "binary",
            AMQPValue::LongString(LongString::from(vec![0xff, 0xfe])),
        ),
        ("quote", long("it's")),
    ])
}

const BODY: &str = r#"{"order": {"total": 1250.5, "count": 3, "lines": [{"sku": "A-1"}, {"sku": "B-2"}],
    "customer": {"country": "DE", "vip": true}, "note": null}, "x-y": "dash", "big": 18446744073709551615}"#;

/// Evaluates `selector` against a message carrying [`headers`], a JSON body
/// and some properties.
fn eval(selector: &str) -> Truth {
    let h = headers();
    let message = RoutableMessage {
        routing_key: "orders.eu.new",
        headers: Some(&h).into(),
        exchange: "orders",
        properties: MessageProperties {
            content_type: Some("application/json"),
            priority: Some(5),
            delivery_mode: Some(2),
            message_id: Some("m-1"),
            timestamp: Some(1_700_000_000),
            message_type: Some("order.created"),
            app_id: Some("shop"),
            ..Default::default()
        },
        body: BODY.as_bytes(),
    };
    let selector = match Selector::parse(selector) {
        Ok(s) => s,
        Err(e) => panic!("{selector:?} does not parse: {e}"),
    };
    selector.evaluate(&SelectorInput::new(&message))
}

fn check(cases: &[(&str, Truth)]) {
    for (selector, expected) in cases {
        assert_eq!(eval(selector), *expected, "{selector}");
    }
}

use Truth::{False as F, True as T, Unknown as U};

fn error(selector: &str) -> SelectorError {
    match Selector::parse(selector) {
        Ok(s) => panic!("{selector:?} parsed: {s:?}"),
        Err(e) => e,
    }
}

fn error_text(selector: &str) -> String {
    error(selector).to_string()
}

#[test]
fn literals() {
    check(&[
        ("TRUE", T),
        ("true", T),
        ("FALSE", F),
        ("NULL", U),
        ("1", U), // not a condition
        ("'it''s' = quote", T),
        ("'' = ''", T),
        ("42 = 42", T),
        ("1.5 = 1.50", T),
        (".5 = 0.5", T),
        ("1. = 1", T),
        ("1e3 = 1000", T),
        ("2.5E-1 = ratio", T),
        ("-9223372036854775808 < 0", T),
        ("- 1 = -1", T),
        ("-1.5 < -1", T),
        ("- -1 = 1", T),
    ]);
}

#[test]
fn keywords_are_case_insensitive() {
    check(&[
        ("region = 'eu' and amount > 1", T),
        ("region = 'us' Or vip", T),
        ("not blocked", T),
        ("amount between 1 AND 2000", T),
        ("region in ('eu')", T),
        ("region like 'e%'", T),
        ("nothing is null", T),
        ("region Matches '^e'", T),
    ]);
}

#[test]
fn identifiers() {
    check(&[
        ("region = 'eu'", T),
        ("\"x-tenant\" = 'acme'", T),
        ("\"region\" = 'eu'", T),
        ("order.id = 'o-17'", T),
        ("\"order.id\" = 'o-17'", T),
        ("missing IS NULL", T),
        ("\"with \"\"quote\"\"\" IS NULL", T),
        ("sys.routing_key = 'orders.eu.new'", T),
        ("sys.exchange = 'orders'", T),
        ("sys.content_type = 'application/json'", T),
        ("sys.content_encoding IS NULL", T),
        ("sys.priority = 5", T),
        ("sys.delivery_mode = 2", T),
        ("sys.correlation_id IS NULL", T),
        ("sys.reply_to IS NULL", T),
        ("sys.expiration IS NULL", T),
        ("sys.message_id = 'm-1'", T),
        ("sys.timestamp > 1600000000", T),
        ("sys.type = 'order.created'", T),
        ("sys.user_id IS NULL", T),
        ("sys.app_id = 'shop'", T),
        ("body.order.total > 1000", T),
        ("body.order.count = 3", T),
        ("body.order.lines[1].sku = 'B-2'", T),
        ("body.order.lines[2].sku IS NULL", T),
        ("body.order.customer.country = 'DE'", T),
        ("body.order.customer.vip", T),
        ("body.\"x-y\" = 'dash'", T),
        ("body.big > 1e19", T),
        ("body.order.note IS NULL", T),
        ("body.order IS NOT NULL", T),
        ("body.nope.deeper IS NULL", T),
    ]);
}

#[test]
fn header_value_types() {
    check(&[
        ("small = -3", T),
        ("price = 19.99", T),
        ("price > 19", T),
        ("ratio < 1", T),
        ("vip = TRUE", T),
        ("blocked = FALSE", T),
        ("vip", T),
        ("blocked", F),
        // Present but not scalars: not NULL, never comparable.
        ("list IS NOT NULL", T),
        ("list = 'a'", U),
        ("binary IS NOT NULL", T),
        ("binary = 'x'", U),
        // A void header is NULL.
        ("nothing IS NULL", T),
        ("nothing = 1", U),
    ]);
}

#[test]
fn comparison_operators() {
    check(&[
        ("amount = 1500", T),
        ("amount = 1500.0", T),
        ("amount <> 1500", F),
        ("amount != 1", T),
        ("amount < 1501", T),
        ("amount < 1500", F),
        ("amount <= 1500", T),
        ("amount > 1499.5", T),
        ("amount >= 1500", T),
        ("amount >= 1501", F),
        ("region < 'fr'", T),
        ("region > 'fr'", F),
        ("region = 'EU'", F),
        // Strings and numbers do not compare.
        ("region = 1", U),
        ("region <> 1", U),
        ("amount = '1500'", U),
        ("vip = 1", U),
        ("vip < FALSE", U),
        ("vip <> FALSE", T),
    ]);
}

#[test]
fn arithmetic_operators() {
    check(&[
        ("amount + 500 = 2000", T),
        ("amount - 500 = 1000", T),
        ("amount * 2 = 3000", T),
        ("amount / 1000 = 1", T), // integer division truncates
        ("amount / 1000.0 = 1.5", T),
        ("amount % 7 = 2", T),
        ("-amount = -1500", T),
        ("+amount = 1500", T),
        ("- -amount = 1500", T),
        ("2 + 3 * 4 = 14", T),
        ("(2 + 3) * 4 = 20", T),
        ("10 - 2 - 3 = 5", T),
        ("amount / 0 IS NULL", T),
        ("amount % 0 IS NULL", T),
        ("region + 1 IS NULL", T),
        ("-region IS NULL", T),
        ("9223372036854775807 + 1 > 9223372036854775807", T),
    ]);
}

#[test]
fn logical_operators() {
    check(&[
        ("TRUE AND TRUE", T),
        ("TRUE AND FALSE", F),
        ("FALSE AND NULL", F),
        ("NULL AND FALSE", F),
        ("TRUE AND NULL", U),
        ("NULL AND NULL", U),
        ("TRUE OR NULL", T),
        ("NULL OR TRUE", T),
        ("FALSE OR NULL", U),
        ("FALSE OR FALSE", F),
        ("NOT TRUE", F),
        ("NOT FALSE", T),
        ("NOT NULL", U),
        ("NOT NOT TRUE", T),
        ("NOT 1", U),
        // AND binds tighter than OR; NOT tighter than AND.
        ("TRUE OR FALSE AND FALSE", T),
        ("(TRUE OR FALSE) AND FALSE", F),
        ("NOT FALSE AND FALSE", F),
        ("NOT (FALSE AND FALSE)", T),
        ("region = 'eu' AND amount > 1000 AND vip", T),
        ("region = 'us' OR amount > 1000", T),
    ]);
}

#[test]
fn between() {
    check(&[
        ("amount BETWEEN 1000 AND 2000", T),
        ("amount BETWEEN 1500 AND 1500", T),
        ("amount BETWEEN 1501 AND 2000", F),
        ("amount NOT BETWEEN 1501 AND 2000", T),
        ("amount NOT BETWEEN 1000 AND 2000", F),
        ("amount BETWEEN 1 + 999 AND 2 * 1000", T),
        ("region BETWEEN 'a' AND 'f'", T),
        ("missing BETWEEN 1 AND 2", U),
        ("missing NOT BETWEEN 1 AND 2", U),
        ("amount BETWEEN NULL AND 2000", U),
        ("amount BETWEEN NULL AND 1000", F), // above the upper bound
        ("amount BETWEEN 2000 AND NULL", F), // below the lower bound
        ("amount BETWEEN 'a' AND 2000", U),
    ]);
}

#[test]
fn in_lists() {
    check(&[
        ("region IN ('eu', 'us')", T),
        ("region IN ('us', 'apac')", F),
        ("region NOT IN ('us', 'apac')", T),
        ("region NOT IN ('eu')", F),
        ("amount IN (1, 1500.0)", T),
        ("missing IN ('eu')", U),
        ("missing NOT IN ('eu')", U),
        ("region IN ('us', NULL)", U),
        ("region IN ('eu', NULL)", T),
        ("region NOT IN ('us', NULL)", U),
        ("region IN (1, 2)", U),
        ("amount IN (1000 + 500)", T),
    ]);
}

#[test]
fn like() {
    check(&[
        ("region LIKE 'eu'", T),
        ("region LIKE 'e_'", T),
        ("region LIKE '%u'", T),
        ("region LIKE 'E%'", F),
        ("region NOT LIKE 'us%'", T),
        ("region NOT LIKE 'e%'", F),
        ("sys.routing_key LIKE 'orders.%.new'", T),
        ("quote LIKE 'it''_'", T),
        ("'100%' LIKE '100!%' ESCAPE '!'", T),
        ("'1000' LIKE '100!%' ESCAPE '!'", F),
        ("'a_b' LIKE 'a\\_b' ESCAPE '\\'", T),
        ("missing LIKE '%'", U),
        ("missing NOT LIKE '%'", U),
        ("amount LIKE '1%'", U), // not a string
    ]);
}

#[test]
fn matches() {
    check(&[
        ("region MATCHES '^e.$'", T),
        ("region MATCHES 'u'", T), // unanchored, like the regex crate
        ("region MATCHES '^u'", F),
        ("region NOT MATCHES '^u'", T),
        ("sys.routing_key MATCHES '^orders\\.(eu|us)\\.'", T),
        ("missing MATCHES '.*'", U),
        ("amount MATCHES '1'", U),
        ("\"x-tenant\" MATCHES '(?i)ACME'", T),
    ]);
}

#[test]
fn is_null() {
    check(&[
        ("missing IS NULL", T),
        ("missing IS NOT NULL", F),
        ("region IS NULL", F),
        ("region IS NOT NULL", T),
        ("NULL IS NULL", T),
        ("(missing = 1) IS NULL", T),
        ("(amount = 1) IS NULL", F),
        ("amount + missing IS NULL", T),
    ]);
}

#[test]
fn null_comparisons_are_unknown() {
    for op in ["=", "<>", "!=", "<", "<=", ">", ">="] {
        assert_eq!(eval(&format!("missing {op} 1")), U, "missing {op} 1");
        assert_eq!(eval(&format!("1 {op} missing")), U, "1 {op} missing");
        assert_eq!(eval(&format!("NULL {op} NULL")), U, "NULL {op} NULL");
        assert_eq!(eval(&format!("missing {op} 'x'")), U, "missing {op} 'x'");
        assert_eq!(
            eval(&format!("NOT (missing {op} 1)")),
            U,
            "NOT (missing {op} 1)"
        );
    }
    for op in ["+", "-", "*", "/", "%"] {
        assert_eq!(eval(&format!("missing {op} 1 IS NULL")), T, "{op}");
    }
}

fn input_for<'a>(message: &'a RoutableMessage<'a>) -> SelectorInput<'a> {
    SelectorInput::new(message)
}

#[test]
fn body_is_null_unless_json() {
    let selector = Selector::parse("body.a = 1").unwrap();
    let missing = Selector::parse("body.a IS NULL").unwrap();
    for (content_type, body, expected, null) in [
        (None, &br#"{"a": 1}"#[..], T, F),
        (Some("application/json"), br#"{"a": 1}"#, T, F),
        (
            Some("application/json; charset=utf-8"),
            br#"{"a": 1}"#,
            T,
            F,
        ),
        (Some("text/plain"), br#"{"a": 1}"#, U, T),
        (None, b"not json", U, T),
        (None, b"", U, T),
        (None, br#"[1, 2]"#, U, T),
        (None, br#"{"a": "1"}"#, U, F),
    ] {
        let message = RoutableMessage {
            properties: MessageProperties {
                content_type,
                ..Default::default()
            },
            body,
            ..Default::default()
        };
        let input = input_for(&message);
        assert_eq!(
            selector.evaluate(&input),
            expected,
            "{content_type:?} {body:?}"
        );
        assert_eq!(missing.evaluate(&input), null, "{content_type:?} {body:?}");
    }
}

#[test]
fn body_is_parsed_lazily_and_once() {
    let message = RoutableMessage {
        routing_key: "k",
        body: br#"{"a": 1}"#,
        ..Default::default()
    };
    let header_only = Selector::parse("sys.routing_key = 'k'").unwrap();
    assert!(!header_only.reads_body());
    let short_circuited = Selector::parse("sys.routing_key = 'x' AND body.a = 1").unwrap();
    assert!(short_circuited.reads_body());
    let reads = Selector::parse("body.a = 1").unwrap();
    let input = SelectorInput::new(&message);
    assert!(header_only.matches(&input));
    assert!(!short_circuited.matches(&input));
    assert!(!input.body_parsed(), "nothing has read the body yet");
    assert!(reads.matches(&input));
    assert!(input.body_parsed());
    assert!(reads.matches(&input));
}

#[test]
fn message_without_headers_reads_null() {
    let message = RoutableMessage::default();
    let input = SelectorInput::new(&message);
    for (s, expected) in [
        ("region IS NULL", T),
        ("region = 'eu'", U),
        ("sys.routing_key = ''", T),
        ("sys.priority IS NULL", T),
        ("sys.timestamp IS NULL", T),
    ] {
        assert_eq!(
            Selector::parse(s).unwrap().evaluate(&input),
            expected,
            "{s}"
        );
    }
}

#[test]
fn error_messages_give_position_and_expectation() {
    assert_eq!(
        error_text("region = 'eu' AND"),
        "at position 18: expected an operand, found the end of the selector"
    );
    assert_eq!(
        error_text("region = "),
        "at position 10: expected an operand, found the end of the selector"
    );
    assert_eq!(
        error_text(""),
        "at position 1: expected an operand, found the end of the selector"
    );
    assert_eq!(
        error_text("region 'eu'"),
        "at position 8: expected an operator or the end of the selector, found '''"
    );
    assert_eq!(
        error_text("amount BETWEEN 1 2"),
        "at position 18: expected AND, found '2'"
    );
    assert_eq!(
        error_text("region IN 'eu'"),
        "at position 11: expected '(', found '''"
    );
    assert_eq!(
        error_text("region IN ('eu' 'us')"),
        "at position 17: expected ',' or ')', found '''"
    );
    assert_eq!(
        error_text("(a = 1"),
        "at position 7: expected ')', found the end of the selector"
    );
    assert_eq!(
        error_text("a = 'open"),
        "at position 5: unterminated string literal"
    );
    assert_eq!(
        error_text("\"open = 1"),
        "at position 1: unterminated quoted identifier"
    );
    assert_eq!(
        error_text("a IS 1"),
        "at position 6: expected NULL, found '1'"
    );
    assert_eq!(
        error_text("a LIKE b"),
        "at position 8: expected a string pattern, found 'b'"
    );
    assert_eq!(
        error_text("a NOT = 1"),
        "at position 7: expected BETWEEN, IN, LIKE or MATCHES after NOT, found '='"
    );
    assert_eq!(
        error_text("a = AND"),
        "at position 5: expected an operand, found 'AND'"
    );
    assert_eq!(
        error_text("a = 1 = 2"),
        "at position 7: expected an operator or the end of the selector, found '='"
    );
    assert_eq!(
        error_text("a LIKE 'x' ESCAPE 'ab'"),
        "at position 19: ESCAPE takes a string of one character"
    );
    assert_eq!(
        error_text("a LIKE 'x!' ESCAPE '!'"),
        "at position 8: in a LIKE pattern the escape character must precede %, _ or itself"
    );
    assert!(error_text("sys.nope = 1")
        .starts_with("at position 5: unknown property sys.nope; known: routing_key, exchange, "));
    assert_eq!(
        error_text("body.a[x] = 1"),
        "at position 8: expected an array index, found 'x'"
    );
    assert_eq!(
        error_text("a = 99999999999999999999"),
        "at position 5: integer literal out of range"
    );
    assert_eq!(
        error_text("a = #"),
        "at position 5: expected an operand, found '#'"
    );
    // Positions count characters, not bytes.
    assert_eq!(
        error_text("'é' = "),
        "at position 7: expected an operand, found the end of the selector"
    );
}

#[test]
fn bad_regexes_are_refused_with_a_one_line_reason() {
    let e = error("a MATCHES '(unclosed'");
    assert_eq!(e.position, 11);
    assert!(e.message.starts_with("invalid regex: "), "{e}");
    assert_eq!(e.message, "invalid regex: unclosed group");
    assert!(!e.message.contains('\n'), "{e}");
    let e = error("a MATCHES '\\w{1000}{1000}'");
    assert_eq!(e.message, "invalid regex: pattern too large once compiled");
}

#[test]
fn size_and_nesting_limits() {
    let long = format!("a = '{}'", "x".repeat(MAX_SELECTOR_LEN));
    assert!(error_text(&long).contains("the limit is 4096"));
    let ok = format!("a = '{}'", "x".repeat(MAX_SELECTOR_LEN - 6));
    assert!(Selector::parse(&ok).is_ok());

    let nested = |n: usize| format!("{}TRUE{}", "(".repeat(n), ")".repeat(n));
    assert!(Selector::parse(&nested(MAX_NESTING)).is_ok());
    assert!(error_text(&nested(MAX_NESTING + 1)).contains("nested deeper than"));
    assert!(error_text(&nested(2000)).contains("nested deeper than"));
    let nots = format!("{}TRUE", "NOT ".repeat(1000));
    assert!(error_text(&nots).contains("nested deeper than"));
    let signs = format!("{}1 = 1", "-".repeat(2000));
    assert!(error_text(&signs).contains("nested deeper than"));
    // Long chains are fine when flat (AND/OR), bounded when they deepen the tree.
    let flat = vec!["a=1"; 500].join(" OR ");
    assert!(Selector::parse(&flat).is_ok());
    let deep = format!("{} = 1", vec!["a"; 1000].join(" + "));
    assert!(error_text(&deep).contains("nested deeper than 64 levels"));
    let ok = format!("{} = 1", vec!["a"; 60].join(" + "));
    assert!(Selector::parse(&ok).is_ok());
}

#[test]
fn arguments_select_and_validate() {
    let args = |pairs: &[(&str, AMQPValue)]| table(pairs);
    assert_eq!(from_arguments(&args(&[("x-match", long("all"))])), Ok(None));
    let s = from_arguments(&args(&[("x-selector", long("a = 1"))]))
        .unwrap()
        .unwrap();
    assert_eq!(s.as_str(), "a = 1");
    let s = from_arguments(&args(&[(
        "x-filter-jms-selector",
        AMQPValue::ShortString("a = 1".into()),
    )]))
    .unwrap();
    assert!(s.is_some());
    assert_eq!(
        from_arguments(&args(&[("x-selector", long("a ="))])),
        Err(BindError::InvalidArgument(
            "invalid x-selector at position 4: expected an operand, found the end of the selector"
                .into()
        ))
    );
    assert_eq!(
        from_arguments(&args(&[("x-filter-jms-selector", long("a ="))])),
        Err(BindError::InvalidArgument(
            "invalid x-filter-jms-selector at position 4: expected an operand, found the end of the selector"
                .into()
        ))
    );
    assert_eq!(
        from_arguments(&args(&[("x-selector", AMQPValue::LongInt(1))])),
        Err(BindError::InvalidArgument(
            "invalid x-selector: expected a UTF-8 string".into()
        ))
    );
    assert!(matches!(
        from_arguments(&args(&[
            ("x-selector", long("a = 1")),
            ("x-filter-jms-selector", long("a = 1"))
        ])),
        Err(BindError::InvalidArgument(_))
    ));
}

#[test]
fn hostile_like_is_linear() {
    let value = "a".repeat(64 * 1024);
    let h = table(&[("v", long(&value))]);
    let message = RoutableMessage {
        headers: Some(&h).into(),
        ..Default::default()
    };
    let input = SelectorInput::new(&message);
    let selector = Selector::parse(&format!("v LIKE '{}b'", "%a".repeat(200))).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(selector.evaluate(&input), F);
    let selector = Selector::parse(&format!("v LIKE '%{}b%'", "_".repeat(100))).unwrap();
    assert_eq!(selector.evaluate(&input), F);
    let selector = Selector::parse("v MATCHES '(a*)*b'").unwrap();
    assert_eq!(selector.evaluate(&input), F);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
