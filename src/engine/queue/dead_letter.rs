//! What a queue hands over to be dead-lettered: a [`DeadLetter`] and its
//! [`Reason`] (rejected, expired, maxlen, delivery limit).
//!
//! A queue collects dead letters under its lock and passes them to its owner
//! once the lock is released ([`QueueOwner::dead_letter`]); republishing them
//! (x-death, routing through the dead-letter exchange, cycles) is
//! `engine::dead_lettering`'s, which this folder does not import.
//!
//! [`QueueOwner::dead_letter`]: super::QueueOwner::dead_letter

use std::sync::Arc;

use crate::engine::message::Message;
use crate::store::Location;

/// Why a message was dead-lettered (the `reason` of its `x-death` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::MaxLen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message leaving a queue to be dead-lettered.
pub(crate) struct DeadLetter {
    /// The message; None when its body is only on disk (read back here).
    pub(crate) message: Option<Arc<Message>>,
    /// The queue's reference in the log, settled once the dead letter is out.
    pub(crate) location: Option<Location>,
    pub(crate) reason: Reason,
}
