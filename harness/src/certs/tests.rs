use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keys_are_private_and_certs_are_pem() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    for key in [
        &certs.server_key,
        &certs.client_key,
        &certs.other_client_key,
    ] {
        assert_eq!(mode(key), 0o600, "{}", key.display());
        assert!(std::fs::read_to_string(key)
            .unwrap()
            .contains("PRIVATE KEY"));
    }
    let ca = std::fs::read_to_string(&certs.ca_cert).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(certs.ca_cert.starts_with(certs.dir.path()));
}

#[test]
fn chains_verify_only_against_their_own_ca() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    let ca = s(&certs.ca_cert);
    let other = s(&certs.other_ca_cert);
    assert!(openssl(&["verify", "-CAfile", ca, s(&certs.server_cert)]).0);
    assert!(openssl(&["verify", "-CAfile", ca, s(&certs.client_cert)]).0);
    assert!(!openssl(&["verify", "-CAfile", other, s(&certs.server_cert)]).0);
    assert!(openssl(&["verify", "-CAfile", other, s(&certs.other_client_cert)]).0);
    assert!(!openssl(&["verify", "-CAfile", ca, s(&certs.other_client_cert)]).0);
}

#[test]
fn server_sans_split_into_dns_and_ip_and_client_is_app() {
    let certs = TestCerts::generate(&["localhost", "db.test", "127.0.0.1"]).unwrap();
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", s(&certs.server_cert)]);
    assert!(ok, "{text}");
    assert!(text.contains("DNS:localhost"), "{text}");
    assert!(text.contains("DNS:db.test"), "{text}");
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    let (ok, subject) = openssl(&["x509", "-noout", "-subject", "-in", s(&certs.client_cert)]);
    assert!(ok);
    assert!(
        subject.contains("CN = app") || subject.contains("CN=app"),
        "{subject}"
    );
}
