//! The memory alarm: how many bytes in-memory messages hold, and the throttle
//! on publishers when that passes the high watermark.
//!
//! Every [`Message`](crate::engine::message::Message) carries a [`MemoryCharge`] for
//! what it holds (its bytes and its bookkeeping), released when the last
//! queue drops it (paged-out messages hold none); so does every message whose
//! body is still arriving.
//! When the total passes the limit the alarm goes off: connections that publish
//! stop reading their sockets (TCP back-pressure) after telling clients that
//! announced `connection.blocked`, as RabbitMQ's memory alarm does; consumers
//! carry on, and once the total falls below 90% of the limit publishers resume.
//! This module owns the counter and the alarm state; connections decide whom
//! to block.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::LazyLock;

use tokio::sync::Notify;

static USED: AtomicUsize = AtomicUsize::new(0);
/// 0: no limit.
static LIMIT: AtomicUsize = AtomicUsize::new(0);
static ALARM: AtomicBool = AtomicBool::new(false);
static CLEARED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Sets the high watermark in bytes (0 disables the alarm).
pub(crate) fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

pub(crate) fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

pub(crate) fn alarmed() -> bool {
    ALARM.load(Ordering::Relaxed)
}

/// Waits until the alarm is clear.
pub(crate) async fn cleared() {
    loop {
        let notified = CLEARED.notified();
        if !alarmed() {
            return;
        }
        notified.await;
    }
}

/// The memory this process may use: the machine's, or its cgroup's limit
/// when that is lower (a container's memory limit). 0 when unknown.
pub(crate) fn total() -> u64 {
    let Ok(mut system) = sysinfo::System::new() else {
        return 0;
    };
    system.refresh_memory();
    let host = system.total_memory();
    match system.cgroup_limits() {
        Some(cgroup) if cgroup.total_memory > 0 && cgroup.total_memory < host => {
            cgroup.total_memory
        }
        _ => host,
    }
}

/// The high watermark for `fraction` of the memory this process may use
/// (RabbitMQ's `vm_memory_high_watermark` is 0.4 by default).
pub(crate) fn fraction_of_total(fraction: f64) -> usize {
    (total() as f64 * fraction) as usize
}

/// One holder's share of the counter (a message, a body being received),
/// released on drop.
#[derive(Debug, Default)]
pub(crate) struct MemoryCharge(usize);

impl MemoryCharge {
    pub(crate) fn new(bytes: usize) -> Self {
        let mut charge = Self(0);
        charge.grow(bytes);
        charge
    }

    /// Charges `bytes` more (a body that received another frame).
    pub(crate) fn grow(&mut self, bytes: usize) {
        self.0 += bytes;
        let now = USED.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let limit = limit();
        if limit != 0 && now > limit && !ALARM.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                used = now,
                limit,
                "memory alarm: publishers are blocked until consumers catch up"
            );
        }
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        let now = USED.fetch_sub(self.0, Ordering::Relaxed) - self.0;
        if ALARM.load(Ordering::Relaxed)
            && now < limit() / 10 * 9
            && ALARM.swap(false, Ordering::Relaxed)
        {
            tracing::info!(used = now, "memory alarm cleared: publishers resume");
            CLEARED.notify_waiters();
        }
    }
}
