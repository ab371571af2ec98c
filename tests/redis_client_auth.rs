//! Client authentication to Attaché's Redis listener with named users
//! (`AUTH user pass`, `HELLO 3 AUTH user pass`), like Redis ACL users.

use std::time::Duration;

use attache_harness::RedisBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn roundtrip(tcp: &mut TcpStream, req: &str) -> String {
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_users_authenticate_and_others_are_refused() {
    let server = RedisBuilder::new().start().unwrap();
    let toml = format!(
        "[redis]\nnodes = [\"{}\"]\nclient_password = \"default-pw\"\nclient_users = {{ app = \"app-pw\" }}\n",
        server.addr()
    );
    let mut cfg = attache::config::parse(&toml).unwrap();
    cfg.redis.as_mut().unwrap().listen = "127.0.0.1:0".into();
    let attache = attache::app::Attache::start(cfg).await.unwrap();
    let addr = attache.redis_addr.unwrap();

    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(roundtrip(&mut c, "PING\r\n").await.starts_with("-NOAUTH"));
    assert!(roundtrip(&mut c, "AUTH app wrong\r\n")
        .await
        .starts_with("-WRONGPASS"));
    assert!(roundtrip(&mut c, "AUTH nobody app-pw\r\n")
        .await
        .starts_with("-WRONGPASS"));
    assert_eq!(roundtrip(&mut c, "AUTH app app-pw\r\n").await, "+OK\r\n");
    assert_eq!(roundtrip(&mut c, "PING\r\n").await, "+PONG\r\n");

    let mut d = TcpStream::connect(addr).await.unwrap();
    assert_eq!(roundtrip(&mut d, "AUTH default-pw\r\n").await, "+OK\r\n");

    let mut h = TcpStream::connect(addr).await.unwrap();
    let hello = roundtrip(&mut h, "HELLO 3 AUTH app app-pw\r\n").await;
    assert!(hello.starts_with("%7"), "{hello}");
    attache.shutdown().await;
}
