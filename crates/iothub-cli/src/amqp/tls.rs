//! The TLS client configuration for AMQPS (port 5671: TLS from the first byte, docs/amqp.md
//! "Transports"): the public web roots, as the CLI's HTTP client trusts for real hubs, plus
//! the extra CA files (`--ca-file`, the local emulator's `caFile`). One crypto provider, ring,
//! passed explicitly so no process-wide default is needed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Builds the client configuration trusting the web roots and every certificate in `ca_files`.
pub(crate) fn client_config(ca_files: &[PathBuf]) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for file in ca_files {
        let pem = std::fs::read(file)
            .with_context(|| format!("cannot read CA file {}", file.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("invalid PEM in {}", file.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "no PEM certificates in {}",
            file.display()
        );
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("unusable CA certificate in {}", file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a pem").unwrap();
        let err = client_config(&[path]).unwrap_err();
        assert!(err.to_string().contains("no PEM certificates"), "{err:#}");
        client_config(&[]).unwrap();
    }
}
