//! The broker's shared state: vhosts, users, permissions, parameters and the
//! store they persist to.
//!
//! One `Broker` is shared (`Arc`) by every connection. It owns the registry of
//! vhosts, the user database, the permissions and the runtime parameters, and
//! at start-up it rebuilds the durable definitions and the stored messages
//! from the data directory. It does not know about sockets or frames. Every
//! change to users, vhosts, permissions and policies goes through the methods
//! here (the definitions importer and the HTTP API use them).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use tracing::info;

use crate::access::auth::{User, Users};
use crate::access::permissions::{AccessSlot, Permission, Permissions, TopicPermission};
use crate::engine::policy::{Parameters, Policy};
use crate::engine::vhost::VHost;
use crate::store::meta::{BindingDef, ExchangeDef, QueueDef};
use crate::store::{Store, StoreError};

/// How a broker starts.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Create the vhost `/` (in a fresh store) and the user guest/guest with
    /// full access to it (RabbitMQ skips this when definitions are loaded at boot).
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

/// The store document holding users, permissions, policies and parameters.
const ACCESS_DOC: &str = "access";

pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    vhost_info: RwLock<HashMap<String, VhostInfo>>,
    pub users: Users,
    pub permissions: Permissions,
    pub parameters: Parameters,
    pub options: BrokerOptions,
    pub stats: Stats,
    next_connection_id: AtomicU64,
    store: Store,
}

fn io_error(dir: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    }
}

impl Broker {
    /// Opens the data directory and recovers what it holds; a fresh directory
    /// gets the default vhost `/`. The default user is guest/guest.
    pub fn open(data_dir: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with(data_dir, BrokerOptions::default())
    }

    /// [`Broker::open`] with options (no defaults when definitions are loaded at boot).
    pub fn open_with(data_dir: &Path, options: BrokerOptions) -> Result<Arc<Self>, StoreError> {
        let started = Instant::now();
        let store = Store::open(data_dir)?;
        let meta = store.meta.clone();
        let err = io_error(data_dir);
        let mut names = meta.vhosts().map_err(&err)?;
        if names.is_empty() && options.seed_defaults {
            meta.put_vhost("/").map_err(&err)?;
            names.push("/".to_string());
        }
        let exchanges = meta.exchanges().map_err(&err)?;
        let queues = meta.queues().map_err(&err)?;
        let bindings = meta.bindings().map_err(&err)?;
        let broker = Self {
            vhosts: RwLock::new(HashMap::new()),
            vhost_info: RwLock::new(HashMap::new()),
            users: Users::empty(),
            permissions: Permissions::default(),
            parameters: Parameters::default(),
            options,
            stats: Stats::default(),
            next_connection_id: AtomicU64::new(1),
            store,
        };
        let mut messages = 0usize;
        for name in names {
            messages += broker.load_vhost(&name, &exchanges, &queues, &bindings)?;
        }
        match meta.doc(ACCESS_DOC).map_err(&err)? {
            Some(doc) => broker.restore_access(&doc),
            None if broker.options.seed_defaults => {
                broker.put_user(Users::default_guest(broker.options.guest_remote));
                broker.set_permissions("guest", "/", Permission::all());
                broker.persist_access().map_err(&err)?;
            }
            None => {}
        }
        info!(
            dir = %data_dir.display(),
            queues = queues.len(),
            messages,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store opened"
        );
        Ok(Arc::new(broker))
    }

    fn load_vhost(
        &self,
        name: &str,
        exchanges: &[ExchangeDef],
        queues: &[QueueDef],
        bindings: &[BindingDef],
    ) -> Result<usize, StoreError> {
        let ids: HashSet<u32> = queues
            .iter()
            .filter(|q| q.vhost == name)
            .map(|q| q.id)
            .collect();
        let live = |id| ids.contains(&id) || id == crate::engine::exchange::delayed::LOG_ID;
        let (log, recovered) = self.store.open_log(name, &live)?;
        let vhost = VHost::new(name, self.store.meta.clone(), log);
        let by_id = vhost.restore(exchanges, queues, bindings);
        // Policies before messages, so recovered messages get the TTL a
        // policy gives their queue (the access document is restored in full later).
        self.preload_policies(&vhost);
        let count = recovered.len();
        for r in recovered {
            if let Some(queue) = by_id.get(&r.queue) {
                queue.restore(&r);
            } else if r.queue == crate::engine::exchange::delayed::LOG_ID {
                vhost.delayed.restore(&vhost, &r);
            }
        }
        self.vhosts.write().insert(name.to_string(), vhost);
        let description = if name == "/" {
            "Default virtual host"
        } else {
            ""
        };
        self.vhost_info
            .write()
            .entry(name.to_string())
            .or_insert_with(|| VhostInfo::new(description));
        Ok(count)
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Creates a vhost (persisted) unless it exists.
    pub fn add_vhost(&self, name: &str) -> Result<Arc<VHost>, StoreError> {
        if let Some(vhost) = self.vhost(name) {
            return Ok(vhost);
        }
        self.store
            .meta
            .put_vhost(name)
            .map_err(|source| StoreError::Io {
                path: name.into(),
                source,
            })?;
        self.load_vhost(name, &[], &[], &[])?;
        self.vhost(name).ok_or_else(|| StoreError::Io {
            path: name.into(),
            source: std::io::Error::other("vhost vanished"),
        })
    }

    /// Adds a vhost with its metadata (an existing vhost keeps its own).
    pub fn add_vhost_with(&self, name: &str, info: VhostInfo) -> Result<Arc<VHost>, StoreError> {
        self.vhost_info
            .write()
            .entry(name.to_string())
            .or_insert(info);
        self.add_vhost(name)
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
    pub fn delete_vhost(&self, name: &str) -> Result<bool, StoreError> {
        let Some(vhost) = self.vhosts.write().remove(name) else {
            return Ok(false);
        };
        self.vhost_info.write().remove(name);
        let snap = vhost.snapshot();
        for queue in snap.queues.values() {
            vhost.remove_queue(queue);
        }
        for x in snap.exchanges.keys().filter(|x| !x.starts_with("amq.")) {
            let _ = vhost.delete_exchange(x, false);
        }
        self.permissions.remove_where(|_, v| v == name);
        self.parameters.clear_vhost(name);
        self.store
            .meta
            .remove_vhost(name)
            .map_err(|source| StoreError::Io {
                path: name.into(),
                source,
            })?;
        Ok(true)
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

    /// Writes users (password hashes only), permissions, topic permissions,
    /// policies, parameters and vhost metadata to the store, as one document
    /// in RabbitMQ's definitions format. Called after every change to them.
    pub fn persist_access(&self) -> std::io::Result<()> {
        let mut doc = crate::admin::definitions::export::export(self);
        doc.queues.clear();
        doc.exchanges.clear();
        doc.bindings.clear();
        let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
        self.store.meta.put_doc(ACCESS_DOC, &bytes)
    }

    /// Loads what [`Broker::persist_access`] stored.
    /// Sets the stored policies of `vhost` (read from the access document).
    fn preload_policies(&self, vhost: &VHost) {
        let Ok(Some(doc)) = self.store.meta.doc(ACCESS_DOC) else {
            return;
        };
        let Ok(defs) = serde_json::from_slice::<crate::admin::definitions::Definitions>(&doc)
        else {
            return;
        };
        let mut any = false;
        for p in defs.policies.iter().filter(|p| *p.vhost == *vhost.name) {
            let policy = Policy::new(
                &p.name,
                &p.pattern,
                &p.apply_to,
                p.definition.clone(),
                p.priority,
            );
            if let Ok(policy) = policy {
                vhost.policies.set(policy);
                any = true;
            }
        }
        if any {
            vhost.refresh_policies();
        }
    }

    fn restore_access(&self, doc: &[u8]) {
        let defs: crate::admin::definitions::Definitions = match serde_json::from_slice(doc) {
            Ok(defs) => defs,
            Err(e) => {
                tracing::error!(error = %e, "stored users and permissions are unreadable; none loaded");
                return;
            }
        };
        if let Err(e) = crate::admin::definitions::apply::restore(self, &defs) {
            tracing::error!(error = %e, "stored users and permissions could not be restored");
        }
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Flushes what is buffered for the store (ack entries) and syncs it.
    pub fn shutdown(&self) {
        for vhost in self.vhosts.read().values() {
            vhost.log.shutdown();
        }
    }
}

/// A broker on a temporary data directory (removed when the guard goes), for unit tests.
#[cfg(test)]
pub fn test_broker(options: BrokerOptions) -> (Arc<Broker>, tempfile::TempDir) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    match Broker::open_with(dir.path(), options) {
        Ok(b) => (b, dir),
        Err(e) => panic!("cannot open a test broker: {e}"),
    }
}
