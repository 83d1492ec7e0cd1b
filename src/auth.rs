//! Users and authentication: SASL PLAIN and AMQPLAIN responses, password checks.
//!
//! This module decides *who* a connection is. What that user may do in a vhost
//! is for the permission checks, not this module.

use std::collections::HashMap;

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::RwLock;

use crate::message::value_as_str;

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    password: String,
    pub tags: Vec<String>,
    /// May connect only from loopback (RabbitMQ's rule for guest).
    pub loopback_only: bool,
}

pub struct Users {
    users: RwLock<HashMap<String, User>>,
}

/// Credentials decoded from a connection.start-ok response.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Users {
    pub fn with_default_guest() -> Self {
        let mut users = HashMap::new();
        users.insert(
            "guest".to_string(),
            User {
                name: "guest".into(),
                password: "guest".into(),
                tags: vec!["administrator".into()],
                loopback_only: true,
            },
        );
        Self {
            users: RwLock::new(users),
        }
    }

    /// Checks a login; `None` when the user is unknown or the password wrong.
    pub fn authenticate(&self, credentials: &Credentials) -> Option<User> {
        let users = self.users.read();
        let user = users.get(&credentials.username)?;
        (user.password == credentials.password).then(|| user.clone())
    }
}

/// Decodes a SASL response for `mechanism` (PLAIN or AMQPLAIN).
pub fn decode_response(mechanism: &str, response: &[u8]) -> Option<Credentials> {
    match mechanism {
        "PLAIN" => {
            // [authzid] NUL authcid NUL passwd
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let username = String::from_utf8(parts.next()?.to_vec()).ok()?;
            let password = String::from_utf8(parts.next()?.to_vec()).ok()?;
            Some(Credentials { username, password })
        }
        "AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            let (_, table): (_, FieldTable) =
                amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
            let get = |key: &str| -> Option<String> {
                table
                    .inner()
                    .get(key)
                    .and_then(|v: &AMQPValue| value_as_str(v))
                    .map(str::to_string)
            };
            Some(Credentials {
                username: get("LOGIN")?,
                password: get("PASSWORD")?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response() {
        let c = decode_response("PLAIN", b"\0guest\0secret").unwrap();
        assert_eq!(c.username, "guest");
        assert_eq!(c.password, "secret");
        assert!(decode_response("PLAIN", b"garbage").is_none());
    }

    #[test]
    fn amqplain_response() {
        let creds = amq_protocol::auth::Credentials::new("bob".into(), "pw".into());
        let encoded = creds.sasl_auth_string(amq_protocol::auth::SASLMechanism::AMQPlain);
        let c = decode_response("AMQPLAIN", encoded.as_bytes()).unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.password, "pw");
    }
}
