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
    /// Start a local PostgreSQL, Attaché in front of it and a workload.
    Demo,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own live summary; only warnings interrupt it.
    let default_level = if matches!(cli.command, Some(Command::Demo)) {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Check) => {
            let cfg = attache::config::load(cli.config.as_deref())?;
            print!("{}", attache::config::render_redacted(&cfg));
            eprintln!("config OK");
            Ok(())
        }
        Some(Command::Demo) => runtime
            .block_on(attache::demo::run())
            .context("demo failed"),
        None => runtime.block_on(run(cli.config)),
    }
}

async fn run(config: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = attache::config::load(config.as_deref())?;
    anyhow::ensure!(
        cfg.postgres.is_some() || cfg.redis.is_some(),
        "nothing to serve: the config has no [postgres] or [redis] section"
    );
    let app = attache::app::Attache::start(cfg).await?;
    wait_for_signal().await?;
    tracing::info!("shutting down: no new clients; waiting for work in flight");
    app.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("ATTACHE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
