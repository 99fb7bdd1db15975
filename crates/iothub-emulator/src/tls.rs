//! TLS for the MQTT/TLS and HTTPS listeners: a local CA kept in the data dir, a fresh server
//! certificate per start, and a client-certificate verifier that requests but never requires a
//! certificate (docs/protocol.md §1.8: the hub decides at CONNECT whether the identity needs
//! X.509).
//!
//! Files in the data dir: `ca.pem` (give it to clients), `ca.key` (mode 0600), `server.pem`,
//! `server.key` (mode 0600). The CA is created once; the server certificate is re-issued at every
//! start so that its SANs always match `localhost`, `127.0.0.1`, `::1` and every `--hostname`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsDn, ServerConfig, SignatureScheme};

/// Errors while preparing TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Generating a key or certificate failed.
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a PEM file failed.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{0} holds no usable PEM certificate or key")]
    Pem(PathBuf),
    /// rustls refused the configuration.
    #[error("invalid TLS configuration")]
    Rustls(#[from] rustls::Error),
}

/// The certificate material the listeners serve.
#[derive(Debug)]
pub struct TlsMaterial {
    /// PEM of the CA clients must trust (the local CA, or the user's CA file).
    pub ca_pem: String,
    /// Where `ca_pem` is stored (`None` when in memory only).
    pub ca_path: Option<PathBuf>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsMaterial {
    /// Loads the local CA from `dir` (creating it on first run), or makes a throw-away CA when
    /// `dir` is `None`, then issues a server certificate for `hostnames` plus `localhost`,
    /// `127.0.0.1` and `::1`.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read or written or generation fails.
    pub fn local_ca(dir: Option<&Path>, hostnames: &[String]) -> Result<Self, TlsError> {
        let ca_key = match dir {
            Some(dir) => {
                let key_path = dir.join("ca.key");
                if key_path.exists() && dir.join("ca.pem").exists() {
                    let pem = read(&key_path)?;
                    KeyPair::from_pem(&pem)?
                } else {
                    let key = KeyPair::generate()?;
                    let cert = ca_params().self_signed(&key)?;
                    write_private(&key_path, &key.serialize_pem())?;
                    write(&dir.join("ca.pem"), &cert.pem())?;
                    key
                }
            }
            None => KeyPair::generate()?,
        };
        // The issuer only needs the CA's distinguished name and key; `ca_params` is
        // deterministic, so the stored key plus these params re-create the same issuer.
        let ca_pem = match dir {
            Some(dir) => read(&dir.join("ca.pem"))?,
            None => ca_params().self_signed(&ca_key)?.pem(),
        };
        let issuer = Issuer::new(ca_params(), ca_key);

        let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        for h in hostnames {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "iothub emulator");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        if let Some(dir) = dir {
            write(&dir.join("server.pem"), &cert.pem())?;
            write_private(&dir.join("server.key"), &key.serialize_pem())?;
        }
        Ok(Self {
            ca_pem,
            ca_path: dir.map(|d| d.join("ca.pem")),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }

    /// Uses a user-supplied certificate chain and key (PEM files); `ca` is the file clients
    /// should trust (defaults to the chain file).
    ///
    /// # Errors
    /// [`TlsError::Pem`] when a file holds no certificate or key, [`TlsError::Io`] on read errors.
    pub fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|_| TlsError::Pem(cert.into()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::Pem(cert.into()))?;
        if chain.is_empty() {
            return Err(TlsError::Pem(cert.into()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|_| TlsError::Pem(key.into()))?;
        let ca_path = ca.unwrap_or(cert).to_path_buf();
        Ok(Self {
            ca_pem: read(&ca_path)?,
            ca_path: Some(ca_path),
            chain,
            key,
        })
    }

    /// The rustls server configuration: TLS 1.2 and 1.3, ring provider, client certificates
    /// requested but optional, ALPN as given (e.g. `http/1.1` for HTTPS, nothing for MQTT).
    ///
    /// # Errors
    /// [`TlsError::Rustls`] when rustls refuses the key.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Thumbprints of a presented client certificate: `(sha1, sha256)` as upper-case hex, the form
/// IoT Hub shows and accepts for self-signed devices.
///
/// ```
/// let (sha1, sha256) = iothub_emulator::tls::thumbprints(b"abc");
/// assert_eq!(sha1, "A9993E364706816ABA3E25717850C26C9CD0D89D");
/// assert_eq!(sha256.len(), 64);
/// ```
#[must_use]
pub fn thumbprints(der: &[u8]) -> (String, String) {
    let hex = |d: ring::digest::Digest| d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    (
        hex(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            der,
        )),
        hex(ring::digest::digest(&ring::digest::SHA256, der)),
    )
}

/// Accepts any client certificate (self-signed devices have no chain to check); the identity
/// check happens at CONNECT by thumbprint. Handshake signatures are still verified, which
/// proves the client holds the certificate's private key.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsDn] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "iothub emulator local CA");
    dn.push(DnType::OrganizationName, "iothub");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })
}

/// Writes a private key readable by the owner only (mode 0600).
fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let io = |source| TlsError::Io {
        path: path.into(),
        source,
    };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_ca_once_with_private_keys_readable_by_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            TlsMaterial::local_ca(Some(dir.path()), &["myhub.azure-devices.net".into()]).unwrap();
        let second = TlsMaterial::local_ca(Some(dir.path()), &[]).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem, "the CA survives restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["ca.key", "server.key"] {
                let mode = std::fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        first.server_config(&[]).unwrap();
    }
}
