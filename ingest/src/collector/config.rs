//! The collector's configuration (`[collector]` in `livepulse.toml`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use livepulse_connectors::ConfigError;
use livepulse_contract::Limits;
use serde::{Deserialize, Serialize};

/// Shortest accepted write key, characters: short keys can be guessed.
pub const MIN_KEY_CHARS: usize = 16;
/// Smallest `max_record_bytes`: always room for the largest valid event
/// (bounded by the contract's field limits to well under 16 KiB).
pub const MIN_RECORD_BYTES: usize = 64 * 1024;
/// Largest `max_record_bytes`: a record plus its framing must stay under
/// librdkafka's default `message.max.bytes` (1,000,000).
pub const MAX_RECORD_BYTES: usize = 900 * 1024;

/// How the collector listens, whom it accepts and what it bounds.
///
/// ```
/// use livepulse_ingest::collector::CollectorConfig;
///
/// let cfg: CollectorConfig = toml::from_str(r#"
///     write_keys = [{ name = "web", key = "wk_0123456789abcdef" }]
///     max_batch_events = 500
/// "#).unwrap();
/// cfg.validate().unwrap();
/// assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Address the HTTP server binds (the `livepulse` binary binds it).
    pub listen: SocketAddr,
    /// Keys clients present as `Authorization: Bearer <key>`.
    pub write_keys: Vec<WriteKey>,
    /// Largest request body as sent (compressed), bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes (bounds gzip bombs).
    pub max_decoded_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
    /// Clock-skew bounds on event timestamps.
    pub limits: Limits,
    /// How long the broker gets to acknowledge a request's records before
    /// the collector answers 503, ms.
    pub delivery_timeout_ms: u64,
    /// `Retry-After` sent with a 503, seconds.
    pub retry_after_secs: u64,
    /// Largest Kafka record value, bytes (Arrow's size, before the
    /// producer's compression); a fuller record is produced at once.
    pub max_record_bytes: usize,
    /// How long accepted events may wait for more events of their (topic,
    /// partition) before their record is produced, ms. Requests are
    /// answered after it, so this adds to their latency.
    pub linger_ms: u64,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            write_keys: Vec::new(),
            max_body_bytes: 1024 * 1024,
            max_decoded_bytes: 8 * 1024 * 1024,
            max_batch_events: 1000,
            limits: Limits::default(),
            delivery_timeout_ms: 5000,
            retry_after_secs: 5,
            max_record_bytes: 512 * 1024,
            linger_ms: 5,
        }
    }
}

/// A named write key. The name appears in logs; the key never does (its
/// `Debug` output is redacted).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteKey {
    /// Who holds the key, e.g. `web-player`.
    pub name: String,
    /// The secret, at least [`MIN_KEY_CHARS`] printable ASCII characters.
    pub key: String,
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteKey")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CollectorConfig {
    /// Rejects settings the collector cannot run with, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem: String| ConfigError {
            section: "collector",
            field,
            problem,
        };
        if self.write_keys.is_empty() {
            return Err(err("write_keys", "must list at least one key".into()));
        }
        for (i, wk) in self.write_keys.iter().enumerate() {
            if wk.name.trim().is_empty() {
                return Err(err("write_keys", format!("entry {i} has an empty name")));
            }
            if wk.key.chars().count() < MIN_KEY_CHARS {
                return Err(err(
                    "write_keys",
                    format!(
                        "key `{}` is shorter than {MIN_KEY_CHARS} characters",
                        wk.name
                    ),
                ));
            }
            // A Bearer token must be a single header token.
            if !wk.key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err(
                    "write_keys",
                    format!("key `{}` must be printable ASCII without spaces", wk.name),
                ));
            }
            if let Some(other) = self.write_keys[..i].iter().find(|o| o.key == wk.key) {
                return Err(err(
                    "write_keys",
                    format!("keys `{}` and `{}` are the same", other.name, wk.name),
                ));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(err("max_body_bytes", "must be at least 1024".into()));
        }
        if self.max_decoded_bytes < self.max_body_bytes {
            return Err(err(
                "max_decoded_bytes",
                format!("must be at least max_body_bytes ({})", self.max_body_bytes),
            ));
        }
        if self.max_batch_events == 0 {
            return Err(err("max_batch_events", "must be at least 1".into()));
        }
        if self.limits.max_future_ms < 0 || self.limits.max_past_ms < 0 {
            return Err(err("limits", "must not be negative".into()));
        }
        if !(100..=600_000).contains(&self.delivery_timeout_ms) {
            return Err(err("delivery_timeout_ms", "must be 100..=600000".into()));
        }
        if !(1..=3600).contains(&self.retry_after_secs) {
            return Err(err("retry_after_secs", "must be 1..=3600".into()));
        }
        if !(1..=1_000).contains(&self.linger_ms) {
            return Err(err("linger_ms", "must be 1..=1000".into()));
        }
        if !(MIN_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&self.max_record_bytes) {
            return Err(err(
                "max_record_bytes",
                format!("must be {MIN_RECORD_BYTES}..={MAX_RECORD_BYTES}"),
            ));
        }
        Ok(())
    }

    /// [`CollectorConfig::linger_ms`] as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// [`CollectorConfig::delivery_timeout_ms`] as a duration.
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key(key: &str) -> CollectorConfig {
        CollectorConfig {
            write_keys: vec![WriteKey {
                name: "web".into(),
                key: key.into(),
            }],
            ..CollectorConfig::default()
        }
    }

    #[test]
    fn defaults_need_only_a_key() {
        let cfg: CollectorConfig =
            toml::from_str(r#"write_keys = [{ name = "web", key = "0123456789abcdef" }]"#).unwrap();
        assert_eq!(cfg, with_key("0123456789abcdef"));
        cfg.validate().unwrap();
        assert_eq!(cfg.max_record_bytes, 512 * 1024);
        assert_eq!(cfg.delivery_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn names_what_is_wrong() {
        let problem = |cfg: CollectorConfig| cfg.validate().unwrap_err().to_string();
        assert_eq!(
            problem(CollectorConfig::default()),
            "invalid collector config: `write_keys` must list at least one key"
        );
        assert_eq!(
            problem(with_key("short")),
            "invalid collector config: `write_keys` key `web` is shorter than 16 characters"
        );
        assert_eq!(
            problem(with_key("0123456789 abcdef")),
            "invalid collector config: `write_keys` key `web` must be printable ASCII without spaces"
        );
        let mut twice = with_key("0123456789abcdef");
        twice.write_keys.push(WriteKey {
            name: "app".into(),
            key: "0123456789abcdef".into(),
        });
        assert_eq!(
            problem(twice),
            "invalid collector config: `write_keys` keys `web` and `app` are the same"
        );
        let small_records = CollectorConfig {
            max_record_bytes: 1000,
            ..with_key("0123456789abcdef")
        };
        assert_eq!(
            problem(small_records),
            "invalid collector config: `max_record_bytes` must be 65536..=921600"
        );
    }

    #[test]
    fn unknown_fields_and_key_leaks_are_refused() {
        let err = toml::from_str::<CollectorConfig>("max_bodybytes = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `max_bodybytes`"), "{err}");
        let debug = format!("{:?}", with_key("0123456789abcdef"));
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }
}
