//! Parse → route → backend (Postgres), end to end: when a pooled server
//! connection may go back to the pool, and in what state. Extended-protocol
//! batches without a Sync yet, COPY cut short by the server, Attaché's own
//! replies after a Flush, and session state changed where a quick look at
//! the text would miss it (behind a comment, through the extended
//! protocol, a role), spoken byte by byte to a real server through Attaché
//! in transaction mode with a pool of one, so that a connection released
//! too early is the very one the next client gets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::pgwire::*;
use support::*;
use tokio::net::TcpStream;

/// A trusting server with table `t (n int)`, and Attaché pooling one
/// server connection in transaction mode.
async fn one_connection_pool() -> (PgServer, attache::app::Attache, SocketAddr) {
    let pg = trust_app_server();
    let schema =
        "create table t (n int); grant all on t to app; create role other; grant other to app;";
    pg.psql("app", schema).unwrap();
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
    query_value(addr, "select count(*) from t")
}

/// Starts another client's query; its first value (or why it failed)
/// comes on the handle.
fn query_value(
    addr: SocketAddr,
    sql: &'static str,
) -> tokio::task::JoinHandle<Result<String, String>> {
    tokio::spawn(async move {
        let mut s = raw_login(addr, "app", "app").await;
        send(&mut s, &[query(sql)]).await;
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

/// Sends an unnamed-statement batch (Parse/Bind/Execute/Sync) and reads
/// its answer, which must not be an error.
async fn extended(s: &mut TcpStream, sql: &str) -> Vec<(u8, Vec<u8>)> {
    send(s, &[parse("", sql), bind("", ""), execute(""), sync()]).await;
    read_until(s, b'Z').await
}

/// A SET behind a comment is still a SET: tracked, so the next client on
/// that connection does not inherit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_behind_a_comment_does_not_leak() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(
        &mut a,
        &[query("/* app */ -- set\n SET application_name = 'leak'")],
    )
    .await;
    read_until(&mut a, b'Z').await;
    assert_eq!(raw_query_one(&mut a, "show application_name").await, "leak");
    let other = query_value(addr, "show application_name");
    let name = other.await.unwrap().expect("the other client's query");
    assert_ne!(name, "leak", "another client's setting leaked");
    // The first client still has its own.
    assert_eq!(raw_query_one(&mut a, "show application_name").await, "leak");
}

/// SET ROLE changes who the session is, and RESET ALL does not undo it:
/// the client keeps its connection, which is reset (DISCARD ALL) before
/// anyone else gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_set_by_one_client_never_reaches_another() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[query("SET ROLE other")]).await;
    read_until(&mut a, b'Z').await;
    assert_eq!(raw_query_one(&mut a, "select current_user").await, "other");
    let other = query_value(addr, "select current_user");
    still_waiting(&other).await;
    drop(a);
    let user = other.await.unwrap().expect("the other client's query");
    assert_eq!(user, "app");
}

/// A SET sent through the extended protocol (as JDBC sends it) is not
/// classified from its text; its CommandComplete pins the client instead,
/// so the setting does not leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_protocol_set_does_not_leak() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    extended(&mut a, "set application_name = 'ext'").await;
    assert_eq!(raw_query_one(&mut a, "show application_name").await, "ext");
    let other = query_value(addr, "show application_name");
    still_waiting(&other).await;
    drop(a);
    let name = other.await.unwrap().expect("the other client's query");
    assert_ne!(name, "ext", "another client's setting leaked");
}

/// DEALLOCATE ALL through the extended protocol drops the server-side
/// statements Attaché shares on that connection: its cache must forget
/// them, so a later Bind prepares the statement again instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_protocol_deallocate_all_is_followed() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[parse("s1", "select 7"), sync()]).await;
    read_until(&mut a, b'Z').await;
    send(&mut a, &[bind("", "s1"), execute(""), sync()]).await;
    assert_eq!(
        first_column(&read_until(&mut a, b'Z').await).as_deref(),
        Some("7")
    );
    extended(&mut a, "deallocate all").await;
    // The client's own statement is gone too, as on a plain server.
    send(&mut a, &[parse("s1", "select 8"), sync()]).await;
    read_until(&mut a, b'Z').await;
    send(&mut a, &[bind("", "s1"), execute(""), sync()]).await;
    assert_eq!(
        first_column(&read_until(&mut a, b'Z').await).as_deref(),
        Some("8")
    );
    // Another client preparing the first text gets it prepared again.
    let mut b = raw_login(addr, "app", "app").await;
    send(
        &mut b,
        &[parse("x", "select 7"), bind("", "x"), execute(""), sync()],
    )
    .await;
    assert_eq!(
        first_column(&read_until(&mut b, b'Z').await).as_deref(),
        Some("7")
    );
}

/// A Bind too short to read ends the session with a FATAL 08P01 saying
/// so, not with a silent close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_answered_with_08p01() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    assert_eq!(raw_query_one(&mut a, "select 1").await, "1");
    send(&mut a, &[tagged(b'B', b"\0s1")]).await;
    let (tag, body) = read_message(&mut a).await.expect("an ErrorResponse");
    assert_eq!(tag, b'E');
    let (code, message) = error_fields(&body);
    assert_eq!(code, "08P01", "{message}");
    assert!(read_message(&mut a).await.is_none(), "then closes");
}

/// An INSERT, then a Bind of a statement the client never prepared (which
/// Attaché answers itself, 26000), then an Execute, in one batch.
fn insert_then_unknown_bind() -> Vec<Vec<u8>> {
    vec![
        parse("", "insert into t values (9)"),
        bind("", ""),
        execute(""),
        bind("", "never_prepared"),
        execute(""),
        sync(),
    ]
}

/// Sends the batch and returns the tags seen up to ReadyForQuery, the
/// error's SQLSTATE and the transaction status.
async fn run_failing_batch(s: &mut TcpStream) -> (String, String, u8) {
    send(s, &insert_then_unknown_bind()).await;
    let seen = read_until_ready(s).await;
    let code = seen
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, b)| error_fields(b).0)
        .unwrap_or_default();
    let status = seen.last().and_then(|(_, b)| b.first().copied());
    (tags(&seen), code, status.unwrap_or(0))
}

/// An error of Attaché's own in the middle of a batch fails the whole
/// batch, as PostgreSQL's would: the INSERT before it is rolled back with
/// the implicit transaction, not committed by the Sync. The client sees
/// what it would see talking to PostgreSQL directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaches_own_error_mid_batch_rolls_the_batch_back() {
    let (pg, _attache, addr) = one_connection_pool().await;
    let mut direct = raw_login(pg.addr(), "app", "app").await;
    let expected = run_failing_batch(&mut direct).await;
    assert_eq!(expected, ("12CEZ".into(), "26000".into(), b'I'));
    assert_eq!(
        raw_query_one(&mut direct, "select count(*) from t").await,
        "0"
    );
    let mut a = raw_login(addr, "app", "app").await;
    assert_eq!(run_failing_batch(&mut a).await, expected);
    assert_eq!(
        raw_query_one(&mut a, "select count(*) from t").await,
        "0",
        "the INSERT before the error was committed"
    );
}

/// The same inside a transaction block: it ends up failed ('E'), as on
/// PostgreSQL, and only ROLLBACK is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaches_own_error_mid_batch_fails_the_transaction_block() {
    let (pg, _attache, addr) = one_connection_pool().await;
    let mut direct = raw_login(pg.addr(), "app", "app").await;
    send(&mut direct, &[query("begin")]).await;
    read_until(&mut direct, b'Z').await;
    let expected = run_failing_batch(&mut direct).await;
    assert_eq!(expected, ("12CEZ".into(), "26000".into(), b'E'));
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[query("begin")]).await;
    read_until(&mut a, b'Z').await;
    assert_eq!(run_failing_batch(&mut a).await, expected);
    send(&mut a, &[query("select 1")]).await;
    let seen = read_until(&mut a, b'E').await;
    assert_eq!(error_fields(&seen[seen.len() - 1].1).0, "25P02");
    read_until(&mut a, b'Z').await;
    send(&mut a, &[query("rollback")]).await;
    read_until(&mut a, b'Z').await;
    assert_eq!(raw_query_one(&mut a, "select count(*) from t").await, "0");
}

/// The same batch ended by a Flush instead of a Sync: the replies and
/// the one error come at once, as from PostgreSQL (its error flushes), and
/// the Sync that follows finds the batch failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaches_own_error_before_a_flush_is_answered_at_once() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    let mut batch = insert_then_unknown_bind();
    batch.pop();
    batch.push(flush());
    send(&mut a, &batch).await;
    let seen = read_until(&mut a, b'C').await;
    assert_eq!(tags(&seen), "12C");
    let (tag, body) = read_message(&mut a).await.expect("the error");
    assert_eq!((tag, error_fields(&body).0.as_str()), (b'E', "26000"));
    send(&mut a, &[sync()]).await;
    let seen = read_until(&mut a, b'Z').await;
    assert_eq!(tags(&seen), "Z", "one error only");
    assert_eq!(seen[0].1, b"I");
    assert_eq!(raw_query_one(&mut a, "select count(*) from t").await, "0");
}

/// Bind of the unnamed statement with one text parameter.
fn bind_text(value: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0]; // portal "", statement ""
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&(value.len() as i32).to_be_bytes());
    b.extend_from_slice(value);
    b.extend_from_slice(&0i16.to_be_bytes());
    tagged(b'B', &b)
}

/// 20 000 rows of 1 000 bytes, after a pause.
const SLOW_BIG: &str = "select repeat('x', 1000) from pg_sleep(1), generate_series(1, 20000)";

/// A client pipelining far more than the sockets hold (a slow statement
/// with 20 MB of rows, then 32 MB of Bind/Execute, each answered with its
/// 1 KB parameter) while reading the replies as they come, as libpq's
/// pipeline mode does. Attaché must keep reading the server while it
/// writes to it: a server blocked on writing its results stops reading,
/// and a proxy blocked on writing would wait for it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_pipelined_batch_does_not_deadlock() {
    const EXECUTES: usize = 32 * 1024;
    let (_pg, _attache, addr) = one_connection_pool().await;
    let a = raw_login(addr, "app", "app").await;
    let (mut rd, mut wr) = a.into_split();
    let value = vec![b'x'; 1000];
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        // A first statement that answers 20 MB, but only after the rest
        // of the batch has filled every buffer on the way to the server.
        let mut batch = [parse("", SLOW_BIG), bind("", ""), execute("")].concat();
        batch.extend_from_slice(&parse("", "select $1::text"));
        for _ in 0..EXECUTES {
            batch.extend_from_slice(&bind_text(&value));
            batch.extend_from_slice(&execute(""));
        }
        batch.extend_from_slice(&sync());
        wr.write_all(&batch).await.expect("write the batch");
        wr
    });
    let reader = async move {
        let (mut rows, mut bytes) = (0, 0);
        loop {
            let (tag, body) = read_from(&mut rd).await.expect("a reply");
            match tag {
                b'D' => {
                    rows += 1;
                    bytes += body.len();
                }
                b'E' => panic!("error: {:?}", error_fields(&body)),
                b'Z' => return (rows, bytes),
                _ => {}
            }
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(60), reader).await;
    let (rows, bytes) = done.expect("the batch must complete: Attaché deadlocked");
    assert_eq!(rows, EXECUTES + 20_000);
    assert!(bytes > 52_000_000, "{bytes} bytes of rows");
    let _wr = writer.await.unwrap();
}

/// One message from a read half, bounded by nothing (the caller is).
async fn read_from(s: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let tag = s.read_u8().await.ok()?;
    let len = s.read_i32().await.ok()?;
    let mut body = vec![0; usize::try_from(len).ok()?.checked_sub(4)?];
    s.read_exact(&mut body).await.ok()?;
    Some((tag, body))
}

/// A batch whose Parse the server fails before the rest of the batch
/// arrives: the server skips to Sync, so Attaché must neither add an error
/// of its own for the now-unknown statement nor wait for an answer to an
/// abort the server skips. The client sees what PostgreSQL shows directly:
/// one error, then ReadyForQuery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_server_failed_before_it_was_all_sent_ends_like_direct() {
    let (pg, _attache, addr) = one_connection_pool().await;
    async fn split_batch(s: &mut TcpStream) -> (String, String, u8) {
        send(s, &[parse("s1", "selec 1")]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        send(s, &[bind("", "s1"), execute(""), sync()]).await;
        let seen = tokio::time::timeout(Duration::from_secs(10), read_until_ready_or_close(s))
            .await
            .expect("no ReadyForQuery in 10 s")
            .expect("the connection closed");
        let code = seen
            .iter()
            .find(|(t, _)| *t == b'E')
            .map(|(_, b)| error_fields(b).0)
            .unwrap_or_default();
        let status = seen
            .last()
            .and_then(|(_, b)| b.first().copied())
            .unwrap_or(0);
        (tags(&seen), code, status)
    }
    let mut direct = raw_login(pg.addr(), "app", "app").await;
    let expected = split_batch(&mut direct).await;
    assert_eq!(expected, ("EZ".into(), "42601".into(), b'I'));
    let mut a = raw_login(addr, "app", "app").await;
    assert_eq!(split_batch(&mut a).await, expected);
    assert_eq!(raw_query_one(&mut a, "select 1").await, "1");
}

/// A Bind (here to a statement that does not exist, which Attaché answers
/// itself) arrives during an extended-protocol COPY: as on a server, the
/// COPY fails with an error naming the message, the rest of the batch is
/// skipped to Sync, and the client gets its ReadyForQuery instead of
/// waiting forever on a server still in copy-in. Nothing was copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_message_during_extended_copy_fails_the_copy() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    let copy = [
        parse("", "copy t from stdin"),
        bind("", ""),
        execute(""),
        sync(),
    ];
    send(&mut a, &[copy.concat()]).await;
    read_until(&mut a, b'G').await;
    let stray = [copy_data(b"1\n"), bind("", "nope"), execute(""), sync()];
    send(&mut a, &[stray.concat()]).await;
    let seen = read_until(&mut a, b'E').await;
    let (_, message) = error_fields(&seen[seen.len() - 1].1);
    assert!(
        message.contains("unexpected message type 0x42"),
        "{message}"
    );
    let rest = read_until(&mut a, b'Z').await;
    assert_eq!(tags(&rest), "Z", "skipped to Sync");
    assert_eq!(rest[0].1, b"I");
    assert_eq!(raw_query_one(&mut a, "select count(*) from t").await, "0");
}

/// The same during a simple-protocol COPY: the COPY fails, its Query gets
/// its ReadyForQuery, the stray Query is dropped (as a server drops it),
/// and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_message_during_simple_copy_fails_the_copy() {
    let (_pg, _attache, addr) = one_connection_pool().await;
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[query("copy t from stdin")]).await;
    read_until(&mut a, b'G').await;
    send(&mut a, &[copy_data(b"1\n"), parse("s1", "select 1")]).await;
    let seen = read_until(&mut a, b'E').await;
    let (_, message) = error_fields(&seen[seen.len() - 1].1);
    assert!(
        message.contains("unexpected message type 0x50"),
        "{message}"
    );
    assert_eq!(tags(&read_until(&mut a, b'Z').await), "Z");
    assert_eq!(raw_query_one(&mut a, "select count(*) from t").await, "0");
}
