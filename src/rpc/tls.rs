//! Optional TLS for our gRPC (rustls): servers present `[security] tls_cert_file` and
//! `tls_key_file`, clients trust `tls_ca_file` and check the server's name
//! (`tls_server_name`, else the host they dial). `CURVINE_SECURITY_DIR` names a mounted
//! Secret instead (`tls.crt`, `tls.key`, `ca.crt`). No files: plain HTTP/2, as before.
//! The files are read once at start; a bad one is one line naming its key.

use crate::config::ClusterConfig;
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The setting that names each file, for error lines.
const CERT_KEY: &str = "[security] tls_cert_file";
const KEY_KEY: &str = "[security] tls_key_file";
const CA_KEY: &str = "[security] tls_ca_file";

/// What a client needs to dial a TLS server: the trusted CA and the name to check.
#[derive(Debug, Clone)]
pub struct ClientTls {
    ca: Certificate,
    server_name: Option<String>,
}

impl ClientTls {
    /// The rustls client settings for dialling `host` (the name checked against the
    /// server's certificate unless `tls_server_name` fixes one).
    pub fn config_for(&self, host: &str) -> ClientTlsConfig {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        };
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .domain_name(name)
    }
}

/// What a server presents: its certificate chain and key.
#[derive(Debug, Clone)]
pub struct ServerTls {
    identity: Identity,
}

impl ServerTls {
    /// The rustls server settings.
    pub fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone())
    }
}

/// Both sides, as one process (a master or worker both serves and dials) needs them.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Set when `tls_ca_file` is: channels dial `https`.
    pub client: Option<ClientTls>,
    /// Set when `tls_cert_file` and `tls_key_file` are: servers accept only TLS.
    pub server: Option<ServerTls>,
}

impl TlsSettings {
    /// Reads the files `config` names. A certificate without its key (or the reverse),
    /// or a server certificate without a CA to dial peers with, is refused.
    pub fn from_config(config: &ClusterConfig) -> Result<TlsSettings, String> {
        let s = &config.security;
        let (cert, key, ca) = (
            s.tls_cert_file.trim(),
            s.tls_key_file.trim(),
            s.tls_ca_file.trim(),
        );
        let server = match (cert.is_empty(), key.is_empty()) {
            (true, true) => None,
            (false, false) => {
                let cert_pem = read_pem(cert, CERT_KEY, "CERTIFICATE")?;
                let key_pem = read_pem(key, KEY_KEY, "PRIVATE KEY")?;
                Some(ServerTls {
                    identity: Identity::from_pem(cert_pem, key_pem),
                })
            }
            (false, true) => {
                return Err(format!(
                    "{CERT_KEY} is set but {KEY_KEY} is not: set both (the Secret's tls.crt \
                     and tls.key) or neither"
                ))
            }
            (true, false) => {
                return Err(format!(
                    "{KEY_KEY} is set but {CERT_KEY} is not: set both (the Secret's tls.crt \
                     and tls.key) or neither"
                ))
            }
        };
        let client = if ca.is_empty() {
            None
        } else {
            let name = s.tls_server_name.trim();
            Some(ClientTls {
                ca: Certificate::from_pem(read_pem(ca, CA_KEY, "CERTIFICATE")?),
                server_name: (!name.is_empty()).then(|| name.to_string()),
            })
        };
        if server.is_some() && client.is_none() {
            return Err(format!(
                "{CERT_KEY} is set but {CA_KEY} is not: servers also dial their peers over \
                 TLS; set {CA_KEY} to the CA that signed the cluster's certificates (the \
                 Secret's ca.crt)"
            ));
        }
        Ok(TlsSettings { client, server })
    }

    /// Whether RPCs use TLS.
    pub fn enabled(&self) -> bool {
        self.client.is_some() || self.server.is_some()
    }
}

/// The PEM text of the file at `path`, checked to hold a `what` block.
fn read_pem(path: &str, key: &str, what: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read(Path::new(path)).map_err(|e| {
        format!("cannot read {path} ({key}): {e}; mount the TLS Secret there or point {key} at it")
    })?;
    let marker = format!("-----BEGIN {what}-----");
    let found = String::from_utf8_lossy(&text).lines().any(|l| {
        let l = l.trim();
        l == marker
            || (what == "PRIVATE KEY"
                && l.starts_with("-----BEGIN ")
                && l.ends_with(" PRIVATE KEY-----"))
    });
    if !found {
        return Err(format!(
            "{path} ({key}) holds no PEM {what}; give it the PEM file (\"{marker}\")"
        ));
    }
    Ok(text)
}

/// Logs once, at start, whether `role`'s RPCs are encrypted.
pub fn note(role: &str, tls: &TlsSettings) {
    if tls.enabled() {
        tracing::info!(
            role,
            serves_tls = tls.server.is_some(),
            dials_tls = tls.client.is_some(),
            "RPCs use TLS"
        );
    } else {
        tracing::info!(
            role,
            "RPCs are not encrypted: set [security] tls_cert_file, tls_key_file and tls_ca_file \
             (or CURVINE_SECURITY_DIR) to use TLS"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cert: &str, key: &str, ca: &str) -> ClusterConfig {
        let mut c = ClusterConfig::default();
        c.security.tls_cert_file = cert.into();
        c.security.tls_key_file = key.into();
        c.security.tls_ca_file = ca.into();
        c
    }

    #[test]
    fn no_files_means_plain_rpcs() {
        let tls = TlsSettings::from_config(&ClusterConfig::default()).unwrap();
        assert!(!tls.enabled());
    }

    #[test]
    fn half_a_pair_or_a_server_without_a_ca_is_one_line_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("x.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let p = pem.to_str().unwrap();
        let e = TlsSettings::from_config(&config(p, "", "")).unwrap_err();
        assert!(e.contains("tls_key_file is not"), "{e}");
        let e = TlsSettings::from_config(&config("", p, "")).unwrap_err();
        assert!(e.contains("tls_cert_file is not"), "{e}");
        let e = TlsSettings::from_config(&config(p, p, "")).unwrap_err();
        assert!(e.contains("PEM PRIVATE KEY"), "{e}");
        let e = TlsSettings::from_config(&config("", "", "/nonexistent/ca.crt")).unwrap_err();
        assert!(
            e.contains("cannot read /nonexistent/ca.crt ([security] tls_ca_file)"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        // A CA alone is a client's setting.
        let tls = TlsSettings::from_config(&config("", "", p)).unwrap();
        assert!(tls.client.is_some() && tls.server.is_none());
    }
}
