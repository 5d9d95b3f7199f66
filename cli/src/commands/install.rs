//! `livepulse install`: the local broker and ClickHouse server.

use std::path::PathBuf;

use anyhow::Result;
use livepulse_embedded::install;

/// Installs whichever of tansu and clickhouse-server is missing.
pub async fn run() -> Result<()> {
    println!("tansu: {}", tansu().await?.display());
    println!("clickhouse-server: {}", clickhouse().await?.display());
    Ok(())
}

/// The tansu binary, built first when missing (with cargo's progress).
pub async fn tansu() -> Result<PathBuf> {
    if let Some(path) = install::tansu_binary() {
        return Ok(path);
    }
    println!("installing the tansu broker (a Rust build: 10-16 minutes on 2 cores, once)...");
    Ok(install::install_tansu(&progress).await?)
}

/// The clickhouse-server binary, installed with apt-get first when missing.
pub async fn clickhouse() -> Result<PathBuf> {
    if let Some(path) = install::clickhouse_binary() {
        return Ok(path);
    }
    println!("installing clickhouse-server with apt-get...");
    Ok(install::install_clickhouse(&progress).await?)
}

fn progress(line: &str) {
    println!("  {line}");
}
