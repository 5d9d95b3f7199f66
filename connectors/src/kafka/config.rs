use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How to reach the brokers. The same settings work for Apache Kafka,
/// Redpanda, managed Kafka and the embedded test broker.
///
/// ```
/// use livepulse_connectors::kafka::KafkaConfig;
///
/// let cfg = KafkaConfig::local("127.0.0.1:9092");
/// cfg.validate().unwrap();
/// assert_eq!(cfg.client_config().get("bootstrap.servers"), Some("127.0.0.1:9092"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Transport security.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    /// SASL credentials, for `sasl_plaintext` and `sasl_ssl`.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// TLS files, for `ssl` and `sasl_ssl`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Raw librdkafka settings applied last (escape hatch for tuning).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS without SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS (managed Kafka services).
    SaslSsl,
}

impl SecurityProtocol {
    fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL mechanism and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password; prefer the environment (`LIVEPULSE_KAFKA__SASL__PASSWORD`) over the file.
    pub password: String,
}

/// SASL mechanisms librdkafka supports without Kerberos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN`.
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// TLS trust and client-certificate files (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle; the system's when absent.
    pub ca_location: Option<String>,
    /// Client certificate, for mutual TLS.
    pub certificate_location: Option<String>,
    /// Client key, for mutual TLS.
    pub key_location: Option<String>,
}

impl KafkaConfig {
    /// Plaintext, unauthenticated brokers: local development and tests.
    pub fn local(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: None,
            options: BTreeMap::new(),
        }
    }

    /// Rejects settings that cannot connect, before anything is started.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem: &str| ConfigError {
            section: "kafka",
            field,
            problem: problem.to_owned(),
        };
        if self.brokers.split(',').any(|b| {
            b.trim()
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        }) {
            return Err(err(
                "brokers",
                "must be a comma-separated list of host:port",
            ));
        }
        match (self.security_protocol.uses_sasl(), &self.sasl) {
            (true, None) => return Err(err("sasl", "is required by security_protocol sasl_*")),
            (false, Some(_)) => {
                return Err(err(
                    "sasl",
                    "is set but security_protocol does not use SASL",
                ));
            }
            _ => {}
        }
        if let Some(tls) = &self.tls
            && tls.certificate_location.is_some() != tls.key_location.is_some()
        {
            return Err(err(
                "tls",
                "needs both certificate_location and key_location, or neither",
            ));
        }
        Ok(())
    }

    /// The librdkafka settings shared by producers, consumers and admin clients.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("security.protocol", self.security_protocol.as_str());
        if let Some(sasl) = &self.sasl {
            cfg.set("sasl.mechanism", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
        if let Some(tls) = &self.tls {
            for (key, value) in [
                ("ssl.ca.location", &tls.ca_location),
                ("ssl.certificate.location", &tls.certificate_location),
                ("ssl.key.location", &tls.key_location),
            ] {
                if let Some(value) = value {
                    cfg.set(key, value);
                }
            }
        }
        for (key, value) in &self.options {
            cfg.set(key, value);
        }
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_ssl_maps_to_librdkafka_settings() {
        let cfg: KafkaConfig = toml_like(
            r#"{"brokers":"b1:9093,b2:9093","security_protocol":"sasl_ssl",
                "sasl":{"mechanism":"SCRAM-SHA-512","username":"u","password":"p"}}"#,
        );
        cfg.validate().unwrap();
        let client = cfg.client_config();
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("sasl.username"), Some("u"));
    }

    #[test]
    fn rejects_what_cannot_connect() {
        let problem = |json: &str| {
            toml_like::<KafkaConfig>(json)
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            problem(r#"{"brokers":"localhost"}"#),
            "invalid kafka config: `brokers` must be a comma-separated list of host:port"
        );
        assert_eq!(
            problem(r#"{"brokers":"b:9092","security_protocol":"sasl_ssl"}"#),
            "invalid kafka config: `sasl` is required by security_protocol sasl_*"
        );
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }
}
