//! Who a client is and what it may do: users and SASL (`auth`), RabbitMQ's
//! password hashes (`password`) and permissions (`permissions`).

pub mod auth;
pub mod password;
pub mod permissions;
