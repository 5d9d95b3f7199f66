//! `livepulse simulate`: a synthetic audience against a running collector.

use anyhow::{Context, Result};
use clap::Args;
use livepulse_simulator::{Audience, AudienceConfig, CollectorClient, RealtimeClock, drive};

use super::shutdown_on_signal;

/// Arguments of `livepulse simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Live streams.
    #[arg(long, default_value_t = 8)]
    pub streams: u32,
    /// Distinct viewers.
    #[arg(long, default_value_t = 500)]
    pub viewers: u32,
    /// Random seed: the same seed gives the same audience.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Collector base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub collector: String,
    /// Write key for the collector.
    #[arg(long, env = "LIVEPULSE_WRITE_KEY")]
    pub write_key: String,
}

/// Drives the audience in real time until Ctrl-C.
pub async fn run(args: SimulateArgs) -> Result<()> {
    let shutdown = shutdown_on_signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = stop.send(true);
    });
    let totals = drive_audience(&args, stopped).await?;
    println!(
        "sent {} events: {} accepted, {} rejected, {} failed",
        totals.sent, totals.accepted, totals.rejected, totals.failed
    );
    Ok(())
}

/// Drives `args`' audience against its collector until `stop` turns true.
pub async fn drive_audience(
    args: &SimulateArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<livepulse_simulator::DriveTotals> {
    let client = CollectorClient::new(&args.collector, &args.write_key)?;
    let clock = RealtimeClock::start();
    let config = AudienceConfig::new(args.seed, args.streams, args.viewers, clock.start_ms());
    let mut audience = Audience::new(config).context("invalid audience")?;
    Ok(drive(&client, &mut audience, &clock, 500, stop).await?)
}
