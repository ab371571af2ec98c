//! A real nginx as an HTTP *backend* (`static_ok`) or as the incumbent reverse proxy that
//! Attaché's HTTP path (accept → parse → route → backend → respond) is benchmarked against.
//!
//! nginx runs unprivileged-style from a temp dir: `daemon off`, pid file, error log and every
//! temp path inside the dir, so it never touches /etc/nginx, /var/log/nginx or /var/lib/nginx.
//! With one worker it runs `master_process off` (a single process: its pid is the whole RSS);
//! with more it runs a master plus workers as the invoking user (`user root;` is written and is
//! only a warning when not root).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{find_bin, HttpError};
use crate::daemon::Daemon;
use crate::exec::describe;
use crate::free_port;

/// Seconds nginx gets to accept connections.
const READY_SECS: u64 = 10;
/// Start attempts when a chosen port turns out to be taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// What the single `server` block does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxSite {
    /// `return 200 "ok\n"` at every path (text/plain), keepalive on.
    StaticOk,
    /// `proxy_pass` to these upstreams (round robin, `keepalive 64`, HTTP/1.1 upstream
    /// connections, buffering off so bodies stream like through Attaché).
    ReverseProxy(Vec<SocketAddr>),
}

/// A running nginx; dropping it kills it (and its workers) and removes its temp dir.
#[derive(Debug)]
pub struct Nginx {
    daemon: Daemon,
    port: u16,
}

impl Nginx {
    /// nginx answering `200 ok\n` everywhere, one process.
    pub fn static_ok() -> Result<Nginx, HttpError> {
        Nginx::start(NginxSite::StaticOk, 1)
    }

    /// nginx reverse-proxying to `upstreams`, one process.
    pub fn reverse_proxy(upstreams: &[SocketAddr]) -> Result<Nginx, HttpError> {
        Nginx::start(NginxSite::ReverseProxy(upstreams.to_vec()), 1)
    }

    /// Starts nginx serving `site` with `workers` worker processes (0 is taken as 1) on a free
    /// loopback port, and blocks (at most ~10 s) until the port accepts connections.
    pub fn start(site: NginxSite, workers: usize) -> Result<Nginx, HttpError> {
        if matches!(&site, NginxSite::ReverseProxy(ups) if ups.is_empty()) {
            return Err(HttpError::Invalid(
                "nginx reverse_proxy needs at least one upstream".to_string(),
            ));
        }
        let program = find_bin("nginx", "nginx-light")?;
        let temp_paths = temp_path_directives(&program)?;
        let mut nginx = Nginx {
            daemon: Daemon::create("nginx")?,
            port: 0,
        };
        let mut attempt = 1;
        loop {
            nginx.port = free_port();
            let conf = render_conf(&ConfArgs {
                dir: nginx.daemon.dir(),
                port: nginx.port,
                workers: workers.max(1),
                temp_paths: &temp_paths,
                site: &site,
            });
            match nginx.boot(&program, &conf) {
                Ok(()) => return Ok(nginx),
                Err(e) if e.port_taken() && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn boot(&mut self, program: &Path, conf: &str) -> Result<(), HttpError> {
        let dir = self.daemon.dir().to_path_buf();
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| HttpError::io(format!("writing {}", conf_path.display()), e))?;
        let mut prefix = dir.into_os_string();
        prefix.push("/");
        self.daemon.spawn(vec![
            program.into(),
            OsString::from("-p"),
            prefix,
            OsString::from("-c"),
            conf_path.into(),
            OsString::from("-e"),
            OsString::from("stderr"),
        ])?;
        Ok(self.daemon.wait_port("nginx", self.port, READY_SECS)?)
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of nginx (the only process with one worker, else the master).
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// nginx's pid followed by its workers' pids; sum their RSS for a multi-worker nginx.
    pub fn pids(&self) -> Vec<u32> {
        self.daemon.pids()
    }

    /// The temp dir holding `nginx.conf`, the pid file, temp paths and `output.log`.
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// The tail of nginx's error log (it logs to stderr, collected in `output.log`).
    pub fn log(&self) -> String {
        self.daemon.log_tail()
    }
}

/// `*_temp_path` directive names for every temp path this nginx build has compiled in.
///
/// A build without, say, the uwsgi module rejects `uwsgi_temp_path`, yet one with it would
/// `mkdir` its compiled-in default under /var/lib/nginx unless overridden; `nginx -V` lists
/// exactly the compiled-in ones as `--http-<kind>-temp-path=` (minus `--without-…` modules).
fn temp_path_directives(program: &Path) -> Result<Vec<String>, HttpError> {
    let mut cmd = Command::new(program);
    cmd.arg("-V");
    let out = cmd
        .output()
        .map_err(|e| HttpError::io(format!("running `{}`", describe(&cmd)), e))?;
    // nginx prints its version and configure arguments on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    Ok(parse_temp_paths(&text))
}

/// Parses `nginx -V` output into directive names (`client_body_temp_path`, `proxy_temp_path`…).
pub(crate) fn parse_temp_paths(version_output: &str) -> Vec<String> {
    let args: Vec<&str> = version_output.split_whitespace().collect();
    let mut names: Vec<String> = args
        .iter()
        .filter_map(|arg| arg.strip_prefix("--http-")?.split_once("-temp-path="))
        .map(|(kind, _)| kind.replace('-', "_"))
        .filter(|kind| {
            kind == "client_body"
                || !args.contains(&format!("--without-http_{kind}_module").as_str())
        })
        .map(|kind| format!("{kind}_temp_path"))
        .collect();
    if !names.iter().any(|n| n == "client_body_temp_path") {
        names.push("client_body_temp_path".to_string());
    }
    names
}

/// Everything `render_conf` needs.
pub(crate) struct ConfArgs<'a> {
    pub dir: &'a Path,
    pub port: u16,
    pub workers: usize,
    pub temp_paths: &'a [String],
    pub site: &'a NginxSite,
}

/// The `nginx.conf` text.
pub(crate) fn render_conf(args: &ConfArgs<'_>) -> String {
    let dir = args.dir.display();
    let process = if args.workers <= 1 {
        "master_process off;\nworker_processes 1;\n".to_string()
    } else {
        format!("master_process on;\nworker_processes {};\n", args.workers)
    };
    let temp: String = args
        .temp_paths
        .iter()
        .map(|name| {
            let sub: PathBuf = args.dir.join(name.trim_end_matches("_temp_path"));
            format!("    {name} {};\n", sub.display())
        })
        .collect();
    let (upstream, location) = match args.site {
        NginxSite::StaticOk => (String::new(), "        return 200 \"ok\\n\";\n".to_string()),
        NginxSite::ReverseProxy(ups) => reverse_proxy_blocks(ups),
    };
    format!(
        "daemon off;\nuser root;\n{process}pid {dir}/nginx.pid;\nerror_log stderr warn;\n\
         events {{\n    worker_connections 8192;\n}}\n\
         http {{\n    access_log off;\n    default_type text/plain;\n{temp}\
         \x20   keepalive_timeout 75s;\n    keepalive_requests 1000000;\n{upstream}\
         \x20   server {{\n        listen 127.0.0.1:{port};\n        location / {{\n{location}\
         \x20       }}\n    }}\n}}\n",
        port = args.port,
    )
}

/// The `upstream` block and the `location /` body for a reverse proxy.
fn reverse_proxy_blocks(ups: &[SocketAddr]) -> (String, String) {
    let servers: String = ups
        .iter()
        .map(|addr| format!("        server {addr};\n"))
        .collect();
    let upstream =
        format!("    upstream attache_upstreams {{\n{servers}        keepalive 64;\n    }}\n");
    let location = "        proxy_pass http://attache_upstreams;\n\
                    \x20       proxy_http_version 1.1;\n\
                    \x20       proxy_set_header Connection \"\";\n\
                    \x20       proxy_set_header Host $http_host;\n\
                    \x20       proxy_buffering off;\n\
                    \x20       proxy_request_buffering off;\n"
        .to_string();
    (upstream, location)
}

#[cfg(test)]
mod tests;
