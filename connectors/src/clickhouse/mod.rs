//! ClickHouse: client configuration.

mod config;

pub use config::ClickHouseConfig;
