//! Connections to the platform's stores, built from validated config:
//! [`kafka`] (any Kafka-protocol broker: Apache Kafka, Redpanda, managed
//! Kafka, or the embedded test broker) and [`clickhouse`].

pub mod clickhouse;
pub mod kafka;

use thiserror::Error;

/// A configuration value that cannot work, named precisely.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {section} config: `{field}` {problem}")]
pub struct ConfigError {
    /// Config section, e.g. `kafka`.
    pub section: &'static str,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}
