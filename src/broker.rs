//! The broker's shared state: vhosts, users and the store they persist to.
//!
//! One `Broker` is shared (`Arc`) by every connection. It owns the registry of
//! vhosts and the user database, and at start-up it rebuilds the durable
//! definitions and the stored messages from the data directory. It does not
//! know about sockets or frames.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use tracing::info;

use crate::auth::Users;
use crate::store::meta::{BindingDef, ExchangeDef, QueueDef};
use crate::store::{Store, StoreError};
use crate::vhost::VHost;

pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    pub users: Users,
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
        let started = Instant::now();
        let store = Store::open(data_dir)?;
        let meta = store.meta.clone();
        let err = io_error(data_dir);
        let mut names = meta.vhosts().map_err(&err)?;
        if names.is_empty() {
            meta.put_vhost("/").map_err(&err)?;
            names.push("/".to_string());
        }
        let exchanges = meta.exchanges().map_err(&err)?;
        let queues = meta.queues().map_err(&err)?;
        let bindings = meta.bindings().map_err(&err)?;
        let broker = Self {
            vhosts: RwLock::new(HashMap::new()),
            users: Users::with_default_guest(),
            next_connection_id: AtomicU64::new(1),
            store,
        };
        let mut messages = 0usize;
        for name in names {
            messages += broker.load_vhost(&name, &exchanges, &queues, &bindings)?;
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
        let (log, recovered) = self.store.open_log(name, &|id| ids.contains(&id))?;
        let vhost = VHost::new(name, self.store.meta.clone(), log);
        let by_id = vhost.restore(exchanges, queues, bindings);
        let count = recovered.len();
        for r in recovered {
            if let Some(queue) = by_id.get(&r.queue) {
                queue.restore(r.location, r.delivered);
            }
        }
        self.vhosts.write().insert(name.to_string(), vhost);
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
