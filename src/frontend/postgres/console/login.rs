//! Parse (Postgres admin console): who may open the console and how they
//! prove it. Only `admin_users` get in; they authenticate against their
//! `[postgres.users]` password with md5 or SCRAM-SHA-256 (the console has
//! no server to pass a password through to), or not at all under `trust`.

use attache_postgres_protocol::auth::md5;
use attache_postgres_protocol::sqlstate;
use attache_postgres_protocol::startup::Startup;
use bytes::BytesMut;

use super::super::auth;
use super::super::context::PgContext;
use super::super::error::FrontendError;
use crate::config::types::{AuthMethod, PostgresConfig, Secret};
use crate::net::Stream;

/// How an admin user proves who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AdminAuth {
    Trust,
    Md5,
    Scram,
}

/// Decides whether `user` may use the console and how they must prove it.
/// Passthrough has no server here: a stored md5 hash is checked with md5,
/// anything else with SCRAM.
pub(super) fn admin_auth(
    config: &PostgresConfig,
    user: &str,
) -> Result<(AdminAuth, Option<Secret>), FrontendError> {
    if !config.admin_users.iter().any(|a| a == user) {
        return Err(FrontendError::refused(
            sqlstate::INVALID_AUTHORIZATION,
            format!(
                "user \"{user}\" is not allowed to use the admin console (postgres.admin_users)"
            ),
        ));
    }
    let entry = config.users.get(user);
    let method = entry.and_then(|u| u.auth).unwrap_or(config.auth);
    let password = entry.and_then(|u| u.password.clone());
    let how = match method {
        AuthMethod::Trust => AdminAuth::Trust,
        AuthMethod::Md5 => AdminAuth::Md5,
        AuthMethod::ScramSha256 => AdminAuth::Scram,
        AuthMethod::Passthrough => match &password {
            Some(p) if md5::is_md5_hash(p.expose()) => AdminAuth::Md5,
            _ => AdminAuth::Scram,
        },
    };
    if how != AdminAuth::Trust && password.is_none() {
        // Validation refuses such a config; stay closed if one slips by.
        return Err(auth::wrong_password(user));
    }
    Ok((how, password))
}

/// Runs the exchange `admin_auth` chose. Returns once the client proved
/// its password; the caller sends AuthenticationOk.
pub(super) async fn authenticate(
    ctx: &PgContext,
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
) -> Result<(), FrontendError> {
    let (how, password) = admin_auth(&ctx.config(), user)?;
    let stored = password.as_ref().map(Secret::expose).unwrap_or_default();
    match how {
        AdminAuth::Trust => Ok(()),
        AdminAuth::Md5 => auth::md5_auth(stream, buf, user, stored).await,
        AdminAuth::Scram => {
            let verifier = ctx
                .scram_verifier(user, stored)
                .await
                .ok_or_else(|| auth::wrong_password(user))?;
            auth::scram_auth(stream, buf, user, verifier).await
        }
    }
}

/// The ParameterStatus values a console client is greeted with: what psql
/// and drivers look for, with Attaché's version as the server's.
pub(super) fn greeting(startup: &Startup) -> Vec<(&'static str, String)> {
    vec![
        (
            "server_version",
            format!("{}/attache", env!("CARGO_PKG_VERSION")),
        ),
        ("server_encoding", "UTF8".into()),
        ("client_encoding", "UTF8".into()),
        ("DateStyle", "ISO, MDY".into()),
        ("TimeZone", "UTC".into()),
        ("integer_datetimes", "on".into()),
        ("standard_conforming_strings", "on".into()),
        ("is_superuser", "off".into()),
        (
            "application_name",
            startup.param("application_name").unwrap_or("").to_owned(),
        ),
    ]
}
