//! Installs and runs the two real parts livepulse needs on one machine: a
//! Kafka-protocol broker ([tansu](https://crates.io/crates/tansu), sqlite
//! storage) and a private ClickHouse server.
//!
//! `livepulse up` and every integration test use this crate, so both run as
//! child processes bound to loopback, keep their state in one data directory,
//! and die with their owner (they are killed on `Drop`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), livepulse_embedded::EmbeddedError> {
//! use livepulse_embedded::{broker::LocalBroker, clickhouse::LocalClickHouse};
//!
//! let home = livepulse_embedded::home_dir();
//! let broker = LocalBroker::start(&home.join("broker"), 0).await?;
//! let clickhouse = LocalClickHouse::start(&home.join("clickhouse"), 0).await?;
//! println!("kafka {} clickhouse {}", broker.bootstrap_servers(), clickhouse.http_url());
//! clickhouse.stop().await?;
//! broker.stop().await?;
//! # Ok(()) }
//! ```

pub mod broker;
pub mod clickhouse;
mod error;
pub mod install;
mod process;
pub mod testing;

pub use error::EmbeddedError;

use std::path::PathBuf;

/// The livepulse home directory: `$LIVEPULSE_HOME`, else `$HOME/.livepulse`
/// (`./.livepulse` when no home directory is known).
pub fn home_dir() -> PathBuf {
    match std::env::var_os("LIVEPULSE_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => std::env::home_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".livepulse"),
    }
}
