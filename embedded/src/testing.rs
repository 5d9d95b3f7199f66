//! Real servers for tests, each in a fresh temporary directory.
//!
//! Keep the returned [`TempDir`] alive as long as the server; bind it first
//! so it is dropped after the server:
//!
//! ```no_run
//! # async fn demo() {
//! let (_dir, broker) = livepulse_embedded::testing::broker().await;
//! let brokers = broker.bootstrap_servers();
//! # }
//! ```

use tempfile::TempDir;

use crate::broker::LocalBroker;
use crate::clickhouse::LocalClickHouse;
use crate::install::{clickhouse_binary, tansu_binary};

/// A tansu broker on a free port with its data in a new temporary directory.
///
/// # Panics
/// When tansu is not installed ("run dev/setup first") or does not start.
pub async fn broker() -> (TempDir, LocalBroker) {
    if tansu_binary().is_none() {
        panic!("tansu is not installed: run dev/setup first");
    }
    let dir = temp_dir("livepulse-broker-");
    match LocalBroker::start(dir.path(), 0).await {
        Ok(broker) => (dir, broker),
        Err(err) => panic!("cannot start the test broker: {err}"),
    }
}

/// A private ClickHouse server on a free port with its data in a new
/// temporary directory.
///
/// # Panics
/// When clickhouse-server is not installed ("run dev/setup first") or does
/// not start.
pub async fn clickhouse() -> (TempDir, LocalClickHouse) {
    if clickhouse_binary().is_none() {
        panic!("clickhouse-server is not installed: run dev/setup first");
    }
    let dir = temp_dir("livepulse-clickhouse-");
    match LocalClickHouse::start(dir.path(), 0).await {
        Ok(clickhouse) => (dir, clickhouse),
        Err(err) => panic!("cannot start the test ClickHouse server: {err}"),
    }
}

fn temp_dir(prefix: &str) -> TempDir {
    match tempfile::Builder::new().prefix(prefix).tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot create a temporary directory: {err}"),
    }
}
