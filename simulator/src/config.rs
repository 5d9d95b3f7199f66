//! What audience to simulate: size, seed, delivery faults and behaviour.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A configuration value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("audience config: `{field}` {problem}")]
pub struct ConfigError {
    /// The offending field, dotted for nested ones (`behaviour.ebvs_rate`).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// The synthetic audience: how many streams and viewers, which seed, when
/// simulated time 0 is, and how delivery is disturbed.
///
/// Every field has a default, so a config file only names what it changes:
///
/// ```
/// use livepulse_simulator::AudienceConfig;
///
/// let cfg: AudienceConfig = serde_json::from_str(
///     r#"{"seed": 7, "streams": 3, "viewers": 200, "start_ms": 1700000000000}"#,
/// ).unwrap();
/// cfg.validate().unwrap();
/// assert_eq!(cfg.heartbeat_ms, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudienceConfig {
    /// Seed of the one random generator; same seed, same events.
    pub seed: u64,
    /// Number of live streams, all going live at simulated time 0.
    pub streams: u32,
    /// Number of distinct viewers; each watches session after session.
    pub viewers: u32,
    /// Epoch milliseconds of simulated time 0. When driving a collector in
    /// real time set it to the wall clock (`RealtimeClock::start_ms`).
    pub start_ms: i64,
    /// Interval between a player's heartbeats, ms.
    pub heartbeat_ms: u32,
    /// Fraction of events that are sent a second time (same `event_id`),
    /// as client retries do.
    pub duplicate_rate: f64,
    /// Events are sent up to this long after their `ts`, so arrival order
    /// differs from `ts` order, ms.
    pub max_disorder_ms: u32,
    /// When set, every stream goes offline this long after time 0: its
    /// sessions end then and a `stream` `end` event is sent. Unset, streams
    /// stay live for as long as events are drawn.
    pub stream_duration_ms: Option<u64>,
    /// How viewers behave.
    pub behaviour: Behaviour,
}

impl Default for AudienceConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            streams: 10,
            viewers: 1_000,
            start_ms: 0,
            heartbeat_ms: 10_000,
            duplicate_rate: 0.02,
            max_disorder_ms: 3_000,
            stream_duration_ms: None,
            behaviour: Behaviour::default(),
        }
    }
}

impl AudienceConfig {
    /// A config with the given size and clock and default behaviour.
    pub fn new(seed: u64, streams: u32, viewers: u32, start_ms: i64) -> Self {
        Self {
            seed,
            streams,
            viewers,
            start_ms,
            ..Self::default()
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        in_range("streams", self.streams, 1, 1_000_000)?;
        in_range("viewers", self.viewers, 0, 100_000_000)?;
        // Up to the year 9999, so `ts` arithmetic cannot overflow.
        in_range("start_ms", self.start_ms, 0, 253_402_300_799_999)?;
        // A heartbeat's `played_ms` must stay under the contract's duration limit.
        in_range("heartbeat_ms", self.heartbeat_ms, 1_000, 300_000)?;
        fraction("duplicate_rate", self.duplicate_rate)?;
        in_range("max_disorder_ms", self.max_disorder_ms, 0, 600_000)?;
        if let Some(duration) = self.stream_duration_ms {
            in_range("stream_duration_ms", duration, 1, 100 * 365 * 86_400_000)?;
        }
        self.behaviour.validate()
    }
}

/// Behaviour knobs. Rates are means over all viewers: a few engaged viewers
/// chat and gift far more than the many who only watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// Viewers' first sessions begin uniformly within this window after time 0, ms.
    pub arrival_window_ms: u64,
    /// Median length of a session that plays, ms (log-normal).
    pub session_median_ms: u32,
    /// Spread (sigma of the logarithm) of session lengths.
    pub session_sigma: f64,
    /// Fraction of playing sessions that are zaps: a few seconds only.
    pub zap_rate: f64,
    /// Median pause between a viewer's sessions, ms (log-normal).
    pub return_gap_median_ms: u32,
    /// Zipf exponent of stream popularity: 0 spreads viewers evenly, 1 gives
    /// the first stream about as many viewers as the next several together.
    pub popularity_exponent: f64,
    /// Probability that a returning viewer goes back to the stream they
    /// watched last.
    pub repeat_affinity: f64,
    /// Median video startup time, ms (log-normal, kept within 300..=8000).
    pub startup_median_ms: u32,
    /// Fraction of attempts that fail with a fatal error before the first frame.
    pub start_failure_rate: f64,
    /// Fraction of attempts the viewer abandons before the first frame.
    pub ebvs_rate: f64,
    /// Stalls per minute played.
    pub stalls_per_minute: f64,
    /// Median stall length, ms (log-normal).
    pub stall_median_ms: u32,
    /// Probability that a viewer gives up during a stall.
    pub stall_abandon_probability: f64,
    /// Non-fatal player errors per hour played.
    pub errors_per_hour: f64,
    /// Fatal errors that end playback, per hour played.
    pub playback_failures_per_hour: f64,
    /// Chat messages per viewer and minute watched.
    pub messages_per_minute: f64,
    /// Likes per viewer and minute watched; they come in bursts.
    pub likes_per_minute: f64,
    /// Gifts per viewer and hour watched.
    pub gifts_per_hour: f64,
    /// Probability that a session leads to a follow (once per viewer and stream).
    pub follow_probability: f64,
    /// Paid subscriptions per viewer and hour watched (once per viewer and stream).
    pub subscribes_per_hour: f64,
    /// Shares per viewer and hour watched.
    pub shares_per_hour: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            arrival_window_ms: 120_000,
            session_median_ms: 180_000,
            session_sigma: 1.2,
            zap_rate: 0.15,
            return_gap_median_ms: 300_000,
            popularity_exponent: 1.0,
            repeat_affinity: 0.6,
            startup_median_ms: 1_200,
            start_failure_rate: 0.01,
            ebvs_rate: 0.05,
            stalls_per_minute: 0.2,
            stall_median_ms: 1_500,
            stall_abandon_probability: 0.1,
            errors_per_hour: 0.5,
            playback_failures_per_hour: 0.1,
            messages_per_minute: 0.5,
            likes_per_minute: 2.0,
            gifts_per_hour: 0.6,
            follow_probability: 0.04,
            subscribes_per_hour: 0.05,
            shares_per_hour: 0.1,
        }
    }
}

impl Behaviour {
    /// Checks every knob's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        in_range(
            "behaviour.arrival_window_ms",
            self.arrival_window_ms,
            0,
            30 * 86_400_000,
        )?;
        in_range(
            "behaviour.session_median_ms",
            self.session_median_ms,
            1_000,
            86_400_000,
        )?;
        bounded("behaviour.session_sigma", self.session_sigma, 3.0)?;
        fraction("behaviour.zap_rate", self.zap_rate)?;
        in_range(
            "behaviour.return_gap_median_ms",
            self.return_gap_median_ms,
            1_000,
            86_400_000,
        )?;
        bounded(
            "behaviour.popularity_exponent",
            self.popularity_exponent,
            5.0,
        )?;
        fraction("behaviour.repeat_affinity", self.repeat_affinity)?;
        in_range(
            "behaviour.startup_median_ms",
            self.startup_median_ms,
            300,
            8_000,
        )?;
        fraction("behaviour.start_failure_rate", self.start_failure_rate)?;
        fraction("behaviour.ebvs_rate", self.ebvs_rate)?;
        if self.start_failure_rate + self.ebvs_rate > 1.0 {
            return Err(ConfigError {
                field: "behaviour.ebvs_rate",
                problem: "plus start_failure_rate must not exceed 1".into(),
            });
        }
        bounded("behaviour.stalls_per_minute", self.stalls_per_minute, 60.0)?;
        in_range(
            "behaviour.stall_median_ms",
            self.stall_median_ms,
            100,
            60_000,
        )?;
        fraction(
            "behaviour.stall_abandon_probability",
            self.stall_abandon_probability,
        )?;
        bounded("behaviour.errors_per_hour", self.errors_per_hour, 3_600.0)?;
        bounded(
            "behaviour.playback_failures_per_hour",
            self.playback_failures_per_hour,
            3_600.0,
        )?;
        bounded(
            "behaviour.messages_per_minute",
            self.messages_per_minute,
            600.0,
        )?;
        bounded("behaviour.likes_per_minute", self.likes_per_minute, 600.0)?;
        bounded("behaviour.gifts_per_hour", self.gifts_per_hour, 36_000.0)?;
        fraction("behaviour.follow_probability", self.follow_probability)?;
        bounded(
            "behaviour.subscribes_per_hour",
            self.subscribes_per_hour,
            36_000.0,
        )?;
        bounded("behaviour.shares_per_hour", self.shares_per_hour, 36_000.0)
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError {
            field,
            problem: format!("is {value}, expected {min}..={max}"),
        });
    }
    Ok(())
}

/// A finite value in `0..=max` (NaN fails the range check too).
fn bounded(field: &'static str, value: f64, max: f64) -> Result<(), ConfigError> {
    if !(0.0..=max).contains(&value) {
        return Err(ConfigError {
            field,
            problem: format!("is {value}, expected 0..={max}"),
        });
    }
    Ok(())
}

fn fraction(field: &'static str, value: f64) -> Result<(), ConfigError> {
    bounded(field, value, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AudienceConfig::default().validate().unwrap();
    }

    #[test]
    fn names_the_bad_field() {
        let mut cfg = AudienceConfig::new(1, 0, 10, 0);
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "audience config: `streams` is 0, expected 1..=1000000"
        );
        cfg.streams = 1;
        cfg.behaviour.ebvs_rate = f64::NAN;
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "audience config: `behaviour.ebvs_rate` is NaN, expected 0..=1"
        );
        cfg.behaviour.ebvs_rate = 0.6;
        cfg.behaviour.start_failure_rate = 0.5;
        assert_eq!(cfg.validate().unwrap_err().field, "behaviour.ebvs_rate");
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = serde_json::from_str::<AudienceConfig>(r#"{"viewrs": 3}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("unknown field `viewrs`"),
            "{err}"
        );
        let err =
            serde_json::from_str::<AudienceConfig>(r#"{"behaviour": {"chat": 1}}"#).unwrap_err();
        assert!(err.to_string().starts_with("unknown field `chat`"), "{err}");
    }
}
