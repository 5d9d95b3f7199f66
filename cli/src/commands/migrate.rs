//! `livepulse migrate`: apply the ClickHouse migrations.

use anyhow::Result;

use crate::config::Config;

/// Applies pending migrations and prints what was done.
pub async fn run(config: &Config) -> Result<()> {
    let report = livepulse_sql::migrate(config.require_clickhouse()?).await?;
    println!(
        "clickhouse  database `{}`: {} migration(s) applied now, {} before",
        report.database,
        report.applied.len(),
        report.already_applied
    );
    Ok(())
}
