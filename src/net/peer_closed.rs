//! Net: noticing that the peer of a connection has gone (FIN or RST)
//! without reading from it, for a reader that has stopped reading on
//! purpose while unread bytes wait in the socket.

use std::io;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// How often a socket with unread bytes is looked at again.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Waits until the peer has closed its sending side or reset the
/// connection, reading nothing.
///
/// The socket's readiness says so (epoll's RDHUP, which tokio keeps once
/// seen), but with bytes unread it also stays readable, so waiting on it
/// returns at once, again and again. Clearing it is no way out: tokio
/// reads only after a readiness event, and the bytes already there would
/// bring none. So when it is readable without being closed, it is looked
/// at again after [`LOOK_AGAIN`]: a few wake-ups a second, never a spin.
/// When it is not readable at all, the wait is for the next event.
pub async fn peer_closed(tcp: &TcpStream) -> io::Result<()> {
    loop {
        let ready = tcp.ready(Interest::READABLE).await?;
        #[cfg(test)]
        tests::WAKEUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if ready.is_read_closed() {
            return Ok(());
        }
        tokio::time::sleep(LOOK_AGAIN).await;
    }
}

#[cfg(test)]
mod tests;
