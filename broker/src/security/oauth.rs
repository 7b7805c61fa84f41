//! SASL OAUTHBEARER (RFC 7628, KIP-255/KIP-768) as Kafka's broker validates it. The client
//! sends `n,,\x01auth=Bearer <JWT>\x01\x01`; the principal is the token's `sub` claim
//! (`sasl.oauthbearer.sub.claim.name`).
//!
//! - With `sasl.oauthbearer.jwks.endpoint.url` (a `file://` JWKS here; read again when it
//!   changes) tokens must be signed by one of its keys, unexpired (with
//!   `sasl.oauthbearer.clock.skew.seconds`), and match `sasl.oauthbearer.expected.issuer`
//!   and `sasl.oauthbearer.expected.audience` when those are set: Kafka's
//!   `OAuthBearerValidatorCallbackHandler`.
//! - Without it, Kafka's default: the unsecured validator, which takes unsigned
//!   (`alg: none`) tokens and checks only their expiry. For development only, as in Kafka;
//!   the broker warns at start.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use crate::config::BrokerConfig;

/// How tokens are checked.
enum Keys {
    /// Kafka's unsecured validator: no signature.
    Unsecured,
    /// Signed by a key of this JWKS file.
    Jwks {
        path: PathBuf,
        loaded: Mutex<(Option<SystemTime>, JwkSet)>,
    },
}

/// What a valid token says.
#[derive(Debug, PartialEq, Eq)]
pub struct ValidToken {
    /// Its principal claim.
    pub subject: String,
    /// Its `exp` claim, in seconds since the epoch.
    pub expires_s: Option<u64>,
}

/// A listener's OAUTHBEARER validator.
pub struct OAuthValidator {
    keys: Keys,
    sub_claim: String,
    skew_seconds: u64,
    issuer: Option<String>,
    audience: Vec<String>,
}

/// The bearer token of a client's first OAUTHBEARER message.
pub fn bearer_token(message: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8".to_string())?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or_else(|| "not an OAUTHBEARER client message".to_string())?;
    if !gs2.starts_with("n,") && !gs2.starts_with("y,") {
        return Err("OAUTHBEARER channel binding is not supported".into());
    }
    rest.split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "no bearer token in the message".to_string())
}

fn read_jwks(path: &std::path::Path) -> anyhow::Result<JwkSet> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("JWKS {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("JWKS {}: {e}", path.display()))
}

impl OAuthValidator {
    /// The validator `listener`'s configs describe.
    pub fn from_config(config: &BrokerConfig, listener: &str) -> anyhow::Result<Self> {
        let get = |name: &str| config.listener_config(listener, name);
        let keys = match get("sasl.oauthbearer.jwks.endpoint.url") {
            Some(url) => {
                let path = url.strip_prefix("file://").ok_or_else(|| {
                    anyhow::anyhow!(
                        "sasl.oauthbearer.jwks.endpoint.url={url}: Sluice reads file:// JWKS only"
                    )
                })?;
                let path = PathBuf::from(path);
                let set = read_jwks(&path)?;
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                Keys::Jwks {
                    path,
                    loaded: Mutex::new((modified, set)),
                }
            }
            None => Keys::Unsecured,
        };
        Ok(Self {
            keys,
            sub_claim: get("sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
            skew_seconds: get("sasl.oauthbearer.clock.skew.seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(30),
            issuer: get("sasl.oauthbearer.expected.issuer"),
            audience: get("sasl.oauthbearer.expected.audience")
                .map(|a| a.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
        })
    }

    /// Whether tokens go unverified (Kafka's unsecured validator).
    pub fn is_unsecured(&self) -> bool {
        matches!(self.keys, Keys::Unsecured)
    }

    /// The principal name a token proves, at `now` (seconds since the epoch).
    pub fn validate(&self, token: &str, now: u64) -> Result<ValidToken, String> {
        let claims = match &self.keys {
            Keys::Unsecured => self.unsecured_claims(token, now)?,
            Keys::Jwks { path, loaded } => self.signed_claims(token, path, loaded)?,
        };
        let subject = claims
            .get(&self.sub_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("the token has no '{}' claim", self.sub_claim))?;
        let expires_s = claims.get("exp").and_then(Value::as_f64).map(|e| e as u64);
        Ok(ValidToken { subject, expires_s })
    }

    fn unsecured_claims(&self, token: &str, now: u64) -> Result<Value, String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err("a JWT has three parts".into());
        };
        let decode = |part: &str| -> Result<Value, String> {
            let bytes = BASE64URL
                .decode(part.trim_end_matches('='))
                .map_err(|_| "a JWT part is not base64url".to_string())?;
            serde_json::from_slice(&bytes).map_err(|_| "a JWT part is not JSON".to_string())
        };
        let header = decode(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("none") || !signature.is_empty() {
            return Err("the unsecured validator takes unsigned (alg none) tokens only".into());
        }
        let claims = decode(payload)?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or_else(|| "the token has no exp claim".to_string())?;
        if exp + self.skew_seconds as f64 <= now as f64 {
            return Err("the token has expired".into());
        }
        Ok(claims)
    }

    fn signed_claims(
        &self,
        token: &str,
        path: &std::path::Path,
        loaded: &Mutex<(Option<SystemTime>, JwkSet)>,
    ) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let mut loaded = loaded.lock().unwrap_or_else(|p| p.into_inner());
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != loaded.0 {
            match read_jwks(path) {
                Ok(set) => *loaded = (modified, set),
                Err(e) => tracing::warn!(error = %e, "JWKS changed but does not load"),
            }
        }
        let jwk = match &header.kid {
            Some(kid) => loaded.1.find(kid),
            None if loaded.1.keys.len() == 1 => loaded.1.keys.first(),
            None => None,
        }
        .ok_or_else(|| "no key of the JWKS signed this token".to_string())?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.skew_seconds;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
        }
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(claims: &str) -> String {
        format!(
            "{}.{}.",
            BASE64URL.encode(r#"{"alg":"none"}"#),
            BASE64URL.encode(claims)
        )
    }

    #[test]
    fn the_bearer_token_is_found_in_the_client_message() {
        let m = b"n,,\x01host=h\x01auth=Bearer abc.def.\x01\x01";
        assert_eq!(bearer_token(m), Ok("abc.def."));
        assert!(bearer_token(b"n,,\x01\x01").is_err());
    }

    #[test]
    fn the_unsecured_validator_checks_expiry_and_the_subject() {
        let v = OAuthValidator::from_config(&BrokerConfig::parse(&[]).unwrap(), "SASL_PLAINTEXT")
            .unwrap();
        assert!(v.is_unsecured());
        assert_eq!(
            v.validate(&unsigned(r#"{"sub":"admin","exp":2000}"#), 1000),
            Ok(ValidToken {
                subject: "admin".into(),
                expires_s: Some(2000)
            })
        );
        assert!(v
            .validate(&unsigned(r#"{"sub":"admin","exp":900}"#), 1000)
            .is_err());
        assert!(v.validate(&unsigned(r#"{"exp":2000}"#), 1000).is_err());
        let signed = format!(
            "{}.{}.sig",
            BASE64URL.encode(r#"{"alg":"RS256"}"#),
            BASE64URL.encode("{}")
        );
        assert!(v.validate(&signed, 1000).is_err());
    }
}
