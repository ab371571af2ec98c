//! Parse (Postgres admin console): the command language, PgBouncer's: a
//! keyword or two, case-insensitive, an optional database name, an
//! optional trailing `;`.

use super::ConsoleError;

/// What a SHOW asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    Pools,
    Clients,
    Servers,
    Stats,
    Databases,
    Config,
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Show(Show),
    Reload,
    /// A database key, or every database.
    Pause(Option<String>),
    Resume(Option<String>),
}

/// Every command with a line of help, for SHOW HELP and the error hint.
pub(super) const HELP: &[(&str, &str)] = &[
    (
        "SHOW POOLS",
        "one row per pool (database, user, node): clients and server connections",
    ),
    ("SHOW CLIENTS", "one row per logged-in client"),
    ("SHOW SERVERS", "one row per server connection"),
    (
        "SHOW STATS",
        "counters per database since the pools were built",
    ),
    (
        "SHOW DATABASES",
        "the configured databases, their pool sizes and pause state",
    ),
    (
        "SHOW CONFIG",
        "the [postgres] settings in force (secrets redacted)",
    ),
    ("SHOW VERSION", "the Attaché version"),
    ("SHOW HELP", "this list"),
    ("RELOAD", "re-read the config file, as SIGHUP does"),
    (
        "PAUSE [db]",
        "let running transactions finish, then hold new ones",
    ),
    ("RESUME [db]", "release what PAUSE held"),
];

/// Splits a query string into its commands: `;` separates them, and
/// empty pieces (a trailing `;`) are dropped. The console's words never
/// contain a `;`, so no quoting rules are needed.
pub(super) fn split(query: &str) -> Vec<&str> {
    query
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Parses one command (without its `;`).
pub(super) fn parse(text: &str) -> Result<Command, ConsoleError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let unknown = || ConsoleError::Syntax(text.to_owned());
    match upper.as_slice() {
        ["SHOW", what] => Ok(Command::Show(match *what {
            "POOLS" => Show::Pools,
            "CLIENTS" => Show::Clients,
            "SERVERS" => Show::Servers,
            "STATS" => Show::Stats,
            "DATABASES" => Show::Databases,
            "CONFIG" => Show::Config,
            "VERSION" => Show::Version,
            "HELP" => Show::Help,
            _ => return Err(unknown()),
        })),
        ["RELOAD"] => Ok(Command::Reload),
        ["PAUSE"] => Ok(Command::Pause(None)),
        ["RESUME"] => Ok(Command::Resume(None)),
        ["PAUSE", _] => Ok(Command::Pause(Some(database(words[1])?))),
        ["RESUME", _] => Ok(Command::Resume(Some(database(words[1])?))),
        _ => Err(unknown()),
    }
}

/// A database name as written: bare, or in double quotes (`""` inside
/// stands for one `"`), as SQL identifiers are.
fn database(word: &str) -> Result<String, ConsoleError> {
    let name = match word.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| ConsoleError::Syntax(word.to_owned()))?
            .replace("\"\"", "\""),
        None => word.to_owned(),
    };
    if name.is_empty() {
        return Err(ConsoleError::Syntax(word.to_owned()));
    }
    Ok(name)
}
