//! Parse (Postgres): checking a client's credentials: trust, md5,
//! SCRAM-SHA-256 against configured users, or passthrough, where the server
//! itself judges the password the client gives.

use std::sync::atomic::Ordering;

use attache_postgres_protocol::auth::{md5, scram};
use attache_postgres_protocol::messages;
use attache_postgres_protocol::sqlstate;
use bytes::BytesMut;
use rand::RngCore;
use tokio::io::AsyncWriteExt;

use super::context::{PgContext, Route};
use super::error::FrontendError;
use super::handshake::read_message;
use crate::config::types::{AuthMethod, Secret};
use crate::core::pg::conn::{BackendError, ServerConn, ServerSecret};
use crate::net::Stream;

/// Auth messages are small; a client cannot make us buffer more.
const AUTH_MESSAGE_MAX: usize = 64 * 1024;

pub(super) async fn authenticate(
    ctx: &PgContext,
    stream: &mut Stream,
    buf: &mut BytesMut,
    route: &Route,
    user: &str,
) -> Result<(), FrontendError> {
    let password = route.user.as_ref().and_then(|u| u.password.as_ref());
    match route.auth {
        AuthMethod::Trust => Ok(()),
        AuthMethod::Md5 => {
            let stored = password.map(|p| p.expose()).unwrap_or_default();
            md5_auth(stream, buf, user, stored).await
        }
        AuthMethod::ScramSha256 => {
            let verifier = match password {
                Some(p) => ctx.scram_verifier(user, p.expose()).await,
                None => None,
            };
            let verifier = verifier.ok_or_else(|| wrong_password(user))?;
            scram_auth(stream, buf, user, verifier).await
        }
        AuthMethod::Passthrough => passthrough(stream, buf, route, user).await,
    }
}

pub(super) fn wrong_password(user: &str) -> FrontendError {
    FrontendError::refused(
        sqlstate::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

async fn send(stream: &mut Stream, out: &BytesMut) -> Result<(), FrontendError> {
    stream.write_all(out).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_password_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<attache_postgres_protocol::frame::Message, FrontendError> {
    let m = read_message(stream, buf, AUTH_MESSAGE_MAX).await?;
    if m.tag != b'p' {
        return Err(FrontendError::protocol(format!(
            "expected a password message, got {:?}",
            m.tag as char
        )));
    }
    Ok(m)
}

pub(super) async fn md5_auth(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    stored: &str,
) -> Result<(), FrontendError> {
    let hash = if md5::is_md5_hash(stored) {
        stored.to_owned()
    } else {
        md5::stored_hash(user, stored)
    };
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut out = BytesMut::new();
    messages::auth_md5(&mut out, salt);
    send(stream, &out).await?;
    let m = read_password_message(stream, buf).await?;
    let response = std::str::from_utf8(messages::read_password(m.body())).unwrap_or("");
    if stored.is_empty() || !md5::verify(&hash, salt, response) {
        return Err(wrong_password(user));
    }
    Ok(())
}

pub(super) async fn scram_auth(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    verifier: scram::ScramVerifier,
) -> Result<(), FrontendError> {
    let mut out = BytesMut::new();
    messages::auth_sasl(&mut out, &[scram::MECHANISM]);
    send(stream, &out).await?;
    let m = read_password_message(stream, buf).await?;
    let (mech, data) = messages::read_sasl_initial(m.body())
        .map_err(|e| FrontendError::protocol(e.to_string()))?;
    if mech != scram::MECHANISM {
        return Err(FrontendError::refused(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "SASL mechanism {mech:?} is not supported; use {}",
                scram::MECHANISM
            ),
        ));
    }
    let mut nonce = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut server =
        scram::ScramServer::new(verifier, &crate::core::pg::login::base64_nonce(&nonce));
    let server_first = server
        .handle_client_first(data)
        .map_err(|e| FrontendError::refused(sqlstate::PROTOCOL_VIOLATION, e.to_string()))?;
    out.clear();
    messages::auth_sasl_continue(&mut out, &server_first);
    send(stream, &out).await?;
    let m = read_password_message(stream, buf).await?;
    let server_final = server
        .handle_client_final(messages::read_password(m.body()))
        .map_err(|_| wrong_password(user))?;
    out.clear();
    messages::auth_sasl_final(&mut out, &server_final);
    send(stream, &out).await
}

/// Lets the server judge: a server that trusts this user needs no password;
/// otherwise the client's cleartext password is tried against the server,
/// and, once accepted, used for the pool's new connections. Checks against
/// the server run one at a time per pool (never while waiting on a client),
/// so a burst of logins costs one extra server connection, not one each.
async fn passthrough(
    stream: &mut Stream,
    buf: &mut BytesMut,
    route: &Route,
    user: &str,
) -> Result<(), FrontendError> {
    let pool = &route.pool;
    if pool.secret().is_none() {
        let _check = pool.login_check.lock().await;
        if pool.passthrough_trust.load(Ordering::Relaxed) {
            return Ok(());
        }
        if pool.secret().is_none() {
            match ServerConn::connect(pool.target(), None).await {
                Ok(_) => {
                    pool.passthrough_trust.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(BackendError::PasswordRequired) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut out = BytesMut::new();
    messages::auth_cleartext(&mut out);
    send(stream, &out).await?;
    let m = read_password_message(stream, buf).await?;
    let given = std::str::from_utf8(messages::read_password(m.body()))
        .map_err(|_| wrong_password(user))?
        .to_owned();
    let known = |pool: &crate::core::pg::PgPool| matches!(pool.secret(), Some(ServerSecret::Plain(k)) if constant_time_eq(k.expose().as_bytes(), given.as_bytes()));
    if known(pool) {
        return Ok(());
    }
    let _check = pool.login_check.lock().await;
    if known(pool) {
        return Ok(());
    }
    let secret = ServerSecret::Plain(Secret(given.clone()));
    match ServerConn::connect(pool.target(), Some(&secret)).await {
        Ok(_) => {
            route.set_secret(Some(secret));
            Ok(())
        }
        Err(BackendError::Refused { fields, .. }) if fields.code == sqlstate::INVALID_PASSWORD => {
            Err(wrong_password(user))
        }
        Err(e) => Err(e.into()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
