//! TLS for the test [`Upstream`](super::Upstream), the *backend* end of accept → parse → route
//! → backend → respond: a rustls server config from PEM files (e.g. [`crate::TestCerts`]),
//! optionally demanding a client certificate so the proxy's mTLS-to-backend can be tested.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::HttpError;

/// The ring provider, named explicitly so the result does not depend on which provider the
/// process may (or may not) have installed as default.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server config for `cert`/`key`; with `client_ca`, clients must present a
/// certificate signed by it. `alpn` is the advertised protocol list, in preference order.
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, HttpError> {
    let chain = load_certs(cert)?;
    // The error text of a key parse may quote the file; name the path only.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| HttpError::Tls(format!("no usable private key in {}", key.display())))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| HttpError::Tls(format!("CA {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an empty file is an error.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| HttpError::Tls(format!("reading {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(HttpError::Tls(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}
