//! Net: noticing that the peer of a connection has gone (FIN or RST)
//! without reading from it, for a reader that has stopped reading on
//! purpose while unread bytes wait in the socket.

use std::io;
use std::os::fd::AsFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Waits until the peer has closed its sending side or reset the
/// connection, reading nothing.
///
/// The socket's own readiness cannot be used: with bytes unread it stays
/// readable, so waiting on it would return at once, again and again, and
/// clearing it would hide those bytes from the socket's reader (tokio
/// reads only after a readiness event). So a duplicate of the socket is
/// registered with readiness of its own, which is cleared after each
/// wake-up. Readiness events are edge-triggered: the next wake-up comes
/// with the next bytes the peer sends or with its close, never in a loop
/// on bytes already there. The duplicate is deregistered and closed when
/// the future is dropped; the socket itself is untouched.
pub async fn peer_closed(tcp: &TcpStream) -> io::Result<()> {
    let dup = tcp.as_fd().try_clone_to_owned()?;
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which keeps it
    // open, unchanged, until it deregisters it on drop, then closes it.
    let watched = unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }
        .map_err(io::Error::from)?;
    loop {
        let mut guard = watched.readable().await?;
        #[cfg(test)]
        tests::WAKEUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if guard.ready().is_read_closed() {
            return Ok(());
        }
        //guard.clear_ready();
        let _ = &mut guard;
    }
}

#[cfg(test)]
mod tests;
