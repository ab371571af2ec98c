use std::io::IoSlice;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Stream;

async fn plain_pair() -> (Stream, Stream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (
        Stream::from(client.unwrap()),
        Stream::from(accepted.unwrap().0),
    )
}

#[tokio::test]
async fn plain_round_trip_and_addresses() {
    let (mut client, mut server) = plain_pair().await;
    assert!(!client.is_tls());
    assert!(!server.is_tls());
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());

    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn vectored_write_is_delegated() {
    let (mut client, mut server) = plain_pair().await;
    // A TCP socket supports vectored writes; the wrapper must not hide that,
    // or tokio would fall back to writing only the first slice each call.
    assert!(client.is_write_vectored());
    let bufs = [IoSlice::new(b"hello "), IoSlice::new(b"world")];
    let n = client.write_vectored(&bufs).await.unwrap();
    assert!(n > 0);
    // Short writes are allowed; send whatever the socket did not take.
    client.write_all(&b"hello world"[n..]).await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hello world");
}
