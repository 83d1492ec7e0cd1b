//! The listener: accepts connections and runs the graceful shutdown.
//!
//! Shutdown is a `watch` flag every connection task listens to: on SIGINT or
//! SIGTERM the server stops accepting, each connection sends connection.close
//! 320 CONNECTION_FORCED to its client, and the server waits (bounded) for the
//! connection tasks to finish before returning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::engine::broker::Broker;
use crate::net::connection;

/// How long connections get to close after shutdown was requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts AMQP connections on `listener` until `shutdown` completes.
pub(crate) async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    connections.spawn(connection::serve(broker.clone(), socket, peer, stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    info!(connections = connections.len(), "shutting down");
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        connections.abort_all();
    }
}

/// Binds the AMQP listener.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
