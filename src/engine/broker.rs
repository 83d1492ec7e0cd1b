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
use tracing::{error, info};

use crate::access::auth::{User, Users};
use crate::access::password::HashingAlgorithm;
use crate::access::permissions::{AccessSlot, Permission, Permissions, TopicPermission};
use crate::engine::policy::{Parameter, Parameters, Policy};
use crate::engine::vhost::VHost;
use crate::store::access::{
    AccessRecords, GlobalParameterRecord, ParameterRecord, PermissionRecord, PolicyRecord,
    TopicPermissionRecord, UserRecord, VhostRecord,
};
use crate::store::meta::{BindingDef, ExchangeDef, QueueDef};
use crate::store::{Store, StoreError};

/// How a broker starts.
#[derive(Clone, Debug)]
pub(crate) struct BrokerOptions {
    /// Create the vhost `/` (in a fresh store) and the user guest/guest with
    /// full access to it (RabbitMQ skips this when definitions are loaded at boot).
    pub(crate) seed_defaults: bool,
    /// guest may connect from anywhere, not only from loopback.
    pub(crate) guest_remote: bool,
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
pub(crate) struct VhostInfo {
    /// `{"description": ..., "tags": [...]}` and whatever else was given.
    pub(crate) metadata: Map<String, Value>,
    /// RabbitMQ exports vhost limits here (usually `[]`).
    pub(crate) limits: Value,
}

impl VhostInfo {
    pub(crate) fn new(description: &str) -> Self {
        let metadata = json!({"description": description, "tags": []});
        Self {
            metadata: metadata.as_object().cloned().unwrap_or_default(),
            limits: json!([]),
        }
    }
}

/// Live counts for the overview.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) connections: AtomicI64,
    pub(crate) channels: AtomicI64,
}

pub(crate) struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    vhost_info: RwLock<HashMap<String, VhostInfo>>,
    pub(crate) users: Users,
    pub(crate) permissions: Permissions,
    pub(crate) parameters: Parameters,
    pub(crate) options: BrokerOptions,
    pub(crate) stats: Stats,
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
    /// gets the default vhost `/` and the user guest/guest, unless
    /// `options` say otherwise (definitions loaded at boot).
    pub(crate) fn open_with(
        data_dir: &Path,
        options: BrokerOptions,
    ) -> Result<Arc<Self>, StoreError> {
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
        match meta.access().map_err(&err)? {
            Some(records) => broker.restore_access(records),
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

    pub(crate) fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Creates a vhost (persisted) unless it exists.
    pub(crate) fn add_vhost(&self, name: &str) -> Result<Arc<VHost>, StoreError> {
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
    pub(crate) fn add_vhost_with(
        &self,
        name: &str,
        info: VhostInfo,
    ) -> Result<Arc<VHost>, StoreError> {
        self.vhost_info
            .write()
            .entry(name.to_string())
            .or_insert(info);
        self.add_vhost(name)
    }

    pub(crate) fn vhost_info(&self, name: &str) -> Option<VhostInfo> {
        self.vhost_info.read().get(name).cloned()
    }

    pub(crate) fn set_vhost_info(&self, name: &str, info: VhostInfo) {
        if self.vhost(name).is_some() {
            self.vhost_info.write().insert(name.to_string(), info);
        }
    }

    /// Deletes a vhost with its queues (their consumers are cancelled),
    /// exchanges, policies, parameters and permissions. False if missing.
    pub(crate) fn delete_vhost(&self, name: &str) -> Result<bool, StoreError> {
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
    pub(crate) fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vhosts.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Adds or replaces a user.
    pub(crate) fn put_user(&self, user: User) {
        self.users.put(user);
    }

    /// Deletes a user and its permissions. False if missing.
    pub(crate) fn delete_user(&self, name: &str) -> bool {
        let existed = self.users.delete(name);
        self.permissions.remove_where(|u, _| u == name);
        existed
    }

    pub(crate) fn set_permissions(&self, user: &str, vhost: &str, permission: Permission) {
        self.permissions.set(user, vhost, permission);
    }

    pub(crate) fn clear_permissions(&self, user: &str, vhost: &str) {
        self.permissions.clear(user, vhost);
    }

    pub(crate) fn set_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        topic: TopicPermission,
    ) {
        self.permissions.set_topic(user, vhost, exchange, topic);
    }

    pub(crate) fn clear_topic_permissions(&self, user: &str, vhost: &str, exchange: &str) {
        self.permissions.clear_topic(user, vhost, exchange);
    }

    /// The live access of `user` in `vhost` (what a connection checks against).
    pub(crate) fn access(&self, user: &str, vhost: &str) -> Arc<AccessSlot> {
        self.permissions.slot(user, vhost)
    }

    /// Sets a policy in a vhost and applies it to existing objects. False if
    /// the vhost does not exist.
    pub(crate) fn set_policy(&self, vhost: &str, policy: Policy) -> bool {
        let Some(v) = self.vhost(vhost) else {
            return false;
        };
        v.policies.set(policy);
        v.refresh_policies();
        true
    }

    pub(crate) fn clear_policy(&self, vhost: &str, name: &str) -> bool {
        let Some(v) = self.vhost(vhost) else {
            return false;
        };
        let cleared = v.policies.clear(name);
        v.refresh_policies();
        cleared
    }

    /// Writes users (password hashes only), permissions, topic permissions,
    /// policies, parameters and vhost metadata to the store, as one document.
    /// Called after every change to them.
    pub(crate) fn persist_access(&self) -> std::io::Result<()> {
        self.store.meta.put_access(&self.access_records())
    }

    /// Users, permissions, policies, parameters and vhost metadata, in the
    /// store's form.
    fn access_records(&self) -> AccessRecords {
        let mut r = AccessRecords::default();
        for u in self.users.list() {
            let default_loopback = u.name == "guest" && !self.options.guest_remote;
            r.users.push(UserRecord {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
                hashing_algorithm: u.hashing_algorithm.as_str().into(),
                tags: u.tags.clone(),
                limits: Some(u.limits.clone()),
                loopback_only: (u.loopback_only != default_loopback).then_some(u.loopback_only),
            });
        }
        for (user, vhost, access) in self.permissions.list() {
            if let Some(p) = &access.permission {
                r.permissions.push(PermissionRecord {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    configure: p.configure.as_str().into(),
                    write: p.write.as_str().into(),
                    read: p.read.as_str().into(),
                });
            }
            for (exchange, t) in &access.topic {
                r.topic_permissions.push(TopicPermissionRecord {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    exchange: exchange.clone(),
                    write: t.write.as_str().into(),
                    read: t.read.as_str().into(),
                });
            }
        }
        for p in self.parameters.list() {
            r.parameters.push(ParameterRecord {
                value: p.value,
                vhost: p.vhost,
                component: p.component,
                name: p.name,
            });
        }
        for (name, value) in self.parameters.list_global() {
            r.global_parameters
                .push(GlobalParameterRecord { name, value });
        }
        for name in self.vhost_names() {
            if let Some(info) = self.vhost_info(&name) {
                r.vhosts.push(VhostRecord {
                    name: name.clone(),
                    limits: Some(info.limits),
                    metadata: Some(info.metadata),
                });
            }
            if let Some(vhost) = self.vhost(&name) {
                for p in vhost.policies.list() {
                    r.policies.push(policy_record(&name, &p));
                }
            }
        }
        r
    }

    /// Sets the stored policies of `vhost` before its messages are recovered,
    /// so they get the TTL a policy gives their queue (the rest of the access
    /// records is restored once every vhost is loaded).
    fn preload_policies(&self, vhost: &VHost) {
        let Ok(Some(records)) = self.store.meta.access() else {
            return;
        };
        let mut any = false;
        for p in records.policies.iter().filter(|p| *p.vhost == *vhost.name) {
            match policy_from(p) {
                Ok(policy) => {
                    vhost.policies.set(policy);
                    any = true;
                }
                Err(e) => {
                    error!(policy = %p.name, vhost = %p.vhost, error = %e, "stored policy skipped")
                }
            }
        }
        if any {
            vhost.refresh_policies();
        }
    }

    /// Restores what [`Broker::persist_access`] stored. An entry that no
    /// longer reads (a bad regex, an unknown hashing algorithm) is logged and
    /// skipped; the rest is restored.
    fn restore_access(&self, records: AccessRecords) {
        for v in records.vhosts {
            if self.vhost(&v.name).is_some() {
                let mut info = VhostInfo::new("");
                if let Some(metadata) = v.metadata {
                    info.metadata = metadata;
                }
                if let Some(limits) = v.limits {
                    info.limits = limits;
                }
                self.set_vhost_info(&v.name, info);
            }
        }
        for u in records.users {
            let Some(hashing_algorithm) = HashingAlgorithm::parse(&u.hashing_algorithm) else {
                error!(user = %u.name, algorithm = %u.hashing_algorithm, "stored user skipped: unknown hashing algorithm");
                continue;
            };
            let default_loopback = u.name == "guest" && !self.options.guest_remote;
            self.put_user(User {
                loopback_only: u.loopback_only.unwrap_or(default_loopback),
                name: u.name,
                password_hash: u.password_hash,
                hashing_algorithm,
                tags: u.tags,
                limits: u.limits.unwrap_or_default(),
            });
        }
        for p in records.permissions {
            match Permission::new(&p.configure, &p.write, &p.read) {
                Ok(permission) => self.set_permissions(&p.user, &p.vhost, permission),
                Err(e) => {
                    error!(user = %p.user, vhost = %p.vhost, error = %e, "stored permissions skipped")
                }
            }
        }
        for p in records.topic_permissions {
            match TopicPermission::new(&p.user, &p.vhost, &p.write, &p.read) {
                Ok(topic) => self.set_topic_permissions(&p.user, &p.vhost, &p.exchange, topic),
                Err(e) => {
                    error!(user = %p.user, vhost = %p.vhost, error = %e, "stored topic permissions skipped")
                }
            }
        }
        for p in records.parameters {
            self.parameters.set(Parameter {
                vhost: p.vhost,
                component: p.component,
                name: p.name,
                value: p.value,
            });
        }
        for p in records.global_parameters {
            self.parameters.set_global(&p.name, p.value);
        }
        for p in &records.policies {
            if let Ok(policy) = policy_from(p) {
                self.set_policy(&p.vhost, policy);
            }
        }
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Flushes what is buffered for the store (ack entries) and syncs it.
    pub(crate) fn shutdown(&self) {
        for vhost in self.vhosts.read().values() {
            vhost.log.shutdown();
        }
    }
}

/// A broker on a temporary data directory (removed when the guard goes), for unit tests.
#[cfg(test)]
pub(crate) fn test_broker(options: BrokerOptions) -> (Arc<Broker>, tempfile::TempDir) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    match Broker::open_with(dir.path(), options) {
        Ok(b) => (b, dir),
        Err(e) => panic!("cannot open a test broker: {e}"),
    }
}

fn policy_record(vhost: &str, p: &Policy) -> PolicyRecord {
    PolicyRecord {
        vhost: vhost.to_string(),
        name: p.name.clone(),
        pattern: p.pattern.clone(),
        apply_to: p.apply_to.as_str().into(),
        definition: p.definition.clone(),
        priority: p.priority,
    }
}

fn policy_from(p: &PolicyRecord) -> Result<Policy, String> {
    Policy::new(
        &p.name,
        &p.pattern,
        &p.apply_to,
        p.definition.clone(),
        p.priority,
    )
}
