//! A real HAProxy as the other incumbent reverse proxy that Attaché's HTTP path (accept →
//! parse → route → backend → respond) is benchmarked against: `mode http`, round robin,
//! `http-reuse always`, run in the foreground (`-db`) from a temp dir.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use super::{find_bin, HttpError};
use crate::daemon::Daemon;
use crate::free_port;

/// Seconds haproxy gets to accept connections.
const READY_SECS: u64 = 10;
/// Start attempts when a chosen port turns out to be taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// A running haproxy; dropping it kills it and removes its temp dir.
#[derive(Debug)]
pub struct Haproxy {
    daemon: Daemon,
    port: u16,
}

impl Haproxy {
    /// haproxy reverse-proxying to `upstreams` with its default thread count (one per CPU).
    pub fn reverse_proxy(upstreams: &[SocketAddr]) -> Result<Haproxy, HttpError> {
        Haproxy::start(upstreams, None)
    }

    /// Like [`Haproxy::reverse_proxy`] with `nbthread` fixed (`Some(1)` for a single-threaded
    /// comparison); blocks (at most ~10 s) until the port accepts connections.
    pub fn start(upstreams: &[SocketAddr], threads: Option<usize>) -> Result<Haproxy, HttpError> {
        if upstreams.is_empty() {
            return Err(HttpError::Invalid(
                "haproxy reverse_proxy needs at least one upstream".to_string(),
            ));
        }
        let program = find_bin("haproxy", "haproxy")?;
        let mut proxy = Haproxy {
            daemon: Daemon::create("haproxy")?,
            port: 0,
        };
        let mut attempt = 1;
        loop {
            proxy.port = free_port();
            let conf = render_cfg(proxy.port, threads, upstreams);
            match proxy.boot(&program, &conf) {
                Ok(()) => return Ok(proxy),
                Err(e) if e.port_taken() && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn boot(&mut self, program: &Path, conf: &str) -> Result<(), HttpError> {
        let conf_path = self.daemon.dir().join("haproxy.cfg");
        std::fs::write(&conf_path, conf)
            .map_err(|e| HttpError::io(format!("writing {}", conf_path.display()), e))?;
        self.daemon.spawn(vec![
            program.into(),
            OsString::from("-db"),
            OsString::from("-f"),
            conf_path.into(),
        ])?;
        Ok(self.daemon.wait_port("haproxy", self.port, READY_SECS)?)
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of haproxy (one process; threads share its RSS).
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The temp dir holding `haproxy.cfg` and `output.log`.
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// The tail of haproxy's output.
    pub fn log(&self) -> String {
        self.daemon.log_tail()
    }
}

/// The `haproxy.cfg` text. No `maxconn`: haproxy then derives it from the file-descriptor
/// limit it finds, where a fixed value would fail to start under a lower hard limit.
pub(crate) fn render_cfg(port: u16, threads: Option<usize>, upstreams: &[SocketAddr]) -> String {
    let nbthread = threads
        .map(|n| format!("    nbthread {}\n", n.max(1)))
        .unwrap_or_default();
    let servers: String = upstreams
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("    server up{i} {addr}\n"))
        .collect();
    format!(
        "global\n{nbthread}\n\
         defaults\n    mode http\n    timeout connect 30s\n    timeout client 30s\n\
         \x20   timeout server 30s\n    timeout http-request 30s\n    http-reuse always\n\n\
         frontend attache_in\n    bind 127.0.0.1:{port}\n    default_backend attache_upstreams\n\n\
         backend attache_upstreams\n    balance roundrobin\n{servers}"
    )
}

#[cfg(test)]
mod tests;
