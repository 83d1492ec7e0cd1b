//! The selector grammar, parsed with nom straight from the text into an
//! [`Expr`] (no separate token pass). Lowest precedence first:
//!
//! ```text
//! selector   = or-expr end
//! or-expr    = and-expr { OR and-expr }
//! and-expr   = not-expr { AND not-expr }
//! not-expr   = NOT not-expr | predicate
//! predicate  = additive [ ( "=" | "<>" | "!=" | "<" | "<=" | ">" | ">=" ) additive
//!                       | [NOT] BETWEEN additive AND additive
//!                       | [NOT] IN "(" additive { "," additive } ")"
//!                       | [NOT] LIKE string [ ESCAPE string ]
//!                       | [NOT] MATCHES string
//!                       | IS [NOT] NULL ]
//! additive   = term { ( "+" | "-" ) term }
//! term       = unary { ( "*" | "/" | "%" ) unary }
//! unary      = ( "-" | "+" ) unary | primary
//! primary    = "(" or-expr ")" | literal | identifier
//! literal    = string | number | TRUE | FALSE | NULL
//! identifier = quoted-identifier            (a header, any name)
//!            | sys "." word                 (a property)
//!            | body { "." ( word | quoted-identifier ) | "[" digits "]" }
//!            | word { "." word }            (a header)
//! ```
//!
//! Keywords are case-insensitive; `sys` and `body` are lowercase. Errors carry
//! the position (1-based, in characters) and what was expected there; once a
//! keyword or operator has committed the parser to a construct (`BETWEEN`,
//! `IN`, a comparison operator...), a failure inside it is reported as is
//! rather than backtracked into a vaguer message.
//!
//! Hostile input is bounded: nesting through parentheses, `NOT` and unary
//! signs is limited to [`MAX_NESTING`] levels *before* recursing, and the
//! tree's depth (long operator chains included) to [`MAX_DEPTH`], so neither
//! parsing nor evaluation can exhaust the stack.

use std::borrow::Cow;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::pair;
use nom::{IResult, Parser};
use regex::RegexBuilder;

use super::ast::{ArithOp, CmpOp, Expr, Literal, PathSegment, Property, UnaryOp};
use super::like::LikePattern;
use super::SelectorError;

/// How deeply parentheses, `NOT` and unary signs may nest.
pub const MAX_NESTING: usize = 32;
/// How deep the expression tree may be (chains like `a + b + c` count too).
pub const MAX_DEPTH: usize = 64;
/// The compiled size limit for a `MATCHES` regex (and its lazy DFA cache).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

const KEYWORDS: [&str; 12] = [
    "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "ESCAPE", "IS", "NULL", "TRUE", "FALSE", "MATCHES",
];

/// Why parsing stopped.
#[derive(Debug)]
enum Problem {
    /// Nothing said yet (a bare nom error).
    Unlabelled,
    /// "expected {0}, found ..."
    Expected(&'static str),
    /// A complete message.
    Text(Cow<'static, str>),
}

/// A parse error: where (the unparsed rest of the text) and what.
#[derive(Debug)]
struct PErr<'s> {
    rest: &'s str,
    problem: Problem,
}

impl<'s> ParseError<&'s str> for PErr<'s> {
    fn from_error_kind(input: &'s str, _: ErrorKind) -> Self {
        PErr {
            rest: input,
            problem: Problem::Unlabelled,
        }
    }

    fn append(_: &'s str, _: ErrorKind, other: Self) -> Self {
        other
    }

    /// Of two alternatives' errors, the one that got further, else the labelled one.
    fn or(self, other: Self) -> Self {
        match self.rest.len().cmp(&other.rest.len()) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal => match other.problem {
                Problem::Unlabelled => self,
                _ => other,
            },
        }
    }
}

type PResult<'s, O> = IResult<&'s str, O, PErr<'s>>;

/// A recoverable error: another alternative may still apply.
fn backtrack<'s, O>(rest: &'s str, expected: &'static str) -> PResult<'s, O> {
    Err(nom::Err::Error(PErr {
        rest,
        problem: Problem::Expected(expected),
    }))
}

/// A recoverable error that says nothing yet; a caller's label will.
fn nothing<O>(rest: &str) -> PResult<'_, O> {
    Err(nom::Err::Error(PErr {
        rest,
        problem: Problem::Unlabelled,
    }))
}

/// A committed error: reported as is.
fn expected<'s, O>(rest: &'s str, expected: &'static str) -> PResult<'s, O> {
    Err(nom::Err::Failure(PErr {
        rest,
        problem: Problem::Expected(expected),
    }))
}

fn failure<'s, O>(rest: &'s str, text: impl Into<Cow<'static, str>>) -> PResult<'s, O> {
    Err(nom::Err::Failure(PErr {
        rest,
        problem: Problem::Text(text.into()),
    }))
}

/// Turns a recoverable error into a committed one, labelled `what` unless it
/// already says something more precise.
fn commit<'s, O>(what: &'static str, result: PResult<'s, O>) -> PResult<'s, O> {
    result.map_err(|e| match e {
        nom::Err::Error(mut err) => {
            if matches!(err.problem, Problem::Unlabelled) {
                err.problem = Problem::Expected(what);
            }
            nom::Err::Failure(err)
        }
        other => other,
    })
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn skip_ws(i: &str) -> &str {
    i.trim_start_matches(|c: char| c.is_whitespace())
}

/// A word: letters, digits, `_` and `$`, not starting with a digit.
fn word(i: &str) -> PResult<'_, &str> {
    if !i.starts_with(is_word_start) {
        return nothing(i);
    }
    take_while1(is_word_char).parse(i)
}

fn is_keyword(w: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
}

/// The keyword `kw` (any case) as a whole word, after optional whitespace.
fn keyword<'s>(kw: &'static str) -> impl FnMut(&'s str) -> PResult<'s, &'s str> {
    move |i: &'s str| {
        let i = skip_ws(i);
        let (rest, matched) = tag_no_case(kw).parse(i)?;
        if rest.starts_with(is_word_char) {
            return backtrack(i, kw);
        }
        Ok((rest, matched))
    }
}

/// A punctuation token after optional whitespace.
fn symbol<'s>(sym: &'static str) -> impl FnMut(&'s str) -> PResult<'s, &'s str> {
    move |i: &'s str| tag(sym).parse(skip_ws(i))
}

/// `'...'` with `''` for a quote; the text unescaped.
fn string_literal(i: &str) -> PResult<'_, String> {
    let start = skip_ws(i);
    let Some(mut rest) = start.strip_prefix('\'') else {
        return nothing(start);
    };
    let mut out = String::new();
    loop {
        match rest.find('\'') {
            None => return failure(start, "unterminated string literal"),
            Some(at) => {
                out.push_str(&rest[..at]);
                rest = &rest[at + 1..];
                match rest.strip_prefix('\'') {
                    Some(after) => {
                        out.push('\'');
                        rest = after;
                    }
                    None => return Ok((rest, out)),
                }
            }
        }
    }
}

/// `"..."` with `""` for a double quote; the name unescaped.
fn quoted_identifier(i: &str) -> PResult<'_, String> {
    let Some(mut rest) = i.strip_prefix('"') else {
        return nothing(i);
    };
    let mut out = String::new();
    loop {
        match rest.find('"') {
            None => return failure(i, "unterminated quoted identifier"),
            Some(at) => {
                out.push_str(&rest[..at]);
                rest = &rest[at + 1..];
                match rest.strip_prefix('"') {
                    Some(after) => {
                        out.push('"');
                        rest = after;
                    }
                    None => return Ok((rest, out)),
                }
            }
        }
    }
}

/// A number: an integer, or a decimal with a point and/or exponent; negated
/// when a `-` preceded it (so that i64::MIN can be written).
fn number(i: &str, negative: bool) -> PResult<'_, Literal> {
    let exponent = |i| {
        recognize((
            alt((char('e'), char('E'))),
            opt(alt((char('+'), char('-')))),
            digit1,
        ))
        .parse(i)
    };
    let (rest, text) = recognize(alt((
        recognize((digit1, opt(pair(char('.'), opt(digit1))), opt(exponent))),
        recognize((char('.'), digit1, opt(exponent))),
    )))
    .parse(i)?;
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let value = text
            .parse::<i128>()
            .ok()
            .map(|v| if negative { -v } else { v })
            .and_then(|v| i64::try_from(v).ok());
        match value {
            Some(v) => Ok((rest, Literal::Int(v))),
            None => failure(i, "integer literal out of range"),
        }
    } else {
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok((rest, Literal::Float(if negative { -v } else { v }))),
            _ => failure(i, "decimal literal out of range"),
        }
    }
}

/// One parsed subexpression and the depth of its tree.
struct Node {
    expr: Expr,
    depth: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Self {
        Node { expr, depth: 1 }
    }
}

/// Builds a node over children whose deepest is `child_depth` deep,
/// refusing trees deeper than [`MAX_DEPTH`].
fn node<'s>(
    at: &'s str,
    child_depth: usize,
    build: impl FnOnce() -> Expr,
) -> Result<Node, nom::Err<PErr<'s>>> {
    let depth = child_depth + 1;
    if depth > MAX_DEPTH {
        return Err(nom::Err::Failure(PErr {
            rest: at,
            problem: Problem::Text(
                format!("expression nested deeper than {MAX_DEPTH} levels").into(),
            ),
        }));
    }
    Ok(Node {
        expr: build(),
        depth,
    })
}

fn deepest<'n>(nodes: impl IntoIterator<Item = &'n Node>) -> usize {
    nodes.into_iter().map(|n| n.depth).max().unwrap_or(0)
}

fn deeper(i: &str, nesting: usize) -> Result<usize, nom::Err<PErr<'_>>> {
    if nesting >= MAX_NESTING {
        return Err(nom::Err::Failure(PErr {
            rest: i,
            problem: Problem::Text(
                format!("parentheses, NOT or signs nested deeper than {MAX_NESTING} levels").into(),
            ),
        }));
    }
    Ok(nesting + 1)
}

/// A list of subexpressions joined by `op` (AND / OR), flattened into one node.
fn joined<'s>(
    i: &'s str,
    nesting: usize,
    op: &'static str,
    operand: fn(&'s str, usize) -> PResult<'s, Node>,
    build: fn(Box<[Expr]>) -> Expr,
) -> PResult<'s, Node> {
    let (mut i, first) = operand(i, nesting)?;
    let mut items = vec![first];
    loop {
        let Ok((rest, _)) = keyword(op)(i) else {
            break;
        };
        let (rest, next) = commit("an operand", operand(rest, nesting))?;
        items.push(next);
        i = rest;
    }
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return Ok((i, only));
        }
    }
    let child_depth = deepest(&items);
    let exprs: Vec<Expr> = items.into_iter().map(|n| n.expr).collect();
    let n = node(i, child_depth, || build(exprs.into_boxed_slice()))?;
    Ok((i, n))
}

fn or_expr(i: &str, nesting: usize) -> PResult<'_, Node> {
    joined(i, nesting, "OR", and_expr, Expr::Or)
}

fn and_expr(i: &str, nesting: usize) -> PResult<'_, Node> {
    joined(i, nesting, "AND", not_expr, Expr::And)
}

fn not_expr(i: &str, nesting: usize) -> PResult<'_, Node> {
    if let Ok((rest, _)) = keyword("NOT")(i) {
        let nesting = deeper(i, nesting)?;
        let (rest, inner) = commit("an operand", not_expr(rest, nesting))?;
        let n = node(rest, deepest([&inner]), || Expr::Not(Box::new(inner.expr)))?;
        return Ok((rest, n));
    }
    predicate(i, nesting)
}

fn comparison_operator(i: &str) -> PResult<'_, CmpOp> {
    let i = skip_ws(i);
    // Longest first.
    for (sym, op) in [
        ("<>", CmpOp::Ne),
        ("!=", CmpOp::Ne),
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("=", CmpOp::Eq),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ] {
        if let Some(rest) = i.strip_prefix(sym) {
            return Ok((rest, op));
        }
    }
    backtrack(i, "a comparison operator")
}

fn predicate(i: &str, nesting: usize) -> PResult<'_, Node> {
    let (i, value) = additive(i, nesting)?;
    if let Ok((rest, op)) = comparison_operator(i) {
        let (rest, right) = commit("an operand", additive(rest, nesting))?;
        let n = node(rest, deepest([&value, &right]), || {
            Expr::Compare(op, Box::new(value.expr), Box::new(right.expr))
        })?;
        return Ok((rest, n));
    }
    if let Ok((rest, _)) = keyword("IS")(i) {
        let (rest, negated) = match keyword("NOT")(rest) {
            Ok((rest, _)) => (rest, true),
            Err(_) => (rest, false),
        };
        let (rest, _) = commit("NULL", keyword("NULL")(rest))?;
        let n = node(rest, deepest([&value]), || Expr::IsNull {
            value: Box::new(value.expr),
            negated,
        })?;
        return Ok((rest, n));
    }
    let (after_not, negated) = match keyword("NOT")(i) {
        Ok((rest, _)) => (rest, true),
        Err(_) => (i, false),
    };
    if let Ok((rest, _)) = keyword("BETWEEN")(after_not) {
        let (rest, low) = commit("an operand", additive(rest, nesting))?;
        let (rest, _) = commit("AND", keyword("AND")(rest))?;
        let (rest, high) = commit("an operand", additive(rest, nesting))?;
        let n = node(rest, deepest([&value, &low, &high]), || Expr::Between {
            value: Box::new(value.expr),
            low: Box::new(low.expr),
            high: Box::new(high.expr),
            negated,
        })?;
        return Ok((rest, n));
    }
    if let Ok((rest, _)) = keyword("IN")(after_not) {
        let (mut rest, _) = commit("'('", symbol("(")(rest))?;
        let mut items = Vec::new();
        loop {
            let (r, item) = commit("an operand", additive(rest, nesting))?;
            items.push(item);
            if let Ok((r, _)) = symbol(",")(r) {
                rest = r;
                continue;
            }
            let (r, _) = commit("',' or ')'", symbol(")")(r))?;
            rest = r;
            break;
        }
        let child_depth = deepest(&items).max(value.depth);
        let list: Vec<Expr> = items.into_iter().map(|n| n.expr).collect();
        let n = node(rest, child_depth, || Expr::In {
            value: Box::new(value.expr),
            list: list.into_boxed_slice(),
            negated,
        })?;
        return Ok((rest, n));
    }
    if let Ok((rest, _)) = keyword("LIKE")(after_not) {
        let pattern_at = skip_ws(rest);
        let (rest, pattern) = commit("a string pattern", string_literal(rest))?;
        let (rest, escape) = match keyword("ESCAPE")(rest) {
            Ok((rest, _)) => {
                let escape_at = skip_ws(rest);
                let (rest, text) = commit("a string", string_literal(rest))?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => (rest, Some(c)),
                    _ => return failure(escape_at, "ESCAPE takes a string of one character"),
                }
            }
            Err(_) => (rest, None),
        };
        let Ok(pattern) = LikePattern::compile(&pattern, escape) else {
            return failure(
                pattern_at,
                "in a LIKE pattern the escape character must precede %, _ or itself",
            );
        };
        let n = node(rest, deepest([&value]), || Expr::Like {
            value: Box::new(value.expr),
            pattern,
            negated,
        })?;
        return Ok((rest, n));
    }
    if let Ok((rest, _)) = keyword("MATCHES")(after_not) {
        let pattern_at = skip_ws(rest);
        let (rest, pattern) = commit("a string regex", string_literal(rest))?;
        let regex = match RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(MAX_DEPTH as u32)
            .build()
        {
            Ok(regex) => regex,
            Err(e) => return failure(pattern_at, format!("invalid regex: {}", regex_error(&e))),
        };
        let n = node(rest, deepest([&value]), || Expr::Matches {
            value: Box::new(value.expr),
            regex,
            negated,
        })?;
        return Ok((rest, n));
    }
    if negated {
        return expected(skip_ws(after_not), "BETWEEN, IN, LIKE or MATCHES after NOT");
    }
    Ok((i, value))
}

/// A regex error on one line (the crate's text spans several, with a caret
/// diagram of the pattern).
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => "pattern too large once compiled".to_string(),
        other => {
            let text = other.to_string();
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("syntax error")
                .trim()
                .trim_start_matches("error: ")
                .to_string()
        }
    }
}

/// A left-associative chain of binary arithmetic operators.
fn chain<'s>(
    i: &'s str,
    nesting: usize,
    operand: fn(&'s str, usize) -> PResult<'s, Node>,
    operators: &[(char, ArithOp)],
) -> PResult<'s, Node> {
    let (mut i, mut left) = operand(i, nesting)?;
    loop {
        let at = skip_ws(i);
        let Some(&(_, op)) = operators.iter().find(|(c, _)| at.starts_with(*c)) else {
            return Ok((i, left));
        };
        let (rest, right) = commit("an operand", operand(&at[1..], nesting))?;
        left = node(at, deepest([&left, &right]), || {
            Expr::Arith(op, Box::new(left.expr), Box::new(right.expr))
        })?;
        i = rest;
    }
}

fn additive(i: &str, nesting: usize) -> PResult<'_, Node> {
    chain(
        i,
        nesting,
        term,
        &[('+', ArithOp::Add), ('-', ArithOp::Sub)],
    )
}

fn term(i: &str, nesting: usize) -> PResult<'_, Node> {
    chain(
        i,
        nesting,
        unary,
        &[
            ('*', ArithOp::Mul),
            ('/', ArithOp::Div),
            ('%', ArithOp::Rem),
        ],
    )
}

fn unary(i: &str, nesting: usize) -> PResult<'_, Node> {
    let at = skip_ws(i);
    let op = match at.chars().next() {
        Some('-') => UnaryOp::Neg,
        Some('+') => UnaryOp::Plus,
        _ => return primary(at, nesting),
    };
    let after = skip_ws(&at[1..]);
    if op == UnaryOp::Neg && starts_number(after) {
        // A negative literal: folded, and i64::MIN is writable.
        let (rest, lit) = number(after, true)?;
        return Ok((rest, Node::leaf(Expr::Literal(lit))));
    }
    let nesting = deeper(at, nesting)?;
    let (rest, inner) = commit("an operand", unary(after, nesting))?;
    let n = node(rest, deepest([&inner]), || {
        Expr::Unary(op, Box::new(inner.expr))
    })?;
    Ok((rest, n))
}

fn starts_number(i: &str) -> bool {
    let mut chars = i.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('.') => chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn primary(i: &str, nesting: usize) -> PResult<'_, Node> {
    let i = skip_ws(i);
    let Some(first) = i.chars().next() else {
        return backtrack(i, "an operand");
    };
    match first {
        '(' => {
            let nesting = deeper(i, nesting)?;
            let (rest, inner) = commit("an operand", or_expr(&i[1..], nesting))?;
            let (rest, _) = commit("')'", symbol(")")(rest))?;
            Ok((rest, inner))
        }
        '\'' => {
            let (rest, s) = string_literal(i)?;
            Ok((rest, Node::leaf(Expr::Literal(Literal::Str(s.into())))))
        }
        '"' => {
            let (rest, name) = quoted_identifier(i)?;
            Ok((rest, Node::leaf(Expr::Header(name.into()))))
        }
        _ if starts_number(i) => {
            let (rest, lit) = number(i, false)?;
            Ok((rest, Node::leaf(Expr::Literal(lit))))
        }
        c if is_word_start(c) => identifier(i),
        _ => backtrack(i, "an operand"),
    }
}

fn identifier(i: &str) -> PResult<'_, Node> {
    let (rest, first) = word(i)?;
    if first.eq_ignore_ascii_case("TRUE") {
        return Ok((rest, Node::leaf(Expr::Literal(Literal::Bool(true)))));
    }
    if first.eq_ignore_ascii_case("FALSE") {
        return Ok((rest, Node::leaf(Expr::Literal(Literal::Bool(false)))));
    }
    if first.eq_ignore_ascii_case("NULL") {
        return Ok((rest, Node::leaf(Expr::Literal(Literal::Null))));
    }
    if is_keyword(first) {
        return backtrack(i, "an operand");
    }
    match first {
        "sys" if rest.starts_with('.') => {
            let name_at = &rest[1..];
            let (rest, name) = commit("a property name", word(name_at))?;
            match Property::by_name(name) {
                Some(p) => Ok((rest, Node::leaf(Expr::Property(p)))),
                None => {
                    // Short enough for a reply text (255 bytes) with its prefixes.
                    let known: Vec<&str> = Property::ALL.iter().map(|(n, _)| *n).collect();
                    let name: String = name.chars().take(24).collect();
                    failure(
                        name_at,
                        format!("unknown property sys.{name}; known: {}", known.join(", ")),
                    )
                }
            }
        }
        "body" => body_path(rest),
        _ => {
            // A header, its name possibly dotted (`order.id`).
            let (rest, name) =
                recognize(pair(word, nom::multi::many0_count(pair(char('.'), word)))).parse(i)?;
            Ok((rest, Node::leaf(Expr::Header(name.into()))))
        }
    }
}

/// The steps after `body`: `.name`, `."any name"`, `[index]`.
fn body_path(mut i: &str) -> PResult<'_, Node> {
    let mut path = Vec::new();
    loop {
        if let Some(rest) = i.strip_prefix('.') {
            let (rest, key) = if rest.starts_with('"') {
                quoted_identifier(rest)?
            } else {
                let (rest, w) = commit("a field name", word(rest))?;
                (rest, w.to_string())
            };
            path.push(PathSegment::Key(key.into()));
            i = rest;
        } else if let Some(rest) = i.strip_prefix('[') {
            let (rest, digits) = commit("an array index", digit1(rest))?;
            let Ok(index) = digits.parse::<usize>() else {
                return failure(rest, "array index out of range");
            };
            let (rest, _) = commit("']'", tag("]").parse(rest))?;
            path.push(PathSegment::Index(index));
            i = rest;
        } else {
            break;
        }
    }
    if path.len() > MAX_DEPTH {
        return failure(i, format!("body path longer than {MAX_DEPTH} steps"));
    }
    Ok((i, Node::leaf(Expr::Body(path.into_boxed_slice()))))
}

/// What the parser found at `rest`, for "found ..." in messages.
fn found(rest: &str) -> String {
    let rest = skip_ws(rest);
    match rest.chars().next() {
        None => "the end of the selector".to_string(),
        Some(c) if is_word_char(c) => {
            let (_, w) = take_while::<_, _, PErr<'_>>(is_word_char)
                .parse(rest)
                .unwrap_or(("", rest));
            let w: String = w.chars().take(24).collect();
            format!("'{w}'")
        }
        Some(c) => format!("'{c}'"),
    }
}

/// Parses a whole selector.
pub(crate) fn parse(src: &str) -> Result<Expr, SelectorError> {
    let result = or_expr(src, 0).and_then(|(rest, n)| {
        let rest = skip_ws(rest);
        if rest.is_empty() {
            Ok(n.expr)
        } else {
            Err(nom::Err::Failure(PErr {
                rest,
                problem: Problem::Expected("an operator or the end of the selector"),
            }))
        }
    });
    result.map_err(|e| {
        let err = match e {
            nom::Err::Error(err) | nom::Err::Failure(err) => err,
            nom::Err::Incomplete(_) => PErr {
                rest: "",
                problem: Problem::Unlabelled,
            },
        };
        // Point past whitespace at what was actually found.
        let rest = match err.problem {
            Problem::Text(_) => err.rest,
            _ => skip_ws(err.rest),
        };
        let offset = src.len() - rest.len();
        let position = src[..offset].chars().count() + 1;
        let message = match err.problem {
            Problem::Unlabelled => format!("unexpected {}", found(rest)),
            Problem::Expected(what) => format!("expected {what}, found {}", found(rest)),
            Problem::Text(text) => text.into_owned(),
        };
        SelectorError { position, message }
    })
}
