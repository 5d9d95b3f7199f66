use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Which producer an event comes from; selects its Kafka topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// The viewer's video player.
    Player,
    /// The chat service: messages, likes, gifts, follows.
    Chat,
    /// The stream's lifecycle, from the ingest side.
    Stream,
}

impl Family {
    /// The wire name, as in `"type": "player"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Player => "player",
            Family::Chat => "chat",
            Family::Stream => "stream",
        }
    }
}

/// What happened. Which kinds a family allows is checked by [`Event::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Player: play pressed. Stream: the stream went live.
    Start,
    /// Player: first frame shown; carries `startup_ms`.
    Playing,
    /// Player: periodic report (every 10 s) with bitrate, buffer and played time.
    Heartbeat,
    /// Player: playback stalled (rebuffering began).
    StallStart,
    /// Player: playback resumed; carries the stall's `stall_ms`.
    StallEnd,
    /// Player: the rendition changed; carries the new `bitrate_kbps`.
    BitrateChange,
    /// Player: an error; carries `code` and `fatal`.
    Error,
    /// Player: the view ended. Stream: the stream went offline.
    End,
    /// Stream: ingest health of one rendition, one per segment the origin
    /// received: its duration and the encoder's measured bitrate, frame
    /// rate and keyframe interval.
    Health,
    /// Chat: a chat message (弹幕) with `text`.
    Message,
    /// Chat: a like.
    Like,
    /// Chat: a gift with `gift_id`, `count` and its total `value_cents`.
    Gift,
    /// Chat: a follow.
    Follow,
    /// Chat: a paid subscription.
    Subscribe,
    /// Chat: a share of the stream.
    Share,
}

impl Kind {
    /// The wire name, as in `"event": "stall_start"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Playing => "playing",
            Kind::Heartbeat => "heartbeat",
            Kind::StallStart => "stall_start",
            Kind::StallEnd => "stall_end",
            Kind::BitrateChange => "bitrate_change",
            Kind::Error => "error",
            Kind::End => "end",
            Kind::Health => "health",
            Kind::Message => "message",
            Kind::Like => "like",
            Kind::Gift => "gift",
            Kind::Follow => "follow",
            Kind::Subscribe => "subscribe",
            Kind::Share => "share",
        }
    }
}

/// One event, flat, as JSON on the wire. Strings borrow from the input when
/// they can, so decoding a Kafka record allocates little.
///
/// Fields beyond the common five belong to one family; [`Event::validate`]
/// rejects a field on the wrong family and a kind's missing required field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event<'a> {
    /// Contract version the client speaks; absent means the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u16>,
    /// Client-generated UUID; duplicates (retries) are counted once.
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    /// Client time, epoch milliseconds.
    pub ts: i64,
    /// The live stream the event is about; the Kafka key.
    #[serde(borrow)]
    pub stream_id: Cow<'a, str>,
    /// Producer family, `"type"` on the wire.
    #[serde(rename = "type")]
    pub family: Option<Family>,
    /// What happened.
    pub event: Option<Kind>,

    /// Player: one playback session (one view).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Cow<'a, str>>,
    /// Player and chat: the viewer (a pseudonymous id, never an IP).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub viewer_id: Option<Cow<'a, str>>,
    /// Player: device class, e.g. `desktop`, `ios`, `android`, `tv`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub device: Option<Cow<'a, str>>,
    /// Player: player software, e.g. `hls.js/1.7`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub player: Option<Cow<'a, str>>,
    /// Player: CDN serving the session.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub cdn: Option<Cow<'a, str>>,
    /// Player: coarse viewer region, e.g. `eu-west`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub region: Option<Cow<'a, str>>,
    /// Player `playing`: play pressed to first frame, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<u32>,
    /// Player `heartbeat` / `bitrate_change` / `playing`: bitrate of the
    /// playing rendition, kbps. Stream `health`: the bitrate the encoder
    /// sent, measured over the segment, kbps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    /// Player `bitrate_change`: bitrate of the rendition switched away
    /// from, kbps; it tells up-switches from down-switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_bitrate_kbps: Option<u32>,
    /// Player `heartbeat`: buffer ahead of the playhead, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_ms: Option<u32>,
    /// Player `heartbeat` / `bitrate_change`: rendition name, e.g. `720p`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<Cow<'a, str>>,
    /// Player `heartbeat`: frames dropped since the previous heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_frames: Option<u32>,
    /// Player `heartbeat` / `end`: time spent playing (not stalled) since the
    /// previous heartbeat, ms. Watch time is the sum of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played_ms: Option<u32>,
    /// Player `stall_end`: the stall's length, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u32>,
    /// Player `heartbeat`: live latency, the wall clock minus the program
    /// date time of the frame shown, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
    /// Player `heartbeat`: how far the player scales the rendition up to
    /// fit its display, percent (a 540p picture on a 1080p display is 100);
    /// 0 when it does not upscale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscale_pct: Option<u32>,
    /// Player `error`: error code.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub code: Option<Cow<'a, str>>,
    /// Player `error`: whether playback stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fatal: Option<bool>,

    /// Chat `message`: the text.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'a, str>>,
    /// Chat `gift`: which gift.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub gift_id: Option<Cow<'a, str>>,
    /// Chat `gift`: how many were sent at once (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Chat `gift`: total value of this event (all `count` gifts), cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_cents: Option<u64>,

    /// Stream: the creator who owns the stream.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<Cow<'a, str>>,
    /// Stream `start`: title.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub title: Option<Cow<'a, str>>,
    /// Stream `start`: category, e.g. `gaming`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub category: Option<Cow<'a, str>>,
    /// Stream `health`: the segment's duration, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_ms: Option<u32>,
    /// Stream `health`: video frames per second the encoder sent in the
    /// segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// Stream `health`: mean distance between video keyframes in the
    /// segment, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframe_interval_ms: Option<u32>,
}

/// A record of events in the JSON encoding (see [`record`](crate::record)),
/// for producers that are not livepulse: events of one family, stamped with
/// the receive time, in the partition of their streams
/// ([`partition_for`](crate::topics::partition_for)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch<'a> {
    /// Contract version of the events inside.
    pub schema_version: u16,
    /// Collector receive time, epoch milliseconds.
    pub received_ms: i64,
    /// The events, in the order the client sent them.
    #[serde(borrow)]
    pub events: Vec<Event<'a>>,
}
