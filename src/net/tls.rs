//! Net → TLS for both ends of the path: the client-facing side at accept
//! (`[postgres.tls]`) and the server-facing side at backend connect
//! (`server_tls`, with libpq's `sslmode` meanings).
//!
//! Every config is built with an explicit ring provider so nothing depends on
//! a process-wide default having been installed. ALPN stays empty: Postgres's
//! SSLRequest path does not negotiate it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

use crate::config::types::{LocalTls, SslMode, UpstreamTls};

/// Why a TLS config could not be built or a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("invalid PEM in {}: {source}", path.display())]
    Pem { path: PathBuf, source: pem::Error },
    #[error("no certificate found in {}", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no private key found in {}", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("bad CA certificate in {}: {source}", path.display())]
    BadCaCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    /// `client_cert` and `client_key` only make sense together.
    #[error("server_tls: {present} is set but {missing} is missing")]
    IncompleteClientAuth {
        present: &'static str,
        missing: &'static str,
    },
    #[error("no system root certificates could be loaded; set server_tls.ca_file")]
    NoRootCertificates,
    #[error("invalid TLS server name {0:?}")]
    BadServerName(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Kept apart from [`TlsError::Handshake`] so the operator sees at once
    /// that it is the server's certificate, not the network, at fault.
    #[error("TLS handshake failed: the server certificate could not be verified: {}", CertReason(.0))]
    ServerCertificate(CertificateError),
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
}

/// The client-facing config for `[postgres.tls]`. Clients are not asked for
/// certificates: they authenticate with passwords.
pub fn server_config(tls: &LocalTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(&tls.cert)?;
    let key = load_key(&tls.key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// The server-facing config for one database's `server_tls`; `None` when
/// `sslmode = "disable"`.
///
/// As in libpq, `prefer` and `require` encrypt without checking the
/// certificate unless a `ca_file` is given, in which case they check the chain
/// like `verify-ca`. `verify-ca` checks the chain only; `verify-full` checks
/// the chain and the host name.
pub fn client_config(tls: &UpstreamTls) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.sslmode, &tls.ca_file) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::Prefer | SslMode::Require, None) => Arc::new(AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }),
        (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, _) => {
            Arc::new(ChainOnly(webpki_verifier(tls, &provider)?))
        }
        (SslMode::VerifyFull, _) => webpki_verifier(tls, &provider)?,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.client_cert, &tls.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?
        }
        (Some(_), None) => {
            return Err(TlsError::IncompleteClientAuth {
                present: "client_cert",
                missing: "client_key",
            })
        }
        (None, Some(_)) => {
            return Err(TlsError::IncompleteClientAuth {
                present: "client_key",
                missing: "client_cert",
            })
        }
    };
    Ok(Some(Arc::new(config)))
}

/// The name sent as SNI and checked by `verify-full`: `server_name` when
/// configured, else the node's host. IP literals are accepted (rustls then
/// checks them against the certificate's IP SANs and sends no SNI).
pub fn server_name(tls: &UpstreamTls, host: &str) -> Result<ServerName<'static>, TlsError> {
    let name = tls.server_name.as_deref().unwrap_or(host);
    // `[::1]` is how an IPv6 host appears in `host:port`; rustls wants it bare.
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::BadServerName(name.to_owned()))
}

/// Runs the client handshake on a TCP connection to a server (after the
/// server answered `S` to SSLRequest).
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|err| match rustls_error(&err) {
            Some(rustls::Error::InvalidCertificate(cert)) => {
                TlsError::ServerCertificate(cert.clone())
            }
            _ => TlsError::Handshake(err),
        })
}

/// Runs the server handshake on an accepted client connection (after we
/// answered `S` to its SSLRequest).
pub async fn accept(
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, TlsError> {
    tokio_rustls::TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .map_err(TlsError::Handshake)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// tokio-rustls reports TLS protocol errors as `io::Error`s wrapping them.
fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, in order (leaf first for a chain).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

/// The standard chain-and-name verifier over `ca_file` or the system roots.
fn webpki_verifier(
    tls: &UpstreamTls,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let roots = match &tls.ca_file {
        Some(path) => ca_file_roots(path)?,
        None => system_roots()?,
    };
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|err| TlsError::Rustls(rustls::Error::General(err.to_string())))
}

fn ca_file_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|source| TlsError::BadCaCertificate {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

/// The OS trust store. Partial failures are common (one unreadable file in
/// a cert directory) and only warned about; none at all is an error because
/// every verification would then fail with a less helpful message.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    for err in &loaded.errors {
        tracing::warn!(error = %err, "could not load some system root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "ignored unparsable system root certificates");
    }
    if added == 0 {
        return Err(TlsError::NoRootCertificates);
    }
    Ok(roots)
}

/// libpq's `prefer`/`require` without a root file: any certificate is
/// accepted, but the handshake signatures are still checked so the session
/// keys really belong to whoever presented the certificate.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

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

/// libpq's `verify-ca`: the full webpki check, except that a certificate
/// issued for another name is accepted. The name check runs last in the
/// webpki verifier, so ignoring its error skips nothing else.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Puts the usual certificate failures in an operator's words, keeping
/// rustls's own text for the details.
struct CertReason<'a>(&'a CertificateError);

impl fmt::Display for CertReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.0 {
            CertificateError::UnknownIssuer => {
                "it is not signed by a trusted CA (check server_tls.ca_file)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "it does not match the expected host name (check server_tls.server_name, \
                 or use sslmode = \"verify-ca\")"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "it is not valid yet"
            }
            CertificateError::Revoked => "it has been revoked",
            CertificateError::BadSignature => "its signature is invalid",
            _ => return write!(f, "{}", self.0),
        };
        write!(f, "{hint} ({})", self.0)
    }
}

#[cfg(test)]
mod tests;
