//! Publisher confirms of one channel in confirm mode: which publishes are
//! still owed an answer, and the basic.ack / basic.nack frames that give it.
//!
//! A publish is decided on the spot (a transient message: ack; refused by a
//! queue or not written: nack) or once the log's group commit has put it on
//! disk (the store calls [`SyncListener::synced`] from its syncer thread).
//! Decided answers wait here until [`Confirms::flush`]: the connection
//! flushes after each batch of frames it read, the channel before it answers
//! anything else, the syncer after each round. A flush coalesces as RabbitMQ
//! does: every ack below the lowest publish still owed an answer goes out as
//! one `basic.ack multiple=true`; the others one by one.
//!
//! This module owns the answers only; it must not publish or touch queues.

use std::collections::BTreeSet;
use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use parking_lot::Mutex;

use crate::engine::queue::delivery::ClientLink;
use crate::protocol::frame;
use crate::store::{SyncListener, SyncWaiter};

/// One channel's confirms, shared with the store's syncer.
pub(super) struct Confirms {
    channel: u16,
    link: Arc<ClientLink>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Publishes waiting for the disk, by sequence number.
    on_disk: BTreeSet<u64>,
    /// Decided, not yet sent.
    acks: Vec<u64>,
    nacks: Vec<u64>,
    /// The channel is gone: answers are dropped (the client forgot the tags).
    closed: bool,
}

impl Confirms {
    pub(super) fn new(channel: u16, link: Arc<ClientLink>) -> Arc<Self> {
        Arc::new(Self {
            channel,
            link,
            state: Mutex::new(State::default()),
        })
    }

    /// Publish `seq` is decided now. Returns true when it is the first answer
    /// waiting since the last flush (the caller arranges a flush).
    pub(super) fn decided(&self, seq: u64, ack: bool) -> bool {
        let mut st = self.state.lock();
        let first = st.acks.is_empty() && st.nacks.is_empty();
        if ack {
            st.acks.push(seq);
        } else {
            st.nacks.push(seq);
        }
        first
    }

    /// Publish `seq` is answered once the log's next group commit is done.
    pub(super) fn after_sync(self: &Arc<Self>, seq: u64) -> SyncWaiter {
        self.state.lock().on_disk.insert(seq);
        SyncWaiter {
            listener: self.clone(),
            token: seq,
        }
    }

    /// Sends the decided answers, coalesced.
    pub(super) fn flush(&self) {
        let mut st = self.state.lock();
        if st.acks.is_empty() && st.nacks.is_empty() {
            return;
        }
        let mut acks = std::mem::take(&mut st.acks);
        let nacks = std::mem::take(&mut st.nacks);
        if st.closed {
            return;
        }
        acks.sort_unstable();
        // Everything below the lowest publish still owed (or nacked here) is
        // acked by one multiple ack of the highest of them.
        let cutoff = st
            .on_disk
            .first()
            .copied()
            .into_iter()
            .chain(nacks.iter().copied())
            .min()
            .unwrap_or(u64::MAX);
        let below = acks.partition_point(|&seq| seq < cutoff);
        let channel = self.channel;
        // Sent under the lock, so that two flushers cannot reorder answers.
        self.link.send(|out| {
            if below > 0 {
                let ack = basic::Ack {
                    delivery_tag: acks[below - 1],
                    multiple: below > 1,
                };
                frame::push_method(out, channel, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)));
            }
            for &seq in &acks[below..] {
                let ack = basic::Ack {
                    delivery_tag: seq,
                    multiple: false,
                };
                frame::push_method(out, channel, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)));
            }
            for &seq in &nacks {
                let nack = basic::Nack {
                    delivery_tag: seq,
                    multiple: false,
                    requeue: false,
                };
                frame::push_method(
                    out,
                    channel,
                    AMQPClass::Basic(basic::AMQPMethod::Nack(nack)),
                );
            }
        });
    }

    /// The channel closed: nothing more is sent.
    pub(super) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.on_disk.clear();
        st.acks.clear();
        st.nacks.clear();
    }
}

impl SyncListener for Confirms {
    fn synced(&self, tokens: &[u64], ok: bool) {
        {
            let mut st = self.state.lock();
            for seq in tokens {
                st.on_disk.remove(seq);
            }
            let answers = if ok { &mut st.acks } else { &mut st.nacks };
            answers.extend_from_slice(tokens);
        }
        self.flush();
    }
}
