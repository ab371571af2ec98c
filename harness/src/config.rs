//! Configuration text for the test *backend* of accept → parse → route → backend → respond:
//! renders postgresql.conf settings, pg_hba.conf and quoted SQL so that every server the
//! harness starts is fast (no fsync), loopback-only and authenticates the way a test asks.

use std::path::PathBuf;

use crate::{HarnessError, SUPERUSER};

/// File names (relative to the data dir) the server's TLS material is copied to.
pub(crate) const TLS_CERT: &str = "server.crt";
pub(crate) const TLS_KEY: &str = "server.key";
pub(crate) const TLS_CA: &str = "root.crt";

/// Authentication method pg_hba applies to TCP logins of non-superuser roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HbaAuth {
    /// No password at all.
    Trust,
    /// Cleartext password exchange.
    Password,
    /// MD5 challenge; roles get MD5-hashed passwords so the real MD5 exchange happens.
    Md5,
    /// SCRAM-SHA-256 (PostgreSQL's default).
    #[default]
    Scram,
}

impl HbaAuth {
    /// The pg_hba.conf method keyword.
    pub fn method(self) -> &'static str {
        match self {
            HbaAuth::Trust => "trust",
            HbaAuth::Password => "password",
            HbaAuth::Md5 => "md5",
            HbaAuth::Scram => "scram-sha-256",
        }
    }

    /// `password_encryption` that makes pg_hba's method the one actually used: an `md5` hba
    /// line silently upgrades to SCRAM when the stored password is a SCRAM verifier.
    pub fn password_encryption(self) -> &'static str {
        match self {
            HbaAuth::Md5 => "md5",
            _ => "scram-sha-256",
        }
    }
}

/// Everything the harness writes into a server's `attache.conf`.
#[derive(Debug, Clone)]
pub(crate) struct ServerConf {
    pub port: u16,
    pub socket_dir: PathBuf,
    pub password_encryption: &'static str,
    pub tls: bool,
    /// Caller settings, written last so they override the defaults above them.
    pub settings: Vec<(String, String)>,
}

impl ServerConf {
    /// The file text; later lines win in postgresql.conf, so defaults come first.
    pub(crate) fn render(&self) -> String {
        let socket_dir = self.socket_dir.to_string_lossy();
        let mut lines: Vec<(&str, &str)> = vec![
            // Durability is pointless for throw-away test clusters and costs time.
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("listen_addresses", "127.0.0.1"),
            ("unix_socket_directories", &socket_dir),
            ("max_connections", "200"),
            ("wal_level", "replica"),
            ("max_wal_senders", "10"),
            ("hot_standby", "on"),
            // Lets a replica that fell behind (paused replay, slow start) still catch up.
            ("wal_keep_size", "64MB"),
            ("logging_collector", "off"),
            ("password_encryption", self.password_encryption),
        ];
        if self.tls {
            lines.extend([
                ("ssl", "on"),
                ("ssl_cert_file", TLS_CERT),
                ("ssl_key_file", TLS_KEY),
                ("ssl_ca_file", TLS_CA),
            ]);
        }
        let port = self.port.to_string();
        lines.push(("port", &port));
        lines.extend(self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut text = String::from("# Written by the Attaché test harness.\n");
        for (key, value) in lines {
            text.push_str(&format!("{key} = {}\n", quote_literal(value)));
        }
        text
    }
}

/// Checks a caller setting; a value already wrapped in single quotes is unwrapped once,
/// since [`ServerConf::render`] quotes every value itself.
pub(crate) fn validate_setting(key: &str, value: &str) -> Result<(String, String), HarnessError> {
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !key_ok || value.contains(['\n', '\r']) {
        return Err(HarnessError::InvalidSetting(key.to_string()));
    }
    let value = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => value.to_string(),
    };
    Ok((key.to_string(), value))
}

/// pg_hba.conf: local and superuser/replication TCP access are trusted (the harness itself
/// needs them), caller lines come next, and every other TCP login uses `auth`.
pub(crate) fn render_hba(auth: HbaAuth, extra: &[String]) -> String {
    let mut text = String::from("# Written by the Attaché test harness.\n");
    text.push_str("local all all trust\n");
    text.push_str(&format!("host all {SUPERUSER} 127.0.0.1/32 trust\n"));
    text.push_str("host replication all 127.0.0.1/32 trust\n");
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!("host all all 127.0.0.1/32 {}\n", auth.method()));
    text
}

/// `"name"` with embedded double quotes doubled: a safe SQL identifier for any string.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded single quotes doubled (standard_conforming_strings is on).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests;
