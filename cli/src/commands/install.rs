//! `livepulse install`: the local broker and ClickHouse server.

use anyhow::Result;
use livepulse_embedded::install;

/// Installs whichever of tansu and clickhouse-server is missing.
pub async fn run() -> Result<()> {
    let progress = |line: &str| println!("  {line}");
    match install::tansu_binary() {
        Some(path) => println!("tansu: {}", path.display()),
        None => {
            println!("installing the tansu broker (a Rust build: 10-16 minutes on 2 cores)...");
            let path = install::install_tansu(&progress).await?;
            println!("tansu: {}", path.display());
        }
    }
    match install::clickhouse_binary() {
        Some(path) => println!("clickhouse-server: {}", path.display()),
        None => {
            println!("installing clickhouse-server with apt-get...");
            let path = install::install_clickhouse(&progress).await?;
            println!("clickhouse-server: {}", path.display());
        }
    }
    Ok(())
}
