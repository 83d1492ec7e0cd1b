//! The compiled form of a selector: the expression tree the parser builds at
//! bind time and the evaluator walks per message. Everything a message-time
//! evaluation needs is prepared here once: literals are decoded, `LIKE`
//! patterns split into segments, `MATCHES` regexes compiled, property names
//! resolved to [`Property`] values and JSON paths cut into [`PathSegment`]s.

use regex::Regex;

use super::like::LikePattern;

/// A literal in the selector text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

/// A basic property or routing datum, read as `sys.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Property {
    RoutingKey,
    Exchange,
    ContentType,
    ContentEncoding,
    Priority,
    DeliveryMode,
    CorrelationId,
    ReplyTo,
    Expiration,
    MessageId,
    Timestamp,
    Type,
    UserId,
    AppId,
}

impl Property {
    /// Every property with its name after `sys.`.
    pub(crate) const ALL: [(&'static str, Property); 14] = [
        ("routing_key", Property::RoutingKey),
        ("exchange", Property::Exchange),
        ("content_type", Property::ContentType),
        ("content_encoding", Property::ContentEncoding),
        ("priority", Property::Priority),
        ("delivery_mode", Property::DeliveryMode),
        ("correlation_id", Property::CorrelationId),
        ("reply_to", Property::ReplyTo),
        ("expiration", Property::Expiration),
        ("message_id", Property::MessageId),
        ("timestamp", Property::Timestamp),
        ("type", Property::Type),
        ("user_id", Property::UserId),
        ("app_id", Property::AppId),
    ];

    pub(crate) fn by_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, property)| *property)
    }
}

/// One step of a JSON body path: an object member or an array element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Key(Box<str>),
    Index(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Neg,
    Plus,
}

/// A selector expression. Conditions and values share one type: the language
/// is checked dynamically, a non-boolean where a condition is expected being
/// UNKNOWN.
#[derive(Debug)]
pub(crate) enum Expr {
    Literal(Literal),
    /// A message header (a bare or double-quoted identifier).
    Header(Box<str>),
    Property(Property),
    /// A field of the JSON body; an empty path is the whole document.
    Body(Box<[PathSegment]>),
    Unary(UnaryOp, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// Two or more conditions, all of which must hold.
    And(Box<[Expr]>),
    /// Two or more conditions, one of which must hold.
    Or(Box<[Expr]>),
    Not(Box<Expr>),
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    In {
        value: Box<Expr>,
        list: Box<[Expr]>,
        negated: bool,
    },
    Like {
        value: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    Matches {
        value: Box<Expr>,
        regex: Regex,
        negated: bool,
    },
    IsNull {
        value: Box<Expr>,
        negated: bool,
    },
}

impl Expr {
    /// Whether evaluating this expression may read the message body.
    pub(crate) fn reads_body(&self) -> bool {
        match self {
            Expr::Body(_) => true,
            Expr::Literal(_) | Expr::Header(_) | Expr::Property(_) => false,
            Expr::Unary(_, e) | Expr::Not(e) => e.reads_body(),
            Expr::Arith(_, a, b) | Expr::Compare(_, a, b) => a.reads_body() || b.reads_body(),
            Expr::And(all) | Expr::Or(all) => all.iter().any(Expr::reads_body),
            Expr::Between {
                value, low, high, ..
            } => value.reads_body() || low.reads_body() || high.reads_body(),
            Expr::In { value, list, .. } => value.reads_body() || list.iter().any(Expr::reads_body),
            Expr::Like { value, .. } | Expr::Matches { value, .. } | Expr::IsNull { value, .. } => {
                value.reads_body()
            }
        }
    }
}
