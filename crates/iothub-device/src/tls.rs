//! TLS client configuration: the Azure roots, extra CAs and X.509 client identities.
//!
//! One crypto provider for the whole workspace: ring, passed explicitly with
//! `builder_with_provider` so no process-level default is needed (one would be shared by every
//! library in the process).

use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor};
use rustls::{ClientConfig, RootCertStore};

use crate::{ConfigError, PemItem};

/// Subject common names of the roots IoT Hub and DPS chain to (docs/protocol.md §12): DigiCert
/// Global Root G2 for every hub since the 2023 migration, the two Microsoft 2017 roots as the
/// announced successors. Baltimore CyberTrust expired in 2025 and is not trusted.
const AZURE_ROOT_NAMES: [&[u8]; 3] = [
    b"DigiCert Global Root G2",
    b"Microsoft RSA Root Certificate Authority 2017",
    b"Microsoft ECC Root Certificate Authority 2017",
];

/// The embedded Azure roots, taken from the `webpki-roots` copy of Mozilla's store.
pub(crate) fn azure_roots() -> Vec<TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS
        .iter()
        .filter(|anchor| {
            AZURE_ROOT_NAMES
                .iter()
                .any(|name| ends_with_common_name(anchor.subject.as_ref(), name))
        })
        .cloned()
        .collect()
}

/// Parses every certificate in a PEM document (sections of other kinds are skipped).
pub(crate) fn parse_certificates(
    pem_text: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem_error = |source| ConfigError::Pem {
        item: PemItem::Certificate,
        source,
    };
    let certs = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(pem_error(pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// Parses the first private key in a PEM document (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn parse_private_key(pem_text: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|source| ConfigError::Pem {
        item: PemItem::PrivateKey,
        source,
    })
}

/// Builds the client configuration: Azure roots plus `extra_ca_pem` (each may hold several
/// certificates), and a client certificate chain with its key for X.509 devices.
pub(crate) fn client_config(
    extra_ca_pem: &[Vec<u8>],
    client_identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let mut roots = RootCertStore::empty();
    roots.extend(azure_roots());
    for pem in extra_ca_pem {
        for cert in parse_certificates(pem)? {
            roots.add(cert).map_err(ConfigError::Tls)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // TLS 1.2 is what IoT Hub requires; 1.3 is offered too (the emulator speaks it).
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConfigError::Tls)?
        .with_root_certificates(roots);
    let config = match client_identity {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(parse_certificates(cert_pem)?, parse_private_key(key_pem)?)
            .map_err(ConfigError::Tls)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Whether a DER-encoded distinguished name ends with the given common name. Every Azure root
/// puts its CN last, and an exact suffix match cannot confuse "… Root G2" with "… Root G3".
fn ends_with_common_name(subject: &[u8], name: &[u8]) -> bool {
    subject.ends_with(name)
        && subject.len() > name.len()
        && usize::from(subject[subject.len() - name.len() - 1]) == name.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_exactly_the_three_azure_roots() {
        let roots = azure_roots();
        assert_eq!(roots.len(), 3);
        for name in AZURE_ROOT_NAMES {
            assert!(
                roots
                    .iter()
                    .any(|r| ends_with_common_name(r.subject.as_ref(), name)),
                "missing {}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn rejects_ca_file_without_certificates() {
        let err = client_config(&[b"not a pem".to_vec()], None).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Pem {
                    item: PemItem::Certificate,
                    source: pem::Error::NoItemsFound
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn names_a_truncated_certificate_and_a_missing_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["dev1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let truncated = &cert.as_bytes()[..cert.len() - 30];
        let err = parse_certificates(truncated).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Pem {
                    item: PemItem::Certificate,
                    source: pem::Error::MissingSectionEnd { .. }
                }
            ),
            "{err:?}"
        );
        // A certificate where the key should be: no key in it.
        let err = parse_private_key(cert.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Pem {
                    item: PemItem::PrivateKey,
                    source: pem::Error::NoItemsFound
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            parse_private_key(key.serialize_pem().as_bytes())
                .unwrap()
                .secret_der(),
            key.serialize_der()
        );
    }

    #[test]
    fn accepts_extra_ca_and_client_identity() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["dev1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        client_config(
            &[cert_pem.clone().into_bytes()],
            Some((cert_pem.as_bytes(), key_pem.as_bytes())),
        )
        .unwrap();
    }
}
