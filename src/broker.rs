//! The broker's shared state: vhosts, users, permissions, parameters.
//!
//! One `Broker` is shared (`Arc`) by every connection. It owns the registry of
//! vhosts, the user database, the permissions and the runtime parameters; it
//! does not know about sockets or frames. Every change to users, vhosts,
//! permissions and policies goes through the methods here (the definitions
//! importer, the HTTP API and, later, the store all use them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Map, Value};

use crate::auth::{User, Users};
use crate::permissions::{AccessSlot, Permission, Permissions, TopicPermission};
use crate::policy::{Parameters, Policy};
use crate::vhost::VHost;

/// How a broker starts.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Create the vhost `/` and the user guest/guest with full access to it
    /// (RabbitMQ skips this when definitions are loaded at boot).
    pub seed_defaults: bool,
    /// guest may connect from anywhere, not only from loopback.
    pub guest_remote: bool,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            seed_defaults: true,
            guest_remote: false,
        }
    }
}

/// What the definitions format says about a vhost beyond its name.
#[derive(Clone, Debug, PartialEq)]
pub struct VhostInfo {
    /// `{"description": ..., "tags": [...]}` and whatever else was given.
    pub metadata: Map<String, Value>,
    /// RabbitMQ exports vhost limits here (usually `[]`).
    pub limits: Value,
}

impl VhostInfo {
    pub fn new(description: &str) -> Self {
        let metadata = json!({"description": description, "tags": []});
        Self {
            metadata: metadata.as_object().cloned().unwrap_or_default(),
            limits: json!([]),
        }
    }
}

/// Live counts for the overview.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicI64,
    pub channels: AtomicI64,
}

pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    vhost_info: RwLock<HashMap<String, VhostInfo>>,
    pub users: Users,
    pub permissions: Permissions,
    pub parameters: Parameters,
    pub options: BrokerOptions,
    pub stats: Stats,
    next_connection_id: AtomicU64,
}

impl Broker {
    /// A broker with the default vhost `/` and the default user guest/guest.
    pub fn new() -> Arc<Self> {
        Self::with_options(BrokerOptions::default())
    }

    pub fn with_options(options: BrokerOptions) -> Arc<Self> {
        let broker = Self {
            vhosts: RwLock::new(HashMap::new()),
            vhost_info: RwLock::new(HashMap::new()),
            users: Users::empty(),
            permissions: Permissions::default(),
            parameters: Parameters::default(),
            options,
            stats: Stats::default(),
            next_connection_id: AtomicU64::new(1),
        };
        if broker.options.seed_defaults {
            broker.add_vhost_with("/", VhostInfo::new("Default virtual host"));
            broker.put_user(Users::default_guest(broker.options.guest_remote));
            broker.set_permissions("guest", "/", Permission::all());
        }
        Arc::new(broker)
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Adds a vhost (no-op if it exists) and returns it.
    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.add_vhost_with(name, VhostInfo::new(""))
    }

    /// Adds a vhost with its metadata (an existing vhost keeps its own).
    pub fn add_vhost_with(&self, name: &str, info: VhostInfo) -> Arc<VHost> {
        self.vhost_info
            .write()
            .entry(name.to_string())
            .or_insert(info);
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| VHost::new(name))
            .clone()
    }

    pub fn vhost_info(&self, name: &str) -> Option<VhostInfo> {
        self.vhost_info.read().get(name).cloned()
    }

    pub fn set_vhost_info(&self, name: &str, info: VhostInfo) {
        if self.vhost(name).is_some() {
            self.vhost_info.write().insert(name.to_string(), info);
        }
    }

    /// Deletes a vhost with its queues (their consumers are cancelled),
    /// exchanges, policies, parameters and permissions. False if missing.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let Some(vhost) = self.vhosts.write().remove(name) else {
            return false;
        };
        self.vhost_info.write().remove(name);
        let queues: Vec<_> = vhost.snapshot().queues.values().cloned().collect();
        for queue in queues {
            vhost.remove_queue(&queue);
        }
        self.permissions.remove_where(|_, v| v == name);
        self.parameters.clear_vhost(name);
        true
    }

    /// Every vhost name, sorted.
    pub fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vhosts.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Adds or replaces a user.
    pub fn put_user(&self, user: User) {
        self.users.put(user);
    }

    /// Deletes a user and its permissions. False if missing.
    pub fn delete_user(&self, name: &str) -> bool {
        let existed = self.users.delete(name);
        self.permissions.remove_where(|u, _| u == name);
        existed
    }

    pub fn set_permissions(&self, user: &str, vhost: &str, permission: Permission) {
        self.permissions.set(user, vhost, permission);
    }

    pub fn clear_permissions(&self, user: &str, vhost: &str) {
        self.permissions.clear(user, vhost);
    }

    pub fn set_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        topic: TopicPermission,
    ) {
        self.permissions.set_topic(user, vhost, exchange, topic);
    }

    pub fn clear_topic_permissions(&self, user: &str, vhost: &str, exchange: &str) {
        self.permissions.clear_topic(user, vhost, exchange);
    }

    /// The live access of `user` in `vhost` (what a connection checks against).
    pub fn access(&self, user: &str, vhost: &str) -> Arc<AccessSlot> {
        self.permissions.slot(user, vhost)
    }

    /// Sets a policy in a vhost and applies it to existing objects. False if
    /// the vhost does not exist.
    pub fn set_policy(&self, vhost: &str, policy: Policy) -> bool {
        let Some(v) = self.vhost(vhost) else {
            return false;
        };
        v.policies.set(policy);
        v.refresh_policies();
        true
    }

    pub fn clear_policy(&self, vhost: &str, name: &str) -> bool {
        let Some(v) = self.vhost(vhost) else {
            return false;
        };
        let cleared = v.policies.clear(name);
        v.refresh_policies();
        cleared
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
