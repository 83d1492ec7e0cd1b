//! Direct reply-to: RPC replies without a reply queue per client.
//!
//! A client consumes from the pseudo-queue `amq.rabbitmq.reply-to` in no-ack
//! mode and publishes requests with `reply_to: amq.rabbitmq.reply-to`; the
//! broker rewrites that to `amq.rabbitmq.reply-to.<token>`, a name only this
//! consumer answers to. A server publishing its reply to that name on the default
//! exchange reaches the consumer directly. Behind each name is a small private
//! queue (in memory, never in the vhost's queue list, gone with its consumer),
//! so deliveries get the same flow control as any other.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use amq_protocol::types::FieldTable;
use parking_lot::Mutex;
use rand::distr::{Alphanumeric, SampleString};

use crate::engine::queue::{Queue, QueueConfig, QueueOwner};

/// The pseudo-queue clients consume from and name in `reply_to`.
pub(crate) const QUEUE: &str = "amq.rabbitmq.reply-to";
/// The prefix of the names replies are published to.
pub(crate) const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The reply consumers of a vhost, by reply name.
#[derive(Default)]
pub(crate) struct Registry {
    queues: Mutex<HashMap<Arc<str>, Weak<Queue>>>,
}

impl Registry {
    /// Makes the private queue of a new reply consumer on `connection`, in
    /// the vhost `owner` (named `vhost`).
    pub(crate) fn create<O: QueueOwner + 'static>(
        &self,
        vhost: Arc<str>,
        owner: &Arc<O>,
        connection: u64,
    ) -> Arc<Queue> {
        let name: Arc<str> = Arc::from(format!(
            "{PREFIX}{}",
            Alphanumeric.sample_string(&mut rand::rng(), 32)
        ));
        let queue = Queue::new(
            QueueConfig {
                name: name.clone(),
                vhost,
                durable: false,
                exclusive_owner: Some(connection),
                auto_delete: false,
                arguments: FieldTable::default(),
            },
            None,
            Arc::downgrade(owner) as Weak<dyn QueueOwner>,
        );
        self.queues.lock().insert(name, Arc::downgrade(&queue));
        queue
    }

    /// The queue behind a reply name, while its consumer is there.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.lock().get(name)?.upgrade()
    }

    /// Forgets a reply consumer's queue (cancelled, channel closed) and drops
    /// what it still held.
    pub(crate) fn remove(&self, queue: &Arc<Queue>) {
        self.queues.lock().remove(queue.name());
        queue.delete();
    }
}

/// Whether `queue` is the private queue of a reply consumer.
pub(crate) fn is_reply_queue(queue: &Queue) -> bool {
    queue.name().starts_with(PREFIX)
}
