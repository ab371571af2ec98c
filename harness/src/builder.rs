//! Configures and starts a test *backend* of accept → parse → route → backend → respond:
//! roles, databases, authentication method, TLS and extra settings, so each test describes
//! exactly the server its scenario needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{
    quote_ident, quote_literal, render_hba, validate_setting, HbaAuth, ServerConf, TLS_CA,
    TLS_CERT, TLS_KEY,
};
use crate::exec::{env, run};
use crate::template::template_data;
use crate::{free_port, HarnessError, PgServer, TestCerts};

/// Server certificate, key and CA to install into the data dir.
#[derive(Debug, Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// Describes a PostgreSQL server; [`PgBuilder::start`] brings it up.
#[derive(Clone, Default)]
pub struct PgBuilder {
    auth: HbaAuth,
    /// (name, password) in the order given; the first one owns the created databases.
    users: Vec<(String, String)>,
    databases: Vec<String>,
    tls: Option<TlsFiles>,
    settings: Vec<(String, String)>,
    hba_lines: Vec<String>,
}

impl std::fmt::Debug for PgBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("PgBuilder")
            .field("auth", &self.auth)
            .field("users", &users)
            .field("databases", &self.databases)
            .field("tls", &self.tls.is_some())
            .field("settings", &self.settings)
            .field("hba_lines", &self.hba_lines)
            .finish()
    }
}

impl PgBuilder {
    /// A server with SCRAM authentication, no extra roles or databases, no TLS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Method for TCP logins of non-superuser roles; also picks `password_encryption`.
    pub fn auth(mut self, method: HbaAuth) -> Self {
        self.auth = method;
        self
    }

    /// Adds a LOGIN role that may create tables in `public` of every database.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// Adds a database, owned by the first configured user if there is one.
    pub fn database(mut self, name: &str) -> Self {
        self.databases.push(name.to_string());
        self
    }

    /// Turns on TLS with `certs.server_cert`/`server_key`; `certs.ca_cert` becomes the CA for
    /// client certificates (requested, not required, unless an [`PgBuilder::hba_line`] says so).
    pub fn tls(mut self, certs: &TestCerts) -> Self {
        self.tls = Some(TlsFiles {
            cert: certs.server_cert.clone(),
            key: certs.server_key.clone(),
            ca: certs.ca_cert.clone(),
        });
        self
    }

    /// Extra postgresql.conf line, overriding the harness defaults. The value is given
    /// unquoted (`"200"`, `"all"`); the harness quotes it. Do not override `port`.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Extra pg_hba.conf line, placed before the catch-all `host all all 127.0.0.1/32 <auth>`
    /// (e.g. `hostssl all certuser 127.0.0.1/32 cert`).
    pub fn hba_line(mut self, line: &str) -> Self {
        self.hba_lines.push(line.to_string());
        self
    }

    /// Copies the initdb template, writes the configuration, starts the server and creates
    /// the roles and databases. On error everything created so far is removed again.
    pub fn start(self) -> Result<PgServer, HarnessError> {
        let env = env()?;
        let template = template_data()?;
        let settings = self
            .settings
            .iter()
            .map(|(k, v)| validate_setting(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad) = self.hba_lines.iter().find(|l| l.contains(['\n', '\r'])) {
            return Err(HarnessError::InvalidSetting(format!("pg_hba line {bad:?}")));
        }
        let conf = ServerConf {
            port: free_port(),
            socket_dir: PathBuf::new(),
            password_encryption: self.auth.password_encryption(),
            tls: self.tls.is_some(),
            settings,
        };
        let mut server = PgServer::create(env, conf)?;
        let data = server.data_dir().to_path_buf();
        run(Command::new("cp").arg("-a").arg(template).arg(&data))?;
        write_file(
            &data.join("pg_hba.conf"),
            &render_hba(self.auth, &self.hba_lines),
            0o600,
        )?;
        if let Some(tls) = &self.tls {
            copy_file(&tls.cert, &data.join(TLS_CERT), 0o644)?;
            copy_file(&tls.key, &data.join(TLS_KEY), 0o600)?;
            copy_file(&tls.ca, &data.join(TLS_CA), 0o644)?;
        }
        env.give(&data)?;
        server.boot(true)?;
        if let Some(sql) = self.provisioning_sql() {
            server.psql_terse("postgres", &sql)?;
        }
        Ok(server)
    }

    /// One psql script creating roles and databases. CREATE on `public` is granted in
    /// template1 before any CREATE DATABASE, so every new database inherits it (PostgreSQL 15
    /// no longer grants it to PUBLIC).
    fn provisioning_sql(&self) -> Option<String> {
        if self.users.is_empty() && self.databases.is_empty() {
            return None;
        }
        let encryption = quote_literal(self.auth.password_encryption());
        let mut sql = format!("SET password_encryption = {encryption};\n");
        for (name, password) in &self.users {
            let (name, password) = (quote_ident(name), quote_literal(password));
            sql.push_str(&format!("CREATE ROLE {name} LOGIN PASSWORD {password};\n"));
        }
        let grantees: Vec<String> = self.users.iter().map(|(u, _)| quote_ident(u)).collect();
        let grantees = grantees.join(", ");
        if !grantees.is_empty() {
            sql.push_str(&format!(
                "GRANT CREATE ON SCHEMA public TO {grantees};\n\
                 GRANT CREATE ON DATABASE postgres TO {grantees};\n\
                 \\connect template1\n\
                 GRANT CREATE ON SCHEMA public TO {grantees};\n\
                 \\connect postgres\n"
            ));
        }
        let owner = match self.users.first() {
            Some((name, _)) => format!(" OWNER {}", quote_ident(name)),
            None => String::new(),
        };
        for db in &self.databases {
            let db = quote_ident(db);
            sql.push_str(&format!("CREATE DATABASE {db}{owner};\n"));
            if !grantees.is_empty() {
                sql.push_str(&format!("GRANT CREATE ON DATABASE {db} TO {grantees};\n"));
            }
        }
        Some(sql)
    }
}

/// Writes a root- or user-created file with an explicit mode (ownership is fixed later).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))
}

/// Copies a file and sets its mode; PostgreSQL rejects a key readable by group or others.
fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to)
        .and_then(|_| std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)))
        .map(drop)
        .map_err(|e| HarnessError::io(format!("copying {} to {}", from.display(), to.display()), e))
}

#[cfg(test)]
mod tests;
