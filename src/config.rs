//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
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
    /// blocked until consumers catch up. A fraction of the memory Warren may
    /// use (the machine's, or its cgroup's limit in a container; 0.4 is
    /// RabbitMQ's default), or a size: bytes, or with a unit (`512MB`,
    /// `2GiB`); 0 turns the alarm off.
    #[arg(long, env = "WARREN_MEMORY_HIGH_WATERMARK", default_value = "0.4", value_parser = parse_watermark)]
    pub(crate) memory_high_watermark: Watermark,

    /// Definitions file (RabbitMQ's format, JSON or .yaml/.yml) loaded at boot.
    /// With it, the default vhost and user are not created (as in RabbitMQ).
    #[arg(long, env = "WARREN_DEFINITIONS")]
    pub(crate) definitions: Option<PathBuf>,

    /// Address and port for the HTTP API (port 0: any free port).
    #[arg(long, env = "WARREN_HTTP_LISTEN", default_value = "127.0.0.1:15672")]
    pub(crate) http_listen: SocketAddr,

    /// Do not start the HTTP API (as a variable: true/false, 1/0, yes/no, on/off).
    #[arg(long, env = "WARREN_NO_HTTP", value_parser = BoolishValueParser::new())]
    pub(crate) no_http: bool,

    /// Let guest connect from other hosts than loopback (as a variable:
    /// true/false, 1/0, yes/no, on/off).
    #[arg(long, env = "WARREN_GUEST_REMOTE", value_parser = BoolishValueParser::new())]
    pub(crate) guest_remote: bool,

    /// Run a command against a running broker instead of running one.
    #[command(subcommand)]
    pub(crate) command: Option<crate::admin::cli::Command>,
}

/// `--memory-high-watermark`: a fraction of memory, or a size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Watermark {
    Fraction(f64),
    Bytes(u64),
}

/// A fraction (0..=1), a number of bytes, or a size with a unit (`bytesize`:
/// `1GB`, `512MiB`, `1.5 GiB`...).
fn parse_watermark(text: &str) -> Result<Watermark, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<f64>() {
        return match n {
            n if n.is_nan() || n < 0.0 => Err(format!("'{text}' is negative")),
            n if n <= 1.0 => Ok(Watermark::Fraction(n)),
            n => Ok(Watermark::Bytes(n as u64)),
        };
    }
    text.parse::<bytesize::ByteSize>()
        .map(|size| Watermark::Bytes(size.as_u64()))
        .map_err(|e| {
            format!("'{text}' is neither a fraction of memory (0.4) nor a size (2GB): {e}")
        })
}

impl Config {
    /// The memory alarm's limit in bytes (0: no alarm).
    pub(crate) fn memory_limit(&self) -> usize {
        match self.memory_high_watermark {
            Watermark::Fraction(f) if f <= 0.0 => 0,
            Watermark::Fraction(f) => crate::engine::memory::fraction_of_total(f),
            Watermark::Bytes(b) => usize::try_from(b).unwrap_or(usize::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_read_as_fractions_or_sizes() {
        assert_eq!(parse_watermark("0.4"), Ok(Watermark::Fraction(0.4)));
        assert_eq!(parse_watermark("0"), Ok(Watermark::Fraction(0.0)));
        assert_eq!(
            parse_watermark("16000000"),
            Ok(Watermark::Bytes(16_000_000))
        );
        assert_eq!(parse_watermark("2GB"), Ok(Watermark::Bytes(2_000_000_000)));
        assert_eq!(parse_watermark("512MiB"), Ok(Watermark::Bytes(512 << 20)));
        assert!(parse_watermark("-1").is_err());
        assert!(parse_watermark("lots").is_err());
    }
}
