//! Warren: an AMQP 0-9-1 message broker that follows the RabbitMQ model.
//!
//! The code is in layers, each a folder, and imports only point down
//! (`tests/layering.rs` checks it; `docs/ARCHITECTURE.md` has the picture and
//! follows one message through them):
//!
//! * `protocol`: the AMQP wire format (frames, field tables, content
//!   headers, method ids, reply codes); imports nothing of Warren's.
//! * `store`: the data directory (definitions in sled, message segment logs,
//!   group commit); imports `protocol`.
//! * `access`: users, password hashes, permissions; imports `protocol`.
//! * `engine`: vhosts, exchanges, queues, messages, the publish pipeline,
//!   the memory alarm; imports the three above and `warren-routing`.
//! * `net`: sockets, connections, channels; imports the engine and below.
//! * `admin`: definitions files, the HTTP API, the CLI; imports the engine
//!   and below.
//!
//! Only [`Config`] and [`run`] are public: everything else is `pub(crate)`,
//! so the compiler keeps the layers honest.

mod access;
mod admin;
mod config;
mod engine;
mod net;
mod protocol;
mod store;

use std::process::ExitCode;

use tracing::{error, info};
use tracing_subscriber::EnvFilter;

pub use config::Config;

use admin::definitions::apply::load_at_boot;
use admin::http;
use engine::broker::{Broker, BrokerOptions};

/// Does what the command line asks: a CLI command against a running broker,
/// or the broker itself until SIGINT or SIGTERM.
pub async fn run(config: Config) -> ExitCode {
    if let Some(command) = config.command.clone() {
        return admin::cli::run(command).await;
    }
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let options = BrokerOptions {
        seed_defaults: config.definitions.is_none(),
        guest_remote: config.guest_remote,
    };
    let memory_limit = config.memory_limit();
    info!(limit_bytes = memory_limit, "memory high watermark");
    engine::memory::set_limit(memory_limit);
    let broker = match Broker::open_with(&config.data_dir, options) {
        Ok(broker) => broker,
        Err(e) => {
            error!(error = %e, "cannot open the store");
            eprintln!("warren: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &config.definitions {
        if let Err(e) = load_at_boot(&broker, path) {
            error!(file = %path.display(), "cannot load definitions: {e}");
            broker.shutdown();
            return ExitCode::FAILURE;
        }
    }
    let listener = match net::listener::bind(config.amqp_listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(addr = %config.amqp_listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    info!(addr = %listener.local_addr().map_or(config.amqp_listen, |a| a), version = env!("CARGO_PKG_VERSION"), "Warren listening for AMQP");
    let amqp_addr = listener.local_addr().unwrap_or(config.amqp_listen);
    let http_task = if config.no_http {
        None
    } else {
        let http = match http::bind(config.http_listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(addr = %config.http_listen, error = %e, "cannot listen for HTTP");
                broker.shutdown();
                return ExitCode::FAILURE;
            }
        };
        let http_addr = http.local_addr().unwrap_or(config.http_listen);
        info!(addr = %http_addr, "HTTP API listening");
        let state = http::ApiState {
            broker: broker.clone(),
            amqp_addr,
            http_addr,
        };
        Some(tokio::spawn(http::serve(http, state)))
    };
    net::listener::run(listener, broker.clone(), shutdown_signal()).await;
    if let Some(task) = http_task {
        task.abort();
    }
    broker.shutdown();
    info!("stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
