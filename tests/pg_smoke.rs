//! A first end-to-end check: simple and extended queries through Attaché
//! to a real PostgreSQL with SCRAM passthrough.

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_pass_through() {
    let pg = app_server();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let addr = attache.postgres_addr.unwrap();
    let c = connect(addr, "app", "app", Some("app-secret")).await;
    let rows = c
        .simple_query("select 1 as one; select 'two'")
        .await
        .unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    let row = c.query_one("select $1::int + 1", &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let port: i32 = c
        .query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port as u16, pg.port());
    attache.shutdown().await;
}
