//! `livepulse origin`: run the HLS origin.

use anyhow::{Context, Result};
use livepulse_ingest::origin::Origin;
use tokio::net::TcpListener;

use super::shutdown_on_signal;
use crate::config::Config;

/// Serves the origin until Ctrl-C.
pub async fn run(config: &Config) -> Result<()> {
    let mut origin = Origin::new(config.origin.clone(), config.require_kafka()?)?;
    let listener = TcpListener::bind(config.origin.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.origin.listen))?;
    let addr = listener.local_addr()?;
    println!("origin listening on http://{addr}");
    println!("  publish   PUT http://{addr}/live/<stream key>/...");
    if let Some(rtmp) = config.origin.rtmp_listen {
        let rtmp = TcpListener::bind(rtmp)
            .await
            .with_context(|| format!("cannot listen for RTMP on {rtmp}"))?;
        println!(
            "  publish   rtmp://{}/live/<stream key>",
            rtmp.local_addr()?
        );
        origin = origin.with_rtmp(rtmp);
    }
    println!("  play      http://{addr}/hls/<stream id>/master.m3u8");
    let shutdown = shutdown_on_signal();
    origin
        .serve(listener, async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
