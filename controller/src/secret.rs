//! The cluster secret: when configured, every controller connection (Raft RPCs, commands
//! forwarded to the leader, learner joins, broker heartbeats) starts with a mutual proof of
//! it, so a process that does not hold it can neither join the quorum nor send commands.
//!
//! The exchange (HMAC-SHA256 over both sides' fresh nonces; the secret never crosses the
//! wire, and a recorded exchange cannot be replayed):
//! 1. client -> server: `Hello { nonce: c }`
//! 2. server -> client: `Challenge { nonce: s, proof: HMAC(secret, "server" c s) }`
//! 3. client -> server: `Proof { proof: HMAC(secret, "client" c s) }`

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The shortest secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// A cluster secret (cheap to clone).
#[derive(Clone)]
pub struct ClusterSecret {
    key: Arc<hmac::Key>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// The messages of the exchange, each one frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Handshake {
    /// The client's nonce.
    Hello {
        /// Base64 nonce.
        nonce: String,
    },
    /// The server's nonce and its proof.
    Challenge {
        /// Base64 nonce.
        nonce: String,
        /// Base64 HMAC.
        proof: String,
    },
    /// The client's proof.
    Proof {
        /// Base64 HMAC.
        proof: String,
    },
}

impl ClusterSecret {
    /// A secret from its bytes (surrounding whitespace, such as a file's last newline, is
    /// not part of it).
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        Ok(Self {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, trimmed)),
        })
    }

    /// A fresh base64 nonce.
    pub(crate) fn nonce() -> String {
        let mut bytes = [0u8; 32];
        // SystemRandom fails only without an OS random source; a zero nonce then still
        // needs the secret to answer, it just loses replay protection.
        let _ = SystemRandom::new().fill(&mut bytes);
        BASE64.encode(bytes)
    }

    /// The proof `role` ("client" or "server") gives for the two nonces.
    pub fn proof(&self, role: &str, client_nonce: &str, server_nonce: &str) -> String {
        let message = format!("{role}\n{client_nonce}\n{server_nonce}");
        BASE64.encode(hmac::sign(&self.key, message.as_bytes()))
    }

    /// Whether `proof` is `role`'s proof for the two nonces (checked in constant time).
    pub(crate) fn verify(
        &self,
        role: &str,
        client_nonce: &str,
        server_nonce: &str,
        proof: &str,
    ) -> bool {
        let Ok(proof) = BASE64.decode(proof) else {
            return false;
        };
        let message = format!("{role}\n{client_nonce}\n{server_nonce}");
        hmac::verify(&self.key, message.as_bytes(), &proof).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_secret_role_and_nonces() {
        let a = ClusterSecret::new(b"0123456789abcdef0123\n").unwrap();
        let b = ClusterSecret::new(b"another secret of enough bytes").unwrap();
        let (c, s) = (ClusterSecret::nonce(), ClusterSecret::nonce());
        let proof = a.proof("client", &c, &s);
        assert!(a.verify("client", &c, &s, &proof));
        assert!(!a.verify("server", &c, &s, &proof));
        assert!(!a.verify("client", &s, &c, &proof));
        assert!(!b.verify("client", &c, &s, &proof));
        assert!(ClusterSecret::new(b"short").is_err());
    }
}
