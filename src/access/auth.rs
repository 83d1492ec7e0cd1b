//! Users and authentication: SASL PLAIN and AMQPLAIN responses, password checks.
//!
//! This module decides *who* a connection is. What that user may do in a vhost
//! is for the permission checks, not this module.

use std::collections::HashMap;

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::RwLock;

use crate::access::password::{self, HashingAlgorithm};
use crate::protocol::field::value_as_str;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct User {
    pub(crate) name: String,
    /// RabbitMQ's format: base64(salt ++ hash); empty means no password login.
    pub(crate) password_hash: String,
    pub(crate) hashing_algorithm: HashingAlgorithm,
    pub(crate) tags: Vec<String>,
    /// RabbitMQ's per-user limits (max-connections, max-channels), kept as given.
    pub(crate) limits: serde_json::Map<String, serde_json::Value>,
    /// May connect only from loopback (RabbitMQ's rule for guest).
    pub(crate) loopback_only: bool,
}

impl User {
    /// A user with a freshly salted SHA-256 hash of `password`.
    pub(crate) fn with_password(name: &str, password: &str, tags: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            password_hash: password::hash_password(HashingAlgorithm::Sha256, password),
            hashing_algorithm: HashingAlgorithm::Sha256,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            limits: serde_json::Map::new(),
            loopback_only: false,
        }
    }

    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    pub(crate) fn check_password(&self, candidate: &str) -> bool {
        password::verify(self.hashing_algorithm, &self.password_hash, candidate)
    }
}

pub(crate) struct Users {
    users: RwLock<HashMap<String, User>>,
}

/// Credentials decoded from a connection.start-ok response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl Users {
    /// No users at all (a broker whose users come from a definitions file).
    pub(crate) fn empty() -> Self {
        Self {
            users: RwLock::new(HashMap::new()),
        }
    }

    /// RabbitMQ's default user.
    pub(crate) fn default_guest(guest_remote: bool) -> User {
        let mut guest = User::with_password("guest", "guest", &["administrator"]);
        guest.loopback_only = !guest_remote;
        guest
    }

    /// Checks a login; `None` when the user is unknown or the password wrong.
    pub(crate) fn authenticate(&self, credentials: &Credentials) -> Option<User> {
        let users = self.users.read();
        let user = users.get(&credentials.username)?;
        user.check_password(&credentials.password)
            .then(|| user.clone())
    }

    /// Adds or replaces a user.
    pub(crate) fn put(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    pub(crate) fn delete(&self, name: &str) -> bool {
        self.users.write().remove(name).is_some()
    }

    pub(crate) fn get(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    /// Every user, sorted by name.
    pub(crate) fn list(&self) -> Vec<User> {
        let mut out: Vec<User> = self.users.read().values().cloned().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Decodes a SASL response for `mechanism` (PLAIN or AMQPLAIN).
pub(crate) fn decode_response(mechanism: &str, response: &[u8]) -> Option<Credentials> {
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
            // Read without recursion, as every client-sent table is.
            let (table, _): (FieldTable, _) = crate::protocol::field::decode_table(&framed).ok()?;
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
