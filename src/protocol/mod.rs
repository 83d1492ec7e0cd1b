//! The AMQP 0-9-1 wire format, as far as Warren reads it by hand: field tables
//! ([`field`]), content headers ([`content`]) and the methods that carry tables
//! ([`method`]). Everything here is pure: bytes in, values out, no I/O and
//! nothing of the broker's state.

pub(crate) mod constants;
pub(crate) mod content;
pub(crate) mod error;
pub(crate) mod field;
pub(crate) mod frame;
pub(crate) mod method;
