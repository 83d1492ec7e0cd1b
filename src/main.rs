//! The `warren` binary: parse the configuration, start the broker, stop on a signal.

use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use warren::broker::Broker;
use warren::config::Config;
use warren::server;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let broker = match Broker::open(&config.data_dir) {
        Ok(broker) => broker,
        Err(e) => {
            error!(error = %e, "cannot open the store");
            eprintln!("warren: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match server::bind(config.amqp_listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(addr = %config.amqp_listen, error = %e, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    info!(addr = %listener.local_addr().map_or(config.amqp_listen, |a| a), version = env!("CARGO_PKG_VERSION"), "Warren listening for AMQP");
    server::run(listener, broker.clone(), shutdown_signal()).await;
    broker.shutdown();
    info!("stopped");
    std::process::ExitCode::SUCCESS
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
