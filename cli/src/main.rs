//! `livepulse`: real-time analytics for live streaming.

mod commands;
mod config;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Config;

// The pipeline allocates many small Arrow buffers and strings per batch;
// mimalloc spends far less time on them than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With transparent huge pages (`madvise`, the common default, and mimalloc
/// asks for them) every fresh mimalloc page faults in a zeroed 2 MiB page:
/// two thirds of the replay benchmark's CPU time went to the kernel zeroing
/// pages the pipeline's short-lived batches barely touch.
#[cfg(target_os = "linux")]
fn without_transparent_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("cannot turn transparent huge pages off: {e}");
    }
}

/// Real-time analytics for live streaming: collector, streaming jobs,
/// ClickHouse, and an all-in-one local mode.
#[derive(Debug, Parser)]
#[command(name = "livepulse", version, about)]
struct Cli {
    /// Configuration file (TOML). Default: ./livepulse.toml when present.
    #[arg(long, global = true, env = "LIVEPULSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system on this machine: local broker and ClickHouse
    /// (when none is configured), collector, HLS origin with a live test
    /// stream, engagement job, synthetic audience.
    Up(commands::up::UpArgs),
    /// Install the local broker (tansu) and ClickHouse server used by `up` and the tests.
    Install,
    /// Create the Kafka topics with their partition counts.
    Topics,
    /// Apply the ClickHouse migrations in sql/migrations.
    Migrate,
    /// Run the telemetry collector.
    Collect,
    /// Run the HLS origin: publishers PUT HLS, viewers play it, requests go to Kafka.
    Origin,
    /// Manage stream keys through a running origin's admin API.
    Streams(commands::streams::StreamsArgs),
    /// Run a streaming job.
    Run(commands::run::RunArgs),
    /// Drive a synthetic audience against a collector in real time.
    Simulate(commands::simulate::SimulateArgs),
    /// Measure the job's processing rate, from a local replay and through the broker.
    Bench(commands::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    #[cfg(target_os = "linux")]
    without_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn")),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Up(args) => commands::up::run(config, args).await,
        Command::Install => commands::install::run().await,
        Command::Topics => commands::topics::run(&config).await,
        Command::Migrate => commands::migrate::run(&config).await,
        Command::Collect => commands::collect::run(&config).await,
        Command::Origin => commands::origin::run(&config).await,
        Command::Streams(args) => commands::streams::run(&config, args).await,
        Command::Run(args) => commands::run::run(&config, args).await,
        Command::Simulate(args) => commands::simulate::run(args).await,
        Command::Bench(args) => commands::bench::run(&config, args).await,
    }
}
