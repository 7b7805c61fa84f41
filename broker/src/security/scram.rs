//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them: the server
//! keeps only the salt, the iteration count, StoredKey and ServerKey of each user (set
//! through AlterUserScramCredentials, kept in the metadata log); the client proves it knows
//! the password without sending it, and the server proves it holds the credential.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::{digest, hmac, rand::SecureRandom};
use sluice_controller::ScramCredential;

/// Kafka's bounds on a credential's iteration count.
pub const MIN_ITERATIONS: i32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: i32 = 16384;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256
    Sha256,
    /// SCRAM-SHA-512
    Sha512,
}

impl ScramHash {
    /// Both, in Kafka's order.
    pub const ALL: [ScramHash; 2] = [Self::Sha256, Self::Sha512];

    /// The mechanism's id in the credential APIs (Kafka's `ScramMechanism`).
    pub fn id(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The hash of a credential API mechanism id.
    pub fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.id() == id)
    }

    /// The SASL mechanism name, which also keys credentials in the metadata.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    #[cfg(test)]
    fn pbkdf2(self) -> ring::pbkdf2::Algorithm {
        match self {
            Self::Sha256 => ring::pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => ring::pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// The length of a salted password (the hash's output).
    pub fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    /// The credential kept for a salted password (what AlterUserScramCredentials carries).
    pub fn credential(
        self,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.mac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: digest::digest(self.digest(), &client_key).as_ref().to_vec(),
            server_key: self.mac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// Hi(password, salt, iterations): what a client derives from the password.
    #[cfg(test)]
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        let rounds =
            std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        ring::pbkdf2::derive(self.pbkdf2(), rounds, salt, password, &mut out);
        out
    }
}

/// What the server answers to one SASL message.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// `user` proved its password; send this (the server's signature) last.
    Authenticated {
        /// The user name.
        user: String,
        /// server-final-message
        response: Vec<u8>,
    },
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    hash: ScramHash,
    state: State,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
    },
    Finished,
}

/// Why an exchange failed: the message Kafka clients print.
fn invalid(hash: ScramHash) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism {}",
        hash.mechanism_name()
    )
}

/// Decodes a saslname (`=2C` is `,`, `=3D` is `=`).
fn sasl_name(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(format!("Invalid user name '{raw}'")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `name` (`name=value`) among comma-separated attributes.
fn attribute(attrs: &str, name: char) -> Option<&str> {
    attrs.split(',').find_map(|a| {
        let mut chars = a.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &a[2..])
    })
}

impl ScramServer {
    /// A new exchange for `hash`.
    pub fn new(hash: ScramHash) -> Self {
        Self {
            hash,
            state: State::AwaitingClientFirst,
        }
    }

    /// Takes the client's next message; `credential_of` looks a user's credential up.
    pub fn step(
        &mut self,
        message: &[u8],
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, String> {
        let hash = self.hash;
        let message = std::str::from_utf8(message).map_err(|_| invalid(hash))?;
        match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingClientFirst => self.client_first(message, credential_of),
            State::AwaitingClientFinal {
                user,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
                credential,
            } => {
                let without_proof_end = message.rfind(",p=").ok_or_else(|| invalid(hash))?;
                let without_proof = &message[..without_proof_end];
                let proof = BASE64
                    .decode(&message[without_proof_end + 3..])
                    .map_err(|_| invalid(hash))?;
                let binding = attribute(without_proof, 'c').ok_or_else(|| invalid(hash))?;
                // Exactly the server's nonce, as Kafka checks it since CVE-2024-56128 (so
                // librdkafka before 2.6.1, which sends its own nonce again in front, fails
                // here as against Kafka 4).
                if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes())
                    || attribute(without_proof, 'r') != Some(nonce.as_str())
                {
                    return Err(invalid(hash));
                }
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let client_signature = self
                    .hash
                    .mac(&credential.stored_key, auth_message.as_bytes());
                if proof.len() != client_signature.len() {
                    return Err(invalid(hash));
                }
                let client_key: Vec<u8> = proof
                    .iter()
                    .zip(&client_signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                let stored_key = digest::digest(self.hash.digest(), &client_key);
                // Constant time: how long the check takes says nothing about the key.
                if !super::equal_in_constant_time(stored_key.as_ref(), &credential.stored_key) {
                    return Err(invalid(hash));
                }
                let server_signature = self
                    .hash
                    .mac(&credential.server_key, auth_message.as_bytes());
                Ok(ScramStep::Authenticated {
                    user,
                    response: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
                })
            }
            State::Finished => Err("SCRAM exchange already finished".into()),
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, String> {
        let hash = self.hash;
        // gs2-header: "n," or "y," (no channel binding), then an optional authzid, then ",".
        let (flag, rest) = message.split_once(',').ok_or_else(|| invalid(hash))?;
        if flag != "n" && flag != "y" {
            return Err("SCRAM channel binding is not supported".into());
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| invalid(hash))?;
        let gs2_header = format!("{flag},{authzid},");
        let user = sasl_name(attribute(bare, 'n').ok_or_else(|| invalid(hash))?)?;
        if let Some(authz) = authzid.strip_prefix("a=") {
            if sasl_name(authz)? != user {
                return Err(
                    "Authentication failed: Client requested an authorization id that \
                            is different from username"
                        .into(),
                );
            }
        }
        let client_nonce = attribute(bare, 'r')
            .filter(|r| !r.is_empty())
            .ok_or_else(|| invalid(hash))?;
        let credential = credential_of(&user).ok_or_else(|| invalid(hash))?;
        let mut random = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| "no randomness for a nonce".to_string())?;
        let nonce = format!("{client_nonce}{}", BASE64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::AwaitingClientFinal {
            user,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok(ScramStep::Continue(server_first.into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 5802, to drive the server through a whole exchange.
    fn client_final(
        hash: ScramHash,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let nonce = attribute(server_first, 'r').unwrap();
        let salt = BASE64
            .decode(attribute(server_first, 's').unwrap())
            .unwrap();
        let iterations: u32 = attribute(server_first, 'i').unwrap().parse().unwrap();
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let client_key = hash.mac(&salted, b"Client Key");
        let stored = digest::digest(hash.digest(), &client_key);
        let signature = hash.mac(stored.as_ref(), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_signature = hash.mac(&hash.mac(&salted, b"Server Key"), auth.as_bytes());
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature,
        )
    }

    fn exchange(hash: ScramHash, stored_password: &str, password: &str) -> Result<String, String> {
        let salt = b"0123456789abcdef";
        let credential = hash.credential(
            salt,
            &hash.salted_password(stored_password.as_bytes(), salt, 4096),
            4096,
        );
        let mut server = ScramServer::new(hash);
        let bare = "n=al=2Cice,r=clientnonce";
        let ScramStep::Continue(first) = server.step(format!("n,,{bare}").as_bytes(), |u| {
            (u == "al,ice").then(|| credential.clone())
        })?
        else {
            panic!("expected server-first");
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=clientnonce"));
        let (last, expected) = client_final(hash, password, bare, &first);
        match server.step(last.as_bytes(), |_| None)? {
            ScramStep::Authenticated { user, response } => {
                assert_eq!(
                    response,
                    format!("v={}", BASE64.encode(expected)).into_bytes()
                );
                Ok(user)
            }
            ScramStep::Continue(_) => panic!("expected the end"),
        }
    }

    #[test]
    fn the_right_password_authenticates_with_both_hashes() {
        assert_eq!(exchange(ScramHash::Sha256, "pw", "pw"), Ok("al,ice".into()));
        assert_eq!(exchange(ScramHash::Sha512, "pw", "pw"), Ok("al,ice".into()));
    }

    #[test]
    fn a_wrong_password_or_unknown_user_fails() {
        assert!(exchange(ScramHash::Sha512, "pw", "other").is_err());
        let mut server = ScramServer::new(ScramHash::Sha256);
        assert!(server.step(b"n,,n=bob,r=x", |_| None).is_err());
        let mut server = ScramServer::new(ScramHash::Sha256);
        assert!(server.step(b"p=tls-unique,,n=bob,r=x", |_| None).is_err());
    }
}
