//! TLS 1.3 for replication links: the certificate a broker's QUIC endpoint presents, and how a
//! source checks the remote's (the remote's ClusterData `brokerClientTrustCertsFilePath`, or
//! `tlsAllowInsecureConnection` to accept any certificate and rely on the token alone).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

use super::wire::ALPN;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// The endpoint's TLS: the PEM certificate chain and key in these files.
pub fn server_config(cert_file: &Path, key_file: &Path) -> anyhow::Result<ServerConfig> {
    let certs = crate::tls::read_certs("replication certificate file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| anyhow::anyhow!("replication key file {}: {e}", key_file.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Writes a self-signed certificate for `names` (and its key) unless both files exist.
pub fn ensure_self_signed(
    cert_file: &Path,
    key_file: &Path,
    names: &[String],
) -> anyhow::Result<()> {
    if cert_file.exists() && key_file.exists() {
        return Ok(());
    }
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(names.to_vec())?;
    let cert = params.self_signed(&key)?;
    if let Some(dir) = cert_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(cert_file, cert.pem())?;
    write_private(key_file, key.serialize_pem().as_bytes())?;
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// How a source checks a remote cluster's certificate.
pub enum Trust<'a> {
    /// Certificates (or CAs) from this PEM file.
    File(&'a Path),
    /// Any certificate (`tlsAllowInsecureConnection`).
    Any,
}

/// Which TLS versions a client offers.
pub enum Versions {
    /// QUIC's.
    Tls13,
    /// 1.2 and 1.3, for a Pulsar broker's TLS port.
    Any,
}

/// How a source checks a remote (no ALPN set).
pub fn client_config(trust: Trust<'_>, versions: Versions) -> anyhow::Result<ClientConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = match versions {
        Versions::Tls13 => &[&rustls::version::TLS13],
        Versions::Any => rustls::DEFAULT_VERSIONS,
    };
    let builder =
        ClientConfig::builder_with_provider(provider()).with_protocol_versions(versions)?;
    let config = match trust {
        Trust::File(path) => {
            let mut roots = RootCertStore::empty();
            for cert in crate::tls::read_certs("trusted certificates file", path)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts any certificate but still checks the handshake's signatures (so the peer holds the
/// key of the certificate it shows).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
