//! The `livepulse` configuration: one TOML file (default `livepulse.toml` if
//! present) overlaid by `LIVEPULSE_<SECTION>__<KEY>` environment variables,
//! e.g. `LIVEPULSE_KAFKA__BROKERS=b1:9092`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_ingest::collector::CollectorConfig;
use livepulse_ingest::origin::OriginConfig;
use livepulse_pipelines::PipelineConfig;
use serde::Deserialize;

/// Every section; components validate their own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Brokers. Absent: `livepulse up` starts a local broker.
    pub kafka: Option<KafkaConfig>,
    /// ClickHouse. Absent: `livepulse up` starts a private server.
    pub clickhouse: Option<ClickHouseConfig>,
    /// The telemetry collector.
    #[serde(default)]
    pub collector: CollectorConfig,
    /// The HLS origin.
    #[serde(default)]
    pub origin: OriginConfig,
    /// The pipeline runtime.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// The embedded services of `livepulse up`.
    #[serde(default)]
    pub embedded: EmbeddedConfig,
}

/// Where `livepulse up` keeps its local broker and ClickHouse.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Data directory; default `<LIVEPULSE_HOME>/data`.
    pub data_dir: Option<PathBuf>,
    /// Broker port; 0 picks a free one.
    pub broker_port: u16,
    /// ClickHouse HTTP port; 0 picks a free one.
    pub clickhouse_http_port: u16,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            broker_port: 9092,
            clickhouse_http_port: 8123,
        }
    }
}

impl Config {
    /// Loads `path` (or `livepulse.toml` when present) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let default_file = Path::new("livepulse.toml");
        let mut figment = Figment::new();
        match path {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None if default_file.exists() => figment = figment.merge(Toml::file(default_file)),
            None => {}
        }
        // Only `SECTION__KEY` variables are config; LIVEPULSE_HOME and the
        // like are read elsewhere.
        figment = figment.merge(
            Env::prefixed("LIVEPULSE_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        figment.extract().context("invalid configuration")
    }

    /// The Kafka section, or an error telling how to provide it.
    pub fn require_kafka(&self) -> Result<&KafkaConfig> {
        let kafka = self.kafka.as_ref().context(
            "no Kafka configured: add a [kafka] section with `brokers` to livepulse.toml, \
             set LIVEPULSE_KAFKA__BROKERS, or run `livepulse up` to start a local broker",
        )?;
        kafka.validate()?;
        Ok(kafka)
    }

    /// The ClickHouse section, or an error telling how to provide it.
    pub fn require_clickhouse(&self) -> Result<&ClickHouseConfig> {
        let clickhouse = self.clickhouse.as_ref().context(
            "no ClickHouse configured: add a [clickhouse] section (url, user, password) to livepulse.toml, \
             set LIVEPULSE_CLICKHOUSE__URL and friends, or run `livepulse up` to start a private server",
        )?;
        clickhouse.validate()?;
        Ok(clickhouse)
    }
}
