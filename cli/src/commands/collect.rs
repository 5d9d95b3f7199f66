//! `livepulse collect`: run the telemetry collector.

use anyhow::{Context, Result};
use livepulse_ingest::collector::Collector;

use super::shutdown_on_signal;
use crate::config::Config;

/// Serves the collector until Ctrl-C.
pub async fn run(config: &Config) -> Result<()> {
    let collector = Collector::new(config.collector.clone(), config.require_kafka()?)?;
    let listener = tokio::net::TcpListener::bind(config.collector.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.collector.listen))?;
    println!("collector listening on http://{}", listener.local_addr()?);
    let shutdown = shutdown_on_signal();
    collector
        .serve(listener, async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
