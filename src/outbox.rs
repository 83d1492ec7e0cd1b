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
//! The outbox also carries back-pressure for deliveries: when more than
//! [`HIGH_WATER`] bytes wait, queues stop delivering to this connection and
//! register to be woken once the writer has drained it.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::queue::Queue;

/// Bytes waiting above which deliveries pause for this connection.
pub const HIGH_WATER: usize = 1 << 20;

#[derive(Default)]
struct Inner {
    buf: Vec<u8>,
    /// The socket is gone: appends are dropped.
    closed: bool,
    /// Close the socket once everything appended so far is written.
    close_when_flushed: bool,
    /// Queues that paused delivering here because the buffer was full.
    waiting: Vec<Weak<Queue>>,
}

/// The outgoing buffer of one connection.
#[derive(Default)]
pub struct Outbox {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Appends frames written by `encode` and wakes the writer.
    pub fn send(&self, encode: impl FnOnce(&mut Vec<u8>)) {
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
    pub fn try_send(&self, queue: &Arc<Queue>, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
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
    pub fn close_when_flushed(&self) {
        self.inner.lock().close_when_flushed = true;
        self.wake.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    fn mark_closed(&self) -> Vec<Weak<Queue>> {
        let mut inner = self.inner.lock();
        inner.closed = true;
        inner.buf = Vec::new();
        std::mem::take(&mut inner.waiting)
    }
}

/// Writes the outbox to the socket until the connection closes.
pub async fn run_writer(outbox: Arc<Outbox>, mut socket: OwnedWriteHalf) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let (closing, woken) = {
            let mut inner = outbox.inner.lock();
            std::mem::swap(&mut inner.buf, &mut batch);
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
