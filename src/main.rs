//! The `warren` binary: parse the configuration, start the broker, stop on a signal.

use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use warren::admin::definitions::apply::load_at_boot;
use warren::admin::http;
use warren::config::Config;
use warren::engine::broker::{Broker, BrokerOptions};
use warren::net;

/// jemalloc, with background threads that give freed memory back to the
/// system within seconds: a broker's memory swings with its backlogs, and
/// glibc's allocator kept gigabytes after a backlog drained.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Stack of each runtime thread. Client-controlled nesting is bounded and
/// walked without recursion in Warren's own code, but derived `Clone`/`Drop`
/// of the deepest accepted argument tables still recurse: 8 MiB leaves a wide
/// margin over what they need (a test checks 2 MiB suffices).
const THREAD_STACK: usize = 8 << 20;

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let config = Config::parse();
    if let Some(command) = config.command.clone() {
        return warren::admin::cli::run(command).await;
    }
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let options = BrokerOptions {
        seed_defaults: config.definitions.is_none(),
        guest_remote: config.guest_remote,
    };
    let memory_limit = config.memory_limit();
    info!(limit_bytes = memory_limit, "memory high watermark");
    warren::engine::memory::set_limit(memory_limit);
    let broker = match Broker::open_with(&config.data_dir, options) {
        Ok(broker) => broker,
        Err(e) => {
            error!(error = %e, "cannot open the store");
            eprintln!("warren: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(path) = &config.definitions {
        if let Err(e) = load_at_boot(&broker, path) {
            error!(file = %path.display(), "cannot load definitions: {e}");
            broker.shutdown();
            return std::process::ExitCode::FAILURE;
        }
    }
    let listener = match net::listener::bind(config.amqp_listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(addr = %config.amqp_listen, error = %e, "cannot listen");
            return std::process::ExitCode::FAILURE;
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
                return std::process::ExitCode::FAILURE;
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
