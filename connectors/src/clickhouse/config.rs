use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How to reach ClickHouse over HTTP(S).
///
/// ```
/// use livepulse_connectors::clickhouse::ClickHouseConfig;
///
/// let cfg = ClickHouseConfig {
///     url: "http://127.0.0.1:8123".into(),
///     database: "livepulse".into(),
///     user: "livepulse".into(),
///     password: "secret".into(),
/// };
/// cfg.validate().unwrap();
/// let _client = cfg.client();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123` or `https://host:8443`.
    pub url: String,
    /// Database holding livepulse's tables.
    #[serde(default = "default_database")]
    pub database: String,
    /// User; needs INSERT (and DDL for `livepulse migrate`).
    pub user: String,
    /// Password; prefer the environment (`LIVEPULSE_CLICKHOUSE__PASSWORD`) over the file.
    #[serde(default)]
    pub password: String,
}

fn default_database() -> String {
    "livepulse".to_owned()
}

impl ClickHouseConfig {
    /// Rejects settings that cannot work, before anything is started.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem: &str| ConfigError {
            section: "clickhouse",
            field,
            problem: problem.to_owned(),
        };
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(err("url", "must start with http:// or https://"));
        }
        let identifier =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier(&self.database) {
            return Err(err(
                "database",
                "must be a plain identifier (A-Z a-z 0-9 _)",
            ));
        }
        if self.user.is_empty() {
            return Err(err("user", "must not be empty"));
        }
        Ok(())
    }

    /// A client bound to [`Self::database`].
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// A client without a database, for server-level statements such as
    /// `CREATE DATABASE`.
    ///
    /// Row validation is off because ClickHouse 18.16 lacks
    /// `RowBinaryWithNamesAndTypes`; `wait_end_of_query=1` makes the server
    /// buffer the answer, so an error raised mid-query comes back as an
    /// error rather than as truncated rows.
    pub fn server_client(&self) -> Client {
        Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_validation(false)
            .with_setting("wait_end_of_query", "1")
    }
}
