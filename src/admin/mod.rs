//! Administration: RabbitMQ's definitions format, the HTTP API and the CLI.

pub mod cli;
pub mod definitions;
pub mod http;
