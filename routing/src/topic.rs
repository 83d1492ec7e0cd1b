//! Topic exchange matching, with RabbitMQ's semantics: routing keys and binding
//! patterns are split on `.` into words (the empty string being zero words, so
//! `a..b` is three words and `.` is two empty ones); in a pattern, `*` matches
//! exactly one word and `#` zero or more.
//!
//! Patterns without wildcards match exactly one key (the word split is a
//! bijection), so they live in a hash map keyed by the pattern string. Patterns
//! with wildcards are compiled into a word trie: each node has literal-word
//! children, a `*` child and a `#` child. Matching walks the trie over the key's
//! words with an explicit stack. A `#` node can be reached at many word offsets
//! (think `#.#.#.#`), which would make a naive walk exponential; but having
//! visited `#` node H at offset i covers every offset after i (the `#` can
//! swallow the rest), so remembering the lowest offset each `#` node was
//! expanded from bounds the walk by nodes x words.

use foldhash::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::binding::Destination;

/// Words of a key or pattern, following RabbitMQ: "" is zero words.
fn words(key: &str) -> impl Iterator<Item = &str> {
    let mut split = key.split('.');
    if key.is_empty() {
        split.next();
    }
    split
}

fn has_wildcard(pattern: &str) -> bool {
    words(pattern).any(|w| w == "*" || w == "#")
}

type NodeId = u32;
const ROOT: NodeId = 0;

#[derive(Clone, Debug)]
struct Node<T> {
    words: HashMap<Box<str>, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    /// Destinations of the patterns that end at this node.
    destinations: SmallVec<[T; 1]>,
    /// Reached through a `#` edge: may also swallow further words.
    is_hash: bool,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            words: HashMap::default(),
            star: None,
            hash: None,
            destinations: SmallVec::new(),
            is_hash: false,
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
            && self.destinations.is_empty()
    }
}

/// Generic over what a match reports: a [`Destination`] for plain bindings,
/// a binding slot for bindings with a selector (see `selected`).
#[derive(Clone, Debug)]
pub(crate) struct TopicMatcher<T = Destination> {
    /// Wildcard-free patterns, by pattern string.
    exact: HashMap<Arc<str>, SmallVec<[T; 1]>>,
    /// The trie of wildcard patterns; `nodes[ROOT]` is the root. Removed
    /// nodes are cleared and recycled through `free`.
    nodes: Vec<Node<T>>,
    free: Vec<NodeId>,
}

impl<T> Default for TopicMatcher<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::default(),
            nodes: vec![Node::default()],
            free: Vec::new(),
        }
    }
}

/// Lowest word offset each `#` node has been expanded from, in this match.
/// Few `#` nodes are reached per message, so a linear scan is cheapest.
type HashVisits = SmallVec<[(NodeId, usize); 8]>;

impl<T: PartialEq> TopicMatcher<T> {
    /// Whether matching may report a destination more than once (several
    /// patterns lead to it). Without wildcard patterns, it cannot.
    pub(crate) fn may_repeat(&self) -> bool {
        !self.nodes[ROOT as usize].is_empty()
    }

    /// Indexes a (pattern, destination) pair the registry reports as new.
    pub(crate) fn insert(&mut self, pattern: Arc<str>, destination: T) {
        if !has_wildcard(&pattern) {
            self.exact.entry(pattern).or_default().push(destination);
            return;
        }
        let mut at = ROOT;
        for word in words(&pattern) {
            at = self.child_or_insert(at, word);
        }
        self.nodes[at as usize].destinations.push(destination);
    }

    fn child_or_insert(&mut self, parent: NodeId, word: &str) -> NodeId {
        let existing = match word {
            "*" => self.nodes[parent as usize].star,
            "#" => self.nodes[parent as usize].hash,
            _ => self.nodes[parent as usize].words.get(word).copied(),
        };
        if let Some(child) = existing {
            return child;
        }
        let node = Node {
            is_hash: word == "#",
            ..Node::default()
        };
        let child = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                NodeId::try_from(self.nodes.len() - 1).expect("topic trie exceeds u32 nodes")
            }
        };
        let p = &mut self.nodes[parent as usize];
        match word {
            "*" => p.star = Some(child),
            "#" => p.hash = Some(child),
            _ => {
                p.words.insert(word.into(), child);
            }
        }
        child
    }

    /// Drops a (pattern, destination) pair the registry reports as gone,
    /// pruning trie nodes left with nothing under them.
    pub(crate) fn remove(&mut self, pattern: &str, destination: &T) {
        if !has_wildcard(pattern) {
            if let Some(destinations) = self.exact.get_mut(pattern) {
                destinations.retain(|d| d != destination);
                if destinations.is_empty() {
                    self.exact.remove(pattern);
                }
            }
            return;
        }
        let mut path: SmallVec<[(NodeId, &str); 16]> = SmallVec::new();
        let mut at = ROOT;
        for word in words(pattern) {
            let node = &self.nodes[at as usize];
            let next = match word {
                "*" => node.star,
                "#" => node.hash,
                _ => node.words.get(word).copied(),
            };
            let Some(next) = next else { return };
            path.push((at, word));
            at = next;
        }
        self.nodes[at as usize]
            .destinations
            .retain(|d| d != destination);
        // Prune upwards while the node is empty.
        let mut child = at;
        while let Some((parent, word)) = path.pop() {
            if !self.nodes[child as usize].is_empty() {
                break;
            }
            self.nodes[child as usize] = Node::default();
            self.free.push(child);
            let p = &mut self.nodes[parent as usize];
            match word {
                "*" => p.star = None,
                "#" => p.hash = None,
                _ => {
                    p.words.remove(word);
                }
            }
            child = parent;
        }
        if self.nodes[ROOT as usize].is_empty() {
            // No wildcard pattern left: drop the recycled slots too.
            self.nodes.truncate(1);
            self.free.clear();
        }
    }

    /// Reports the destination of every pattern matching `key` (a destination
    /// bound with several matching patterns is reported once per pattern).
    pub(crate) fn route<'a>(&'a self, key: &str, out: &mut impl FnMut(&'a T)) -> bool {
        let mut matched = false;
        if let Some(destinations) = self.exact.get(key) {
            destinations.iter().for_each(&mut *out);
            matched = true;
        }
        if self.may_repeat() {
            matched |= self.route_trie(key, out);
        }
        matched
    }

    fn route_trie<'a>(&'a self, key: &str, out: &mut impl FnMut(&'a T)) -> bool {
        let words: SmallVec<[&str; 16]> = words(key).collect();
        let n = words.len();
        let mut matched = false;
        let mut stack: SmallVec<[(NodeId, usize); 32]> = SmallVec::new();
        let mut hash_visits = HashVisits::new();
        stack.push((ROOT, 0));
        while let Some((id, from)) = stack.pop() {
            let node = &self.nodes[id as usize];
            if !node.is_hash {
                matched |= Self::expand(node, from, &words, &mut stack, out);
                continue;
            }
            // A `#` node at offset `from` is also at every later offset; skip
            // the offsets an earlier visit already expanded.
            let to = match hash_visits.iter_mut().find(|(h, _)| *h == id) {
                Some((_, lowest)) if *lowest <= from => continue,
                Some((_, lowest)) => std::mem::replace(lowest, from) - 1,
                None => {
                    hash_visits.push((id, from));
                    n
                }
            };
            for at in from..=to {
                matched |= Self::expand(node, at, &words, &mut stack, out);
            }
        }
        matched
    }

    /// Handles `node` reached with `words[..at]` consumed: reports its
    /// destinations if the key is used up, and queues the children that can
    /// consume what follows.
    fn expand<'a>(
        node: &'a Node<T>,
        at: usize,
        words: &[&str],
        stack: &mut SmallVec<[(NodeId, usize); 32]>,
        out: &mut impl FnMut(&'a T),
    ) -> bool {
        let mut matched = false;
        if let Some(word) = words.get(at) {
            if let Some(&child) = node.words.get(*word) {
                stack.push((child, at + 1));
            }
            if let Some(star) = node.star {
                stack.push((star, at + 1));
            }
        } else if !node.destinations.is_empty() {
            node.destinations.iter().for_each(&mut *out);
            matched = true;
        }
        if let Some(hash) = node.hash {
            stack.push((hash, at));
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn matcher(patterns: &[&str]) -> TopicMatcher {
        let mut m = TopicMatcher::default();
        for p in patterns {
            m.insert((*p).into(), q(p));
        }
        m
    }

    /// The patterns (as queue names) that `key` matches, sorted.
    fn hits(m: &TopicMatcher, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        let matched = m.route(key, &mut |d| out.push(d.name().to_string()));
        assert_eq!(matched, !out.is_empty());
        out.sort();
        out
    }

    fn matches(pattern: &str, key: &str) -> bool {
        let m = matcher(&[pattern]);
        !hits(&m, key).is_empty()
    }

    #[test]
    fn word_split_follows_rabbitmq() {
        assert_eq!(words("").count(), 0);
        assert_eq!(words(".").collect::<Vec<_>>(), ["", ""]);
        assert_eq!(words("a..b").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(words("a.").collect::<Vec<_>>(), ["a", ""]);
    }

    #[test]
    fn exact_pattern_matches_only_equal_key() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b", "a"));
        assert!(!matches("a.b", "a.B"));
    }

    #[test]
    fn wildcards_are_whole_words_only() {
        assert!(matches("a*.b", "a*.b"));
        assert!(!matches("a*.b", "ax.b"));
        assert!(matches("a#", "a#"));
        assert!(!matches("a#", "a"));
        assert!(!matches("a#", "a.b"));
    }

    #[test]
    fn hash_matches_empty_key() {
        assert!(matches("#", ""));
    }

    #[test]
    fn hash_matches_anything() {
        for key in ["a", "a.b.c", ".", "..", "a..b"] {
            assert!(matches("#", key), "{key}");
        }
    }

    #[test]
    fn star_does_not_match_empty_key() {
        assert!(!matches("*", ""));
    }

    #[test]
    fn star_matches_one_word_which_may_be_empty() {
        assert!(matches("*", "a"));
        assert!(!matches("*", "a.b"));
        assert!(!matches("*", "."));
        assert!(matches("a.*", "a."));
        assert!(matches("*.a", ".a"));
    }

    #[test]
    fn star_star_matches_dot() {
        assert!(matches("*.*", "."));
        assert!(matches("*.*", "a.b"));
        assert!(!matches("*.*", "a"));
        assert!(!matches("*.*", "a.b.c"));
    }

    #[test]
    fn hash_in_the_middle_matches_zero_words() {
        assert!(matches("a.#.b", "a.b"));
        assert!(matches("a.#.b", "a.x.b"));
        assert!(matches("a.#.b", "a.x.y.z.b"));
        assert!(!matches("a.#.b", "a.b.c"));
        assert!(!matches("a.#.b", "a"));
        assert!(matches("a.#.b", "a.b.b"));
    }

    #[test]
    fn hash_hash_matches_anything_including_empty_key() {
        for key in ["", "a", "a.b", ".", "a.b.c.d.e"] {
            assert!(matches("#.#", key), "{key:?}");
        }
    }

    #[test]
    fn empty_words_are_words() {
        assert!(matches("a..b", "a..b"));
        assert!(!matches("a..b", "a.b"));
        assert!(matches("a.*.b", "a..b"));
        assert!(!matches("a.*.b", "a.b"));
        assert!(matches("a.#.b", "a..b"));
        assert!(matches("#.b", ".b"));
    }

    #[test]
    fn star_at_either_end() {
        assert!(matches("*.a", "x.a"));
        assert!(!matches("*.a", "a"));
        assert!(!matches("*.a", "x.y.a"));
        assert!(matches("a.*", "a.x"));
        assert!(!matches("a.*", "a"));
        assert!(!matches("a.*", "a.x.y"));
    }

    #[test]
    fn hash_at_either_end() {
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(!matches("a.#", "b.a"));
        assert!(matches("#.a", "a"));
        assert!(matches("#.a", "x.y.a"));
        assert!(!matches("#.a", "a.x"));
    }

    #[test]
    fn empty_pattern_matches_only_empty_key() {
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(!matches("", "."));
    }

    #[test]
    fn mixed_wildcards() {
        assert!(matches("*.#", "a"));
        assert!(!matches("*.#", ""));
        assert!(matches("#.*", "a.b.c"));
        assert!(matches("*.#.*", "a.b"));
        assert!(!matches("*.#.*", "a"));
        assert!(matches("a.*.#.c", "a.b.c"));
        assert!(matches("a.*.#.c", "a.b.x.y.c"));
        assert!(!matches("a.*.#.c", "a.c"));
    }

    #[test]
    fn many_hashes_do_not_blow_up() {
        let m = matcher(&[
            "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z",
            "#.#.#.#.#.#.#.#.#.#",
        ]);
        let key = vec!["a"; 200].join(".");
        // Without memoization this is astronomically slow; with it, instant.
        assert_eq!(hits(&m, &key), ["#.#.#.#.#.#.#.#.#.#"]);
        let key_z = format!("{key}.z");
        assert_eq!(hits(&m, &key_z).len(), 2);
    }

    #[test]
    fn many_patterns_share_the_trie() {
        let m = matcher(&["a.*", "a.#", "*.b", "#", "a.b", "#.b", "a.*.c"]);
        assert_eq!(hits(&m, "a.b"), ["#", "#.b", "*.b", "a.#", "a.*", "a.b"]);
        assert_eq!(hits(&m, "a"), ["#", "a.#"]);
        assert_eq!(hits(&m, ""), ["#"]);
        assert_eq!(hits(&m, "a.x.c"), ["#", "a.#", "a.*.c"]);
    }

    #[test]
    fn same_destination_per_pattern_is_reported_per_pattern() {
        let mut m = TopicMatcher::default();
        m.insert("a.*".into(), q("q"));
        m.insert("#".into(), q("q"));
        let mut n = 0;
        m.route("a.b", &mut |_| n += 1);
        assert_eq!(n, 2);
    }

    #[test]
    fn remove_prunes_and_recycles_nodes() {
        let mut m = matcher(&["a.*.c", "a.#", "x"]);
        let nodes = m.nodes.len();
        m.remove("a.*.c", &q("a.*.c"));
        assert_eq!(hits(&m, "a.b.c"), ["a.#"]);
        assert_eq!(m.free.len(), 2); // `*` and `c` nodes
        m.insert("a.*.d".into(), q("a.*.d"));
        assert_eq!(m.nodes.len(), nodes);
        assert_eq!(hits(&m, "a.b.d"), ["a.#", "a.*.d"]);
        m.remove("a.#", &q("a.#"));
        m.remove("a.*.d", &q("a.*.d"));
        assert!(!m.may_repeat());
        assert_eq!(m.nodes.len(), 1);
        assert_eq!(hits(&m, "x"), ["x"]);
        m.remove("x", &q("x"));
        assert!(m.exact.is_empty());
    }

    #[test]
    fn remove_keeps_other_destinations_at_a_node() {
        let mut m = TopicMatcher::default();
        m.insert("a.*".into(), q("one"));
        m.insert("a.*".into(), q("two"));
        m.remove("a.*", &q("one"));
        assert_eq!(hits(&m, "a.b"), ["two"]);
        m.remove("a.*", &q("missing"));
        m.remove("b.*", &q("two"));
        assert_eq!(hits(&m, "a.b"), ["two"]);
    }

    #[test]
    fn remove_of_prefix_pattern_keeps_longer_one() {
        let mut m = matcher(&["a.*", "a.*.b"]);
        m.remove("a.*", &q("a.*"));
        assert_eq!(hits(&m, "a.x"), Vec::<String>::new());
        assert_eq!(hits(&m, "a.x.b"), ["a.*.b"]);
    }

    /// Reference matcher: the obvious recursive definition.
    fn naive(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|i| naive(rest, &key[i..])),
            Some((&"*", rest)) => !key.is_empty() && naive(rest, &key[1..]),
            Some((w, rest)) => key.first() == Some(w) && naive(rest, &key[1..]),
        }
    }

    #[test]
    fn agrees_with_naive_matcher_exhaustively() {
        // Every pattern and key of up to 4 words over a small alphabet.
        let pattern_words = ["a", "b", "", "*", "#"];
        let key_words = ["a", "b", ""];
        let mut patterns = vec![String::new()];
        let mut keys = vec![String::new()];
        let mut frontier_p = vec![Vec::<&str>::new()];
        let mut frontier_k = vec![Vec::<&str>::new()];
        for _ in 0..4 {
            frontier_p = frontier_p
                .iter()
                .flat_map(|p| {
                    pattern_words
                        .iter()
                        .map(move |w| [p.as_slice(), &[*w]].concat())
                })
                .collect();
            frontier_k = frontier_k
                .iter()
                .flat_map(|k| {
                    key_words
                        .iter()
                        .map(move |w| [k.as_slice(), &[*w]].concat())
                })
                .collect();
            patterns.extend(frontier_p.iter().map(|p| p.join(".")));
            keys.extend(frontier_k.iter().map(|k| k.join(".")));
        }
        let m = matcher(&patterns.iter().map(String::as_str).collect::<Vec<_>>());
        for key in &keys {
            let key_split: Vec<&str> = words(key).collect();
            let mut expected: Vec<String> = patterns
                .iter()
                .filter(|p| naive(&words(p).collect::<Vec<_>>(), &key_split))
                .cloned()
                .collect();
            expected.sort();
            expected.dedup();
            let mut got = hits(&m, key);
            got.dedup();
            assert_eq!(got, expected, "key {key:?}");
        }
    }
}
