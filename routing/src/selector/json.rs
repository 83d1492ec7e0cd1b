//! The message body as selectors see it: a JSON document parsed lazily, at
//! most once per routed message however many selectors read it, and only if
//! one does. [`LazyBody`] lives for one routing call (see
//! [`SelectorInput`](super::SelectorInput)); the first `body.…` read parses
//! and every later one reuses the result.
//!
//! A body is read as JSON when the message has no `content_type` or has
//! `application/json` (parameters such as `; charset=utf-8` and letter case
//! ignored). A body of another type, or one that does not parse, reads as
//! absent: every `body.…` field is NULL.

use std::cell::OnceCell;

use serde_json::Value as Json;

use super::ast::PathSegment;

/// A body parsed on first use.
#[derive(Debug, Default)]
pub(crate) struct LazyBody {
    parsed: OnceCell<Option<Json>>,
}

impl LazyBody {
    /// The parsed document, parsing it now if this is the first read.
    pub(crate) fn get(&self, content_type: Option<&str>, body: &[u8]) -> Option<&Json> {
        self.parsed
            .get_or_init(|| parse(content_type, body))
            .as_ref()
    }

    /// Whether the body has been parsed (or found not to be JSON).
    pub(crate) fn is_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }
}

/// Whether a content type names JSON.
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(value) => {
            let media = value.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/json")
        }
    }
}

fn parse(content_type: Option<&str>, body: &[u8]) -> Option<Json> {
    if !is_json(content_type) {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// Follows `path` from `root`; `None` when a step is missing.
pub(crate) fn lookup<'j>(root: &'j Json, path: &[PathSegment]) -> Option<&'j Json> {
    path.iter().try_fold(root, |node, segment| match segment {
        PathSegment::Key(key) => node.as_object()?.get(&**key),
        PathSegment::Index(index) => node.as_array()?.get(*index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.into())
    }

    #[test]
    fn content_types() {
        assert!(is_json(None));
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/jsonx")));
        assert!(!is_json(Some("")));
    }

    #[test]
    fn parses_once_and_only_json() {
        let body = LazyBody::default();
        assert!(!body.is_parsed());
        let doc = body.get(None, br#"{"a": {"b": [1, {"c": "x"}]}}"#).unwrap();
        assert!(body.is_parsed());
        let path = [key("a"), key("b"), PathSegment::Index(1), key("c")];
        assert_eq!(lookup(doc, &path), Some(&Json::from("x")));
        // Later reads reuse the first parse, whatever they pass.
        assert!(body.get(None, b"not json").is_some());

        let body = LazyBody::default();
        assert!(body.get(Some("text/plain"), b"{}").is_none());
        assert!(body.is_parsed());
        let body = LazyBody::default();
        assert!(body.get(None, b"{oops").is_none());
        let body = LazyBody::default();
        assert!(body.get(None, b"").is_none());
    }

    #[test]
    fn lookup_misses_are_none() {
        let doc: Json = serde_json::from_str(r#"{"a": [1, 2], "s": "str"}"#).unwrap();
        assert_eq!(lookup(&doc, &[]), Some(&doc));
        assert_eq!(lookup(&doc, &[key("b")]), None);
        assert_eq!(lookup(&doc, &[key("a"), PathSegment::Index(2)]), None);
        assert_eq!(lookup(&doc, &[key("a"), key("x")]), None);
        assert_eq!(lookup(&doc, &[key("s"), PathSegment::Index(0)]), None);
        assert_eq!(
            lookup(&doc, &[key("a"), PathSegment::Index(1)]),
            Some(&Json::from(2))
        );
    }
}
