//! TLS for the broker's listeners (`pulsar+ssl://`, HTTPS) with rustls: PEM certificate and key
//! files, and optionally client certificates checked against a CA (mTLS). Handshakes run in
//! their own tasks, so a slow or silent client never holds up the accept loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A TLS handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting to be served.
const ACCEPT_QUEUE: usize = 128;

/// TLS settings (Pulsar's `tls*` broker.conf names in snake_case). TLS is on when
/// `cert_file` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, server certificate first (`tlsCertificateFilePath`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key: PKCS#8, PKCS#1 or SEC1 (`tlsKeyFilePath`).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates are checked against
    /// (`tlsTrustCertsFilePath`). Without it, client certificates are not asked for.
    pub trust_certs_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `trust_certs_file`
    /// (`tlsRequireTrustedClientCertOnConnect`).
    pub require_trusted_client_cert: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl TlsConfig {
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    /// Checks the settings and reads the files: a broker with a broken TLS setup does not start.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let (Some(cert_file), Some(key_file)) = (&self.cert_file, &self.key_file) else {
            return Err(TlsError::Config(
                "TLS needs both cert_file and key_file".into(),
            ));
        };
        let certs = read_certs("certificate file", cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| file_error("key file", key_file, e))?;
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.trust_certs_file {
            None if self.require_trusted_client_cert => {
                return Err(TlsError::Config(
                    "require_trusted_client_cert needs trust_certs_file".into(),
                ));
            }
            None => builder.with_no_client_auth(),
            Some(trust_file) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs("trust certificates file", trust_file)? {
                    roots
                        .add(cert)
                        .map_err(|e| file_error("trust certificates file", trust_file, e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.require_trusted_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

pub(crate) fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// Accepts TCP connections and completes their TLS handshakes in the background; also an axum
/// [`Listener`](axum::serve::Listener), so HTTPS is `axum::serve(tls_listener, app)`.
#[derive(Debug)]
pub struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` until `cancel` fires.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor, cancel: CancellationToken) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                stream.set_nodelay(true).ok();
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { addr, ready }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next connection with a finished handshake; None once accepting has stopped.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready.recv().await
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // Accepting stopped (shutdown): never yield again; graceful shutdown ends serving.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
