//! Backend (Postgres): the login exchange with a server, Attaché acting as
//! the client: startup, cleartext/MD5/SCRAM authentication, then the
//! parameters and cancel key the server reports until ReadyForQuery.

use attache_postgres_protocol::auth::{md5, scram};
use attache_postgres_protocol::messages::{self, AuthRequest};
use bytes::BytesMut;
use rand::RngCore;

use super::cancel::CancelTarget;
use super::conn::{BackendError, ServerConn, ServerSecret, ServerTarget};

pub(super) async fn login(
    conn: &mut ServerConn,
    target: &ServerTarget,
    secret: Option<&ServerSecret>,
) -> Result<(), BackendError> {
    let mut out = BytesMut::new();
    messages::startup(
        &mut out,
        &[("user", &target.user), ("database", &target.dbname)],
    );
    conn.write_all(&out).await?;
    authenticate(conn, target, secret).await?;
    loop {
        let m = conn.read_message().await?;
        match m.tag {
            b'S' => {
                let (k, v) = messages::read_parameter_status(m.body())
                    .map_err(|e| BackendError::Protocol(e.to_string()))?;
                conn.params.push((k.to_owned(), v.to_owned()));
            }
            b'K' => {
                let (pid, secret) = messages::read_backend_key(m.body())
                    .map_err(|e| BackendError::Protocol(e.to_string()))?;
                conn.cancel = CancelTarget::new(conn.addr.clone(), pid, secret.into());
            }
            b'E' => return Err(refused(target, m.body())),
            b'Z' => return Ok(()),
            _ => {}
        }
    }
}

fn refused(target: &ServerTarget, body: &[u8]) -> BackendError {
    BackendError::Refused {
        addr: target.addr.clone(),
        fields: messages::read_error_fields(body),
    }
}

fn auth_err(target: &ServerTarget, detail: impl ToString) -> BackendError {
    BackendError::Auth {
        addr: target.addr.clone(),
        detail: detail.to_string(),
    }
}

async fn next_auth(
    conn: &mut ServerConn,
    target: &ServerTarget,
) -> Result<AuthRequest, BackendError> {
    let m = conn.read_message().await?;
    match m.tag {
        b'R' => {
            messages::read_auth_request(m.body()).map_err(|e| BackendError::Protocol(e.to_string()))
        }
        b'E' => Err(refused(target, m.body())),
        other => Err(BackendError::Protocol(format!(
            "expected an authentication request, got {:?}",
            other as char
        ))),
    }
}

async fn authenticate(
    conn: &mut ServerConn,
    target: &ServerTarget,
    secret: Option<&ServerSecret>,
) -> Result<(), BackendError> {
    let mut out = BytesMut::new();
    match next_auth(conn, target).await? {
        AuthRequest::Ok => return Ok(()),
        AuthRequest::Cleartext => match secret {
            Some(ServerSecret::Plain(p)) => messages::password(&mut out, p.expose()),
            Some(ServerSecret::Md5Hash(_)) => {
                return Err(auth_err(
                    target,
                    "server wants a cleartext password, but only an md5 hash is configured",
                ))
            }
            None => return Err(BackendError::PasswordRequired),
        },
        AuthRequest::Md5(salt) => {
            let response = match secret {
                Some(ServerSecret::Plain(p)) => {
                    md5::client_response(&target.user, p.expose(), salt)
                }
                Some(ServerSecret::Md5Hash(h)) => {
                    md5::response_from_stored(h.expose(), salt).map_err(|e| auth_err(target, e))?
                }
                None => return Err(BackendError::PasswordRequired),
            };
            messages::password(&mut out, &response);
        }
        AuthRequest::Sasl(mechs) => {
            let password = match secret {
                Some(ServerSecret::Plain(p)) => p.expose().to_owned(),
                Some(ServerSecret::Md5Hash(_)) => {
                    return Err(auth_err(
                        target,
                        "server wants SCRAM, but only an md5 hash is configured",
                    ))
                }
                None => return Err(BackendError::PasswordRequired),
            };
            if !mechs.iter().any(|m| m == scram::MECHANISM) {
                return Err(auth_err(
                    target,
                    format!("no supported SASL mechanism in {mechs:?}"),
                ));
            }
            return scram_exchange(conn, target, &password).await;
        }
        AuthRequest::Unsupported(code) => {
            return Err(BackendError::UnsupportedAuth {
                addr: target.addr.clone(),
                code,
            })
        }
        AuthRequest::SaslContinue(_) | AuthRequest::SaslFinal(_) => {
            return Err(BackendError::Protocol(
                "SASL data before SASL started".into(),
            ))
        }
    }
    conn.write_all(&out).await?;
    match next_auth(conn, target).await? {
        AuthRequest::Ok => Ok(()),
        other => Err(auth_err(
            target,
            format!("unexpected {other:?} after password"),
        )),
    }
}

async fn scram_exchange(
    conn: &mut ServerConn,
    target: &ServerTarget,
    password: &str,
) -> Result<(), BackendError> {
    let mut nonce = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut nonce);
    let nonce = base64_nonce(&nonce);
    let client = scram::ScramClient::new(password, &nonce);
    let mut out = BytesMut::new();
    messages::sasl_initial_response(&mut out, scram::MECHANISM, &client.client_first());
    conn.write_all(&out).await?;
    let server_first = match next_auth(conn, target).await? {
        AuthRequest::SaslContinue(d) => d,
        other => {
            return Err(auth_err(
                target,
                format!("expected SASLContinue, got {other:?}"),
            ))
        }
    };
    // PBKDF2 with the server's iteration count takes milliseconds: on the
    // blocking pool, not on a runtime worker that may be the only one
    // serving every session.
    let (mut client, client_final) = tokio::task::spawn_blocking(move || {
        let mut client = client;
        let r = client.handle_server_first(&server_first);
        (client, r)
    })
    .await
    .map_err(|e| auth_err(target, e))?;
    let client_final = client_final.map_err(|e| auth_err(target, e))?;
    out.clear();
    messages::sasl_response(&mut out, &client_final);
    conn.write_all(&out).await?;
    let server_final = match next_auth(conn, target).await? {
        AuthRequest::SaslFinal(d) => d,
        other => {
            return Err(auth_err(
                target,
                format!("expected SASLFinal, got {other:?}"),
            ))
        }
    };
    client
        .handle_server_final(&server_final)
        .map_err(|e| auth_err(target, e))?;
    match next_auth(conn, target).await? {
        AuthRequest::Ok => Ok(()),
        other => Err(auth_err(
            target,
            format!("unexpected {other:?} after SCRAM"),
        )),
    }
}

/// SCRAM nonces are printable ASCII without commas; base64 qualifies.
pub(crate) fn base64_nonce(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes
        .iter()
        .map(|b| ALPHABET[(*b & 63) as usize] as char)
        .collect()
}
