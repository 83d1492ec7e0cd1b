//! Expiry timers: one tokio task per queue that has something to expire.
//!
//! A queue starts its task the first time it holds a deadline (a message with
//! a TTL, or `x-expires`). The task sleeps until the earliest deadline the queue
//! reports, or until the queue signals an earlier one, then asks the queue to
//! expire what is due ([`Queue::run_expiry`]): that costs O(expired messages),
//! whatever the queue's length, because the queue finds them at the heads of
//! its priority levels (queue TTL) or on top of its deadline heap (per-message
//! TTL). The task holds only a `Weak` reference and ends with its queue.
//!
//! Deadlines are wall-clock milliseconds, because the store keeps each
//! message's publish time and a restart must expire messages whose time passed
//! while the broker was down.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::clock::now_ms;
use crate::engine::queue::{Queue, Wake};

/// Starts the expiry task of `queue`; None outside a tokio runtime (unit tests).
pub(crate) fn spawn(queue: Weak<Queue>) -> Option<Arc<Notify>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let notify = Arc::new(Notify::new());
    handle.spawn(run(queue, notify.clone()));
    Some(notify)
}

async fn run(queue: Weak<Queue>, notify: Arc<Notify>) {
    loop {
        let wake = match queue.upgrade() {
            Some(queue) => queue.run_expiry(),
            None => return,
        };
        match wake {
            Wake::Stop => return,
            Wake::Again => tokio::task::yield_now().await,
            Wake::Idle => notify.notified().await,
            Wake::At(at) => {
                // A millisecond past the deadline, so the deadline has passed
                // by the clock the queue reads.
                let wait = Duration::from_millis(at.saturating_sub(now_ms()) + 1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = notify.notified() => {}
                }
            }
        }
    }
}
