//! `LIKE` patterns: compiled once at bind time, matched without backtracking.
//!
//! `%` matches any run of characters (possibly none) and `_` exactly one
//! character; an optional escape character makes the next `%`, `_` or escape
//! character literal. Matching is case-sensitive and by character (Unicode
//! scalar value), as in SQL.
//!
//! The pattern is split at its `%`s into segments of literal characters and
//! `_`s. Without a `%` the whole input must match the single segment. Otherwise
//! the first segment is matched at the start (unless the pattern starts with
//! `%`), the last at the end (unless it ends with `%`), and every segment in
//! between at its *leftmost* occurrence after the previous one. Leftmost is
//! always right: the `%` after a segment absorbs whatever follows it, so an
//! earlier occurrence never leaves less room for the rest. Nothing is retried,
//! so matching costs at most O(n·m) for an input of n and a pattern of m
//! characters (each segment is tried at each input position once), and
//! O(n + m) when segments start with distinct characters, the usual case. This
//! is the defence against the exponential blow-up of backtracking matchers
//! (regex translations of `LIKE`) that has bitten brokers evaluating JMS
//! selectors.

/// One character position of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Char(char),
    /// `_`: any one character.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LikePattern {
    /// The `%`-separated runs; `segments.len() - 1` is the number of `%` gaps
    /// (consecutive `%`s count as one). Never empty.
    segments: Box<[Box<[Item]>]>,
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LikeError {
    /// The escape character ends the pattern or precedes a character other
    /// than `%`, `_` or itself.
    BadEscape,
}

impl LikePattern {
    /// Compiles `pattern`, with `escape` as its escape character, if any.
    pub(crate) fn compile(pattern: &str, escape: Option<char>) -> Result<Self, LikeError> {
        let mut segments: Vec<Box<[Item]>> = Vec::new();
        let mut current: Vec<Item> = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if Some(c) == escape {
                match chars.next() {
                    Some(next) if next == '%' || next == '_' || Some(next) == escape => {
                        current.push(Item::Char(next))
                    }
                    _ => return Err(LikeError::BadEscape),
                }
            } else if c == '%' {
                segments.push(std::mem::take(&mut current).into_boxed_slice());
            } else if c == '_' {
                current.push(Item::Any);
            } else {
                current.push(Item::Char(c));
            }
        }
        segments.push(current.into_boxed_slice());
        // Collapse the empty segments between consecutive `%`s (keep the
        // first and last, which say whether the ends are anchored).
        let last = segments.len() - 1;
        let segments: Vec<Box<[Item]>> = segments
            .into_iter()
            .enumerate()
            .filter(|(i, s)| *i == 0 || *i == last || !s.is_empty())
            .map(|(_, s)| s)
            .collect();
        Ok(Self {
            segments: segments.into_boxed_slice(),
        })
    }

    pub(crate) fn matches(&self, input: &str) -> bool {
        let segments = &self.segments[..];
        let (first, rest) = match segments.split_first() {
            Some(split) => split,
            None => return input.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `%`: the one segment is the whole input.
            return match match_at(first, input) {
                Some(end) => end == input.len(),
                None => false,
            };
        };
        // The first segment at the start, the last at the end, not overlapping.
        let Some(mut from) = match_at(first, input) else {
            return false;
        };
        let Some(until) = suffix_start(last, input) else {
            return false;
        };
        if until < from {
            return false;
        }
        let window = &input[..until];
        for segment in middle {
            match find(segment, &window[from..]) {
                Some(end) => from += end,
                None => return false,
            }
        }
        true
    }
}

/// Matches `segment` at the start of `input`: the byte length consumed.
fn match_at(segment: &[Item], input: &str) -> Option<usize> {
    let mut chars = input.char_indices();
    for item in segment {
        let (_, c) = chars.next()?;
        if let Item::Char(want) = *item {
            if c != want {
                return None;
            }
        }
    }
    Some(chars.next().map_or(input.len(), |(at, _)| at))
}

/// Where `segment` must start for it to match the end of `input`.
fn suffix_start(segment: &[Item], input: &str) -> Option<usize> {
    let start = if segment.is_empty() {
        input.len()
    } else {
        input.char_indices().rev().nth(segment.len() - 1)?.0
    };
    match_at(segment, &input[start..]).map(|_| start)
}

/// The leftmost occurrence of `segment` in `input`: the byte offset just past it.
fn find(segment: &[Item], input: &str) -> Option<usize> {
    let first_char = match segment.first() {
        None => return Some(0),
        Some(Item::Char(c)) => Some(*c),
        Some(Item::Any) => None,
    };
    for (at, c) in input.char_indices() {
        if first_char.is_some_and(|want| want != c) {
            continue;
        }
        if let Some(len) = match_at(segment, &input[at..]) {
            return Some(at + len);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(pattern: &str, input: &str) -> bool {
        LikePattern::compile(pattern, None)
            .expect("valid pattern")
            .matches(input)
    }

    /// The textbook recursive definition (exponential, fine for short inputs).
    fn reference(pattern: &[char], input: &[char]) -> bool {
        match pattern.split_first() {
            None => input.is_empty(),
            Some(('%', rest)) => (0..=input.len()).any(|i| reference(rest, &input[i..])),
            Some(('_', rest)) => !input.is_empty() && reference(rest, &input[1..]),
            Some((c, rest)) => input.first() == Some(c) && reference(rest, &input[1..]),
        }
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert!(like("abc", "abc"));
        assert!(!like("abc", "abcd"));
        assert!(!like("abc", "ab"));
        assert!(like("", ""));
        assert!(!like("", "a"));
        assert!(!like("ABC", "abc"));
    }

    #[test]
    fn percent_and_underscore() {
        assert!(like("a%", "a"));
        assert!(like("a%", "abc"));
        assert!(!like("a%", "ba"));
        assert!(like("%c", "abc"));
        assert!(like("%b%", "abc"));
        assert!(!like("%d%", "abc"));
        assert!(like("%", ""));
        assert!(like("%%", "x"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "ac"));
        assert!(like("_%_", "ab"));
        assert!(!like("_%_", "a"));
        assert!(like("a%b%c", "a-b-b-c"));
        assert!(!like("a%b%c", "a-c-b"));
        assert!(like("ab%ba", "aba") == reference(&['a', 'b', '%', 'b', 'a'], &['a', 'b', 'a']));
        assert!(!like("ab%ba", "aba"));
        assert!(like("ab%ba", "abba"));
    }

    #[test]
    fn underscore_is_one_character_not_one_byte() {
        assert!(like("_", "é"));
        assert!(like("caf_", "café"));
        assert!(like("%é", "café"));
        assert!(!like("__", "é"));
        assert!(like("%_é_%", "xéx"));
    }

    #[test]
    fn escape_makes_wildcards_literal() {
        let p = LikePattern::compile("100!%", Some('!')).unwrap();
        assert!(p.matches("100%"));
        assert!(!p.matches("1000"));
        let p = LikePattern::compile("a!_b%", Some('!')).unwrap();
        assert!(p.matches("a_bxyz"));
        assert!(!p.matches("axbxyz"));
        let p = LikePattern::compile("a!!", Some('!')).unwrap();
        assert!(p.matches("a!"));
        assert_eq!(
            LikePattern::compile("a!", Some('!')),
            Err(LikeError::BadEscape)
        );
        assert_eq!(
            LikePattern::compile("!a", Some('!')),
            Err(LikeError::BadEscape)
        );
    }

    #[test]
    fn agrees_with_reference_on_all_short_cases() {
        let alphabet = ['a', 'b', '%', '_'];
        let mut patterns = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = patterns
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            patterns.extend(longer);
        }
        patterns.sort();
        patterns.dedup();
        let inputs: Vec<String> = {
            let mut v = vec![String::new()];
            for _ in 0..4 {
                let longer: Vec<String> = v
                    .iter()
                    .flat_map(|s| ['a', 'b'].iter().map(move |c| format!("{s}{c}")))
                    .collect();
                v.extend(longer);
            }
            v.sort();
            v.dedup();
            v
        };
        for p in &patterns {
            let pc: Vec<char> = p.chars().collect();
            for i in &inputs {
                let ic: Vec<char> = i.chars().collect();
                assert_eq!(like(p, i), reference(&pc, &ic), "{p:?} LIKE {i:?}");
            }
        }
    }

    #[test]
    fn hostile_pattern_is_fast() {
        // A backtracking matcher takes exponential time on this.
        let pattern = "%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b";
        let input = "a".repeat(100_000);
        let started = std::time::Instant::now();
        assert!(!like(pattern, &input));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
