//! Who a connection is, as Kafka decides it: named listeners mapped to security protocols
//! (`listeners.rs`), TLS with rustls and mutual-TLS principals (`tls.rs`), and the SASL
//! mechanisms a client proves its identity with (`plain.rs`, `scram.rs`, `oauth.rs`). The exchange
//! itself runs on the connection before its first request (`authenticator.rs` at the top
//! level); what comes out of it is the connection's [`Principal`], which every request's
//! scope carries, and what the authorizer (`authorizer.rs`) checks every request's
//! operations against.

pub mod authorizer;
pub mod listeners;
pub mod oauth;
pub mod plain;
pub mod scram;
pub mod tls;

pub use listeners::SecurityProtocol;

/// An authenticated identity, as Kafka names it (`User:alice`, `User:ANONYMOUS`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The principal type: `User` for every authenticator Sluice has.
    pub kind: String,
    /// The name.
    pub name: String,
}

impl Principal {
    /// A user principal.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: "User".to_string(),
            name: name.into(),
        }
    }

    /// Whether this is the principal `text` names (`User:alice`).
    pub fn is(&self, text: &str) -> bool {
        text.split_once(':') == Some((self.kind.as_str(), self.name.as_str()))
    }

    /// Who a PLAINTEXT connection, or a TLS one without a client certificate, is.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// A SASL mechanism Sluice serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN (RFC 4616), checked against the listener's JAAS users.
    Plain,
    /// SCRAM-SHA-256 (RFC 7677), against credentials in the metadata log.
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
    /// OAUTHBEARER (RFC 7628): a JWT.
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism, by its SASL name.
    pub const ALL: [Mechanism; 4] = [
        Self::Plain,
        Self::ScramSha256,
        Self::ScramSha512,
        Self::OAuthBearer,
    ];

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism of a SASL name (case as Kafka sends it: upper).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM hash, for the SCRAM mechanisms.
    pub fn scram(self) -> Option<scram::ScramHash> {
        match self {
            Self::Plain | Self::OAuthBearer => None,
            Self::ScramSha256 => Some(scram::ScramHash::Sha256),
            Self::ScramSha512 => Some(scram::ScramHash::Sha512),
        }
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only: how long a
/// check of a password or key takes must say nothing about how much of it was right.
pub fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}
