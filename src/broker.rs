//! The broker's shared state: vhosts and users.
//!
//! One `Broker` is shared (`Arc`) by every connection. It owns the registry of
//! vhosts and the user database; it does not know about sockets or frames.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::auth::Users;
use crate::vhost::VHost;

pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    pub users: Users,
    next_connection_id: AtomicU64,
}

impl Broker {
    /// A broker with the default vhost `/` and the default user guest/guest.
    pub fn new() -> Arc<Self> {
        let mut vhosts = HashMap::new();
        vhosts.insert("/".to_string(), VHost::new("/"));
        Arc::new(Self {
            vhosts: RwLock::new(vhosts),
            users: Users::with_default_guest(),
            next_connection_id: AtomicU64::new(1),
        })
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| VHost::new(name))
            .clone()
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
