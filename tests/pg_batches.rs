//! Parse → route → backend (Postgres), end to end: when a pooled server
//! connection may go back to the pool. Extended-protocol batches without a
//! Sync yet, COPY cut short by the server, and Attaché's own replies after a
//! Flush, spoken byte by byte to a real server through Attaché in
//! transaction mode with a pool of one, so that a connection released too
//! early is the very one the next client gets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::pgwire::*;
use support::*;
use tokio::net::TcpStream;

/// A trusting server with table `t (n int)`, and Attaché pooling one
/// server connection in transaction mode.
async fn one_connection_pool() -> (PgServer, attache::app::Attache, SocketAddr) {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Trust)
        .user("app", "unused")
        .database("app")
        .start()
        .unwrap();
    pg.psql("app", "create table t (n int); grant all on t to app;")
        .unwrap();
    let extra =
        "auth = \"trust\"\npool_mode = \"transaction\"\npool_size = 1\ncheckout_timeout = \"20s\"";
    let attache = start_attache(&pg_config(&pg, "app", extra, "")).await;
    let addr = attache.postgres_addr.unwrap();
    (pg, attache, addr)
}

/// Reads messages until one tagged `tag`; panics on an ErrorResponse
/// unless `tag` is `E`.
async fn read_until(s: &mut TcpStream, tag: u8) -> Vec<(u8, Vec<u8>)> {
    let mut seen = Vec::new();
    loop {
        let Some((t, body)) = read_message(s).await else {
            panic!(
                "closed after {:?}, waiting for {:?}",
                tags(&seen),
                tag as char
            );
        };
        if t == b'E' && tag != b'E' {
            panic!("error after {:?}: {:?}", tags(&seen), error_fields(&body));
        }
        seen.push((t, body));
        if t == tag {
            return seen;
        }
    }
}

/// Starts a second client's `select count(*) from t`; its answer (the
/// count, or why it failed) comes on the handle.
fn count_rows(addr: SocketAddr) -> tokio::task::JoinHandle<Result<String, String>> {
    tokio::spawn(async move {
        let mut s = raw_login(addr, "app", "app").await;
        send(&mut s, &[query("select count(*) from t")]).await;
        let seen = tokio::time::timeout(Duration::from_secs(15), read_until_ready_or_close(&mut s))
            .await
            .map_err(|_| "no answer in 15 s".to_owned())??;
        match seen.iter().find(|(t, _)| *t == b'E') {
            Some((_, body)) => Err(format!("{:?}", error_fields(body))),
            None => first_column(&seen).ok_or_else(|| format!("no row: {}", tags(&seen))),
        }
    })
}

async fn read_until_ready_or_close(s: &mut TcpStream) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut seen = Vec::new();
    loop {
        match read_message_unbounded(s).await {
            Some((t, body)) => {
                seen.push((t, body));
                if t == b'Z' {
                    return Ok(seen);
                }
            }
            None => return Err(format!("closed after {}", tags(&seen))),
        }
    }
}

/// The other client must still be waiting for the only server connection.
async fn still_waiting(other: &tokio::task::JoinHandle<Result<String, String>>) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !other.is_finished(),
        "the connection went to another client in the middle of a batch"
    );
}

/// P/B/E + Flush: the INSERT's reply comes, and the server holds it in an
/// implicit transaction until a Sync. The connection must stay with this
/// client until then: another client's query would otherwise run inside
/// that transaction (and commit it for this client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_without_sync_keeps_its_connection() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    let insert = "insert into t values (1)";
    send(
        &mut a,
        &[parse("", insert), bind("", ""), execute(""), flush()],
    )
    .await;
    let seen = read_until(&mut a, b'C').await;
    assert_eq!(tags(&seen), "12C");
    let other = count_rows(addr);
    still_waiting(&other).await;
    send(&mut a, &[sync()]).await;
    let seen = read_until(&mut a, b'Z').await;
    assert_eq!(seen.last().map(|(_, b)| b.as_slice()), Some(&b"I"[..]));
    let count = other.await.unwrap().expect("the other client's query");
    assert_eq!(count, "1", "the INSERT is committed by its own Sync");
}

/// The same after a pipelined batch that did end with Sync: that Sync's
/// ReadyForQuery comes first, while the next batch is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_batch_followed_by_an_open_one_keeps_its_connection() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    let first = [parse("", "select 1"), bind("", ""), execute(""), sync()];
    let second = [
        parse("", "insert into t values (2)"),
        bind("", ""),
        execute(""),
        flush(),
    ];
    send(&mut a, &[first.concat(), second.concat()]).await;
    let seen = read_until(&mut a, b'Z').await;
    assert_eq!(tags(&seen), "12DCZ");
    let seen = read_until(&mut a, b'C').await;
    assert_eq!(tags(&seen), "12C");
    let other = count_rows(addr);
    still_waiting(&other).await;
    send(&mut a, &[sync()]).await;
    read_until(&mut a, b'Z').await;
    assert_eq!(other.await.unwrap().expect("the other query"), "1");
}

/// A Parse that fails, with no Sync yet: the server now skips everything
/// until a Sync. Another client's query sent there would be skipped too,
/// and that client would hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_without_sync_keeps_its_connection() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[parse("", "selec 1"), flush()]).await;
    let seen = read_until(&mut a, b'E').await;
    assert_eq!(error_fields(&seen[seen.len() - 1].1).0, "42601");
    let other = count_rows(addr);
    still_waiting(&other).await;
    send(&mut a, &[sync()]).await;
    read_until(&mut a, b'Z').await;
    assert_eq!(other.await.unwrap().expect("the other query"), "0");
}

/// COPY FROM STDIN that the server rejects at its first row (ErrorResponse
/// and ReadyForQuery before the client's CopyDone, as libpq sends it only
/// after all its data): the session must leave copy mode, or the Syncs of
/// its later batches go unanswered by Attaché's bookkeeping and an
/// extended-protocol BEGIN is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_the_server_cut_short_ends_copy_mode() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[query("copy t from stdin")]).await;
    read_until(&mut a, b'G').await;
    send(&mut a, &[copy_data(b"not a number\n")]).await;
    let seen = read_until(&mut a, b'E').await;
    assert_eq!(error_fields(&seen[seen.len() - 1].1).0, "22P02");
    read_until(&mut a, b'Z').await;
    // libpq's CopyDone, after its data; the server is done with the COPY.
    send(&mut a, &[copy_done()]).await;
    let begin = [parse("", "begin"), bind("", ""), execute(""), sync()];
    send(&mut a, &[begin.concat()]).await;
    let seen = read_until(&mut a, b'Z').await;
    assert_eq!(seen.last().map(|(_, b)| b.as_slice()), Some(&b"T"[..]));
    send(&mut a, &[query("insert into t values (3)")]).await;
    read_until(&mut a, b'Z').await;
    send(&mut a, &[query("rollback")]).await;
    let seen = read_until(&mut a, b'Z').await;
    assert!(
        !seen.iter().any(|(t, _)| *t == b'N'),
        "ROLLBACK found no transaction: the BEGIN's connection was dropped"
    );
    assert_eq!(raw_query_one(&mut a, "select count(*) from t").await, "0");
}

/// Inside a transaction, Bind/Execute and a Close that Attaché answers
/// itself (statements are its own in transaction mode), then Flush: the
/// CloseComplete must come after the server's replies without waiting for
/// more input from the client, which is waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaches_own_reply_after_a_flush_is_sent() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[query("begin")]).await;
    read_until(&mut a, b'Z').await;
    send(&mut a, &[parse("s1", "select 1"), sync()]).await;
    assert_eq!(tags(&read_until(&mut a, b'Z').await), "1Z");
    send(
        &mut a,
        &[bind("", "s1"), execute(""), close(b'S', "s1"), flush()],
    )
    .await;
    assert_eq!(tags(&read_until(&mut a, b'3').await), "2DC3");
    send(&mut a, &[sync()]).await;
    read_until(&mut a, b'Z').await;
}
