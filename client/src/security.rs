//! How a client connection authenticates, from a Kafka client properties file (what Kafka's
//! tools take as `--command-config`): `security.protocol`, `sasl.mechanism`,
//! `sasl.jaas.config` (its `username` and `password`), `ssl.truststore.location` (PEM).
//! The connection: TCP, then TLS (SSL, SASL_SSL), then SaslHandshake and SaslAuthenticate
//! (PLAIN, or SCRAM-SHA-256/512 per RFC 5802).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::kafka::{KafkaClient, Stream};

/// A client's security settings.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// TLS with these trusted CAs (PEM), when set.
    pub tls_ca: Option<Vec<u8>>,
    /// SASL with this mechanism, user and password, when set.
    pub sasl: Option<(String, String, String)>,
}

/// `key=value` lines of a Java properties file (`#` and `!` comments; no line
/// continuations, which client configs do not need).
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The value of `key="value"` in a JAAS line.
fn jaas_option(jaas: &str, key: &str) -> Option<String> {
    let start = jaas.find(&format!("{key}=\""))? + key.len() + 2;
    let end = jaas[start..].find('"')? + start;
    Some(jaas[start..end].to_string())
}

impl ClientSecurity {
    /// Reads a client properties file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_properties(&properties(&text))
    }

    fn from_properties(p: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let protocol = p
            .get("security.protocol")
            .map_or("PLAINTEXT", String::as_str)
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => bail!("security.protocol={other} is not a Kafka security protocol"),
        };
        let tls_ca = if tls {
            let path = p
                .get("ssl.truststore.location")
                .ok_or_else(|| anyhow!("TLS needs ssl.truststore.location (a PEM file)"))?;
            Some(std::fs::read(path).with_context(|| format!("cannot read {path}"))?)
        } else {
            None
        };
        let sasl = if sasl {
            let mechanism = p
                .get("sasl.mechanism")
                .map_or("GSSAPI", String::as_str)
                .to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                bail!("sasl.mechanism={mechanism}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
            }
            let jaas = p
                .get("sasl.jaas.config")
                .ok_or_else(|| anyhow!("SASL needs sasl.jaas.config"))?;
            let user = jaas_option(jaas, "username")
                .ok_or_else(|| anyhow!("sasl.jaas.config has no username=\"...\""))?;
            let password = jaas_option(jaas, "password")
                .ok_or_else(|| anyhow!("sasl.jaas.config has no password=\"...\""))?;
            Some((mechanism, user, password))
        } else {
            None
        };
        Ok(Self { tls_ca, sasl })
    }

    /// Wraps a connected TCP stream in TLS if asked for; `host` is the name checked against
    /// the server's certificate.
    pub(crate) async fn secure(
        &self,
        tcp: tokio::net::TcpStream,
        host: &str,
    ) -> anyhow::Result<Stream> {
        let Some(ca) = &self.tls_ca else {
            return Ok(Box::new(tcp));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            roots
                .add(cert.context("truststore")?)
                .context("truststore")?;
        }
        #[allow(deprecated)] // ring: builds with a C compiler alone (see the broker's tls.rs)
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string()).context("server name")?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        Ok(Box::new(tls))
    }

    /// Runs the SASL exchange on a new connection, if asked for.
    pub(crate) async fn authenticate(&self, client: &mut KafkaClient) -> anyhow::Result<()> {
        let Some((mechanism, user, password)) = &self.sasl else {
            return Ok(());
        };
        let handshake = client
            .send(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.clone())),
                1,
            )
            .await?;
        if handshake.error_code != 0 {
            bail!(
                "the broker does not take SASL mechanism {mechanism} (error {})",
                handshake.error_code
            );
        }
        let step =
            |bytes: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        if mechanism == "PLAIN" {
            let message = format!("\0{user}\0{password}").into_bytes();
            let answer = client.send(&step(message), 1).await?;
            return check(&answer);
        }
        let hash = if mechanism == "SCRAM-SHA-512" {
            (&digest::SHA512, hmac::HMAC_SHA512)
        } else {
            (&digest::SHA256, hmac::HMAC_SHA256)
        };
        let nonce = random_bytes::<24>()?;
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={name},r={}", BASE64.encode(nonce));
        let answer = client
            .send(&step(format!("n,,{first_bare}").into_bytes()), 1)
            .await?;
        check(&answer)?;
        let server_first = String::from_utf8(answer.auth_bytes.to_vec())?;
        let attr = |name: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(name))
                .ok_or_else(|| anyhow!("server-first-message has no {name}"))
        };
        let combined = attr("r=")?;
        // RFC 5802: the server's nonce extends ours; anything else is not our exchange.
        let client_nonce = &first_bare[first_bare.find(",r=").map_or(0, |i| i + 3)..];
        if !combined.starts_with(client_nonce) || combined.len() == client_nonce.len() {
            bail!("the broker's SCRAM nonce does not extend the client's");
        }
        let salt = BASE64.decode(attr("s=")?)?;
        let iterations: u32 = attr("i=")?.parse()?;
        let salted = salted_password(mechanism, password, &salt, iterations)?;
        let mac = |key: &[u8], data: &[u8]| hmac::sign(&hmac::Key::new(hash.1, key), data);
        let client_key = mac(&salted, b"Client Key");
        let stored_key = digest::digest(hash.0, client_key.as_ref());
        let without_proof = format!("c={},r={combined}", BASE64.encode("n,,"));
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let last = format!("{without_proof},p={}", BASE64.encode(proof));
        let answer = client.send(&step(last.into_bytes()), 1).await?;
        check(&answer)?;
        // The server proves it holds the credential too.
        let server_key = mac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            BASE64.encode(mac(server_key.as_ref(), auth_message.as_bytes()))
        );
        if answer.auth_bytes.as_ref() != expected.as_bytes() {
            bail!("the broker's SCRAM signature is wrong: it does not hold this user's credential");
        }
        Ok(())
    }
}

/// Hi(password, salt, iterations) of SCRAM-SHA-256 or SCRAM-SHA-512: what a SCRAM
/// credential is made from (AlterUserScramCredentials carries it, never the password).
pub fn salted_password(
    mechanism: &str,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> anyhow::Result<Vec<u8>> {
    let (algorithm, len) = match mechanism {
        "SCRAM-SHA-256" => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
        "SCRAM-SHA-512" => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
        other => bail!("{other} is not a SCRAM mechanism"),
    };
    let rounds = std::num::NonZeroU32::new(iterations).ok_or_else(|| anyhow!("0 iterations"))?;
    let mut out = vec![0u8; len];
    pbkdf2::derive(algorithm, rounds, salt, password.as_bytes(), &mut out);
    Ok(out)
}

/// Fresh random bytes (salts, nonces).
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow!("no randomness"))?;
    Ok(bytes)
}

fn check(answer: &kafka_protocol::messages::SaslAuthenticateResponse) -> anyhow::Result<()> {
    if answer.error_code == 0 {
        return Ok(());
    }
    bail!(
        "authentication failed: {}",
        answer.error_message.as_ref().map_or("", |m| m.as_str())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_properties_give_the_protocol_mechanism_and_credentials() {
        let p = properties(
            "# admin\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"admin\" password=\"s3cret\";\n",
        );
        let s = ClientSecurity::from_properties(&p).unwrap();
        assert!(s.tls_ca.is_none());
        assert_eq!(
            s.sasl,
            Some(("SCRAM-SHA-512".into(), "admin".into(), "s3cret".into()))
        );
        let p = properties("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n");
        assert!(ClientSecurity::from_properties(&p).is_err());
    }
}
