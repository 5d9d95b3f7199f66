//! Validation rules every event must pass before the collector accepts it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Event, Family, Kind, SCHEMA_VERSION};

/// Bounds the collector enforces; part of its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How far `ts` may be ahead of the server clock (client clock skew), ms.
    pub max_future_ms: i64,
    /// How far `ts` may be behind the server clock (offline buffering), ms.
    pub max_past_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_future_ms: 30_000,
            max_past_ms: 24 * 3_600_000,
        }
    }
}

/// Why an event was rejected. The `Display` text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// Not a JSON object of the contract's shape.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// `schema_version` is one this collector does not speak.
    #[error("unsupported schema_version {0} (this collector speaks {SCHEMA_VERSION})")]
    UnsupportedVersion(u16),
    /// `event_id` is not a UUID.
    #[error("event_id {0:?} is not a UUID")]
    InvalidEventId(String),
    /// `ts` is too far ahead of the server clock.
    #[error("ts is {ahead_ms} ms ahead of the server clock (limit {limit_ms} ms)")]
    TsInFuture {
        /// How far ahead.
        ahead_ms: i64,
        /// The configured limit.
        limit_ms: i64,
    },
    /// `ts` is too far behind the server clock.
    #[error("ts is {behind_ms} ms behind the server clock (limit {limit_ms} ms)")]
    TsInPast {
        /// How far behind.
        behind_ms: i64,
        /// The configured limit.
        limit_ms: i64,
    },
    /// `type` or `event` is absent.
    #[error("missing field `{0}`")]
    MissingDiscriminator(&'static str),
    /// The kind does not exist in this family.
    #[error("event `{kind}` does not exist for type `{family}`")]
    KindNotInFamily {
        /// Wire name of the family.
        family: &'static str,
        /// Wire name of the kind.
        kind: &'static str,
    },
    /// A field the kind requires is absent.
    #[error("missing field `{field}` required by {family} `{kind}` events")]
    MissingField {
        /// The field.
        field: &'static str,
        /// Wire name of the family.
        family: &'static str,
        /// Wire name of the kind.
        kind: &'static str,
    },
    /// A field that does not belong to this kind is present.
    #[error("field `{field}` is not allowed on {family} `{kind}` events")]
    FieldNotAllowed {
        /// The field.
        field: &'static str,
        /// Wire name of the family.
        family: &'static str,
        /// Wire name of the kind.
        kind: &'static str,
    },
    /// A field's value is out of range or badly formed.
    #[error("field `{field}` {problem}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl Rejection {
    /// A stable machine-readable code for the reason, for clients and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnsupportedVersion(_) => "unsupported_version",
            Rejection::InvalidEventId(_) => "invalid_event_id",
            Rejection::TsInFuture { .. } => "ts_in_future",
            Rejection::TsInPast { .. } => "ts_in_past",
            Rejection::MissingDiscriminator(_) | Rejection::MissingField { .. } => "missing_field",
            Rejection::KindNotInFamily { .. } => "unknown_event",
            Rejection::FieldNotAllowed { .. } => "field_not_allowed",
            Rejection::InvalidValue { .. } => "invalid_value",
        }
    }
}

/// Longest id (stream, session, viewer, creator, gift, ...), bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest chat message, characters.
pub const MAX_TEXT_CHARS: usize = 1_000;
/// Longest free-text label (title, category, device, code, ...), characters.
pub const MAX_LABEL_CHARS: usize = 256;
/// Largest duration field (startup, played, stall, buffer, latency,
/// segment, keyframe interval), ms: ten minutes.
pub const MAX_DURATION_MS: u32 = 600_000;
/// Largest `upscale_pct`: a 144p picture on an 8K display is about 1,400 %.
pub const MAX_UPSCALE_PCT: u32 = 2_000;
/// Largest `frame_rate`, frames per second.
pub const MAX_FRAME_RATE: f64 = 1_000.0;

/// The fields each (family, kind) requires and permits beyond the common five.
struct Shape {
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

const PLAYER_CONTEXT: &[&str] = &["device", "player", "cdn", "region"];

fn shape(family: Family, kind: Kind) -> Option<Shape> {
    let s = |required, optional| Some(Shape { required, optional });
    match (family, kind) {
        (Family::Player, Kind::Start) => s(&[], &[]),
        (Family::Player, Kind::Playing) => s(&["startup_ms"], &["bitrate_kbps", "rendition"]),
        (Family::Player, Kind::Heartbeat) => s(
            &["bitrate_kbps", "buffer_ms", "played_ms"],
            &["rendition", "dropped_frames", "latency_ms", "upscale_pct"],
        ),
        (Family::Player, Kind::StallStart) => s(&[], &["buffer_ms"]),
        (Family::Player, Kind::StallEnd) => s(&["stall_ms"], &[]),
        (Family::Player, Kind::BitrateChange) => {
            s(&["bitrate_kbps"], &["rendition", "previous_bitrate_kbps"])
        }
        (Family::Player, Kind::Error) => s(&["code", "fatal"], &[]),
        (Family::Player, Kind::End) => s(&[], &["played_ms"]),
        (Family::Chat, Kind::Message) => s(&["text"], &[]),
        (Family::Chat, Kind::Gift) => s(&["gift_id", "count", "value_cents"], &[]),
        (Family::Chat, Kind::Like | Kind::Follow | Kind::Subscribe | Kind::Share) => s(&[], &[]),
        (Family::Stream, Kind::Start) => s(&[], &["title", "category"]),
        (Family::Stream, Kind::End) => s(&[], &[]),
        (Family::Stream, Kind::Health) => s(
            &["segment_ms", "bitrate_kbps"],
            &["rendition", "frame_rate", "keyframe_interval_ms"],
        ),
        _ => None,
    }
}

/// Fields every event of the family requires.
fn family_required(family: Family) -> &'static [&'static str] {
    match family {
        Family::Player => &["session_id", "viewer_id"],
        Family::Chat => &["viewer_id"],
        Family::Stream => &["creator_id"],
    }
}

impl Event<'_> {
    /// Names of the optional fields that are present, in declaration order.
    fn present_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        let flags = [
            ("session_id", self.session_id.is_some()),
            ("viewer_id", self.viewer_id.is_some()),
            ("device", self.device.is_some()),
            ("player", self.player.is_some()),
            ("cdn", self.cdn.is_some()),
            ("region", self.region.is_some()),
            ("startup_ms", self.startup_ms.is_some()),
            ("bitrate_kbps", self.bitrate_kbps.is_some()),
            (
                "previous_bitrate_kbps",
                self.previous_bitrate_kbps.is_some(),
            ),
            ("buffer_ms", self.buffer_ms.is_some()),
            ("rendition", self.rendition.is_some()),
            ("dropped_frames", self.dropped_frames.is_some()),
            ("played_ms", self.played_ms.is_some()),
            ("stall_ms", self.stall_ms.is_some()),
            ("latency_ms", self.latency_ms.is_some()),
            ("upscale_pct", self.upscale_pct.is_some()),
            ("code", self.code.is_some()),
            ("fatal", self.fatal.is_some()),
            ("text", self.text.is_some()),
            ("gift_id", self.gift_id.is_some()),
            ("count", self.count.is_some()),
            ("value_cents", self.value_cents.is_some()),
            ("creator_id", self.creator_id.is_some()),
            ("title", self.title.is_some()),
            ("category", self.category.is_some()),
            ("segment_ms", self.segment_ms.is_some()),
            ("frame_rate", self.frame_rate.is_some()),
            ("keyframe_interval_ms", self.keyframe_interval_ms.is_some()),
        ];
        flags
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
    }

    /// Checks the event against the contract, given the server clock `now_ms`.
    ///
    /// ```
    /// use livepulse_contract::{Event, Limits};
    ///
    /// let json = r#"{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":0,
    ///   "stream_id":"s1","type":"player","event":"playing","session_id":"a","viewer_id":"v"}"#;
    /// let event: Event = serde_json::from_str(json).unwrap();
    /// let err = event.validate(0, &Limits::default()).unwrap_err();
    /// assert_eq!(err.to_string(), "missing field `startup_ms` required by player `playing` events");
    /// ```
    pub fn validate(&self, now_ms: i64, limits: &Limits) -> Result<(), Rejection> {
        if let Some(version) = self.schema_version
            && version != SCHEMA_VERSION
        {
            return Err(Rejection::UnsupportedVersion(version));
        }
        if uuid::Uuid::try_parse(&self.event_id).is_err() {
            return Err(Rejection::InvalidEventId(truncate(&self.event_id)));
        }
        let ahead = self.ts.saturating_sub(now_ms);
        if ahead > limits.max_future_ms {
            return Err(Rejection::TsInFuture {
                ahead_ms: ahead,
                limit_ms: limits.max_future_ms,
            });
        }
        let behind = now_ms.saturating_sub(self.ts);
        if behind > limits.max_past_ms {
            return Err(Rejection::TsInPast {
                behind_ms: behind,
                limit_ms: limits.max_past_ms,
            });
        }
        check_id("stream_id", Some(&self.stream_id))?;

        let family = self.family.ok_or(Rejection::MissingDiscriminator("type"))?;
        let kind = self.event.ok_or(Rejection::MissingDiscriminator("event"))?;
        let shape = shape(family, kind).ok_or(Rejection::KindNotInFamily {
            family: family.as_str(),
            kind: kind.as_str(),
        })?;
        let context: &[&str] = if family == Family::Player {
            PLAYER_CONTEXT
        } else {
            &[]
        };
        let required = family_required(family).iter().chain(shape.required);
        for field in required.clone() {
            if !self.present_fields().any(|present| present == *field) {
                return Err(Rejection::MissingField {
                    field,
                    family: family.as_str(),
                    kind: kind.as_str(),
                });
            }
        }
        let allowed = required.chain(shape.optional).chain(context);
        if let Some(field) = self
            .present_fields()
            .find(|f| !allowed.clone().any(|a| a == f))
        {
            return Err(Rejection::FieldNotAllowed {
                field,
                family: family.as_str(),
                kind: kind.as_str(),
            });
        }
        self.check_values()
    }

    fn check_values(&self) -> Result<(), Rejection> {
        for (field, value) in [
            ("session_id", &self.session_id),
            ("viewer_id", &self.viewer_id),
            ("creator_id", &self.creator_id),
            ("gift_id", &self.gift_id),
        ] {
            if value.is_some() {
                check_id(field, value.as_ref())?;
            }
        }
        for (field, value) in [
            ("device", &self.device),
            ("player", &self.player),
            ("cdn", &self.cdn),
            ("region", &self.region),
            ("rendition", &self.rendition),
            ("code", &self.code),
            ("title", &self.title),
            ("category", &self.category),
        ] {
            check_chars(field, value.as_deref(), MAX_LABEL_CHARS)?;
        }
        check_chars("text", self.text.as_deref(), MAX_TEXT_CHARS)?;
        for (field, value) in [
            ("startup_ms", self.startup_ms),
            ("buffer_ms", self.buffer_ms),
            ("played_ms", self.played_ms),
            ("stall_ms", self.stall_ms),
            ("latency_ms", self.latency_ms),
            ("segment_ms", self.segment_ms),
            ("keyframe_interval_ms", self.keyframe_interval_ms),
        ] {
            if let Some(v) = value
                && v > MAX_DURATION_MS
            {
                return Err(invalid(
                    field,
                    format!("is {v} ms, above the limit of {MAX_DURATION_MS} ms"),
                ));
            }
        }
        if let Some(count) = self.count
            && !(1..=100_000).contains(&count)
        {
            return Err(invalid("count", format!("is {count}, expected 1..=100000")));
        }
        if let Some(pct) = self.upscale_pct
            && pct > MAX_UPSCALE_PCT
        {
            return Err(invalid(
                "upscale_pct",
                format!("is {pct}, above the limit of {MAX_UPSCALE_PCT}"),
            ));
        }
        if let Some(fps) = self.frame_rate
            && !(fps > 0.0 && fps <= MAX_FRAME_RATE)
        {
            return Err(invalid(
                "frame_rate",
                format!("is {fps}, expected more than 0 and at most {MAX_FRAME_RATE}"),
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, problem: String) -> Rejection {
    Rejection::InvalidValue { field, problem }
}

fn check_id(field: &'static str, value: Option<&Cow<'_, str>>) -> Result<(), Rejection> {
    let value = value.map(|v| v.as_ref()).unwrap_or_default();
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!("must be 1..={MAX_ID_LEN} bytes long"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        return Err(invalid(
            field,
            format!("contains {bad:?}; allowed are A-Z a-z 0-9 - _ . :"),
        ));
    }
    Ok(())
}

fn check_chars(field: &'static str, value: Option<&str>, max: usize) -> Result<(), Rejection> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, format!("is longer than {max} characters")))
        }
        _ => Ok(()),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn event(json: &str) -> Event<'_> {
        serde_json::from_str(json).unwrap()
    }

    fn reason(json: &str) -> String {
        event(json)
            .validate(NOW, &Limits::default())
            .unwrap_err()
            .to_string()
    }

    const ID: &str = r#""event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","stream_id":"s1""#;

    #[test]
    fn accepts_a_complete_heartbeat() {
        let json = format!(
            r#"{{{ID},"ts":{NOW},"type":"player","event":"heartbeat","session_id":"x","viewer_id":"v",
            "bitrate_kbps":2500,"buffer_ms":8000,"played_ms":10000,"rendition":"720p","device":"ios"}}"#
        );
        assert_eq!(event(&json).validate(NOW, &Limits::default()), Ok(()));
    }

    #[test]
    fn names_the_missing_and_the_foreign_field() {
        let gift = format!(
            r#"{{{ID},"ts":{NOW},"type":"chat","event":"gift","viewer_id":"v","gift_id":"rose","count":2}}"#
        );
        assert_eq!(
            reason(&gift),
            "missing field `value_cents` required by chat `gift` events"
        );
        let like = format!(
            r#"{{{ID},"ts":{NOW},"type":"chat","event":"like","viewer_id":"v","startup_ms":3}}"#
        );
        assert_eq!(
            reason(&like),
            "field `startup_ms` is not allowed on chat `like` events"
        );
        let kind =
            format!(r#"{{{ID},"ts":{NOW},"type":"stream","event":"gift","creator_id":"c"}}"#);
        assert_eq!(
            reason(&kind),
            "event `gift` does not exist for type `stream`"
        );
    }

    #[test]
    fn bounds_the_clock_skew() {
        let ahead = format!(
            r#"{{{ID},"ts":{},"type":"chat","event":"like","viewer_id":"v"}}"#,
            NOW + 60_000
        );
        assert_eq!(
            reason(&ahead),
            "ts is 60000 ms ahead of the server clock (limit 30000 ms)"
        );
        let behind = format!(
            r#"{{{ID},"ts":{},"type":"chat","event":"like","viewer_id":"v"}}"#,
            NOW - 25 * 3_600_000
        );
        assert_eq!(
            reason(&behind),
            "ts is 90000000 ms behind the server clock (limit 86400000 ms)"
        );
    }

    #[test]
    fn checks_ids_and_versions() {
        let bad_id = format!(
            r#"{{"event_id":"nope","stream_id":"s1","ts":{NOW},"type":"chat","event":"like","viewer_id":"v"}}"#
        );
        assert_eq!(reason(&bad_id), "event_id \"nope\" is not a UUID");
        let bad_stream = format!(
            r#"{{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","stream_id":"a/b","ts":{NOW},"type":"chat","event":"like","viewer_id":"v"}}"#
        );
        assert_eq!(
            reason(&bad_stream),
            "field `stream_id` contains '/'; allowed are A-Z a-z 0-9 - _ . :"
        );
        let v2 = format!(
            r#"{{"schema_version":2,{ID},"ts":{NOW},"type":"chat","event":"like","viewer_id":"v"}}"#
        );
        assert_eq!(
            reason(&v2),
            "unsupported schema_version 2 (this collector speaks 1)"
        );
    }

    #[test]
    fn checks_the_qoe_and_health_fields() {
        let switch = format!(
            r#"{{{ID},"ts":{NOW},"type":"player","event":"bitrate_change","session_id":"x","viewer_id":"v",
            "bitrate_kbps":1200,"previous_bitrate_kbps":3000}}"#
        );
        assert_eq!(event(&switch).validate(NOW, &Limits::default()), Ok(()));
        let upscale = format!(
            r#"{{{ID},"ts":{NOW},"type":"player","event":"heartbeat","session_id":"x","viewer_id":"v",
            "bitrate_kbps":2500,"buffer_ms":8000,"played_ms":10000,"latency_ms":4200,"upscale_pct":2001}}"#
        );
        assert_eq!(
            reason(&upscale),
            "field `upscale_pct` is 2001, above the limit of 2000"
        );
        let health = |extra: &str| {
            format!(
                r#"{{{ID},"ts":{NOW},"type":"stream","event":"health","creator_id":"c",
                "segment_ms":1000,"bitrate_kbps":2100{extra}}}"#
            )
        };
        let full = health(r#","rendition":"720p","frame_rate":29.97,"keyframe_interval_ms":1000"#);
        assert_eq!(event(&full).validate(NOW, &Limits::default()), Ok(()));
        assert_eq!(
            reason(&health(r#","frame_rate":0"#)),
            "field `frame_rate` is 0, expected more than 0 and at most 1000"
        );
        assert_eq!(
            reason(&health(r#","latency_ms":5"#)),
            "field `latency_ms` is not allowed on stream `health` events"
        );
    }

    #[test]
    fn unknown_fields_are_malformed_not_ignored() {
        let json = format!(
            r#"{{{ID},"ts":{NOW},"type":"chat","event":"like","viewer_id":"v","lieks":1}}"#
        );
        let err = serde_json::from_str::<Event>(&json)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown field `lieks`"), "{err}");
    }
}
