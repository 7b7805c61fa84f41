//! TLS for SSL and SASL_SSL listeners (rustls, ring): keys, certificates and CAs as PEM, in
//! Kafka's `ssl.keystore.type=PEM` style (files or inline), `ssl.client.auth`, and the
//! principal of a client certificate under `ssl.principal.mapping.rules`. A keystore file
//! that changes on disk is read again at the next handshake: certificates rotate without a
//! restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Principal;
use crate::config::BrokerConfig;

/// rustls on ring, which builds with a C compiler alone (aws-lc-rs, whose provider also has
/// the post-quantum key exchange rustls now prefers, needs cmake and more on a build host).
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads PEM certificates (all of them) from `pem`.
fn certificates(pem: &[u8], what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("{what}: no PEM certificate");
    }
    Ok(certs)
}

/// Where a listener's key and certificate chain come from.
#[derive(Debug, Clone)]
enum KeystoreSource {
    /// One PEM file holding the private key and the chain (`ssl.keystore.location`).
    File(PathBuf),
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain`.
    Inline { key: String, chain: String },
}

impl KeystoreSource {
    fn load(&self) -> anyhow::Result<CertifiedKey> {
        let (key_pem, chain_pem) = match self {
            Self::File(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("ssl.keystore.location {}: {e}", path.display())
                })?;
                (pem.clone(), pem)
            }
            Self::Inline { key, chain } => (key.clone().into_bytes(), chain.clone().into_bytes()),
        };
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            anyhow::anyhow!(
                "keystore: no unencrypted PEM private key ({e}); ssl.key.password is not supported"
            )
        })?;
        let chain = certificates(&chain_pem, "keystore")?;
        let provider = crypto_provider();
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| anyhow::anyhow!("keystore: {e}"))
    }

    fn modified(&self) -> Option<SystemTime> {
        match self {
            Self::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
            Self::Inline { .. } => None,
        }
    }
}

/// The listener's certificate, read again when its file changes.
#[derive(Debug)]
struct ReloadingKeystore {
    source: KeystoreSource,
    current: Mutex<(Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for ReloadingKeystore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let modified = self.source.modified();
        if modified.is_some() && modified != current.0 {
            match self.source.load() {
                Ok(key) => {
                    tracing::info!("TLS keystore changed on disk: new certificate in use");
                    *current = (modified, Arc::new(key));
                }
                // Half-written files are common during a rotation: keep the old one.
                Err(e) => tracing::warn!(error = %e, "TLS keystore changed but does not load"),
            }
        }
        Some(current.1.clone())
    }
}

/// `ssl.client.auth`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for, not required.
    Requested,
    /// Required: a client without one is refused.
    Required,
}

/// A listener's TLS: the acceptor and how principals are named.
#[derive(Clone)]
pub struct TlsListener {
    /// Accepts TLS connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
    rules: Arc<PrincipalRules>,
}

impl TlsListener {
    /// The TLS settings of `listener` (its `listener.name.<l>.ssl.*` configs, else the
    /// broker's `ssl.*`).
    pub fn from_config(config: &BrokerConfig, listener: &str) -> anyhow::Result<Self> {
        let get = |name: &str| config.listener_config(listener, name);
        for ty in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(t) = get(ty).filter(|t| !t.eq_ignore_ascii_case("PEM")) {
                anyhow::bail!("{ty}={t}: Sluice reads PEM only");
            }
        }
        let source = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.key"),
            get("ssl.keystore.certificate.chain"),
        ) {
            (Some(path), _, _) => KeystoreSource::File(PathBuf::from(path)),
            (None, Some(key), Some(chain)) => KeystoreSource::Inline { key, chain },
            _ => anyhow::bail!(
                "listener {listener} uses TLS but has no ssl.keystore.location (or \
                 ssl.keystore.key and ssl.keystore.certificate.chain)"
            ),
        };
        let key = source.load()?;
        let keystore = Arc::new(ReloadingKeystore {
            current: Mutex::new((source.modified(), Arc::new(key))),
            source,
        });
        let client_auth = match get("ssl.client.auth").as_deref().unwrap_or("none") {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => anyhow::bail!("ssl.client.auth={other}: none, requested or required"),
        };
        let provider = Arc::new(crypto_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
        let builder = if client_auth == ClientAuth::None {
            builder.with_no_client_auth()
        } else {
            let trusted = match (get("ssl.truststore.location"), get("ssl.truststore.certificates")) {
                (Some(path), _) => std::fs::read(&path)
                    .map_err(|e| anyhow::anyhow!("ssl.truststore.location {path}: {e}"))?,
                (None, Some(pem)) => pem.into_bytes(),
                (None, None) => anyhow::bail!(
                    "ssl.client.auth asks for client certificates but no ssl.truststore.location is set"
                ),
            };
            let mut roots = RootCertStore::empty();
            for ca in certificates(&trusted, "truststore")? {
                roots
                    .add(ca)
                    .map_err(|e| anyhow::anyhow!("truststore: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| anyhow::anyhow!("truststore: {e}"))?,
            )
        };
        let server = builder.with_cert_resolver(keystore);
        let rules = PrincipalRules::parse(
            &get("ssl.principal.mapping.rules").unwrap_or_else(|| "DEFAULT".into()),
        )?;
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            rules: Arc::new(rules),
        })
    }

    /// The principal of a connection that presented `certificates` (ANONYMOUS without).
    pub fn principal(&self, certificates: Option<&[CertificateDer<'_>]>) -> Principal {
        let Some(leaf) = certificates.and_then(|c| c.first()) else {
            return Principal::anonymous();
        };
        match distinguished_name(leaf) {
            Some(dn) => Principal::user(self.rules.apply(&dn)),
            None => Principal::anonymous(),
        }
    }
}

/// A certificate's subject as Java's `X500Principal.getName()` writes it (RFC 2253: the
/// most specific part first, `CN=client1,OU=test,O=example`), which is what Kafka names
/// its principal after.
fn distinguished_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let mut parts = Vec::new();
    let rdns: Vec<_> = parsed.subject().iter().collect();
    for rdn in rdns.into_iter().rev() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let oid = a.attr_type().to_id_string();
                let key = match oid.as_str() {
                    "2.5.4.3" => "CN",
                    "2.5.4.11" => "OU",
                    "2.5.4.10" => "O",
                    "2.5.4.7" => "L",
                    "2.5.4.8" => "ST",
                    "2.5.4.6" => "C",
                    "2.5.4.9" => "STREET",
                    "0.9.2342.19200300.100.1.25" => "DC",
                    "0.9.2342.19200300.100.1.1" => "UID",
                    other => other,
                }
                .to_string();
                let value = a.as_str().unwrap_or_default();
                format!("{key}={}", escape_rdn_value(value))
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    Some(parts.join(","))
}

/// RFC 2253 escaping of an attribute value.
fn escape_rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == ' ' || c == '#');
        let trailing = i + 1 == value.chars().count() && c == ' ';
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || leading || trailing {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries tried in order,
/// `DEFAULT` keeping the whole name.
#[derive(Debug)]
struct PrincipalRules {
    rules: Vec<Rule>,
}

#[derive(Debug)]
enum Rule {
    Default,
    Replace {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl PrincipalRules {
    fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut rules = Vec::new();
        // Rules may hold commas in their patterns: split at ",RULE:" and ",DEFAULT" only.
        let mut rest = spec.trim();
        while !rest.is_empty() {
            let next = [",RULE:", ",DEFAULT"]
                .iter()
                .filter_map(|s| rest[1..].find(s).map(|i| i + 1))
                .min()
                .unwrap_or(rest.len());
            let rule = rest[..next].trim();
            rest = rest[next..].trim_start_matches(',').trim();
            if rule == "DEFAULT" {
                rules.push(Rule::Default);
                continue;
            }
            let body = rule
                .strip_prefix("RULE:")
                .ok_or_else(|| anyhow::anyhow!("ssl.principal.mapping.rules: '{rule}'"))?;
            let pieces: Vec<&str> = body.split('/').collect();
            let (pattern, replacement, flags) = match pieces.as_slice() {
                [p, r, f] => (*p, *r, *f),
                _ => anyhow::bail!(
                    "ssl.principal.mapping.rules: '{rule}' is not RULE:pattern/replacement/[LU]"
                ),
            };
            rules.push(Rule::Replace {
                pattern: regex::Regex::new(pattern)
                    .map_err(|e| anyhow::anyhow!("ssl.principal.mapping.rules: {e}"))?,
                replacement: replacement.to_string(),
                case: flags.chars().next(),
            });
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(Self { rules })
    }

    /// The principal name for distinguished name `dn`: the first rule that matches.
    fn apply(&self, dn: &str) -> String {
        for rule in &self.rules {
            match rule {
                Rule::Default => return dn.to_string(),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if let Some(caps) = pattern
                        .captures(dn)
                        .filter(|c| c.get(0).is_some_and(|m| m.as_str() == dn))
                    {
                        let mut name = String::new();
                        caps.expand(replacement, &mut name);
                        return match case {
                            Some('L') => name.to_lowercase(),
                            Some('U') => name.to_uppercase(),
                            _ => name,
                        };
                    }
                }
            }
        }
        dn.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules_take_the_first_match_and_default_keeps_the_name() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(rules.apply("CN=svc,OU=ServiceUsers,O=x"), "svc");
        assert_eq!(rules.apply("CN=Bob,OU=Sales,O=x"), "bob@sales");
        assert_eq!(rules.apply("CN=plain"), "CN=plain");
    }

    #[test]
    fn rdn_values_are_escaped() {
        assert_eq!(escape_rdn_value("a,b"), "a\\,b");
        assert_eq!(escape_rdn_value(" x "), "\\ x\\ ");
    }
}
