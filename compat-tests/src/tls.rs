//! Throwaway certificates for TLS tests, made with the `openssl` CLI (setup.sh installs it):
//! a CA, a server certificate for `127.0.0.1` / `localhost` and a client certificate
//! (`CN=client1,OU=test`), all with unencrypted PKCS#8 EC P-256 keys, valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::clients::run_ok;

/// The subject of the client certificate, as Kafka prints it (RFC 2253 order).
pub const CLIENT_DN: &str = "CN=client1,OU=test";

/// A CA and the server and client certificates it signed, as PEM files in a temp dir that
/// lives as long as this value.
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// Generates a fresh CA, server and client certificate (about a tenth of a second).
    pub fn generate() -> Self {
        let certs = Certs {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let d = certs.dir.path();
        let ca_ext = "basicConstraints=critical,CA:TRUE\n\
                      keyUsage=critical,keyCertSign,cRLSign\n\
                      subjectKeyIdentifier=hash\n";
        let server_ext = "basicConstraints=critical,CA:FALSE\n\
                          keyUsage=critical,digitalSignature\n\
                          extendedKeyUsage=serverAuth\n\
                          subjectAltName=IP:127.0.0.1,DNS:localhost\n\
                          authorityKeyIdentifier=keyid\n";
        let client_ext = "basicConstraints=critical,CA:FALSE\n\
                          keyUsage=critical,digitalSignature\n\
                          extendedKeyUsage=clientAuth\n\
                          authorityKeyIdentifier=keyid\n";
        // The CA signs itself; the others are signed by it.
        issue(d, ("ca", 1), "/CN=sluice-test-ca", ca_ext, None);
        issue(d, ("server", 2), "/CN=localhost", server_ext, Some("ca"));
        // openssl's subject order is outermost first: RFC 2253 prints it reversed.
        issue(
            d,
            ("client", 3),
            "/OU=test/CN=client1",
            client_ext,
            Some("ca"),
        );
        for (name, parts) in [
            ("server-keystore.pem", ["server.key", "server.pem"]),
            ("client-keystore.pem", ["client.key", "client.pem"]),
        ] {
            let text: String = parts
                .iter()
                .map(|p| std::fs::read_to_string(d.join(p)).expect("read pem"))
                .collect();
            std::fs::write(d.join(name), text).expect("write keystore");
        }
        certs
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (PEM): the trust store of clients and of the broker.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// The server's private key followed by its certificate: the broker's
    /// `ssl.keystore.location` with `ssl.keystore.type=PEM`.
    pub fn server_keystore(&self) -> PathBuf {
        self.file("server-keystore.pem")
    }

    /// The client certificate alone (librdkafka `ssl.certificate.location`, kafka-python
    /// `ssl_certfile`, Go `tls.LoadX509KeyPair`).
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client's private key alone, PKCS#8 (librdkafka `ssl.key.location`).
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The client's key followed by its certificate (a Java client's PEM
    /// `ssl.keystore.location`).
    pub fn client_keystore(&self) -> PathBuf {
        self.file("client-keystore.pem")
    }

    /// The `--config` flags giving a node this server certificate and this CA as its trust
    /// store, with `ssl.client.auth=<client_auth>`.
    pub fn broker_flags(&self, client_auth: &str) -> Vec<String> {
        [
            "ssl.keystore.type=PEM".to_string(),
            format!("ssl.keystore.location={}", self.server_keystore().display()),
            "ssl.truststore.type=PEM".to_string(),
            format!("ssl.truststore.location={}", self.ca().display()),
            format!("ssl.client.auth={client_auth}"),
        ]
        .into_iter()
        .flat_map(|c| ["--config".to_string(), c])
        .collect()
    }
}

/// Writes `<name>.key` (PKCS#8) and `<name>.pem`, a certificate with serial number `serial`
/// for `subject` with the extensions `ext` (an openssl extension file's lines), signed by
/// `<issuer>.key` or by itself.
fn issue(dir: &Path, (name, serial): (&str, u32), subject: &str, ext: &str, issuer: Option<&str>) {
    const LIMIT: Duration = Duration::from_secs(30);
    let openssl = || {
        let mut c = Command::new("openssl");
        c.current_dir(dir);
        c
    };
    let (key, csr, pem, ext_file) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&ext_file), ext).expect("write ext file");
    // genpkey writes PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted.
    run_ok(
        openssl()
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-out", &key]),
        LIMIT,
        None,
    );
    run_ok(
        openssl().args(["req", "-new", "-key", &key, "-subj", subject, "-out", &csr]),
        LIMIT,
        None,
    );
    let mut sign = openssl();
    sign.args(["x509", "-req", "-in", &csr, "-days", "2", "-sha256"])
        .args(["-set_serial", &serial.to_string()])
        .args(["-extfile", &ext_file, "-out", &pem]);
    match issuer {
        None => sign.args(["-signkey", &key]),
        Some(ca) => sign.args(["-CA", &format!("{ca}.pem"), "-CAkey", &format!("{ca}.key")]),
    };
    run_ok(&mut sign, LIMIT, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_verify_against_the_ca() {
        let certs = Certs::generate();
        for (cert, purpose) in [
            (certs.file("server.pem"), "sslserver"),
            (certs.client_cert(), "sslclient"),
        ] {
            let out = run_ok(
                Command::new("openssl")
                    .args(["verify", "-purpose", purpose, "-CAfile"])
                    .arg(certs.ca())
                    .arg(&cert),
                Duration::from_secs(30),
                None,
            );
            assert!(out.contains(": OK"), "{out}");
        }
        let key = std::fs::read_to_string(certs.client_key()).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        let keystore = std::fs::read_to_string(certs.server_keystore()).unwrap();
        assert!(
            keystore.starts_with("-----BEGIN PRIVATE KEY-----")
                && keystore.contains("-----BEGIN CERTIFICATE-----"),
            "{keystore}"
        );
        let subject = run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
                .arg(certs.client_cert()),
            Duration::from_secs(30),
            None,
        );
        assert_eq!(subject.trim(), format!("subject={CLIENT_DN}"));
    }
}
