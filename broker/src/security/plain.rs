//! SASL PLAIN (RFC 4616): the client sends its password, checked against the users of the
//! listener's JAAS config, as Kafka's `PlainLoginModule` lists them
//! (`user_alice="alice-secret"`). Meant for TLS listeners: on SASL_PLAINTEXT the password
//! crosses the network in the clear, as it does with Kafka.

use std::collections::BTreeMap;

/// Users and their passwords, from a JAAS config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainUsers {
    passwords: BTreeMap<String, String>,
}

impl PlainUsers {
    /// The `user_<name>="<password>"` options of a JAAS config line; other options (the
    /// broker's own `username`/`password`) are not users.
    pub fn from_jaas(jaas: &str) -> Self {
        let passwords = jaas_options(jaas)
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v)))
            .collect();
        Self { passwords }
    }

    /// The user a PLAIN message (`authzid NUL authcid NUL password`) proves, if it does.
    pub fn authenticate(&self, message: &[u8]) -> Result<String, String> {
        let mut parts = message.split(|b| *b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("Invalid SASL/PLAIN response: expected 3 tokens".into());
        };
        let user = std::str::from_utf8(user).map_err(|_| "user name is not UTF-8".to_string())?;
        if user.is_empty() {
            return Err("Authentication failed: username not specified".into());
        }
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err(
                "Authentication failed: Client requested an authorization id that is \
                        different from username"
                    .into(),
            );
        }
        let known = self.passwords.get(user);
        // Compared in constant time, so the time taken says nothing about the password.
        let matches = known.is_some_and(|p| super::equal_in_constant_time(p.as_bytes(), password));
        if matches {
            Ok(user.to_string())
        } else {
            Err("Authentication failed: Invalid username or password".into())
        }
    }
}

/// The `key="value"` options of a JAAS login module line (values unquoted; `\"` and `\\`
/// unescaped).
fn jaas_options(jaas: &str) -> Vec<(String, String)> {
    let mut options = Vec::new();
    let mut rest = jaas;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_string();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == ';')
                    .unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        if !key.is_empty() {
            options.push((key, value));
        }
        rest = tail;
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a \"quoted\" secret";"#;

    #[test]
    fn users_come_from_user_options() {
        let users = PlainUsers::from_jaas(JAAS);
        assert_eq!(
            users.authenticate(b"\0admin\0admin-secret"),
            Ok("admin".into())
        );
        assert_eq!(
            users.authenticate(b"alice\0alice\0a \"quoted\" secret"),
            Ok("alice".into())
        );
    }

    #[test]
    fn wrong_passwords_unknown_users_and_garbage_fail() {
        let users = PlainUsers::from_jaas(JAAS);
        assert!(users.authenticate(b"\0admin\0wrong").is_err());
        assert!(users.authenticate(b"\0nobody\0admin-secret").is_err());
        assert!(users.authenticate(b"\0admin").is_err());
        assert!(users.authenticate(b"bob\0admin\0admin-secret").is_err());
        // The login module's own credentials are not a user.
        assert!(users.authenticate(b"\0username\0admin").is_err());
    }
}
