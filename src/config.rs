//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Warren, an AMQP 0-9-1 message broker.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Config {
    /// Address and port for AMQP connections.
    #[arg(long, env = "WARREN_AMQP_LISTEN", default_value = "0.0.0.0:5672")]
    pub(crate) amqp_listen: SocketAddr,

    /// Directory for the store (durable definitions and messages).
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "./warren-data")]
    pub(crate) data_dir: PathBuf,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, env = "WARREN_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,

    /// Memory alarm: when messages held in memory pass this, publishers are
    /// blocked until consumers catch up. A fraction of the machine's memory
    /// (0.4, RabbitMQ's default) or a number of bytes; 0 turns the alarm off.
    #[arg(long, env = "WARREN_MEMORY_HIGH_WATERMARK", default_value = "0.4")]
    pub(crate) memory_high_watermark: f64,

    /// Definitions file (RabbitMQ's format, JSON or .yaml/.yml) loaded at boot.
    /// With it, the default vhost and user are not created (as in RabbitMQ).
    #[arg(long, env = "WARREN_DEFINITIONS")]
    pub(crate) definitions: Option<PathBuf>,

    /// Address and port for the HTTP API (port 0: any free port).
    #[arg(long, env = "WARREN_HTTP_LISTEN", default_value = "127.0.0.1:15672")]
    pub(crate) http_listen: SocketAddr,

    /// Do not start the HTTP API.
    #[arg(long, env = "WARREN_NO_HTTP")]
    pub(crate) no_http: bool,

    /// Let guest connect from other hosts than loopback.
    #[arg(long, env = "WARREN_GUEST_REMOTE")]
    pub(crate) guest_remote: bool,

    /// Run a command against a running broker instead of running one.
    #[command(subcommand)]
    pub(crate) command: Option<crate::admin::cli::Command>,
}

impl Config {
    /// The memory alarm's limit in bytes.
    pub(crate) fn memory_limit(&self) -> usize {
        let w = self.memory_high_watermark;
        if w <= 0.0 {
            0
        } else if w <= 1.0 {
            crate::engine::memory::fraction_of_total(w)
        } else {
            w as usize
        }
    }
}
