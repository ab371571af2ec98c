//! Config: `attache.toml` → [`Config`], read once at startup (and by
//! `attache check`) before the accept → parse → route → backend → respond
//! path starts. Loading is: `${ENV}` substitution in the text ([`env`]) →
//! TOML → semantic checks ([`validate`]); [`resolve`] then answers "which
//! settings apply to this database and user" at route time.

pub mod env;
pub mod http;
mod raw;
pub mod redis;
pub mod resolve;
pub mod topology;
pub mod types;
pub mod units;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use env::EnvError;
pub use resolve::ResolvedPool;
pub use types::{
    AuthMethod, Config, DatabaseConfig, General, NodeConfig, NodeRole, PoolMode, PoolSettings,
    PostgresConfig, UpstreamTls, UserConfig,
};
pub use validate::validate;

/// Everything that can go wrong loading a config; `Display` is the message
/// shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// toml's message (it names the key), located in the file as written.
    #[error("{0}")]
    Toml(TomlError),
    #[error("environment substitution: {0}")]
    Env(#[from] EnvError),
    /// A semantic rule failed; `path` is the TOML path of the offending value.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// Several rules failed; all are reported so one edit can fix them all.
    #[error("{}", ManyDisplay(.0))]
    Many(Vec<ConfigError>),
}

struct ManyDisplay<'a>(&'a [ConfigError]);

impl fmt::Display for ManyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problems in the config:", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// The individual problems (one for anything but `Many`), handy for
    /// callers that want to print one per line or match on paths.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many(all) => all.iter().collect(),
            other => vec![other],
        }
    }
}

/// Reads and checks the file at `path`; `None` gives [`builtin_default`].
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return Ok(builtin_default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

/// `${ENV}` substitution → TOML → [`validate`]. An empty text gives a
/// `Config` with `postgres: None`.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let subst = env::substitute(text)?;
    let cfg: Config = toml::from_str(&subst.text)
        .map_err(|e| ConfigError::Toml(TomlError::new(&e, text, &subst)))?;
    validate(&cfg)?;
    Ok(cfg)
}

/// A TOML error shown against the original line. toml's own `Display`
/// quotes the substituted line, which may hold a secret from the
/// environment; this one quotes the `${NAME}` the operator wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// toml's message without location, e.g. "unknown field `pool_sise`, …".
    pub message: String,
    /// 1-based line and column in the original text, when toml knows them.
    pub line: Option<usize>,
    pub column: Option<usize>,
    snippet: Option<String>,
}

impl TomlError {
    fn new(err: &toml::de::Error, original: &str, subst: &env::Substituted) -> Self {
        let message = err.message().trim_end().to_string();
        let Some(span) = err.span() else {
            return TomlError {
                message,
                line: None,
                column: None,
                snippet: None,
            };
        };
        let offset = subst.original_offset(span.start).min(original.len());
        // Step back to a char boundary; offsets from toml are byte offsets.
        let offset = (0..=offset)
            .rev()
            .find(|&i| original.is_char_boundary(i))
            .unwrap_or(0);
        let line_start = original[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = original[offset..]
            .find('\n')
            .map_or(original.len(), |i| offset + i);
        TomlError {
            message,
            line: Some(original[..line_start].matches('\n').count() + 1),
            column: Some(original[line_start..offset].chars().count() + 1),
            snippet: Some(
                original[line_start..line_end]
                    .trim_end_matches('\r')
                    .to_string(),
            ),
        }
    }
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Some(line), Some(column), Some(snippet)) = (self.line, self.column, &self.snippet)
        else {
            return write!(f, "TOML parse error: {}", self.message);
        };
        let gutter = " ".repeat(line.to_string().len());
        let caret = " ".repeat(column.saturating_sub(1));
        write!(
            f,
            "TOML parse error at line {line}, column {column}\n{gutter} |\n{line} | {snippet}\n{gutter} | {caret}^\n{}",
            self.message
        )
    }
}

/// What runs without a config file: Postgres on 127.0.0.1:6432, any
/// database name forwarded to 127.0.0.1:5432, passthrough auth, default pool.
pub fn builtin_default() -> Config {
    let any_db = DatabaseConfig {
        dbname: None,
        nodes: vec![NodeConfig {
            addr: "127.0.0.1:5432".into(),
            role: NodeRole::Primary,
        }],
        server_tls: UpstreamTls::default(),
        auth: None,
        pool: PoolSettings::default(),
        read_write_split: Default::default(),
        consistency: Default::default(),
        balance: Default::default(),
        primary_reads: Default::default(),
        failover_timeout: None,
        read_only_functions: Vec::new(),
        health: Default::default(),
    };
    Config {
        general: General::default(),
        postgres: Some(PostgresConfig {
            listen: types::defaults::pg_listen(),
            tls: None,
            max_client_connections: types::defaults::max_client_connections(),
            auth: AuthMethod::Passthrough,
            pool: PoolSettings::default(),
            databases: BTreeMap::from([("*".to_string(), any_db)]),
            users: BTreeMap::new(),
            admin_users: Vec::new(),
        }),
        redis: None,
        http: None,
        admin: None,
    }
}

/// The effective config as TOML for `attache check`: built-in pool defaults
/// spelled out under `[postgres]`, every secret shown as `<redacted>`.
/// Without secrets the output parses back to an equivalent config.
pub fn render_redacted(cfg: &Config) -> String {
    let mut shown = cfg.clone();
    if let Some(pg) = shown.postgres.as_mut() {
        pg.pool = pg.pool.or(&PoolSettings::builtin());
    }
    match toml::to_string(&shown) {
        // The output is a config file, so a literal `$` is written `$$`;
        // otherwise `${…}` in a value would be substituted when read back.
        Ok(text) => text.replace('$', "$$"),
        // Not expected: every type here serializes. Still no panic on a
        // diagnostic path; say what happened instead.
        Err(e) => format!("# cannot render the config as TOML: {e}\n"),
    }
}

#[cfg(test)]
mod tests;
