//! Administration: RabbitMQ's definitions format, the HTTP API and the CLI.

pub(crate) mod cli;
pub(crate) mod definitions;
pub(crate) mod http;
