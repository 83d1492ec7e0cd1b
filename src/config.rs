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
    pub amqp_listen: SocketAddr,

    /// Directory for the store (durable definitions and messages).
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "./warren-data")]
    pub data_dir: PathBuf,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, env = "WARREN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}
