//! Accept → parse (Postgres): one client from its first byte to a ready
//! session. The opening (SSL and cancel requests), login and greeting run
//! inside the connection's span; the session loop runs outside it unless
//! debug logging is on (see [`crate::server::traced`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::{Instrument, Span};

use super::context::PgContext;
use super::error::FrontendError;
use super::session::{Session, DRAIN_GRACE};
use super::settings::Settings;
use super::statements::Statements;
use super::{auth, console, handshake, send_fatal};
use crate::config::types::PoolMode;
use crate::server::Shutdown;
use attache_postgres_protocol::sqlstate;

/// Serves one client: the opening and login inside the connection's span,
/// then the session loop (see [`crate::server::traced`]).
pub(super) async fn run(
    ctx: Arc<PgContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut shutdown: Shutdown,
    span: Span,
) -> Result<(), FrontendError> {
    let Some(mut session) = open(ctx, tcp, peer, &mut shutdown, span.clone())
        .instrument(span.clone())
        .await?
    else {
        return Ok(());
    };
    let idle = session.pool.settings.client_idle_timeout;
    let r = crate::server::traced(span.clone(), session.serve(&mut shutdown, idle)).await;
    session.finish().instrument(span).await;
    r
}

/// The opening, login and greeting; `None` when the connection was served
/// otherwise (a cancel request, the admin console) or closed early.
async fn open(
    ctx: Arc<PgContext>,
    tcp: TcpStream,
    _peer: SocketAddr,
    shutdown: &mut Shutdown,
    span: Span,
) -> Result<Option<Session>, FrontendError> {
    let _ = tcp.set_nodelay(true);
    let mut cbuf = BytesMut::with_capacity(8 * 1024);
    // A client still opening or logging in must not hold up shutdown for
    // long, but one that connected just before it (as during a restart
    // handover, when it may have been accepted a moment before the
    // listener closed) gets DRAIN_GRACE to finish and be served.
    let opened = {
        let open = handshake::open(&ctx, tcp, &mut cbuf);
        tokio::pin!(open);
        tokio::select! {
            r = &mut open => r?,
            _ = shutdown.wait() => match tokio::time::timeout(DRAIN_GRACE, &mut open).await {
                Ok(r) => r?,
                Err(_) => return Ok(None),
            },
        }
    };
    let Some((mut client, startup)) = opened else {
        return Ok(None);
    };
    if console::is_console(&ctx, &startup) {
        let shutdown = shutdown.clone();
        return console::serve(ctx, client, cbuf, startup, shutdown)
            .await
            .map(|()| None);
    }
    let login = {
        let login = async {
            let user = handshake::startup_user(&startup)?;
            let database = startup
                .param("database")
                .filter(|d| !d.is_empty())
                .unwrap_or(user);
            Span::current().record("user", user).record("db", database);
            if startup
                .param("replication")
                .is_some_and(|r| r != "false" && r != "0")
            {
                return Err(FrontendError::refused(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "replication connections are not supported through Attaché; connect to the server directly",
                ));
            }
            handshake::negotiate(&mut client, &startup).await?;
            let generation = ctx.generation();
            let route = ctx.route(database, user)?;
            auth::authenticate(&ctx, &mut client, &mut cbuf, &route, user).await?;
            Ok((route, generation, database.to_owned(), user.to_owned()))
        };
        tokio::pin!(login);
        tokio::select! {
            r = &mut login => r,
            _ = shutdown.wait() => match tokio::time::timeout(DRAIN_GRACE, &mut login).await {
                Ok(r) => r,
                Err(_) => Err(FrontendError::refused(sqlstate::ADMIN_SHUTDOWN, "Attaché is shutting down")),
            },
        }
    };
    let (route, generation, database, user) = match login {
        Ok(r) => r,
        Err(e) => {
            send_fatal(&mut client, e.sqlstate(), &e.to_string()).await;
            return Err(e);
        }
    };
    route.start_monitor();
    let settings = route.pool.settings.clone();
    let mut session = Session {
        ctx: ctx.clone(),
        generation,
        database,
        user,
        db_key: route.db_key,
        pool: route.pool,
        pools: route.pools,
        cluster: route.cluster,
        classifier: route.classifier,
        in_flight: None,
        role_override: None,
        min_lsn: 0,
        wrote: false,
        lost_tx: None,
        replay: None,
        read_attach: false,
        client,
        cbuf,
        cout: BytesMut::with_capacity(8 * 1024),
        server: None,
        sout: BytesMut::with_capacity(8 * 1024),
        expect: VecDeque::with_capacity(16),
        tx_status: b'I',
        mode: settings.pool_mode,
        rename: settings.pool_mode == PoolMode::Transaction,
        pinned: false,
        skip_until_sync: false,
        last_commit: false,
        copy_in: false,
        copy_extended: false,
        statements: Statements::default(),
        settings: Settings::from_startup(&startup.params),
        cancel: ctx.cancel.register(),
        max_message: settings.max_message_size,
        closing: false,
        span,
        listed: None,
    };
    session.listed = Some(session.list_client());
    if let Err(e) = session.greet().await {
        send_fatal(&mut session.client, e.sqlstate(), &e.to_string()).await;
        session.finish().await;
        return Err(e);
    }
    Ok(Some(session))
}
