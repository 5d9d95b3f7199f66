//! `livepulse bench`: the engagement job measured.
//!
//! * default: processing rate from a replay, then end to end through a
//!   private broker and ClickHouse ([`replay`]);
//! * `--sessions N`: memory of the job's state with N viewer sessions open
//!   ([`sessions`]);
//! * `--freshness RATE`: event -> ClickHouse row latency through a private
//!   broker and ClickHouse at RATE events/s ([`freshness`]);
//! * `--origin`: the HLS origin beside nginx with the RTMP module in the
//!   same run, publish-to-playable latency and segment serving throughput
//!   ([`origin`]).

mod freshness;
mod nginx;
mod origin;
mod replay;
mod sessions;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::{KafkaConfig, ensure_topics};
use livepulse_contract::topics;
use livepulse_embedded::broker::LocalBroker;
use livepulse_embedded::clickhouse::LocalClickHouse;
use tempfile::TempDir;

use crate::config::Config;

/// Arguments of `livepulse bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events in the replay.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Events sent through the broker (the local broker's sqlite storage is
    /// the slow part, so this is smaller).
    #[arg(long, default_value_t = 500_000)]
    e2e_events: usize,
    /// Live streams in the generated audience.
    #[arg(long, default_value_t = 200)]
    streams: u32,
    /// Viewers in the generated audience.
    #[arg(long, default_value_t = 40_000)]
    viewers: u32,
    /// Skip the end-to-end run.
    #[arg(long)]
    replay_only: bool,
    /// Instead of the rate: the state's memory with this many viewer
    /// sessions open at once.
    #[arg(long, conflicts_with = "freshness")]
    sessions: Option<usize>,
    /// Instead of the rate: event -> ClickHouse row latency through the
    /// broker, producing this many events per second in real time.
    #[arg(long)]
    freshness: Option<u32>,
    /// How long the freshness run produces, seconds.
    #[arg(long, default_value_t = 60)]
    freshness_secs: u64,
    /// Instead of the rate: the HLS origin beside nginx with the RTMP
    /// module, publish-to-playable latency and segment serving throughput.
    #[arg(long, conflicts_with_all = ["sessions", "freshness"])]
    origin: bool,
    /// How long the origin latency run publishes, seconds.
    #[arg(long, default_value_t = 30)]
    origin_secs: u64,
}

/// Runs the benchmark `args` ask for and prints its figures.
/// The pipeline runs with the configured `[pipeline]` settings.
pub async fn run(config: &Config, args: BenchArgs) -> Result<()> {
    let pipeline = &config.pipeline;
    if let Some(sessions) = args.sessions {
        return sessions::run(pipeline, sessions).await;
    }
    if args.origin {
        return origin::run(Duration::from_secs(args.origin_secs)).await;
    }
    if let Some(rate) = args.freshness {
        return freshness::run(pipeline, rate, Duration::from_secs(args.freshness_secs)).await;
    }
    replay::run(pipeline, &args).await
}

/// The collector's largest Kafka record.
const MAX_RECORD_BYTES: usize = 512 * 1024;

/// A private broker and ClickHouse in a temporary directory, with the
/// topics and migrations applied.
struct LocalStack {
    dir: TempDir,
    broker: LocalBroker,
    server: LocalClickHouse,
    kafka: KafkaConfig,
    clickhouse: ClickHouseConfig,
}

impl LocalStack {
    async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let broker = LocalBroker::start(&dir.path().join("broker"), 0).await?;
        let server = LocalClickHouse::start(&dir.path().join("clickhouse"), 0).await?;
        let kafka = KafkaConfig::local(broker.bootstrap_servers());
        let clickhouse = ClickHouseConfig {
            url: server.http_url(),
            database: "livepulse".to_owned(),
            user: server.writer().user.clone(),
            password: server.writer().password.clone(),
        };
        ensure_topics(&kafka, &topics::ALL).await?;
        livepulse_sql::migrate(&clickhouse).await?;
        Ok(Self {
            dir,
            broker,
            server,
            kafka,
            clickhouse,
        })
    }

    async fn stop(self) -> Result<()> {
        self.broker.stop().await?;
        self.server.stop().await?;
        Ok(())
    }
}

/// CPU time of this process (user + system), from /proc.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("unexpected /proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// A memory figure of this process from /proc/self/status, in bytes:
/// `VmRSS` (resident now) or `VmHWM` (peak resident).
fn memory_status(field: &str) -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: usize = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    Ok(kb * 1024)
}
