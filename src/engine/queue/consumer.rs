//! A consumer: a subscription of one channel to one queue (basic.consume).
//!
//! The queue owns the list of its consumers and picks one per message; the
//! consumer only carries what that choice needs (ack mode, priority, its own
//! prefetch limit and unacked count) and the channel it delivers through.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use amq_protocol::types::ShortString;

use crate::engine::queue::delivery::DeliveryChannel;

pub(crate) struct Consumer {
    pub(crate) tag: ShortString,
    pub(crate) channel: Arc<DeliveryChannel>,
    pub(crate) no_ack: bool,
    pub(crate) exclusive: bool,
    /// `x-priority` from basic.consume: higher-priority consumers get messages
    /// first while they have prefetch room.
    pub(crate) priority: i32,
    /// Per-consumer prefetch (basic.qos global=false at consume time); 0 = unlimited.
    pub(crate) prefetch: u32,
    /// Messages delivered to this consumer and not yet acked. Changed only under
    /// the channel's delivery lock.
    pub(crate) unacked: AtomicU32,
    /// Set when the queue cancelled this consumer (queue deleted).
    pub(crate) cancelled: AtomicBool,
}

impl Consumer {
    pub(crate) fn new(
        tag: ShortString,
        channel: Arc<DeliveryChannel>,
        no_ack: bool,
        exclusive: bool,
        priority: i32,
        prefetch: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            tag,
            channel,
            no_ack,
            exclusive,
            priority,
            prefetch,
            unacked: AtomicU32::new(0),
            cancelled: AtomicBool::new(false),
        })
    }

    pub(crate) fn has_room(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.unacked.load(Ordering::Relaxed) < self.prefetch
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}
