//! A queue's ready messages: one FIFO per priority level (a single level for
//! queues without `x-max-priority`), each ordered by publish sequence, so
//! requeued messages go back to their place and delivery takes the highest
//! level first. Messages taken out of the middle (expiry) leave tombstones,
//! skipped and compacted later; a level's deque shrinks once mostly empty.
//!
//! Pure bookkeeping: no locks (the queue holds its own), no I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::engine::message::Message;
use crate::store::Location;

/// A ready message: in memory, only on disk, or taken out of the middle of
/// the list by expiry (a tombstone, skipped and compacted away).
pub(super) enum Body {
    Loaded(Arc<Message>),
    Paged,
    Gone,
}

pub(super) struct Ready {
    pub(super) body: Body,
    pub(super) seq: u64,
    pub(super) location: Option<Location>,
    pub(super) expires_at: u64,
    pub(super) size: u32,
    /// Returns so far (saturating; kept small to keep this at 56 bytes).
    pub(super) deliveries: u16,
    pub(super) redelivered: bool,
    /// The deadline is the message's own (`expiration`), so it is in the heap.
    pub(super) own_ttl: bool,
}

/// The ready messages, one FIFO per priority level (a single level for queues
/// without `x-max-priority`), each ordered by `seq`. A level's front is never a
/// tombstone.
pub(super) struct Levels {
    pub(super) levels: Vec<VecDeque<Ready>>,
    pub(super) live: usize,
    pub(super) gone: usize,
}

impl Levels {
    pub(super) fn new(count: usize) -> Self {
        Self {
            levels: (0..count).map(|_| VecDeque::new()).collect(),
            live: 0,
            gone: 0,
        }
    }

    /// The highest level with a ready message.
    pub(super) fn front_level(&self) -> Option<usize> {
        (0..self.levels.len())
            .rev()
            .find(|&l| !self.levels[l].is_empty())
    }

    pub(super) fn front(&self, level: usize) -> Option<&Ready> {
        self.levels[level].front()
    }

    pub(super) fn push_back(&mut self, level: usize, ready: Ready) {
        self.live += 1;
        self.levels[level].push_back(ready);
    }

    pub(super) fn push_front(&mut self, level: usize, ready: Ready) {
        self.live += 1;
        self.levels[level].push_front(ready);
    }

    /// Inserts at the place its `seq` gives it.
    pub(super) fn insert(&mut self, level: usize, ready: Ready) {
        let deque = &mut self.levels[level];
        if deque.front().is_none_or(|head| head.seq > ready.seq) {
            deque.push_front(ready);
        } else {
            let at = deque.partition_point(|r| r.seq < ready.seq);
            deque.insert(at, ready);
        }
        self.live += 1;
    }

    pub(super) fn pop_front(&mut self, level: usize) -> Option<Ready> {
        let ready = self.levels[level].pop_front()?;
        self.live -= 1;
        self.clean_front(level);
        self.shrink(level);
        Some(ready)
    }

    /// Gives memory back once a level that held a backlog is mostly empty
    /// (a deque never shrinks by itself: 8 M entries drained would keep
    /// their 450 MB). Halving at a quarter keeps the cost amortised O(1).
    pub(super) fn shrink(&mut self, level: usize) {
        let deque = &mut self.levels[level];
        if deque.capacity() > 4096 && deque.len() < deque.capacity() / 4 {
            deque.shrink_to(deque.len() * 2);
        }
    }

    pub(super) fn clean_front(&mut self, level: usize) {
        let deque = &mut self.levels[level];
        while matches!(deque.front(), Some(r) if matches!(r.body, Body::Gone)) {
            deque.pop_front();
            self.gone -= 1;
        }
    }

    /// Index of the live message `seq` in `level`.
    pub(super) fn find(&self, level: usize, seq: u64) -> Option<usize> {
        let deque = self.levels.get(level)?;
        let at = deque.partition_point(|r| r.seq < seq);
        match deque.get(at) {
            Some(r) if r.seq == seq && !matches!(r.body, Body::Gone) => Some(at),
            _ => None,
        }
    }

    /// Takes the message at `index` out of the middle of `level`, leaving a
    /// tombstone (O(1); tombstones are compacted once they outnumber the rest).
    pub(super) fn take(&mut self, level: usize, index: usize) -> Ready {
        if index == 0 {
            return self.pop_front(level).expect("index 0 exists");
        }
        let slot = &mut self.levels[level][index];
        let ready = Ready {
            body: std::mem::replace(&mut slot.body, Body::Gone),
            seq: slot.seq,
            location: slot.location.take(),
            expires_at: slot.expires_at,
            size: slot.size,
            deliveries: slot.deliveries,
            redelivered: slot.redelivered,
            own_ttl: slot.own_ttl,
        };
        self.live -= 1;
        self.gone += 1;
        if self.gone > 1024 && self.gone > self.live {
            for deque in &mut self.levels {
                deque.retain(|r| !matches!(r.body, Body::Gone));
            }
            self.gone = 0;
        }
        ready
    }

    pub(super) fn drain(&mut self) -> Vec<Ready> {
        let mut out = Vec::with_capacity(self.live);
        for deque in &mut self.levels {
            out.extend(deque.drain(..).filter(|r| !matches!(r.body, Body::Gone)));
            deque.shrink_to_fit();
        }
        self.live = 0;
        self.gone = 0;
        out
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Ready)> {
        self.levels.iter().enumerate().flat_map(|(l, d)| {
            d.iter()
                .filter(|r| !matches!(r.body, Body::Gone))
                .map(move |r| (l, r))
        })
    }
}
