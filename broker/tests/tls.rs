//! TLS on the broker's listeners, with certificates made at test time by rcgen. Steps: make a
//! CA, a server certificate for 127.0.0.1/localhost and a client certificate; start a standalone
//! with TLS; CONNECT over `pulsar+ssl://` with a client that trusts the CA, produce, and check
//! that LOOKUP answers the TLS URL; call the admin API over HTTPS; a client that does not trust
//! the CA fails the handshake. Then with client certificates required (mTLS): HTTPS without a
//! certificate fails, with the CA-signed one it works.

use std::path::Path;
use std::sync::Arc;

use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_broker::tls::TlsConfig;
use magnetar_testkit::raw::RawClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

struct Pki {
    ca_pem: String,
    client_pem: String,
}

/// Writes ca.pem, server.pem, server.key into `dir`.
fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["client".into()])
        .expect("params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("server.pem"), server.pem()).expect("write");
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("write");
    Pki {
        ca_pem: ca.pem(),
        client_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

fn tls_config(dir: &Path, require_client_cert: bool) -> TlsConfig {
    TlsConfig {
        cert_file: Some(dir.join("server.pem")),
        key_file: Some(dir.join("server.key")),
        trust_certs_file: require_client_cert.then(|| dir.join("ca.pem")),
        require_trusted_client_cert: require_client_cert,
    }
}

async fn start(dir: &Path, tls: TlsConfig) -> Standalone {
    let config = StandaloneConfig {
        tls,
        ..StandaloneConfig::ephemeral(dir.join("data"))
    };
    Standalone::start(config).await.expect("standalone")
}

fn connector(ca_pem: Option<&str>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    if let Some(pem) = ca_pem {
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("pem")).expect("root");
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn https(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_ssl_and_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let standalone = start(dir.path(), tls_config(dir.path(), false)).await;
    let addrs = standalone.broker.addrs();
    let tls_addr = addrs.pulsar_tls.expect("TLS listener");

    let tcp = tokio::net::TcpStream::connect(tls_addr).await.expect("tcp");
    let name = ServerName::try_from("localhost").expect("name");
    let stream = connector(Some(&pki.ca_pem))
        .connect(name.clone(), tcp)
        .await
        .expect("TLS handshake");
    let mut client = RawClient::handshake(Box::new(stream), None, false)
        .await
        .expect_connected();
    let topic = "persistent://public/default/secure";
    let lookup = client.lookup(topic).await;
    assert_eq!(
        lookup.broker_service_url_tls,
        Some(format!("pulsar+ssl://127.0.0.1:{}", tls_addr.port()))
    );
    let producer = client.producer(topic, 1).await.expect("producer");
    client.publish(1, &producer, b"over TLS").await;

    let https_addr = addrs.https.expect("HTTPS listener");
    let url = format!("https://localhost:{}/admin/v2/clusters", https_addr.port());
    let resp = https(&pki.ca_pem, None)
        .get(&url)
        .send()
        .await
        .expect("HTTPS");
    assert_eq!(resp.status(), 200);
    let cluster: serde_json::Value = https(&pki.ca_pem, None)
        .get(format!(
            "https://localhost:{}/admin/v2/clusters/standalone",
            https_addr.port()
        ))
        .send()
        .await
        .expect("HTTPS")
        .json()
        .await
        .expect("json");
    assert_eq!(
        cluster["brokerServiceUrlTls"],
        format!("pulsar+ssl://127.0.0.1:{}", tls_addr.port())
    );

    // A client that does not trust the CA.
    let tcp = tokio::net::TcpStream::connect(tls_addr).await.expect("tcp");
    assert!(connector(None).connect(name, tcp).await.is_err());
    standalone.shutdown().await;

    // mTLS: a client certificate signed by the CA is required.
    let standalone = start(dir.path(), tls_config(dir.path(), true)).await;
    let port = standalone.broker.addrs().https.expect("HTTPS").port();
    let url = format!("https://localhost:{port}/admin/v2/clusters");
    assert!(https(&pki.ca_pem, None).get(&url).send().await.is_err());
    let resp = https(&pki.ca_pem, Some(&pki.client_pem))
        .get(&url)
        .send()
        .await
        .expect("HTTPS with a client certificate");
    assert_eq!(resp.status(), 200);
    standalone.shutdown().await;
}
