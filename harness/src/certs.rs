//! Throw-away PKI for TLS tests on both sides of accept → parse → route → backend → respond:
//! a CA, a server certificate (for PostgreSQL or Attaché's listener), a client certificate for
//! mTLS, and an unrelated CA so "wrong CA" failures can be tested too.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::HarnessError;

/// PEM files in a temp dir (removed on drop). Keys are written with mode 0600.
#[derive(Debug)]
pub struct TestCerts {
    /// Directory holding every file below.
    pub dir: TempDir,
    /// The CA that signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// Server certificate with the requested DNS names and IP SANs.
    pub server_cert: PathBuf,
    /// Private key of `server_cert`.
    pub server_key: PathBuf,
    /// Client certificate with CN `app`, signed by `ca_cert`.
    pub client_cert: PathBuf,
    /// Private key of `client_cert`.
    pub client_key: PathBuf,
    /// A second, unrelated CA that signed nothing above.
    pub other_ca_cert: PathBuf,
    /// Client certificate with CN `app` signed by `other_ca_cert` (must be rejected).
    pub other_client_cert: PathBuf,
    /// Private key of `other_client_cert`.
    pub other_client_key: PathBuf,
}

/// A CA certificate plus its key, able to sign leaf certificates.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(common_name: &str) -> Result<Ca, HarnessError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// Signs a leaf; `sans` entries that parse as IP addresses become IP SANs, others DNS.
    fn leaf(
        &self,
        common_name: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<(Certificate, KeyPair), HarnessError> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert, key))
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

impl TestCerts {
    /// Generates the full set; `server_names` become SANs of the server certificate (e.g.
    /// `["localhost", "127.0.0.1"]`) and the first one its common name.
    pub fn generate(server_names: &[&str]) -> Result<TestCerts, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("attache-certs-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating the certificate temp dir", e))?;
        let ca = Ca::new("Attaché Test CA")?;
        let other_ca = Ca::new("Attaché Unrelated CA")?;
        let server_cn = server_names.first().copied().unwrap_or("localhost");
        let (server, server_key) =
            ca.leaf(server_cn, server_names, ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client, client_key) = ca.leaf("app", &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (other_client, other_client_key) =
            other_ca.leaf("app", &[], ExtendedKeyUsagePurpose::ClientAuth)?;

        let d = dir.path();
        Ok(TestCerts {
            ca_cert: write(d, "ca.crt", &ca.cert.pem(), false)?,
            server_cert: write(d, "server.crt", &server.pem(), false)?,
            server_key: write(d, "server.key", &server_key.serialize_pem(), true)?,
            client_cert: write(d, "client.crt", &client.pem(), false)?,
            client_key: write(d, "client.key", &client_key.serialize_pem(), true)?,
            other_ca_cert: write(d, "other-ca.crt", &other_ca.cert.pem(), false)?,
            other_client_cert: write(d, "other-client.crt", &other_client.pem(), false)?,
            other_client_key: write(
                d,
                "other-client.key",
                &other_client_key.serialize_pem(),
                true,
            )?,
            dir,
        })
    }
}

/// Writes one PEM file; private keys are created with mode 0600 (libpq and PostgreSQL insist
/// on it, and the key is never readable by others even for a moment).
fn write(dir: &Path, file: &str, pem: &str, secret: bool) -> Result<PathBuf, HarnessError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(file);
    let mode = if secret { 0o600 } else { 0o644 };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .map_err(|e| HarnessError::io(format!("writing {file}"), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests;
