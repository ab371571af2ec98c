//! Helpers for the live tests: start real `redis-server` / `nutcracker`
//! processes in temporary directories on free loopback ports, kill them on
//! drop, and talk RESP to them with this crate's own codec.

#![allow(dead_code)]

use attache_redis_protocol::command::Command;
use attache_redis_protocol::frame::{self, Frame, Limits, Version};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

/// Finds `name` on PATH or in the sbin directories Debian installs
/// daemons to; fails the test with an install hint if it is missing.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: this test needs a real {name}. Install it with \
                 `apt-get install -y {package}` (scripts/test.sh does this)."
            )
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A child process killed (and reaped) when dropped.
pub struct Proc {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(bin: &Path, args: &[String], dir: &Path, name: &str) -> Proc {
        let log = dir.join(format!("{name}.out"));
        let out = std::fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log handle");
        let child = Process::new(bin)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Proc {
            child,
            name: name.to_string(),
            log,
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `port` accepts connections; `false` if the process died.
    pub fn wait_for_port(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            if self.exited() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} did not listen on {port} within 10s:\n{}",
            self.name,
            self.log_text()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` in `dir` on a free port; extra arguments are appended.
pub fn start_redis(dir: &Path, name: &str, extra: &[&str]) -> (Proc, u16) {
    let bin = binary("redis-server", "redis-server");
    for _ in 0..5 {
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut proc = Proc::spawn(&bin, &args, dir, name);
        if proc.wait_for_port(port) && serves_dir(port, dir) {
            return (proc, port);
        }
        // Lost the port to someone else between probing and binding: retry.
    }
    panic!("redis-server {name} failed to start five times");
}

/// Whether the Redis answering on `port` is the one started in `dir`.
/// Another test's server may take the port between the probe and our
/// server's bind; a connect to it succeeds as well, and its first answer
/// to us may be a reset.
pub fn serves_dir(port: u16, dir: &Path) -> bool {
    let Ok(want) = std::fs::canonicalize(dir) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    let want = want.display().to_string();
    // The reply is small: read until it names the directory or ends.
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
        if String::from_utf8_lossy(&reply).contains(&want) {
            return true;
        }
    }
    false
}

/// A blocking RESP client built on this crate's framing.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set timeout");
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, commands: &[Command]) {
        let mut out = BytesMut::new();
        for c in commands {
            c.encode(&mut out);
        }
        self.stream.write_all(&out).expect("write");
    }

    pub fn read(&mut self) -> Frame {
        loop {
            if let Some(decoded) = frame::decode(&mut self.buf, Version::Resp2, &Limits::default())
                .expect("valid RESP")
            {
                return decoded.frame;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("read reply");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call<A: AsRef<[u8]>>(&mut self, parts: &[A]) -> Frame {
        self.send(&[Command::from_parts(parts).expect("non-empty command")]);
        self.read()
    }
}
