//! Password hashes in RabbitMQ's format.
//!
//! RabbitMQ stores `base64(salt ++ H(salt ++ utf8(password)))` with a random
//! 4-byte salt, where H is SHA-256 (`rabbit_password_hashing_sha256`, the
//! default since 3.6), SHA-512 or MD5 (the legacy default). Definitions carry
//! the hash and the algorithm's module name, so hashes move between RabbitMQ
//! and Warren unchanged.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// A hashing algorithm, named as RabbitMQ names its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HashingAlgorithm {
    #[default]
    Sha256,
    Sha512,
    Md5,
}

impl HashingAlgorithm {
    /// Parses RabbitMQ's module name; `None` for an unknown algorithm.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "rabbit_password_hashing_sha256" => Some(Self::Sha256),
            "rabbit_password_hashing_sha512" => Some(Self::Sha512),
            "rabbit_password_hashing_md5" => Some(Self::Md5),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "rabbit_password_hashing_sha256",
            Self::Sha512 => "rabbit_password_hashing_sha512",
            Self::Md5 => "rabbit_password_hashing_md5",
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
            Self::Sha512 => {
                let mut h = Sha512::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
            Self::Md5 => {
                let mut h = Md5::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
            Self::Md5 => 16,
        }
    }
}

const SALT_LEN: usize = 4;

/// Hashes `password` with a fresh random salt; returns the base64 text.
pub(crate) fn hash_password(algorithm: HashingAlgorithm, password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    hash_with_salt(algorithm, &salt, password)
}

/// Hashes `password` with the given salt; returns the base64 text.
pub(crate) fn hash_with_salt(algorithm: HashingAlgorithm, salt: &[u8], password: &str) -> String {
    let mut bytes = salt.to_vec();
    bytes.extend_from_slice(&algorithm.digest(salt, password.as_bytes()));
    STANDARD.encode(bytes)
}

/// Whether `hash` (base64) is well formed for `algorithm`. An empty hash is
/// valid: it is a user who cannot log in with a password, as in RabbitMQ.
pub(crate) fn is_valid_hash(algorithm: HashingAlgorithm, hash: &str) -> bool {
    if hash.is_empty() {
        return true;
    }
    match STANDARD.decode(hash) {
        Ok(bytes) => bytes.len() == SALT_LEN + algorithm.digest_len(),
        Err(_) => false,
    }
}

/// Checks `password` against a stored hash. An empty or malformed hash never matches.
pub(crate) fn verify(algorithm: HashingAlgorithm, hash: &str, password: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(hash) else {
        return false;
    };
    if bytes.len() != SALT_LEN + algorithm.digest_len() {
        return false;
    }
    let (salt, digest) = bytes.split_at(SALT_LEN);
    let expected = algorithm.digest(salt, password.as_bytes());
    // Constant time: no early exit on the first differing byte.
    expected.as_slice().ct_eq(digest).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_a_rabbitmq_hash() {
        // `rabbitmqctl hash_password guest` style value, salt 0x908df1b2.
        let hash = hash_with_salt(HashingAlgorithm::Sha256, &[0x90, 0x8d, 0xf1, 0xb2], "guest");
        assert!(verify(HashingAlgorithm::Sha256, &hash, "guest"));
        assert!(!verify(HashingAlgorithm::Sha256, &hash, "guest2"));
        assert!(is_valid_hash(HashingAlgorithm::Sha256, &hash));
    }

    #[test]
    fn known_vector_from_rabbitmq() {
        // Exported by RabbitMQ 3.10 for guest/guest.
        let hash = "gazAFGVV/80faOacbcUuHSl6coVME00XPTabyILpBPc245Pn";
        assert!(verify(HashingAlgorithm::Sha256, hash, "guest"));
        assert!(!verify(HashingAlgorithm::Sha256, hash, "Guest"));
    }

    #[test]
    fn fresh_hashes_are_salted() {
        let a = hash_password(HashingAlgorithm::Sha256, "pw");
        let b = hash_password(HashingAlgorithm::Sha256, "pw");
        assert_ne!(a, b);
        assert!(verify(HashingAlgorithm::Sha256, &a, "pw"));
        assert!(verify(HashingAlgorithm::Sha256, &b, "pw"));
    }

    #[test]
    fn other_algorithms() {
        for alg in [HashingAlgorithm::Sha512, HashingAlgorithm::Md5] {
            let h = hash_password(alg, "secret");
            assert!(verify(alg, &h, "secret"));
            assert!(!verify(HashingAlgorithm::Sha256, &h, "secret"));
            assert_eq!(HashingAlgorithm::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(
            HashingAlgorithm::parse("rabbit_password_hashing_bcrypt"),
            None
        );
    }

    #[test]
    fn empty_or_bad_hashes_never_match() {
        assert!(!verify(HashingAlgorithm::Sha256, "", ""));
        assert!(!verify(HashingAlgorithm::Sha256, "!!!", "x"));
        assert!(is_valid_hash(HashingAlgorithm::Sha256, ""));
        assert!(!is_valid_hash(HashingAlgorithm::Sha256, "abcd"));
    }
}
