//! Renders `redis.conf` and `sentinel.conf` for the Redis test *backends* of accept → parse →
//! route → backend → respond. Everything (passwords included) goes into a file in the temp
//! dir rather than onto argv, where `ps` would show it.

use std::path::{Path, PathBuf};

use super::RedisError;

/// File names of the TLS material copied into a server's temp dir.
pub(crate) const TLS_CERT: &str = "tls-server.crt";
pub(crate) const TLS_KEY: &str = "tls-server.key";
pub(crate) const TLS_CA: &str = "tls-ca.crt";

/// Server certificate, key and CA to copy into the temp dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// What a server's configuration says apart from its port and directory.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Spec {
    /// `requirepass` (the `default` user's password) and `masterauth`.
    pub password: Option<String>,
    /// Extra ACL users with full access: (name, password).
    pub users: Vec<(String, String)>,
    /// Raw `key value` lines appended last, so they override the harness defaults.
    pub settings: Vec<(String, String)>,
    pub tls: Option<TlsFiles>,
    pub cluster: bool,
    /// Port of the primary on 127.0.0.1 this server replicates.
    pub replica_of: Option<u16>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("Spec")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("users", &users)
            .field("settings", &self.settings)
            .field("tls", &self.tls.is_some())
            .field("cluster", &self.cluster)
            .field("replica_of", &self.replica_of)
            .finish()
    }
}

impl Spec {
    /// The complete `redis.conf` for a server listening on `port` (and `tls_port`) in `dir`.
    pub(crate) fn render(&self, port: u16, tls_port: Option<u16>, dir: &Path) -> String {
        let mut lines = vec![
            format!("port {port}"),
            "bind 127.0.0.1".to_string(),
            "daemonize no".to_string(),
            format!("dir {}", quote(&dir.to_string_lossy())),
            // stdout goes to the log file the harness opened, so start errors land there too.
            "logfile \"\"".to_string(),
            "save \"\"".to_string(),
            "appendonly no".to_string(),
            // The default waits 5 s for more replicas before a diskless full sync.
            "repl-diskless-sync-delay 0".to_string(),
        ];
        if let Some(password) = &self.password {
            lines.push(format!("requirepass {}", quote(password)));
            lines.push(format!("masterauth {}", quote(password)));
        }
        for (name, password) in &self.users {
            let secret = quote(&format!(">{password}"));
            lines.push(format!("user {name} on {secret} ~* &* +@all"));
        }
        if let (Some(tls_port), Some(_)) = (tls_port, &self.tls) {
            lines.push(format!("tls-port {tls_port}"));
            for (key, file) in [
                ("tls-cert-file", TLS_CERT),
                ("tls-key-file", TLS_KEY),
                ("tls-ca-cert-file", TLS_CA),
            ] {
                lines.push(format!(
                    "{key} {}",
                    quote(&dir.join(file).to_string_lossy())
                ));
            }
            lines.push("tls-auth-clients optional".to_string());
        }
        if self.cluster {
            lines.push("cluster-enabled yes".to_string());
            lines.push("cluster-config-file nodes.conf".to_string());
            lines.push("cluster-node-timeout 2000".to_string());
        }
        if let Some(primary) = self.replica_of {
            lines.push(format!("replicaof 127.0.0.1 {primary}"));
        }
        lines.extend(self.settings.iter().map(|(k, v)| format!("{k} {v}")));
        lines.push(String::new());
        lines.join("\n")
    }
}

/// The `sentinel.conf` of one sentinel watching the primary at `127.0.0.1:primary` as
/// `master`. Short timeouts keep failover tests quick.
pub(crate) fn render_sentinel(
    port: u16,
    dir: &Path,
    master: &str,
    primary: u16,
    quorum: usize,
    password: Option<&str>,
) -> String {
    let mut lines = vec![
        format!("port {port}"),
        "bind 127.0.0.1".to_string(),
        "daemonize no".to_string(),
        format!("dir {}", quote(&dir.to_string_lossy())),
        "logfile \"\"".to_string(),
        format!("sentinel monitor {master} 127.0.0.1 {primary} {quorum}"),
        format!("sentinel down-after-milliseconds {master} 1000"),
        format!("sentinel failover-timeout {master} 5000"),
        format!("sentinel parallel-syncs {master} 1"),
    ];
    if let Some(password) = password {
        lines.push(format!("sentinel auth-pass {master} {}", quote(password)));
    }
    lines.push(String::new());
    lines.join("\n")
}

/// A double-quoted config argument. Redis' argument splitter understands `\\`, `\"` and
/// `\xHH` inside double quotes, so any text survives as exactly one argument.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Checks a `setting(key, value)`: the key is a config directive name, the value one line.
pub(crate) fn validate_setting(key: &str, value: &str) -> Result<(), RedisError> {
    let key_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !key_ok || value.contains(['\n', '\r', '\0']) {
        return Err(RedisError::InvalidSetting(format!("{key} {value:?}")));
    }
    Ok(())
}

/// Checks a name that goes unquoted into a config file (ACL user, twemproxy pool or server).
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), RedisError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(RedisError::InvalidSetting(format!(
            "{what} {name:?} (use letters, digits, `_`, `-`, `.`)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
