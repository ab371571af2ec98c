//! Config import → PgBouncer's authentication (`auth_type`, `auth_user`,
//! the `auth_file` and `[users]`) as `[postgres] auth` and
//! `[postgres.users.NAME]`; part of `attache import`, before accept → parse
//! → route → backend → respond.
//!
//! Why separate: here the stored password (plain, md5 hash or SCRAM
//! verifier) decides whether a user is written at all and with which
//! method, a concern apart from the pool knobs in the parent module (whose
//! tests cover both).

use std::path::Path;

use super::{map_knob, Settings, DEFAULT_NOTE, USER_KNOBS};
use crate::config::validate::{password_kind, PasswordKind};
use crate::import::ini::{self, Entry, UserLine};
use crate::import::render::{Table, Value};
use crate::import::{ImportError, Unmapped};

/// How clients are checked, from `auth_type` and `auth_user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Trust,
    Md5,
    Scram,
    Passthrough,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Trust => "trust",
            Method::Md5 => "md5",
            Method::Scram => "scram-sha-256",
            Method::Passthrough => "passthrough",
        }
    }
}

/// The `[postgres] auth`, and the method written on each `auth_file` user
/// when it must differ (with `auth_user`, users outside the file are left to
/// the server).
pub(super) struct AuthPlan {
    global: Method,
    per_user: Option<Method>,
}

pub(super) fn auth(s: &mut Settings, pg: &mut Table, un: &mut Vec<Unmapped>) -> AuthPlan {
    let given = s.take("auth_type");
    let method = match given.as_deref().map(str::trim) {
        None => Method::Md5,
        Some("trust") => Method::Trust,
        Some("md5") => Method::Md5,
        Some("scram-sha-256") => Method::Scram,
        Some("plain") => {
            let reason = "Attaché never asks for a cleartext password; md5 used \
                          (SCRAM for users stored as SCRAM verifiers)";
            un.push(Unmapped::new("pgbouncer.auth_type", "plain", reason));
            Method::Md5
        }
        Some(other) => {
            let reason = "no Attaché equivalent; auth = \"passthrough\": the server checks \
                          each client's password";
            un.push(Unmapped::new("pgbouncer.auth_type", other, reason));
            Method::Passthrough
        }
    };
    let mut plan = AuthPlan {
        global: method,
        per_user: None,
    };
    if let Some(user) = s.take("auth_user") {
        let reason = "no auth_query in Attaché; users not in auth_file are checked by the \
                      server (auth = \"passthrough\")";
        un.push(Unmapped::new("pgbouncer.auth_user", &user, reason));
        if matches!(method, Method::Md5 | Method::Scram) {
            plan = AuthPlan {
                global: Method::Passthrough,
                per_user: Some(method),
            };
        }
    }
    let note = given.is_none().then_some(DEFAULT_NOTE);
    pg.set_noted("auth", Value::str(plan.global.name()), note);
    plan
}

pub(super) fn read_userlist(path: &Path) -> Result<Vec<UserLine>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    ini::parse_userlist(&text, &name)
}

/// `[postgres.users.NAME]` from the `auth_file` lines and `[users]` entries.
pub(super) fn user_tables(
    lines: &[UserLine],
    entries: &[Entry],
    plan: &AuthPlan,
    source: &str,
    un: &mut Vec<Unmapped>,
) -> Result<Vec<Table>, ImportError> {
    let mut tables: Vec<(String, Table)> = Vec::new();
    for l in lines {
        if let Some(t) = user_with_password(l, plan, un) {
            tables.retain(|(n, _)| n != &l.user);
            tables.push((l.user.clone(), t));
        }
    }
    let needs_password = matches!(plan.global, Method::Md5 | Method::Scram);
    for e in entries {
        let params = ini::parse_connstring(&e.value).map_err(|message| ImportError::Syntax {
            file: source.to_string(),
            line: e.line,
            message: format!("[users] {}: {message}", e.key),
        })?;
        let pos = tables.iter().position(|(n, _)| n == &e.key);
        if pos.is_none() && needs_password {
            let reason = "no password for this user in auth_file, so it could not log in";
            un.push(Unmapped::new(format!("users.{}", e.key), &e.value, reason));
            continue;
        }
        let idx = pos.unwrap_or_else(|| {
            let t = Table::new(&["postgres", "users", &e.key]);
            tables.push((e.key.clone(), t));
            tables.len() - 1
        });
        let table = &mut tables[idx].1;
        for (k, v) in params {
            let path = format!("users.{}.{k}", e.key);
            match USER_KNOBS.iter().find(|kn| kn.src == k) {
                Some(kn) => map_knob(&path, kn, &v, table, un),
                None => un.push(Unmapped::new(path, &v, user_param_reason(&k))),
            }
        }
    }
    Ok(tables.into_iter().map(|(_, t)| t).collect())
}

/// One `auth_file` user, or `None` (reported) when its stored password
/// cannot serve the auth method.
fn user_with_password(l: &UserLine, plan: &AuthPlan, un: &mut Vec<Unmapped>) -> Option<Table> {
    let key = format!("auth_file.{}", l.user);
    let method = plan.per_user.unwrap_or(plan.global);
    let kind = password_kind(&l.password);
    let user_auth = match (method, &kind) {
        (_, PasswordKind::MalformedScram) => {
            un.push(Unmapped::redacted(key, "malformed SCRAM verifier"));
            return None;
        }
        (Method::Scram, PasswordKind::Md5Hash) => {
            let reason = "an md5 hash cannot check SCRAM; PgBouncer refuses this user too";
            un.push(Unmapped::redacted(key, reason));
            return None;
        }
        // PgBouncer's md5 switches to SCRAM for a user stored as a verifier.
        (Method::Md5, PasswordKind::ScramVerifier) => Some(Method::Scram),
        _ => plan.per_user,
    };
    if kind == PasswordKind::ScramVerifier {
        let reason = "kept to check clients, but Attaché cannot log in to the server with a \
                      SCRAM verifier (PgBouncer reuses the client's SCRAM keys): add \
                      server_password, or let the server trust this user";
        un.push(Unmapped::redacted(key, reason));
    }
    let mut t = Table::new(&["postgres", "users", &l.user]);
    t.set("password", Value::str(&l.password));
    if let Some(m) = user_auth {
        t.set("auth", Value::str(m.name()));
    }
    Some(t)
}

fn user_param_reason(key: &str) -> &'static str {
    match key {
        "max_user_connections" | "max_user_client_connections" | "reserve_pool_size" => {
            "Attaché limits each pool with pool_size only"
        }
        _ => "no Attaché equivalent",
    }
}
