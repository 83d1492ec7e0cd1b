//! Deduplication with the interface of the rabbitmq-message-deduplication
//! plugin: messages carrying an `x-deduplication-header` header are checked
//! against the values seen before.
//!
//! A message's key is [`Message::dedup_key`] (the header's value).
//!
//! * Queue level (queue argument `x-message-deduplication`): the queue keeps
//!   the keys of the messages it holds, ready or unacked (`queue/`); a repeat
//!   is dropped while one is there. Acked, dropped and expired messages release
//!   their key; a purge forgets them all.
//! * Exchange level (exchange type `x-message-deduplication`, `x-cache-size`,
//!   `x-cache-ttl`): a [`Cache`] per exchange remembers the keys it routed; a
//!   repeat within the window is not routed (so it is returned if mandatory).
//!   The cache is in memory (`x-cache-persistence: disk` is accepted, not kept
//!   across a restart).

use crate::engine::message::Message;
use crate::protocol::field::value_as_i64;

/// The header that overrides an exchange's `x-cache-ttl` for one message.
pub(crate) const TTL_HEADER: &str = "x-cache-ttl";

/// The cache of a deduplication exchange: the keys routed within the window
/// (`x-cache-ttl`, milliseconds; forever without one), at most `x-cache-size`
/// of them, the oldest evicted first.
#[derive(Debug)]
pub(crate) struct Cache {
    size: usize,
    ttl: Option<u64>,
    state: parking_lot::Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// key -> (expires at, insertion number)
    entries: std::collections::HashMap<String, (u64, u64)>,
    order: std::collections::VecDeque<(String, u64)>,
    next: u64,
}

impl Cache {
    pub(crate) fn new(size: u64, ttl: Option<u64>) -> Self {
        Self {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            ttl,
            state: Default::default(),
        }
    }

    /// Whether `message` repeats a key seen within the window; a new key is
    /// remembered. Messages without the header are never duplicates.
    pub(crate) fn is_duplicate(&self, message: &Message) -> bool {
        let Some(key) = message.dedup_key() else {
            return false;
        };
        let ttl = message
            .header(TTL_HEADER)
            .as_ref()
            .and_then(value_as_i64)
            .and_then(|t| u64::try_from(t).ok())
            .or(self.ttl);
        self.check(key, ttl, crate::engine::clock::now_ms())
    }

    fn check(&self, key: String, ttl: Option<u64>, now: u64) -> bool {
        let mut st = self.state.lock();
        if let Some((expires, _)) = st.entries.get(&key) {
            if *expires > now {
                return true;
            }
        }
        let n = st.next;
        st.next += 1;
        let expires = ttl.map_or(crate::engine::clock::NEVER, |t| now.saturating_add(t));
        st.entries.insert(key.clone(), (expires, n));
        st.order.push_back((key, n));
        while st.entries.len() > self.size {
            let Some((old, n)) = st.order.pop_front() else {
                break;
            };
            if st.entries.get(&old).is_some_and(|(_, m)| *m == n) {
                st.entries.remove(&old);
            }
        }
        // Keys re-inserted after expiring leave stale order entries behind.
        if st.order.len() > 2 * self.size.max(16) {
            let CacheState { entries, order, .. } = &mut *st;
            order.retain(|(k, n)| entries.get(k).is_some_and(|(_, m)| m == n));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_remembers_within_the_window_and_evicts_the_oldest() {
        let c = Cache::new(2, Some(100));
        assert!(!c.check("a".into(), Some(100), 0));
        assert!(c.check("a".into(), Some(100), 50));
        assert!(!c.check("a".into(), Some(100), 100)); // expired: routed again
        assert!(!c.check("b".into(), Some(100), 110));
        assert!(!c.check("c".into(), Some(100), 120)); // evicts "a"
        assert!(!c.check("a".into(), Some(100), 130));
        assert!(c.check("c".into(), None, 140));
    }
}
