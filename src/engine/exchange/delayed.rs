//! Delayed delivery with the interface of the rabbitmq-delayed-message-exchange
//! plugin: an exchange of type `x-delayed-message` routes as its
//! `x-delayed-type`, but holds a message whose `x-delay` header is a positive
//! number of milliseconds (up to 2^32-1) for that long first. When it is
//! released its `x-delay` header reads `-delay`, as the plugin writes it, and
//! it is routed by the exchange's bindings as they are then. Without `x-delay`
//! (or with zero or less) a message is routed at once.
//!
//! Held messages live in one timeline per vhost, released by one tokio task.
//! A persistent message published to a durable delayed exchange is written to
//! the vhost's log under a reserved queue id ([`LOG_ID`]) before it is confirmed,
//! so it survives a restart; on release it is written again for its durable
//! queues and the held reference settled. As with the plugin, a delayed message
//! is never returned (`mandatory` cannot know where it will go).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use amq_protocol::types::AMQPValue;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tracing::error;

use crate::engine::clock::{now_ms, NEVER};
use crate::engine::exchange::Exchange;
use crate::engine::message::Message;
use crate::protocol::field::{value_as_i64, value_as_str};
use crate::store::{Location, MessageLog, Recovered};

/// The log queue id under which held persistent messages are stored (queue
/// ids count up from 1 and never reach it).
pub(crate) const LOG_ID: u32 = 0x7FFF_FFFF;
/// The plugin's (Erlang timer's) longest delay.
pub(crate) const MAX_DELAY: u64 = 4_294_967_295;

/// The vhost the delayed exchanges belong to, as their timeline reaches it
/// (the vhost implements it; this module does not route).
pub(crate) trait Owner: Send + Sync {
    fn delayed(&self) -> &Delayed;
    fn log(&self) -> &MessageLog;
    /// Routes a released message through `exchange` as its type and bindings
    /// are now. False when it could not be stored: it stays in the log and is
    /// released again after a restart.
    fn release(&self, exchange: &str, message: Arc<Message>) -> bool;
}

struct Held {
    exchange: Arc<str>,
    message: Arc<Message>,
    delay: u64,
    location: Option<Location>,
}

struct State {
    /// (due, seq) -> message
    held: BTreeMap<(u64, u64), Held>,
    next: u64,
    timer: Option<Arc<Notify>>,
    timer_at: u64,
}

/// The delayed messages of one vhost.
pub(crate) struct Delayed {
    state: Mutex<State>,
}

impl Default for Delayed {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                held: BTreeMap::new(),
                next: 0,
                timer: None,
                timer_at: NEVER,
            }),
        }
    }
}

/// The delay a message asks for: its `x-delay` header when positive and at
/// most [`MAX_DELAY`]. Integers of any width, numeric strings and floats
/// (truncated) count, as for the plugin.
pub(crate) fn delay_of(message: &Message) -> Option<u64> {
    let value = message.header("x-delay")?;
    let delay = match &value {
        AMQPValue::Float(f) => *f as i64,
        AMQPValue::Double(d) => *d as i64,
        other => match value_as_i64(other) {
            Some(n) => n,
            None => value_as_str(other)?.trim().parse().ok()?,
        },
    };
    u64::try_from(delay)
        .ok()
        .filter(|d| *d > 0 && *d <= MAX_DELAY)
}

impl Delayed {
    /// Holds `message`, published to the delayed exchange `exchange`, for
    /// `delay` ms. A persistent message for a durable exchange is written to
    /// the log first: Ok(true) then (confirm once it is on disk), Ok(false)
    /// when it is held in memory only, Err when the log refused it (nothing
    /// is held).
    pub(crate) fn hold<O: Owner + 'static>(
        &self,
        owner: &Arc<O>,
        exchange: &Exchange,
        message: Arc<Message>,
        delay: u64,
    ) -> std::io::Result<bool> {
        let mut location = None;
        if message.is_persistent() && exchange.durable {
            let at = message
                .store_in(owner.log(), vec![LOG_ID])
                .inspect_err(|e| {
                    error!(error = %e, "cannot store a delayed message");
                })?;
            location = Some(at);
        }
        let stored = location.is_some();
        self.insert(
            owner,
            now_ms().saturating_add(delay),
            Held {
                exchange: exchange.name.clone(),
                message,
                delay,
                location,
            },
        );
        Ok(stored)
    }

    /// Takes back a held message found in the log at start-up; its delay
    /// counts from when it was published.
    pub(crate) fn restore<O: Owner + 'static>(&self, owner: &Arc<O>, r: &Recovered) {
        let stored = owner.log().read(r.location).ok();
        let Some(message) = stored.and_then(Message::from_stored) else {
            error!(location = ?r.location, "stored delayed message lost: unreadable");
            owner.log().settle(r.location, LOG_ID);
            return;
        };
        let delay = delay_of(&message).unwrap_or(0);
        self.insert(
            owner,
            r.timestamp.saturating_add(delay),
            Held {
                exchange: Arc::from(message.exchange.as_str()),
                message: Arc::new(message),
                delay,
                location: Some(r.location),
            },
        );
    }

    fn insert<O: Owner + 'static>(&self, owner: &Arc<O>, due: u64, held: Held) {
        let mut st = self.state.lock();
        let seq = st.next;
        st.next += 1;
        st.held.insert((due, seq), held);
        if due < st.timer_at {
            st.timer_at = due;
            if st.timer.is_none() {
                let owner: Weak<dyn Owner> = Arc::downgrade(owner) as Weak<dyn Owner>;
                st.timer = spawn(owner);
            }
            if let Some(timer) = &st.timer {
                timer.notify_one();
            }
        }
    }

    /// Releases every message that is due; returns when to look next.
    fn release_due(&self, owner: &dyn Owner) -> u64 {
        let now = now_ms();
        let due = {
            let mut st = self.state.lock();
            let later = st.held.split_off(&(now.saturating_add(1), 0));
            let due = std::mem::replace(&mut st.held, later);
            st.timer_at = st.held.keys().next().map_or(NEVER, |(at, _)| *at);
            due
        };
        for (_, held) in due {
            let delay = i64::try_from(held.delay).unwrap_or(i64::MAX);
            let swapped = match i32::try_from(-delay) {
                Ok(d) => AMQPValue::LongInt(d),
                Err(_) => AMQPValue::LongLongInt(-delay),
            };
            let message = Arc::new(crate::engine::rebuild::with_header(
                &held.message,
                "x-delay",
                swapped,
            ));
            if !owner.release(&held.exchange, message) {
                continue; // stays stored; released again after a restart
            }
            if let Some(at) = held.location {
                owner.log().settle(at, LOG_ID);
            }
        }
        self.state.lock().timer_at
    }
}

fn spawn(owner: Weak<dyn Owner>) -> Option<Arc<Notify>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let notify = Arc::new(Notify::new());
    handle.spawn(run(owner, notify.clone()));
    Some(notify)
}

async fn run(owner: Weak<dyn Owner>, notify: Arc<Notify>) {
    loop {
        let next = match owner.upgrade() {
            Some(owner) => owner.delayed().release_due(&*owner),
            None => return,
        };
        if next == NEVER {
            notify.notified().await;
        } else {
            let wait = Duration::from_millis(next.saturating_sub(now_ms()) + 1);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = notify.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::AMQPProperties;
    use amq_protocol::types::{FieldTable, LongString};
    use bytes::Bytes;

    fn with_delay(v: AMQPValue) -> Message {
        let mut h = FieldTable::default();
        h.insert("x-delay".into(), v);
        Message::new(
            "x".into(),
            "k".into(),
            crate::protocol::content::Properties::encode(
                0,
                &AMQPProperties::default().with_headers(h),
            ),
            Bytes::new(),
        )
    }

    #[test]
    fn delay_header_as_the_plugin_reads_it() {
        assert_eq!(delay_of(&with_delay(AMQPValue::LongInt(500))), Some(500));
        assert_eq!(delay_of(&with_delay(AMQPValue::ShortShortUInt(5))), Some(5));
        assert_eq!(
            delay_of(&with_delay(AMQPValue::LongString(LongString::from("250")))),
            Some(250)
        );
        assert_eq!(delay_of(&with_delay(AMQPValue::Double(12.9))), Some(12));
        assert_eq!(delay_of(&with_delay(AMQPValue::LongInt(0))), None);
        assert_eq!(delay_of(&with_delay(AMQPValue::LongInt(-5))), None);
        assert_eq!(
            delay_of(&with_delay(AMQPValue::LongLongInt(MAX_DELAY as i64 + 1))),
            None
        );
        assert_eq!(delay_of(&with_delay(AMQPValue::Boolean(true))), None);
    }
}
