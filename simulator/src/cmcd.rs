//! The origin's request log for simulated views: what the HLS origin logs
//! when a view's player fetches the stream with CMCD on, as hls.js does.
//! At start the master playlist, the rendition's playlist and its init
//! segment, then one media segment a second (and the playlist every other
//! second) until the view ends, each with the CMCD the player sends:
//! `su` until the first frame, `bs` after a stall, `br` of the rendition
//! playing, `bl` from its buffer, `mtp` near four times the bitrate. A view
//! that fails to start gets 503s; one abandoned before its first frame
//! never receives a whole segment.
//!
//! ```
//! use livepulse_simulator::cmcd::{RequestLogConfig, request_log};
//! use livepulse_simulator::{Audience, AudienceConfig};
//!
//! let events = Audience::run_for(AudienceConfig::new(7, 2, 50, 1_700_000_000_000), 60_000).unwrap();
//! let log = request_log(&events, &RequestLogConfig::default());
//! assert!(!log.requests.is_empty());
//! assert!(log.player_events.len() < events.len());
//! ```

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use livepulse_contract::playback::{Cmcd, ObjectKind, PlaybackRequest};
use livepulse_contract::{Event, Family, Kind};
use rand::SeedableRng;

use crate::catalogue::LADDER;
use crate::random::{SimRng, between, chance, uuid};

/// A media segment's duration, ms.
const SEGMENT_MS: i64 = 1_000;
/// Startup requests (playlists, init) follow each other this far apart, ms.
const STEP_MS: i64 = 40;

/// Which views fetch from the origin, and how the log misbehaves.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogConfig {
    /// Seed of the log's own draws (ids, timings, throughput).
    pub seed: u64,
    /// Share of views whose player fetches from the origin with CMCD on.
    pub cmcd_share: f64,
    /// Share of those whose player has no SDK: their player events are
    /// left out, only their requests tell their QoE.
    pub sdk_less_share: f64,
    /// Share of requests logged twice (a producer retry).
    pub duplicate_rate: f64,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            seed: 11,
            cmcd_share: 0.6,
            sdk_less_share: 0.5,
            duplicate_rate: 0.02,
        }
    }
}

/// What [`request_log`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLog {
    /// The requests, in the order the origin logs them.
    pub requests: Vec<PlaybackRequest>,
    /// The input events without those of SDK-less views.
    pub player_events: Vec<Event<'static>>,
}

/// The origin's log for the views (player sessions) of `events`.
pub fn request_log(events: &[Event<'static>], cfg: &RequestLogConfig) -> RequestLog {
    let mut seen = HashSet::new();
    let mut views: BTreeMap<(&str, &str), Vec<&Event<'static>>> = BTreeMap::new();
    for e in events {
        if e.family == Some(Family::Player) && seen.insert(e.event_id.as_ref()) {
            let session = e.session_id.as_deref().unwrap_or_default();
            views.entry((&e.stream_id, session)).or_default().push(e);
        }
    }
    let mut rng = SimRng::seed_from_u64(cfg.seed);
    let mut requests = Vec::new();
    let mut sdk_less = HashSet::new();
    for ((stream, session), mut view) in views {
        if !chance(&mut rng, cfg.cmcd_share) {
            continue;
        }
        if chance(&mut rng, cfg.sdk_less_share) {
            sdk_less.insert(session.to_owned());
        }
        view.sort_by_key(|e| e.ts);
        requests.extend(View::of(stream, session, &view).requests(&mut rng));
    }
    requests.sort_by_key(|r| r.received_ms);
    let mut log = Vec::with_capacity(requests.len());
    for request in requests {
        if chance(&mut rng, cfg.duplicate_rate) {
            log.push(request.clone());
        }
        log.push(request);
    }
    let player_events = events
        .iter()
        .filter(|e| {
            !e.session_id
                .as_deref()
                .is_some_and(|s| sdk_less.contains(s))
        })
        .cloned()
        .collect();
    RequestLog {
        requests: log,
        player_events,
    }
}

/// What the log needs of one view's player events.
struct View<'a> {
    stream: &'a str,
    session: &'a str,
    viewer: &'a str,
    start: i64,
    end: i64,
    /// When the first frame showed.
    playing: Option<i64>,
    /// A fatal error before the first frame.
    failed: bool,
    /// (from, rendition index) as the player switched.
    renditions: Vec<(i64, usize)>,
    /// (at, buffer ms) of the heartbeats.
    buffers: Vec<(i64, u64)>,
    stalls: Vec<i64>,
}

impl<'a> View<'a> {
    fn of(stream: &'a str, session: &'a str, events: &[&'a Event<'static>]) -> Self {
        let rung = |e: &Event<'_>| {
            LADDER
                .iter()
                .position(|r| Some(r.bitrate_kbps) == e.bitrate_kbps)
                .unwrap_or(0)
        };
        let mut view = Self {
            stream,
            session,
            viewer: events[0].viewer_id.as_deref().unwrap_or_default(),
            start: events[0].ts,
            end: events[events.len() - 1].ts,
            playing: None,
            failed: false,
            renditions: Vec::new(),
            buffers: Vec::new(),
            stalls: Vec::new(),
        };
        for e in events {
            match e.event {
                Some(Kind::Playing) => {
                    view.playing = Some(e.ts);
                    view.renditions.push((e.ts, rung(e)));
                }
                Some(Kind::BitrateChange) => view.renditions.push((e.ts, rung(e))),
                Some(Kind::Heartbeat) => {
                    view.buffers
                        .push((e.ts, u64::from(e.buffer_ms.unwrap_or_default())));
                }
                Some(Kind::StallStart) => view.stalls.push(e.ts),
                Some(Kind::Error) if e.fatal == Some(true) && view.playing.is_none() => {
                    view.failed = true;
                }
                _ => {}
            }
        }
        view
    }

    fn rendition_at(&self, t: i64) -> usize {
        self.renditions
            .iter()
            .take_while(|(from, _)| *from <= t)
            .last()
            .or(self.renditions.first())
            .map_or(0, |(_, r)| *r)
    }

    fn buffer_at(&self, t: i64) -> u64 {
        self.buffers
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |(_, b)| *b)
    }

    fn requests(&self, rng: &mut SimRng) -> Vec<PlaybackRequest> {
        let rendition = LADDER[self.rendition_at(self.start)].name;
        let mut out = vec![
            self.request(rng, self.start, None, "master.m3u8", ObjectKind::Playlist),
            self.request(
                rng,
                self.start + STEP_MS,
                Some(rendition),
                "index.m3u8",
                ObjectKind::Playlist,
            ),
            self.request(
                rng,
                self.start + 2 * STEP_MS,
                Some(rendition),
                "init.mp4",
                ObjectKind::Init,
            ),
        ];
        let mut t = self.start + 3 * STEP_MS;
        let mut last = t;
        let mut n = 0;
        while t < self.end {
            let r = LADDER[self.rendition_at(t)];
            let mut segment = self.request(
                rng,
                t,
                Some(r.name),
                &format!("seg{n:05}.m4s"),
                ObjectKind::Segment,
            );
            let cmcd = segment.cmcd.get_or_insert_with(Cmcd::default);
            cmcd.encoded_bitrate_kbps = Some(u64::from(r.bitrate_kbps));
            cmcd.object_duration_ms = Some(SEGMENT_MS as u64);
            cmcd.object_type = Some("av".into());
            cmcd.buffer_length_ms = Some(self.buffer_at(t));
            let mtp = u64::from(r.bitrate_kbps) * 4 + between(rng, 0, 2_000) as u64;
            cmcd.measured_throughput_kbps = Some(mtp / 100 * 100);
            cmcd.buffer_starvation = self
                .stalls
                .iter()
                .any(|s| last < *s && *s <= t)
                .then_some(true);
            if self.failed {
                segment.status = 503;
                segment.bytes_sent = 96;
            } else if self.playing.is_none() {
                // Abandoned before the first frame: never received whole.
                segment.complete = false;
                segment.ttlb_us = None;
            } else {
                // Bytes at the player's throughput.
                let bytes = u64::from(r.bitrate_kbps) * 1_000 / 8;
                segment.bytes_sent = bytes;
                let ttlb = segment.ttfb_us.unwrap_or_default() + bytes * 8_000 / mtp.max(1);
                segment.ttlb_us = Some(ttlb);
            }
            out.push(segment);
            if n % 2 == 1 {
                out.push(self.request(
                    rng,
                    t + STEP_MS,
                    Some(r.name),
                    "index.m3u8",
                    ObjectKind::Playlist,
                ));
            }
            last = t;
            t += SEGMENT_MS;
            n += 1;
        }
        out
    }

    /// A request at `t` with the session's CMCD; a whole 200 by default.
    fn request(
        &self,
        rng: &mut SimRng,
        t: i64,
        rendition: Option<&str>,
        object: &str,
        kind: ObjectKind,
    ) -> PlaybackRequest {
        let ttfb = between(rng, 500, 20_000) as u64;
        let cmcd = Cmcd {
            session_id: Some(self.session.to_owned()),
            content_id: Some(self.stream.to_owned()),
            streaming_format: Some("h".into()),
            stream_type: Some("l".into()),
            object_type: Some(match kind {
                ObjectKind::Playlist => "m".into(),
                ObjectKind::Init => "i".into(),
                ObjectKind::Segment => "av".into(),
            }),
            startup: self.playing.is_none_or(|p| t < p).then_some(true),
            ..Cmcd::default()
        };
        PlaybackRequest {
            request_id: uuid(rng),
            received_ms: t,
            stream_id: self.stream.to_owned(),
            rendition: rendition.map(str::to_owned),
            object: object.to_owned(),
            object_kind: kind,
            status: if self.failed { 503 } else { 200 },
            bytes_sent: 2_048,
            complete: true,
            ttfb_us: Some(ttfb),
            ttlb_us: Some(ttfb + between(rng, 100, 2_000) as u64),
            client_cohort: cohort(self.viewer),
            cmcd: Some(cmcd),
        }
    }
}

/// The viewer's network: one of 64 IPv4 /24s or, for a fifth of the
/// viewers, one of 16 IPv6 /48s.
fn cohort(viewer: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    viewer.hash(&mut hasher);
    let h = hasher.finish();
    if h.is_multiple_of(5) {
        format!("2001:db8:{:x}::/48", (h >> 8) % 16)
    } else {
        format!("198.51.{}.0/24", (h >> 8) % 64)
    }
}
