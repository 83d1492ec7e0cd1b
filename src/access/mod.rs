//! Who a client is and what it may do: users and SASL (`auth`), RabbitMQ's
//! password hashes (`password`) and permissions (`permissions`).

pub(crate) mod auth;
pub(crate) mod password;
pub(crate) mod permissions;
