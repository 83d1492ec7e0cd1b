//! A connection's outgoing byte stream, and the task that writes it.
//!
//! Anything that sends to a client (its own connection task answering a method,
//! a queue delivering to one of its consumers from a publisher's task) appends
//! encoded frames to the connection's [`Outbox`] under a short lock and wakes
//! the writer. The writer swaps the whole buffer out and writes it with one
//! syscall, so frames that pile up while a write is in flight go out together:
//! that is the write batching, with no timer. Frames appended under one lock
//! stay contiguous, which keeps a delivery's method, header and body frames
//! together.
//!
//! The outbox also carries back-pressure: when more than [`HIGH_WATER`]
//! bytes wait, queues stop delivering to this connection and register to be
//! woken once the writer has drained it; and when more than [`OWED_LIMIT`]
//! bytes are owed (returns, get-oks, confirms and replies the client asked for
//! but does not read), the connection stops reading its socket until the
//! writer has brought it back under [`HIGH_WATER`]
//! ([`Outbox::over_limit`], [`Outbox::drained`]). What one connection is
//! owed is so bounded whatever its client does, and nobody else waits for it.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::engine::queue::Queue;

/// Bytes waiting above which deliveries pause for this connection.
pub(crate) const HIGH_WATER: usize = 1 << 20;
/// Bytes owed (waiting or being written) above which the connection stops
/// reading its client's frames until the writer is back under [`HIGH_WATER`].
/// Above the deliveries' mark, so a consumer's acks are not held up by its
/// own deliveries.
pub(crate) const OWED_LIMIT: usize = 4 * HIGH_WATER;

#[derive(Default)]
struct Inner {
    buf: Vec<u8>,
    /// The socket is gone: appends are dropped.
    closed: bool,
    /// Close the socket once everything appended so far is written.
    close_when_flushed: bool,
    /// Queues that paused delivering here because the buffer was full.
    waiting: Vec<Weak<Queue>>,
    /// Bytes the writer took out of `buf` and is writing now.
    in_flight: usize,
}

/// The outgoing buffer of one connection.
#[derive(Default)]
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    wake: Notify,
    /// Signalled after each write, for a reader waiting in [`Outbox::drained`].
    written: Notify,
}

impl Outbox {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Appends frames written by `encode` and wakes the writer.
    pub(crate) fn send(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        {
            let mut inner = self.inner.lock();
            if inner.closed {
                return;
            }
            encode(&mut inner.buf);
        }
        self.wake.notify_one();
    }

    /// Appends frames for a delivery unless the buffer is over [`HIGH_WATER`],
    /// in which case `queue` is remembered and kicked once the writer drained it.
    /// Returns whether `encode` ran. A closed outbox accepts (and drops) everything,
    /// so deliveries to a dying connection end up in its channel's unacked list
    /// and are requeued when the connection is cleaned up.
    pub(crate) fn try_send(&self, queue: &Arc<Queue>, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
        {
            let mut inner = self.inner.lock();
            if inner.closed {
                return true;
            }
            if inner.buf.len() >= HIGH_WATER {
                // Once per queue: a queue retried by every publish must not
                // grow the list (and the kicks) with each attempt.
                if !inner
                    .waiting
                    .iter()
                    .any(|w| w.as_ptr() == Arc::as_ptr(queue))
                {
                    inner.waiting.push(Arc::downgrade(queue));
                }
                return false;
            }
            encode(&mut inner.buf);
        }
        self.wake.notify_one();
        true
    }

    /// Asks the writer to close the socket once the frames sent so far are written.
    pub(crate) fn close_when_flushed(&self) {
        self.inner.lock().close_when_flushed = true;
        self.wake.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Bytes owed to the client: waiting, plus being written.
    pub(crate) fn owed(&self) -> usize {
        let inner = self.inner.lock();
        inner.buf.len() + inner.in_flight
    }

    /// Whether the connection must stop reading until [`Outbox::drained`].
    pub(crate) fn over_limit(&self) -> bool {
        self.owed() > OWED_LIMIT
    }

    /// Completes once less than [`HIGH_WATER`] is owed (or the socket is gone).
    pub(crate) async fn drained(&self) {
        loop {
            let written = self.written.notified();
            if self.owed() < HIGH_WATER {
                return;
            }
            written.await;
        }
    }

    /// Completes once the socket is gone (a write failed, or the connection ended).
    pub(crate) async fn closed(&self) {
        loop {
            let written = self.written.notified();
            if self.is_closed() {
                return;
            }
            written.await;
        }
    }

    fn mark_closed(&self) -> Vec<Weak<Queue>> {
        let waiting = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            inner.buf = Vec::new();
            inner.in_flight = 0;
            std::mem::take(&mut inner.waiting)
        };
        self.written.notify_waiters();
        waiting
    }
}

/// Writes the outbox to the socket until the connection closes.
pub(crate) async fn run_writer(outbox: Arc<Outbox>, mut socket: OwnedWriteHalf) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let (closing, woken) = {
            let mut inner = outbox.inner.lock();
            std::mem::swap(&mut inner.buf, &mut batch);
            inner.in_flight = batch.len();
            // A burst left a large buffer behind: give it back.
            if inner.buf.capacity() > 4 * HIGH_WATER {
                inner.buf = Vec::new();
            }
            let woken = if inner.buf.len() < HIGH_WATER && !inner.waiting.is_empty() {
                std::mem::take(&mut inner.waiting)
            } else {
                Vec::new()
            };
            (inner.close_when_flushed, woken)
        };
        if !batch.is_empty() {
            if let Err(e) = socket.write_all(&batch).await {
                tracing::debug!(error = %e, "socket write failed");
                break;
            }
            batch.clear();
            if batch.capacity() > 4 * HIGH_WATER {
                batch = Vec::with_capacity(64 * 1024);
            }
            outbox.inner.lock().in_flight = 0;
            outbox.written.notify_waiters();
        }
        kick(woken);
        if closing && outbox.inner.lock().buf.is_empty() {
            break;
        }
        if batch.is_empty() && !outbox.inner.lock().buf.is_empty() {
            continue;
        }
        outbox.wake.notified().await;
    }
    let _ = socket.shutdown().await;
    kick(outbox.mark_closed());
}

fn kick(queues: Vec<Weak<Queue>>) {
    for queue in queues.into_iter().filter_map(|q| q.upgrade()) {
        queue.dispatch();
    }
}

/// How the engine reaches this connection (deliveries, cancel notifications).
impl crate::engine::queue::delivery::ClientSink for Outbox {
    fn send(&self, encode: &mut dyn FnMut(&mut Vec<u8>)) {
        Outbox::send(self, encode);
    }

    fn try_send(&self, queue: &Arc<Queue>, encode: &mut dyn FnMut(&mut Vec<u8>)) -> bool {
        Outbox::try_send(self, queue, encode)
    }

    fn close(&self) {
        self.close_when_flushed();
    }
}
