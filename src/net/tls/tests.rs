use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::types::{LocalTls, SslMode, UpstreamTls};
use crate::net::Stream;

/// A CA, a server cert for localhost/127.0.0.1 and a client cert signed by it,
/// an unrelated CA and a self-signed server cert, all as PEM files.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki { dir };
        let (ca, ca_key) = make_ca("Attaché test CA");
        pki.write("ca.pem", &ca.pem());

        let (other_ca, _) = make_ca("Unrelated CA");
        pki.write("other-ca.pem", &other_ca.pem());

        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();
        pki.write("server.pem", &server.pem());
        pki.write("server.key", &server_key.serialize_pem());

        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["attache-client".into()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = params.signed_by(&client_key, &ca, &ca_key).unwrap();
        pki.write("client.pem", &client.pem());
        pki.write("client.key", &client_key.serialize_pem());

        let self_key = KeyPair::generate().unwrap();
        let selfsigned = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&self_key)
            .unwrap();
        pki.write("self.pem", &selfsigned.pem());
        pki.write("self.key", &self_key.serialize_pem());
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    fn local(&self, cert: &str, key: &str) -> LocalTls {
        LocalTls {
            cert: self.path(cert),
            key: self.path(key),
        }
    }

    fn upstream(&self, sslmode: SslMode, ca: Option<&str>) -> UpstreamTls {
        UpstreamTls {
            sslmode,
            ca_file: ca.map(|c| self.path(c)),
            ..UpstreamTls::default()
        }
    }

    /// A server config that demands client certificates issued by `ca.pem`.
    fn mtls_server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in load_certs(&self.path("ca.pem")).unwrap() {
            roots.add(cert).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                load_certs(&self.path("server.pem")).unwrap(),
                load_key(&self.path("server.key")).unwrap(),
            )
            .unwrap();
        Arc::new(config)
    }
}

fn make_ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

type ServerResult = Result<tokio_rustls::server::TlsStream<TcpStream>, TlsError>;

/// Runs both sides of a handshake over loopback TCP.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: &UpstreamTls,
    host: &str,
) -> (
    Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError>,
    tokio::task::JoinHandle<ServerResult>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(server, tcp).await
    });
    let config = client_config(client).unwrap().expect("TLS enabled");
    let name = server_name(client, host).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    (connect(config, name, tcp).await, accepted)
}

/// Sends bytes both ways through [`Stream`] and checks they arrive intact.
async fn round_trip(
    client: tokio_rustls::client::TlsStream<TcpStream>,
    server: tokio::task::JoinHandle<ServerResult>,
) {
    let mut client = Stream::from(client);
    let mut server = Stream::from(server.await.unwrap().unwrap());
    assert!(client.is_tls() && server.is_tls());
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());

    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");

    server.write_all(b"pong").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

fn cert_error(result: Result<impl Sized, TlsError>) -> (CertificateError, String) {
    match result {
        Err(err @ TlsError::ServerCertificate(_)) => {
            let text = err.to_string();
            let TlsError::ServerCertificate(cert) = err else {
                unreachable!()
            };
            (cert, text)
        }
        Err(other) => panic!("expected a certificate error, got {other}"),
        Ok(_) => panic!("handshake unexpectedly succeeded"),
    }
}

fn is_name_error(err: &CertificateError) -> bool {
    matches!(
        err,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
    )
}

#[tokio::test]
async fn verify_full_with_right_ca_round_trips() {
    let pki = Pki::new();
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let tls = pki.upstream(SslMode::VerifyFull, Some("ca.pem"));
    let (client, accepted) = handshake(server, &tls, "localhost").await;
    round_trip(client.unwrap(), accepted).await;
}

#[tokio::test]
async fn verify_full_accepts_ip_literal_host() {
    let pki = Pki::new();
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let tls = pki.upstream(SslMode::VerifyFull, Some("ca.pem"));
    let (client, accepted) = handshake(server, &tls, "127.0.0.1").await;
    round_trip(client.unwrap(), accepted).await;
}

#[tokio::test]
async fn verify_full_with_wrong_ca_fails() {
    let pki = Pki::new();
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let tls = pki.upstream(SslMode::VerifyFull, Some("other-ca.pem"));
    let (client, _) = handshake(server, &tls, "localhost").await;
    let (err, text) = cert_error(client);
    assert_eq!(err, CertificateError::UnknownIssuer);
    assert!(
        text.contains("server certificate could not be verified"),
        "{text}"
    );
    assert!(text.contains("not signed by a trusted CA"), "{text}");
}

#[tokio::test]
async fn verify_full_with_wrong_name_fails() {
    let pki = Pki::new();
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let mut tls = pki.upstream(SslMode::VerifyFull, Some("ca.pem"));
    tls.server_name = Some("db.example.com".into());
    let (client, _) = handshake(server, &tls, "localhost").await;
    let (err, text) = cert_error(client);
    assert!(is_name_error(&err), "{err:?}");
    assert!(text.contains("db.example.com"), "{text}");
}

#[tokio::test]
async fn verify_ca_ignores_name() {
    let pki = Pki::new();
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let mut tls = pki.upstream(SslMode::VerifyCa, Some("ca.pem"));
    tls.server_name = Some("db.example.com".into());
    let (client, accepted) = handshake(server, &tls, "localhost").await;
    round_trip(client.unwrap(), accepted).await;
}

#[tokio::test]
async fn verify_ca_with_wrong_ca_fails() {
    let pki = Pki::new();
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let mut tls = pki.upstream(SslMode::VerifyCa, Some("other-ca.pem"));
    tls.server_name = Some("db.example.com".into());
    let (client, _) = handshake(server, &tls, "localhost").await;
    assert_eq!(cert_error(client).0, CertificateError::UnknownIssuer);
}

#[tokio::test]
async fn require_accepts_self_signed_without_ca() {
    let pki = Pki::new();
    let server = server_config(&pki.local("self.pem", "self.key")).unwrap();
    let mut tls = pki.upstream(SslMode::Require, None);
    tls.server_name = Some("anything.invalid".into());
    let (client, accepted) = handshake(server, &tls, "localhost").await;
    round_trip(client.unwrap(), accepted).await;
}

#[tokio::test]
async fn prefer_accepts_self_signed_without_ca() {
    let pki = Pki::new();
    let server = server_config(&pki.local("self.pem", "self.key")).unwrap();
    let tls = pki.upstream(SslMode::Prefer, None);
    let (client, accepted) = handshake(server, &tls, "127.0.0.1").await;
    round_trip(client.unwrap(), accepted).await;
}

/// libpq: with a root file, `require` behaves like `verify-ca`.
#[tokio::test]
async fn require_with_ca_file_checks_the_chain() {
    let pki = Pki::new();
    let server = server_config(&pki.local("self.pem", "self.key")).unwrap();
    let tls = pki.upstream(SslMode::Require, Some("ca.pem"));
    let (client, _) = handshake(server, &tls, "localhost").await;
    assert_eq!(cert_error(client).0, CertificateError::UnknownIssuer);

    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let mut tls = pki.upstream(SslMode::Require, Some("ca.pem"));
    tls.server_name = Some("db.example.com".into());
    let (client, accepted) = handshake(server, &tls, "localhost").await;
    round_trip(client.unwrap(), accepted).await;
}

#[tokio::test]
async fn mtls_client_cert_is_presented_and_accepted() {
    let pki = Pki::new();
    let mut tls = pki.upstream(SslMode::VerifyFull, Some("ca.pem"));
    tls.client_cert = Some(pki.path("client.pem"));
    tls.client_key = Some(pki.path("client.key"));
    let (client, accepted) = handshake(pki.mtls_server_config(), &tls, "localhost").await;
    let client = client.unwrap();
    let server = accepted.await.unwrap().unwrap();
    let presented = server.get_ref().1.peer_certificates().map(<[_]>::len);
    assert_eq!(presented, Some(1));
    round_trip(client, tokio::spawn(async move { Ok(server) })).await;
}

#[tokio::test]
async fn mtls_server_rejects_client_without_cert() {
    let pki = Pki::new();
    let tls = pki.upstream(SslMode::VerifyFull, Some("ca.pem"));
    let (_client, accepted) = handshake(pki.mtls_server_config(), &tls, "localhost").await;
    // With TLS 1.3 the client may finish before the server decides, so the
    // server's side is the one that must fail.
    match accepted.await.unwrap() {
        Err(TlsError::Handshake(_)) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("server accepted a client without a certificate"),
    }
}

#[test]
fn client_cert_without_key_is_an_error() {
    let pki = Pki::new();
    let mut tls = pki.upstream(SslMode::Require, None);
    tls.client_cert = Some(pki.path("client.pem"));
    let err = client_config(&tls).unwrap_err();
    assert!(matches!(err, TlsError::IncompleteClientAuth { .. }));
    assert_eq!(
        err.to_string(),
        "server_tls: client_cert is set but client_key is missing"
    );

    let mut tls = pki.upstream(SslMode::Require, None);
    tls.client_key = Some(pki.path("client.key"));
    let err = client_config(&tls).unwrap_err().to_string();
    assert!(err.contains("client_cert is missing"), "{err}");
}

#[test]
fn disable_gives_no_config() {
    let pki = Pki::new();
    assert!(client_config(&pki.upstream(SslMode::Disable, None))
        .unwrap()
        .is_none());
}

fn assert_names_path(err: &TlsError, path: &Path) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn missing_files_name_the_path() {
    let pki = Pki::new();
    let err = server_config(&pki.local("nope.pem", "server.key")).unwrap_err();
    assert!(matches!(err, TlsError::ReadFile { .. }), "{err}");
    assert_names_path(&err, &pki.path("nope.pem"));

    let err = server_config(&pki.local("server.pem", "nope.key")).unwrap_err();
    assert!(matches!(err, TlsError::ReadFile { .. }), "{err}");
    assert_names_path(&err, &pki.path("nope.key"));

    let err = client_config(&pki.upstream(SslMode::VerifyFull, Some("nope-ca.pem"))).unwrap_err();
    assert!(matches!(err, TlsError::ReadFile { .. }), "{err}");
    assert_names_path(&err, &pki.path("nope-ca.pem"));
}

#[test]
fn pem_without_key_or_cert_names_the_path() {
    let pki = Pki::new();
    // A certificate where the key should be.
    let err = server_config(&pki.local("server.pem", "server.pem")).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
    assert_names_path(&err, &pki.path("server.pem"));

    // A key where the certificate should be.
    let err = server_config(&pki.local("server.key", "server.key")).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    assert_names_path(&err, &pki.path("server.key"));

    pki.write("empty.pem", "");
    let err = client_config(&pki.upstream(SslMode::VerifyCa, Some("empty.pem"))).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
}

#[test]
fn ca_file_may_hold_several_certificates() {
    let pki = Pki::new();
    let both = std::fs::read_to_string(pki.path("other-ca.pem")).unwrap()
        + &std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    pki.write("bundle.pem", &both);
    assert_eq!(load_certs(&pki.path("bundle.pem")).unwrap().len(), 2);
    assert_eq!(ca_file_roots(&pki.path("bundle.pem")).unwrap().len(), 2);
}

#[tokio::test]
async fn ca_bundle_verifies_server_signed_by_second_cert() {
    let pki = Pki::new();
    let both = std::fs::read_to_string(pki.path("other-ca.pem")).unwrap()
        + &std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    pki.write("bundle.pem", &both);
    let server = server_config(&pki.local("server.pem", "server.key")).unwrap();
    let tls = pki.upstream(SslMode::VerifyFull, Some("bundle.pem"));
    let (client, accepted) = handshake(server, &tls, "localhost").await;
    round_trip(client.unwrap(), accepted).await;
}

#[test]
fn server_name_prefers_configured_name() {
    let mut tls = UpstreamTls::default();
    assert_eq!(
        server_name(&tls, "db1.internal").unwrap(),
        ServerName::try_from("db1.internal").unwrap()
    );
    assert!(matches!(
        server_name(&tls, "10.0.0.7").unwrap(),
        ServerName::IpAddress(_)
    ));
    assert!(matches!(
        server_name(&tls, "[::1]").unwrap(),
        ServerName::IpAddress(_)
    ));
    tls.server_name = Some("pg.example.com".into());
    assert_eq!(
        server_name(&tls, "10.0.0.7").unwrap(),
        ServerName::try_from("pg.example.com").unwrap()
    );
    tls.server_name = Some("not a host name".into());
    let err = server_name(&tls, "10.0.0.7").unwrap_err();
    assert!(matches!(err, TlsError::BadServerName(_)), "{err}");
    assert!(err.to_string().contains("not a host name"));
}
