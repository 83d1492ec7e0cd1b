//! Binding selectors: the `x-selector` binding argument (alias
//! `x-filter-jms-selector`), an SQL-92 conditional expression over a message's
//! headers, properties and JSON body, as in JMS message selectors. A binding
//! with a selector matches when its exchange's own rule matches *and* the
//! selector evaluates to TRUE. See `docs/SELECTORS.md` for the language.
//!
//! This module is the public face: [`Selector`] (compiled once, at bind time),
//! [`SelectorError`] (position and what was expected), [`SelectorInput`] (one
//! message as selectors see it, with its JSON body parsed at most once) and
//! [`Truth`]. The work is split by concern:
//! - `ast`: the compiled expression tree;
//! - `parser`: the grammar (nom), with its limits on size and nesting;
//! - `eval`: three-valued evaluation, allocation-free lookups;
//! - `like`: the linear-time `LIKE` matcher;
//! - `json`: the lazily parsed JSON body and path lookups.

mod ast;
mod eval;
mod json;
mod like;
mod parser;

use std::fmt;
use std::sync::Arc;

use amq_protocol_types::{AMQPValue, FieldTable};

use crate::binding::BindError;
use crate::route::RoutableMessage;

pub use parser::{MAX_DEPTH, MAX_NESTING};

/// The binding argument holding a selector.
pub const SELECTOR_ARGUMENT: &str = "x-selector";
/// The name Qpid and ActiveMQ users know, accepted as an alias.
pub const JMS_SELECTOR_ARGUMENT: &str = "x-filter-jms-selector";
/// The longest selector accepted, in bytes.
pub const MAX_SELECTOR_LEN: usize = 4096;

/// Whether a binding argument names a selector (so it is never a header
/// condition of a headers exchange).
pub(crate) fn is_selector_argument(name: &str) -> bool {
    name == SELECTOR_ARGUMENT || name == JMS_SELECTOR_ARGUMENT
}

/// A compiled selector. Cloning is cheap (the compiled tree is shared).
#[derive(Clone)]
pub struct Selector(Arc<Compiled>);

struct Compiled {
    text: Box<str>,
    expr: ast::Expr,
    reads_body: bool,
}

/// Why a selector was refused: where (1-based character position in the
/// selector text) and what was wrong or expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for SelectorError {}

/// The value of a condition in SQL's three-valued logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl From<Option<bool>> for Truth {
    fn from(v: Option<bool>) -> Self {
        match v {
            Some(true) => Truth::True,
            Some(false) => Truth::False,
            None => Truth::Unknown,
        }
    }
}

impl Selector {
    /// Compiles a selector. Refuses text longer than [`MAX_SELECTOR_LEN`]
    /// bytes, syntax errors, nesting beyond [`MAX_NESTING`] / [`MAX_DEPTH`],
    /// bad `LIKE` escapes and regexes that do not compile within the size limit.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError {
                position: 1,
                message: format!(
                    "selector is {} bytes long; the limit is {MAX_SELECTOR_LEN}",
                    text.len()
                ),
            });
        }
        let expr = parser::parse(text)?;
        let reads_body = expr.reads_body();
        Ok(Selector(Arc::new(Compiled {
            text: text.into(),
            expr,
            reads_body,
        })))
    }

    /// The selector's source text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Whether evaluation may read the message body (and so parse it as JSON).
    pub fn reads_body(&self) -> bool {
        self.0.reads_body
    }

    /// Evaluates the selector for one message.
    pub fn evaluate(&self, input: &SelectorInput<'_>) -> Truth {
        self.0.expr.truth(input).into()
    }

    /// The selector in binding arguments (`x-selector` or its alias
    /// `x-filter-jms-selector`), compiled: the check `bind` makes, for callers
    /// that validate bindings before making them (definitions files).
    /// `Ok(None)` when there is no selector.
    pub fn from_binding_arguments(arguments: &FieldTable) -> Result<Option<Selector>, BindError> {
        from_arguments(arguments)
    }

    /// Whether the selector is TRUE for the message (the binding routes).
    pub fn matches(&self, input: &SelectorInput<'_>) -> bool {
        self.0.expr.truth(input) == Some(true)
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Selector").field(&self.as_str()).finish()
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// One message as selectors see it. Create one per routed message and pass
/// it to every selector: the JSON body is parsed on the first `body.…` read
/// and the result reused, so it is parsed at most once, and never if no
/// selector reads it.
/// Borrows the message (making one copies nothing).
#[derive(Debug)]
pub struct SelectorInput<'a> {
    message: &'a RoutableMessage<'a>,
    body: json::LazyBody,
}

impl<'a> SelectorInput<'a> {
    pub fn new(message: &'a RoutableMessage<'a>) -> Self {
        Self {
            message,
            body: json::LazyBody::default(),
        }
    }

    pub fn message(&self) -> &'a RoutableMessage<'a> {
        self.message
    }

    /// Whether the body has been parsed (a selector read it).
    pub fn body_parsed(&self) -> bool {
        self.body.is_parsed()
    }

    fn body(&self) -> Option<&serde_json::Value> {
        self.body
            .get(self.message.properties.content_type, self.message.body)
    }
}

/// The selector in binding arguments, compiled; `None` when there is none.
/// A selector that is not a string, or does not compile, is an
/// [`BindError::InvalidArgument`] naming the argument, the position and what
/// was expected (the broker's 406 PRECONDITION_FAILED text).
pub(crate) fn from_arguments(arguments: &FieldTable) -> Result<Option<Selector>, BindError> {
    let table = arguments.inner();
    let found: Vec<(&str, &AMQPValue)> = [SELECTOR_ARGUMENT, JMS_SELECTOR_ARGUMENT]
        .into_iter()
        .filter_map(|name| table.get(name).map(|v| (name, v)))
        .collect();
    let (name, value) = match found.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(BindError::InvalidArgument(format!(
                "{SELECTOR_ARGUMENT} and {JMS_SELECTOR_ARGUMENT} are the same argument; give one"
            )))
        }
    };
    let text = match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    };
    let Some(text) = text else {
        return Err(BindError::InvalidArgument(format!(
            "invalid {name}: expected a UTF-8 string"
        )));
    };
    Selector::parse(text)
        .map(Some)
        .map_err(|e| BindError::InvalidArgument(format!("invalid {name} {e}")))
}

#[cfg(test)]
mod tests;
