//! What a channel needs of its connection: the broker, the vhost, the
//! logged-in user and their permissions, the connection's link to the client,
//! and the exclusive queues it declared. The connection owns one and lends it
//! to whichever channel a frame is for.

use std::sync::Arc;

use amq_protocol::protocol::AMQPClass;

use crate::access::auth::User;
use crate::access::permissions::Checker;
use crate::engine::queue::delivery::ClientLink;
use crate::engine::queue::Queue;
use crate::engine::vhost::VHost;
use crate::protocol::frame;

use super::confirms::Confirms;

/// Per-connection state that channel methods need.
pub(crate) struct Session {
    pub(crate) vhost: Arc<VHost>,
    pub(crate) handle: Arc<ClientLink>,
    pub(crate) user: User,
    /// The user's permissions in this vhost, checked on every operation.
    pub(crate) perms: Checker,
    /// Exclusive queues declared by this connection; deleted when it closes.
    pub(crate) exclusive_queues: Vec<Arc<Queue>>,
    /// Channels with publisher confirms decided but not yet sent.
    pub(super) confirms_to_flush: Vec<Arc<Confirms>>,
}

impl Session {
    pub(crate) fn new(
        vhost: Arc<VHost>,
        handle: Arc<ClientLink>,
        user: User,
        perms: Checker,
    ) -> Self {
        Self {
            vhost,
            handle,
            user,
            perms,
            exclusive_queues: Vec::new(),
            confirms_to_flush: Vec::new(),
        }
    }

    /// Sends the confirms decided since the last flush (after each batch of
    /// frames read: the answers to a burst of publishes go out together).
    pub(crate) fn flush_confirms(&mut self) {
        for confirms in self.confirms_to_flush.drain(..) {
            confirms.flush();
        }
    }

    pub(crate) fn send_method(&self, channel: u16, method: AMQPClass) {
        self.handle
            .send(|out| frame::push_method(out, channel, method));
    }
}
