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

/// Per-connection state that channel methods need.
pub struct Session {
    pub vhost: Arc<VHost>,
    pub handle: Arc<ClientLink>,
    pub user: User,
    /// The user's permissions in this vhost, checked on every operation.
    pub perms: Checker,
    /// Exclusive queues declared by this connection; deleted when it closes.
    pub exclusive_queues: Vec<Arc<Queue>>,
}

impl Session {
    pub fn send_method(&self, channel: u16, method: AMQPClass) {
        self.handle
            .send(|out| frame::push_method(out, channel, method));
    }
}
