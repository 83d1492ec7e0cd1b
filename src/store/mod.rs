//! The store under `--data-dir`: definitions in sled, messages in per-vhost
//! segment logs, and the lock that keeps a second broker off the same directory.
//!
//! ```text
//! <data-dir>/warren.lock          held (flock) while a broker runs
//! <data-dir>/meta/                sled: vhosts, durable exchanges, queues, bindings
//! <data-dir>/msgs/<vhost-hex>/    msgs.N segments + acks.N files (see log.rs)
//! ```
//!
//! This module owns files and formats. It does not decide what is durable (the
//! vhost does) nor hold queue state (queues keep a [`log::Location`] per stored
//! message).

pub(crate) mod access;
pub(crate) mod log;
pub(crate) mod meta;
pub(crate) mod record;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub(crate) use log::{Location, MessageLog, Recovered, SyncListener, SyncWaiter};
pub(crate) use meta::Meta;

#[derive(Debug, Error)]
pub(crate) enum StoreError {
    #[error(
        "data directory {0} is in use by another Warren process (cannot lock {0}/warren.lock)"
    )]
    Locked(PathBuf),
    #[error("data directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The opened data directory.
pub(crate) struct Store {
    dir: PathBuf,
    _lock: File,
    pub(crate) meta: Arc<Meta>,
}

impl Store {
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let io_err = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("warren.lock"))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let meta = Meta::open(&dir.join("meta")).map_err(io_err)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
            meta: Arc::new(meta),
        })
    }

    /// Opens (recovering) the message log of `vhost`.
    pub(crate) fn open_log(
        &self,
        vhost: &str,
        live: &dyn Fn(u32) -> bool,
    ) -> Result<(Arc<MessageLog>, Vec<Recovered>), StoreError> {
        let hex: String = vhost.bytes().map(|b| format!("{b:02x}")).collect();
        let dir = self
            .dir
            .join("msgs")
            .join(if hex.is_empty() { "_".into() } else { hex });
        MessageLog::open(&dir, live).map_err(|source| StoreError::Io { path: dir, source })
    }
}
