//! Accept: the `attache` command. Parses the command line, sets up logging
//! and hands over to the library; the only place `anyhow` is used.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "attache",
    version,
    about = "A connection ambassador for Postgres (Redis and HTTP to come)"
)]
struct Cli {
    /// Config file (TOML). Without one, listen on 127.0.0.1:6432 and forward to 127.0.0.1:5432.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config and print it resolved, secrets redacted.
    Check,
    /// Start a local PostgreSQL primary and replica, Attaché in front of
    /// them, show read/write routing and run a workload.
    Demo {
        /// Instead: kill the primary under load, promote its synchronous
        /// standby, and check that no acknowledged write was lost.
        #[arg(long)]
        failover: bool,
    },
    /// Turn a pgbouncer.ini (with its auth_file) or a twemproxy
    /// nutcracker.yml into an equivalent attache.toml; what does not map is
    /// listed on stderr and as comments at the top of the output.
    Import {
        /// The file to import.
        file: PathBuf,
        /// Its format; by default from the extension (.ini, .yml) or contents.
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        /// Where to write the TOML (created readable by its owner only: it
        /// may hold passwords); default: stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    Pgbouncer,
    Nutcracker,
}

/// mimalloc: the proxy paths make many small, short-lived allocations,
/// which glibc malloc serves with visibly more CPU (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own live summary; only warnings interrupt it.
    let default_level = if matches!(cli.command, Some(Command::Demo { .. })) {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_format, default_level);
    match cli.command {
        Some(Command::Check) => {
            let cfg = attache::config::load(cli.config.as_deref())?;
            print!("{}", attache::config::render_redacted(&cfg));
            eprintln!("config OK");
            Ok(())
        }
        Some(Command::Import {
            file,
            format,
            output,
        }) => import(&file, format, output.as_deref()),
        Some(Command::Demo { failover }) => {
            let mode = if failover {
                attache::demo::DemoMode::Failover
            } else {
                attache::demo::DemoMode::Routing
            };
            runtime(0)?
                .block_on(attache::demo::run(mode))
                .context("demo failed")
        }
        None => {
            let cfg = attache::config::load(cli.config.as_deref())?;
            runtime(cfg.general.worker_threads)?.block_on(run(cfg, cli.config))
        }
    }
}

/// `attache import`: the report goes to stderr, the TOML to `output` or stdout.
fn import(
    file: &std::path::Path,
    format: Option<ImportFormat>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use attache::import::Format;
    let format = format.map(|f| match f {
        ImportFormat::Pgbouncer => Format::Pgbouncer,
        ImportFormat::Nutcracker => Format::Nutcracker,
    });
    let imported = attache::import::import_file(file, format)?;
    for u in &imported.unmapped {
        eprintln!("not mapped: {u}");
    }
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    match output {
        Some(path) => {
            attache::import::write_output(path, &imported.toml)?;
            eprintln!(
                "imported {} ({}) into {}: {} setting(s) not mapped",
                file.display(),
                imported.format.name(),
                path.display(),
                imported.unmapped.len()
            );
        }
        None => print!("{}", imported.toml),
    }
    Ok(())
}

/// `configured` worker threads (0: half the cores, at least one), unless
/// ATTACHE_WORKER_THREADS says otherwise.
fn runtime(configured: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let from_env = std::env::var("ATTACHE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let threads = match from_env.unwrap_or(configured) {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .max(1),
        n => n,
    };
    // One thread: the current-thread scheduler, which has no work-stealing
    // bookkeeping (idle-worker searches, a shared injection queue) to pay
    // for on every wake-up, and that is most of a proxy's work.
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    Ok(builder.enable_all().build()?)
}

async fn run(cfg: attache::config::types::Config, source: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.postgres.is_some() || cfg.redis.is_some() || cfg.http.is_some(),
        "nothing to serve: the config has no [postgres], [redis] or [http] section"
    );
    let app = attache::app::Attache::start_from(cfg, source).await?;
    wait_for_signal(&app.reloader).await?;
    tracing::info!("shutting down: no new clients; waiting for work in flight");
    app.shutdown().await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT; SIGHUP reloads the config on the way.
async fn wait_for_signal(reloader: &attache::reload::Reloader) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return Ok(r?),
            _ = hup.recv() => {
                // The outcome and any rejection are logged by the reloader
                // or here; the process keeps serving either way.
                if let Err(error) = reloader.reload_from_source() {
                    tracing::error!(%error, "SIGHUP reload failed");
                }
            }
        }
    }
}

/// Logs to stderr, filtered by `ATTACHE_LOG` (`EnvFilter` syntax).
///
/// A filter of plain `target=level` directives, the usual case, is applied
/// as `Targets`: every session future runs inside its connection's span, and
/// `EnvFilter` takes a lock on each span enter and exit to look for span
/// field directives, which at a few polls per transaction showed in
/// profiles. Directives naming spans or fields (`[` or `{`) keep
/// `EnvFilter`.
fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, EnvFilter, Layer};
    let spec = std::env::var("ATTACHE_LOG").unwrap_or_else(|_| default_level.to_owned());
    let plain = !spec.contains(['[', '{']);
    let filter = match spec.parse::<Targets>() {
        Ok(targets) if plain => targets.boxed(),
        _ => EnvFilter::try_new(&spec)
            .unwrap_or_else(|_| EnvFilter::new(default_level))
            .boxed(),
    };
    let output = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(output)
        .with(filter)
        .init();
}
