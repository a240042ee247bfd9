//! TLS for the API, both ends, on rustls with the aws-lc-rs provider
//! (named, never the process default, since two providers are linked).
//!
//! The server's side: a certificate chain and its key read from PEM files
//! ([`TlsFiles::load`]), refused with the file named and what is wrong
//! (no certificate, no key, a key that is not the certificate's, a
//! certificate whose fields cannot be read for the topology); the
//! listener reloads them when they change (`api::http`). The client's
//! side: how the controller's certificate is trusted ([`Trust`]): the
//! system's roots, a CA file (only that CA, and the name checked), or a
//! pinned SHA-256 of the certificate itself (for a self-signed one; the
//! chain and the name are then not asked, the pin is the whole check).
//!
//! [`Edge`] is the listener as the topology draws it: plain or TLS, and the
//! certificate in force (its names and when it expires), kept current by
//! the reloader.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// What a TLS file or setting could not be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct TlsError {
    /// The file or the setting (`--tls-cert /etc/oshal/cert.pem`,
    /// `pin_sha256`).
    pub what: String,
    pub why: String,
}

fn err(what: impl Into<String>, why: impl Into<String>) -> TlsError {
    TlsError {
        what: what.into(),
        why: why.into(),
    }
}

/// The provider every config here is built on.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate's SHA-256, as `AB:CD:…` (what `openssl x509 -fingerprint
/// -sha256` prints).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The server's certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A server configuration loaded from its files, and the leaf
/// certificate's fingerprint.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: String,
    /// The leaf certificate as the topology shows it.
    pub cert: CertView,
}

/// A served certificate: who it names and when it is valid.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, specta::Type, utoipa::ToSchema,
)]
pub struct CertView {
    /// Its subject (`CN=controller.example`).
    pub subject: String,
    /// Its subject alternative names (DNS names and IP addresses).
    pub names: Vec<String>,
    #[specta(type = specta_typescript::Number)]
    pub not_before_ms: i64,
    #[specta(type = specta_typescript::Number)]
    pub not_after_ms: i64,
    /// Its SHA-256, as a pin takes it.
    pub sha256: String,
    /// When this process loaded it.
    #[specta(type = specta_typescript::Number)]
    pub loaded_ms: i64,
}

impl CertView {
    /// Reads a leaf certificate (DER).
    pub fn of(der: &[u8]) -> Result<Self, String> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push((*d).to_owned()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => names.push(
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                                .to_string(),
                        ),
                        16 => names.push(
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                                .to_string(),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let validity = cert.validity();
        use oshal_kernel::clock::Clock;
        Ok(Self {
            subject: cert.subject().to_string(),
            names,
            not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
            not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
            sha256: fingerprint(der),
            loaded_ms: oshal_kernel::clock::SystemClock.now_ms(),
        })
    }
}

/// The API's listener as the topology draws it.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, specta::Type, utoipa::ToSchema,
)]
pub struct EdgeView {
    /// The address it listens on.
    pub listen: String,
    /// The certificate in force; `None`: plain HTTP.
    pub tls: Option<CertView>,
    /// Why the last renewal on disk was not loaded (the certificate in
    /// force stays).
    pub reload_refused: Option<String>,
}

/// The listener's view, shared by the server (which keeps it current)
/// and whoever draws it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Edge(Arc<std::sync::RwLock<Option<EdgeView>>>);

impl Edge {
    /// The listener is up on `listen`, with the certificate of `tls`.
    pub fn listening(&self, listen: String, tls: Option<&Loaded>) {
        *self.write() = Some(EdgeView {
            listen,
            tls: tls.map(|l| l.cert.clone()),
            reload_refused: None,
        });
    }

    /// A renewal was loaded.
    pub fn reloaded(&self, loaded: &Loaded) {
        if let Some(v) = self.write().as_mut() {
            v.tls = Some(loaded.cert.clone());
            v.reload_refused = None;
        }
    }

    /// A renewal on disk could not be loaded.
    pub fn refused(&self, why: String) {
        if let Some(v) = self.write().as_mut() {
            v.reload_refused = Some(why);
        }
    }

    /// The listener now (`None`: not listening, as in the desktop app).
    pub fn view(&self) -> Option<EdgeView> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<EdgeView>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl TlsFiles {
    /// Reads and checks both files: at least one certificate, one key, and
    /// the key the certificate's.
    pub fn load(&self) -> Result<Loaded, TlsError> {
        let cert_at = format!("--tls-cert {}", self.cert.display());
        let key_at = format!("--tls-key {}", self.key.display());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| err(&cert_at, format!("cannot read it ({e})")))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(&cert_at, format!("not PEM certificates ({e})")))?;
        let Some(leaf) = certs.first() else {
            return Err(err(&cert_at, "holds no CERTIFICATE block"));
        };
        let fingerprint = fingerprint(leaf);
        let cert = CertView::of(leaf).map_err(|why| err(&cert_at, why))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| err(&key_at, format!("no private key read ({e})")))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS", e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| err(&key_at, format!("not usable with {cert_at} ({e})")))?;
        Ok(Loaded {
            config: Arc::new(config),
            fingerprint,
            cert,
        })
    }

    /// When either file last changed (`None`: one cannot be read).
    pub fn changed_at(&self) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
        let at = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((at(&self.cert)?, at(&self.key)?))
    }
}

/// How a client trusts the controller's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trust {
    /// The system's roots (a certificate from a public CA).
    #[default]
    System,
    /// Only these CA certificates, and the controller's name checked.
    Ca(Vec<CertificateDer<'static>>),
    /// The controller's own certificate, by its SHA-256.
    Pin([u8; 32]),
}

impl Trust {
    /// Only the CAs in a PEM file.
    pub fn ca_file(path: &Path) -> Result<Trust, TlsError> {
        let at = format!("CA file {}", path.display());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(&at, format!("cannot read it ({e})")))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(&at, format!("not PEM certificates ({e})")))?;
        if certs.is_empty() {
            return Err(err(&at, "holds no CERTIFICATE block"));
        }
        Ok(Trust::Ca(certs))
    }

    /// A pin written as 64 hex digits, with or without `:` between bytes.
    pub fn pin(text: &str) -> Result<Trust, TlsError> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bad = || {
            err(
                "pin_sha256",
                format!(
                    "a {}-character value that is not a SHA-256 (64 hex digits, `:` allowed between bytes)",
                    text.len()
                ),
            )
        };
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut pin = [0u8; 32];
        for (i, b) in pin.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Trust::Pin(pin))
    }

    /// The rustls client configuration this trust asks for.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS", e.to_string()))?;
        match self {
            Trust::System => Ok(builder
                .with_platform_verifier()
                .map_err(|e| err("the system's certificate roots", e.to_string()))?
                .with_no_client_auth()),
            Trust::Ca(certs) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs {
                    roots.add(c.clone()).map_err(|e| {
                        err("CA file", format!("a certificate is not a CA's ({e})"))
                    })?;
                }
                Ok(builder.with_root_certificates(roots).with_no_client_auth())
            }
            Trust::Pin(pin) => Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    pin: *pin,
                    provider: provider(),
                }))
                .with_no_client_auth()),
        }
    }
}

/// The system's trust, built once per process (loading the platform's
/// roots is not free, and a plain-HTTP client never needs them).
pub fn system_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    static SYSTEM: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, TlsError>> =
        std::sync::OnceLock::new();
    SYSTEM
        .get_or_init(|| Trust::System.client_config().map(Arc::new))
        .clone()
}

/// Accepts exactly the certificate whose SHA-256 is pinned; its
/// handshake signatures are still verified with that certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the controller's certificate (sha256 {}) is not the pinned one",
                fingerprint(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_64_hex_digits_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(Trust::pin(&hex), Trust::pin(&colons));
        assert!(matches!(Trust::pin(&hex), Ok(Trust::Pin(p)) if p == [0xAB; 32]));
        for bad in ["", "abc", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(Trust::pin(bad).expect_err(bad).what, "pin_sha256");
        }
    }

    #[test]
    fn a_fingerprint_reads_as_openssl_prints_it() {
        assert_eq!(
            fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn missing_or_wrong_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not pem").expect("write");
        std::fs::write(&key, "not pem").expect("write");
        let files = TlsFiles {
            cert: cert.clone(),
            key,
        };
        let e = files.load().expect_err("refused");
        assert!(e.what.starts_with("--tls-cert"), "{e}");
        let e = TlsFiles {
            cert: dir.path().join("absent.pem"),
            key: dir.path().join("absent.key"),
        }
        .load()
        .expect_err("refused");
        assert!(e.to_string().contains("absent.pem"), "{e}");
        assert!(Trust::ca_file(&cert).is_err());
    }
}
