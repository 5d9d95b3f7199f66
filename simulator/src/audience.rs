//! The audience model: a discrete-event simulation of streams, viewers and
//! their sessions, feeding the send queue.

use std::borrow::Cow;
use std::collections::HashSet;

use livepulse_contract::{Event, Family, Kind, SCHEMA_VERSION};
use rand::{Rng, SeedableRng};

use crate::calendar::Calendar;
use crate::catalogue::{
    CATEGORIES, CDNS, DEVICES, FATAL_ERRORS, GIFT_COUNTS, GIFTS, LADDER, MESSAGES,
    PRICEY_GIFT_CENTS, REGIONS, SOFT_ERRORS, display_height, players, upscale_pct,
};
use crate::config::{AudienceConfig, ConfigError};
use crate::outbox::Outbox;
use crate::random::{
    SimRng, between, chance, exponential, lognormal, unit, uuid, weighted, within,
};

/// How far behind the live edge a player with an empty buffer is, ms: the
/// segment being cut plus the origin's delay.
const LIVE_EDGE_DELAY_MS: u32 = 2_000;
/// Mean size of a burst of likes (uniform over 1..=10).
const MEAN_LIKE_BURST: f64 = 5.5;
/// Engagement classes (multiplier of the chat rates, share of viewers): most
/// viewers lurk, a few superfans chat and gift a lot. The mean multiplier is 1.
const ENGAGEMENT: [(f64, u32); 3] = [(0.2, 60), (1.2, 30), (5.2, 10)];

/// A live stream of the simulated platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The `stream_id` of its events.
    pub stream_id: String,
    /// The creator who owns it.
    pub creator_id: String,
    /// Title sent with its `start` event.
    pub title: &'static str,
    /// Category sent with its `start` event.
    pub category: &'static str,
}

/// A seeded, deterministic synthetic audience.
///
/// Events come out in send order: each is sent up to `max_disorder_ms` after
/// its `ts`, and a `duplicate_rate` share is sent a second time. Drawing in
/// chunks gives exactly the events of drawing at once, so driving a
/// collector in real time and generating a test's input agree for a seed.
///
/// ```
/// use livepulse_simulator::{Audience, AudienceConfig};
///
/// let cfg = AudienceConfig::new(7, 2, 50, 1_700_000_000_000);
/// let mut chunked = Audience::new(cfg.clone()).unwrap();
/// let mut events = chunked.events_until(1_700_000_030_000);
/// events.extend(chunked.events_until(1_700_000_060_000));
/// assert_eq!(events, Audience::run_for(cfg, 60_000).unwrap());
/// ```
pub struct Audience {
    cfg: AudienceConfig,
    rates: Rates,
    emitter: Emitter,
    actions: Scheduler,
    streams: Vec<StreamInfo>,
    /// Cumulative Zipf weights of the streams, for popularity draws.
    popularity: Vec<f64>,
    /// Simulated time the streams go offline, if they do.
    streams_end: Option<i64>,
    viewers: Vec<Viewer>,
    /// (viewer, stream) pairs that followed / subscribed: at most once each.
    followed: HashSet<u64>,
    subscribed: HashSet<u64>,
}

impl Audience {
    /// Builds the audience and schedules the streams going live at time 0.
    pub fn new(cfg: AudienceConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut rng = SimRng::seed_from_u64(cfg.seed);
        // A per-seed tag keeps ids of differently seeded runs apart.
        let tag = format!("{:06x}", rng.next_u32() & 0x00ff_ffff);
        let mut emitter = Emitter {
            rng,
            outbox: Outbox::new(cfg.start_ms, cfg.max_disorder_ms, cfg.duplicate_rate),
            start_ms: cfg.start_ms,
        };
        let streams_end = cfg.stream_duration_ms.map(|d| d as i64);

        let mut streams = Vec::with_capacity(cfg.streams as usize);
        for i in 0..cfg.streams {
            let rng = &mut emitter.rng;
            let (category, titles) = pick(rng, &CATEGORIES);
            let title = pick(rng, titles);
            let stream = StreamInfo {
                stream_id: format!("live-{tag}-{i}"),
                creator_id: format!("creator-{tag}-{i}"),
                title,
                category,
            };
            let mut start = emitter.stream_event(0, &stream, Kind::Start);
            start.title = Some(Cow::Borrowed(title));
            start.category = Some(Cow::Borrowed(category));
            emitter.send(start);
            if let Some(end) = streams_end {
                let end = emitter.stream_event(end, &stream, Kind::End);
                emitter.send(end);
            }
            streams.push(stream);
        }
        let popularity = (0..cfg.streams)
            .scan(0.0, |acc, rank| {
                *acc += 1.0 / f64::from(rank + 1).powf(cfg.behaviour.popularity_exponent);
                Some(*acc)
            })
            .collect();

        let mut actions = Scheduler(Calendar::new(0));
        let window = cfg.behaviour.arrival_window_ms as i64;
        let mut viewers = Vec::with_capacity(cfg.viewers as usize);
        for i in 0..cfg.viewers {
            let rng = &mut emitter.rng;
            let engagement = ENGAGEMENT[weighted(rng, &ENGAGEMENT, |e| e.1)].0;
            actions.push(between(rng, 0, window + 1), i, 0, Step::Arrive);
            viewers.push(Viewer {
                id: format!("viewer-{tag}-{i}"),
                engagement,
                last_stream: None,
                session_no: 0,
                session: None,
            });
        }

        Ok(Self {
            rates: Rates::new(&cfg),
            cfg,
            emitter,
            actions,
            streams,
            popularity,
            streams_end,
            viewers,
            followed: HashSet::new(),
            subscribed: HashSet::new(),
        })
    }

    /// All events of a fresh audience sent before `start_ms + duration_ms`,
    /// in send order. Events whose send is delayed past the end are not
    /// included, exactly as a real-time run stopped then would not send them.
    pub fn run_for(
        cfg: AudienceConfig,
        duration_ms: i64,
    ) -> Result<Vec<Event<'static>>, ConfigError> {
        let until = cfg.start_ms.saturating_add(duration_ms);
        Ok(Self::new(cfg)?.events_until(until))
    }

    /// Every event sent before epoch ms `until_ms` and not returned by an
    /// earlier call, in send order.
    pub fn events_until(&mut self, until_ms: i64) -> Vec<Event<'static>> {
        // Each action emits events at or after its own time, so simulating
        // every action before `until` produces every event with `ts < until`,
        // whatever the earlier calls' boundaries were.
        let until = until_ms.saturating_sub(self.cfg.start_ms);
        while let Some((at, action)) = self.actions.0.pop_before(until) {
            self.run(at, action);
        }
        let mut out = Vec::new();
        self.emitter.outbox.drain_until(until_ms, &mut out);
        out
    }

    /// The configuration this audience was built from.
    pub fn config(&self) -> &AudienceConfig {
        &self.cfg
    }

    /// The streams, most popular first.
    pub fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    fn run(&mut self, at: i64, action: Action) {
        let v = action.viewer as usize;
        match action.step {
            Step::Arrive => self.arrive(v, at),
            // Actions of an earlier session are stale once the next one began.
            _ if self.viewers[v].session_no != action.session => {}
            Step::Tick => self.tick(v, at),
            Step::Chat => self.chat(v, at),
            Step::Like { left } => self.like(v, at, left),
            Step::Follow => self.follow(v, at),
        }
    }

    /// A viewer presses play: the attempt fails, is abandoned, or plays.
    fn arrive(&mut self, v: usize, t: i64) {
        let Self {
            cfg,
            rates,
            emitter: em,
            actions,
            streams,
            popularity,
            streams_end,
            viewers,
            ..
        } = self;
        let deadline = streams_end.unwrap_or(i64::MAX);
        if t >= deadline {
            // Nothing is live any more: the viewer is gone for good.
            return;
        }
        let b = &cfg.behaviour;
        let viewer = &mut viewers[v];
        let stream = match viewer.last_stream {
            Some(last) if chance(&mut em.rng, b.repeat_affinity) => last,
            _ => {
                let pick = unit(&mut em.rng) * popularity.last().copied().unwrap_or(0.0);
                popularity
                    .partition_point(|&c| c <= pick)
                    .min(streams.len() - 1) as u32
            }
        };
        viewer.last_stream = Some(stream);
        viewer.session_no += 1;
        let no = viewer.session_no;
        let mut s = Session::draw(&mut em.rng, stream);
        let stream_id = streams[stream as usize].stream_id.as_str();
        let start = em.player_event(t, Kind::Start, stream_id, &viewer.id, &s);
        em.send(start);

        let outcome = unit(&mut em.rng);
        let startup_median = f64::from(b.startup_median_ms) * s.quality.startup_factor();
        let startup =
            |rng: &mut SimRng| lognormal(rng, startup_median, 0.5).clamp(300.0, 8_000.0) as i64;
        let unplayed_end = if outcome < b.start_failure_rate {
            let failed = t + between(&mut em.rng, 500, 8_001);
            if failed < deadline {
                let mut error = em.player_event(failed, Kind::Error, stream_id, &viewer.id, &s);
                error.code = Some(Cow::Borrowed(pick(&mut em.rng, &FATAL_ERRORS)));
                error.fatal = Some(true);
                em.send(error);
            }
            Some(failed.min(deadline))
        } else if outcome < b.start_failure_rate + b.ebvs_rate {
            // Abandoned while waiting for the first frame, some within a second.
            let patience = startup(&mut em.rng) as f64 * (0.2 + 0.75 * unit(&mut em.rng));
            Some((t + (patience as i64).max(100)).min(deadline))
        } else {
            let startup_ms = startup(&mut em.rng);
            let playing_at = t + startup_ms;
            if playing_at >= deadline {
                Some(deadline)
            } else {
                s.rung = s.quality.start_rung();
                s.stall = (playing_at, playing_at);
                s.end = (playing_at + session_length(&mut em.rng, b)).min(deadline);
                let mut playing =
                    em.player_event(playing_at, Kind::Playing, stream_id, &viewer.id, &s);
                playing.startup_ms = Some(startup_ms as u32);
                playing.bitrate_kbps = Some(LADDER[s.rung].bitrate_kbps);
                playing.rendition = Some(Cow::Borrowed(LADDER[s.rung].name));
                em.send(playing);
                actions.push(playing_at, v as u32, no, Step::Tick);
                if let Some(wait) = exponential(&mut em.rng, rates.chat * viewer.engagement) {
                    actions.push(playing_at + wait, v as u32, no, Step::Chat);
                }
                if chance(&mut em.rng, b.follow_probability) {
                    let at = between(&mut em.rng, playing_at, s.end);
                    actions.push(at, v as u32, no, Step::Follow);
                }
                None
            }
        };
        if let Some(end_at) = unplayed_end {
            s.end = end_at;
            let end = em.player_event(end_at, Kind::End, stream_id, &viewer.id, &s);
            em.send(end);
            let back = end_at + return_gap(&mut em.rng, b);
            actions.push(back, v as u32, no, Step::Arrive);
        }
        viewer.session = Some(s);
    }

    /// Plans one heartbeat interval `[a, a + heartbeat)` of a playing
    /// session: stalls, switches and errors within it, then the heartbeat at
    /// its end, or the session's end if that comes first.
    fn tick(&mut self, v: usize, a: i64) {
        let Self {
            cfg,
            rates,
            emitter: em,
            actions,
            streams,
            viewers,
            ..
        } = self;
        let b_cfg = &cfg.behaviour;
        let viewer = &mut viewers[v];
        let no = viewer.session_no;
        let Some(s) = viewer.session.as_mut() else {
            return;
        };
        let stream_id = streams[s.stream as usize].stream_id.as_str();
        let b = a + i64::from(cfg.heartbeat_ms);
        let mut end = s.end;
        let previous_stall = s.stall;
        // No new stall or fatal error while the previous stall still runs,
        // so an emitted stall never outlasts the session.
        let calm_from = a.max(previous_stall.1);

        let mut stall = None;
        let span = b.min(end);
        if calm_from < span
            && chance(
                &mut em.rng,
                within(rates.stall * s.stall_factor, span - calm_from),
            )
        {
            let start = between(&mut em.rng, calm_from, span);
            let length = lognormal(&mut em.rng, f64::from(b_cfg.stall_median_ms), 0.7)
                .clamp(100.0, 60_000.0) as i64;
            if chance(&mut em.rng, b_cfg.stall_abandon_probability) {
                let patience = (length as f64 * (0.3 + 0.7 * unit(&mut em.rng))) as i64;
                end = end.min(start + patience.max(1));
            }
            stall = Some((start, start + length));
        }
        let mut fatal = None;
        let span = b.min(end);
        if calm_from < span && chance(&mut em.rng, within(rates.failure, span - calm_from)) {
            end = between(&mut em.rng, calm_from, span);
            fatal = Some(pick(&mut em.rng, &FATAL_ERRORS));
        }
        let span = b.min(end);
        // A fatal error before the stall began cancels it.
        let stall = stall
            .filter(|&(start, _)| start < end)
            .map(|(start, stop)| (start, stop.min(end)));
        if let Some((start, stop)) = stall {
            let mut stall_start =
                em.player_event(start, Kind::StallStart, stream_id, &viewer.id, s);
            stall_start.buffer_ms = Some(0);
            em.send(stall_start);
            let mut stall_end = em.player_event(stop, Kind::StallEnd, stream_id, &viewer.id, s);
            stall_end.stall_ms = Some((stop - start) as u32);
            em.send(stall_end);
            s.stall = (start, stop);
        }

        if a < span {
            let max_rung = s.quality.max_rung();
            let rng = &mut em.rng;
            let switch_to = if stall.is_some() && s.rung > 0 && chance(rng, 0.6) {
                Some(s.rung - 1)
            } else if s.rung < max_rung && chance(rng, 0.35) {
                Some(s.rung + 1)
            } else if s.rung > 0 && chance(rng, 0.02) {
                Some(s.rung - 1)
            } else {
                None
            };
            if let Some(rung) = switch_to {
                let previous = LADDER[s.rung].bitrate_kbps;
                s.rung = rung;
                let at = between(&mut em.rng, a, span);
                let mut change = em.player_event(at, Kind::BitrateChange, stream_id, &viewer.id, s);
                change.previous_bitrate_kbps = Some(previous);
                change.bitrate_kbps = Some(LADDER[rung].bitrate_kbps);
                change.rendition = Some(Cow::Borrowed(LADDER[rung].name));
                em.send(change);
            }
            if chance(&mut em.rng, within(rates.soft_error, span - a)) {
                let at = between(&mut em.rng, a, span);
                let mut error = em.player_event(at, Kind::Error, stream_id, &viewer.id, s);
                error.code = Some(Cow::Borrowed(pick(&mut em.rng, &SOFT_ERRORS)));
                error.fatal = Some(false);
                em.send(error);
            }
        }

        let stalled = overlap(previous_stall, a, span) + stall.map_or(0, |st| overlap(st, a, span));
        let played_ms = (span - a - stalled) as u32;
        s.end = end;
        if end > b {
            let mut heartbeat = em.player_event(b, Kind::Heartbeat, stream_id, &viewer.id, s);
            let rendition = LADDER[s.rung];
            heartbeat.bitrate_kbps = Some(rendition.bitrate_kbps);
            heartbeat.rendition = Some(Cow::Borrowed(rendition.name));
            heartbeat.played_ms = Some(played_ms);
            let stalled_now = s.stall.0 <= b && b < s.stall.1;
            let buffer_ms = if stalled_now {
                0
            } else {
                let (lo, hi) = s.quality.buffer_range_ms();
                (between(&mut em.rng, lo, hi + 1) / 100 * 100) as u32
            };
            heartbeat.buffer_ms = Some(buffer_ms);
            // A live player sits its buffer plus the segmenting delay
            // behind the live edge.
            heartbeat.latency_ms = Some(buffer_ms + LIVE_EDGE_DELAY_MS);
            heartbeat.upscale_pct = Some(upscale_pct(&rendition, display_height(s.device)));
            let drop_chance = if s.mobile { 0.15 } else { 0.08 };
            heartbeat.dropped_frames = Some(if chance(&mut em.rng, drop_chance) {
                between(&mut em.rng, 1, 3 * (b - a) / 1_000 + 1) as u32
            } else {
                0
            });
            em.send(heartbeat);
            actions.push(b, v as u32, no, Step::Tick);
        } else {
            if let Some(code) = fatal {
                let mut error = em.player_event(end, Kind::Error, stream_id, &viewer.id, s);
                error.code = Some(Cow::Borrowed(code));
                error.fatal = Some(true);
                em.send(error);
            }
            let mut last = em.player_event(end, Kind::End, stream_id, &viewer.id, s);
            last.played_ms = Some(played_ms);
            em.send(last);
            let back = end + return_gap(&mut em.rng, b_cfg);
            actions.push(back, v as u32, no, Step::Arrive);
        }
    }

    /// The viewer's next chat action while watching.
    fn chat(&mut self, v: usize, t: i64) {
        let Self {
            rates,
            emitter: em,
            actions,
            streams,
            viewers,
            subscribed,
            ..
        } = self;
        let viewer = &viewers[v];
        let Some(s) = viewer.session.as_ref().filter(|s| t < s.end) else {
            return;
        };
        let stream_id = streams[s.stream as usize].stream_id.as_str();
        let no = viewer.session_no;
        let mut pick_at = unit(&mut em.rng) * rates.chat;
        let choice = rates
            .chat_mix
            .iter()
            .position(|&w| {
                pick_at -= w;
                pick_at < 0.0
            })
            .unwrap_or(rates.chat_mix.len() - 1);
        match choice {
            0 => {
                let mut message = em.chat_event(t, Kind::Message, stream_id, &viewer.id);
                message.text = Some(Cow::Borrowed(pick(&mut em.rng, &MESSAGES)));
                em.send(message);
            }
            1 => {
                let like = em.chat_event(t, Kind::Like, stream_id, &viewer.id);
                em.send(like);
                let left = between(&mut em.rng, 0, 10) as u16;
                if left > 0 {
                    let next = t + between(&mut em.rng, 80, 600);
                    actions.push(next, v as u32, no, Step::Like { left });
                }
            }
            2 => {
                let gift = GIFTS[weighted(&mut em.rng, &GIFTS, |g| g.weight)];
                let count = if gift.unit_cents >= PRICEY_GIFT_CENTS {
                    between(&mut em.rng, 1, 3) as u32
                } else {
                    GIFT_COUNTS[weighted(&mut em.rng, &GIFT_COUNTS, |c| c.1)].0
                };
                let mut event = em.chat_event(t, Kind::Gift, stream_id, &viewer.id);
                event.gift_id = Some(Cow::Borrowed(gift.id));
                event.count = Some(count);
                event.value_cents = Some(u64::from(count) * gift.unit_cents);
                em.send(event);
            }
            3 => {
                if subscribed.insert(pair(v, s.stream)) {
                    let event = em.chat_event(t, Kind::Subscribe, stream_id, &viewer.id);
                    em.send(event);
                }
            }
            _ => {
                let event = em.chat_event(t, Kind::Share, stream_id, &viewer.id);
                em.send(event);
            }
        }
        if let Some(wait) = exponential(&mut em.rng, rates.chat * viewer.engagement) {
            actions.push(t + wait, v as u32, no, Step::Chat);
        }
    }

    /// One like of a burst; `left` includes this one.
    fn like(&mut self, v: usize, t: i64, left: u16) {
        let viewer = &self.viewers[v];
        let Some(s) = viewer.session.as_ref().filter(|s| t < s.end) else {
            return;
        };
        let stream_id = self.streams[s.stream as usize].stream_id.as_str();
        let like = self
            .emitter
            .chat_event(t, Kind::Like, stream_id, &viewer.id);
        self.emitter.send(like);
        if left > 1 {
            let next = t + between(&mut self.emitter.rng, 80, 600);
            self.actions.push(
                next,
                v as u32,
                viewer.session_no,
                Step::Like { left: left - 1 },
            );
        }
    }

    /// A follow, unless the viewer left or already follows the stream.
    fn follow(&mut self, v: usize, t: i64) {
        let viewer = &self.viewers[v];
        let Some(s) = viewer.session.as_ref().filter(|s| t < s.end) else {
            return;
        };
        if self.followed.insert(pair(v, s.stream)) {
            let stream_id = self.streams[s.stream as usize].stream_id.as_str();
            let follow = self
                .emitter
                .chat_event(t, Kind::Follow, stream_id, &viewer.id);
            self.emitter.send(follow);
        }
    }
}

/// Rates per simulated millisecond.
struct Rates {
    /// Chat actions of a viewer with engagement 1: messages, like bursts,
    /// gifts, subscribes, shares.
    chat_mix: [f64; 5],
    /// Their sum.
    chat: f64,
    stall: f64,
    soft_error: f64,
    failure: f64,
}

impl Rates {
    fn new(cfg: &AudienceConfig) -> Self {
        let b = &cfg.behaviour;
        let chat_mix = [
            b.messages_per_minute / 60_000.0,
            b.likes_per_minute / 60_000.0 / MEAN_LIKE_BURST,
            b.gifts_per_hour / 3_600_000.0,
            b.subscribes_per_hour / 3_600_000.0,
            b.shares_per_hour / 3_600_000.0,
        ];
        Self {
            chat_mix,
            chat: chat_mix.iter().sum(),
            stall: b.stalls_per_minute / 60_000.0,
            soft_error: b.errors_per_hour / 3_600_000.0,
            failure: b.playback_failures_per_hour / 3_600_000.0,
        }
    }
}

/// Builds events and hands them to the send queue, drawing ids from the
/// simulation's generator.
struct Emitter {
    rng: SimRng,
    outbox: Outbox,
    start_ms: i64,
}

impl Emitter {
    fn event(&mut self, at: i64, stream_id: &str, family: Family, kind: Kind) -> Event<'static> {
        Event {
            schema_version: Some(SCHEMA_VERSION),
            event_id: Cow::Owned(uuid(&mut self.rng)),
            ts: self.start_ms + at,
            stream_id: Cow::Owned(stream_id.to_owned()),
            family: Some(family),
            event: Some(kind),
            ..Event::default()
        }
    }

    fn stream_event(&mut self, at: i64, stream: &StreamInfo, kind: Kind) -> Event<'static> {
        let mut event = self.event(at, &stream.stream_id, Family::Stream, kind);
        event.creator_id = Some(Cow::Owned(stream.creator_id.clone()));
        event
    }

    fn player_event(
        &mut self,
        at: i64,
        kind: Kind,
        stream_id: &str,
        viewer_id: &str,
        s: &Session,
    ) -> Event<'static> {
        let mut event = self.event(at, stream_id, Family::Player, kind);
        event.session_id = Some(Cow::Owned(s.id.clone()));
        event.viewer_id = Some(Cow::Owned(viewer_id.to_owned()));
        event.device = Some(Cow::Borrowed(s.device));
        event.player = Some(Cow::Borrowed(s.player));
        event.cdn = Some(Cow::Borrowed(s.cdn));
        event.region = Some(Cow::Borrowed(s.region));
        event
    }

    fn chat_event(
        &mut self,
        at: i64,
        kind: Kind,
        stream_id: &str,
        viewer_id: &str,
    ) -> Event<'static> {
        let mut event = self.event(at, stream_id, Family::Chat, kind);
        event.viewer_id = Some(Cow::Owned(viewer_id.to_owned()));
        event
    }

    fn send(&mut self, event: Event<'static>) {
        self.outbox.push(&mut self.rng, event);
    }
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The viewer starts a session.
    Arrive,
    /// A heartbeat interval of a playing session begins.
    Tick,
    /// The viewer's next chat action.
    Chat,
    /// The next like of a burst.
    Like { left: u16 },
    /// The viewer follows the stream.
    Follow,
}

/// A scheduled step of one viewer's session.
#[derive(Debug, Clone, Copy)]
struct Action {
    viewer: u32,
    /// The session it belongs to; `Arrive` ignores it.
    session: u32,
    step: Step,
}

/// The actions by simulated time (ms after time 0), ties in scheduling order.
struct Scheduler(Calendar<Action>);

impl Scheduler {
    fn push(&mut self, at: i64, viewer: u32, session: u32, step: Step) {
        self.0.push(
            at,
            Action {
                viewer,
                session,
                step,
            },
        );
    }
}

struct Viewer {
    id: String,
    /// Multiplier of the chat rates.
    engagement: f64,
    last_stream: Option<u32>,
    /// Number of the current (or last) session, starting at 1.
    session_no: u32,
    session: Option<Session>,
}

/// Network quality of a session: bounds its bitrate, drives its stalls.
#[derive(Debug, Clone, Copy)]
enum Quality {
    Good,
    Fair,
    Poor,
}

impl Quality {
    fn max_rung(self) -> usize {
        match self {
            Quality::Good => 3,
            Quality::Fair => 2,
            Quality::Poor => 1,
        }
    }

    /// ABR starts a rung below what the network sustains, then climbs.
    fn start_rung(self) -> usize {
        self.max_rung() - 1
    }

    fn stall_factor(self) -> f64 {
        match self {
            Quality::Good => 0.4,
            Quality::Fair => 1.5,
            Quality::Poor => 5.0,
        }
    }

    fn startup_factor(self) -> f64 {
        match self {
            Quality::Good => 1.0,
            Quality::Fair => 1.6,
            Quality::Poor => 2.5,
        }
    }

    fn buffer_range_ms(self) -> (i64, i64) {
        match self {
            Quality::Good => (6_000, 15_000),
            Quality::Fair => (3_000, 9_000),
            Quality::Poor => (500, 4_000),
        }
    }
}

struct Session {
    id: String,
    stream: u32,
    device: &'static str,
    player: &'static str,
    cdn: &'static str,
    region: &'static str,
    mobile: bool,
    quality: Quality,
    /// Stall rate multiplier from quality, region and CDN.
    stall_factor: f64,
    /// Current rendition, index into the ladder.
    rung: usize,
    /// The last stall, `[start, end)`.
    stall: (i64, i64),
    /// When the session ends (simulated ms); may move earlier while it plays.
    end: i64,
}

impl Session {
    fn draw(rng: &mut SimRng, stream: u32) -> Self {
        let (device, _, mobile) = DEVICES[weighted(rng, &DEVICES, |d| d.1)];
        let player = pick(rng, players(device));
        let (cdn, _, cdn_factor) = CDNS[weighted(rng, &CDNS, |c| c.1)];
        let (region, _, region_factor) = REGIONS[weighted(rng, &REGIONS, |r| r.1)];
        let (good, fair) = if mobile { (60, 28) } else { (80, 16) };
        let roll = between(rng, 0, 100);
        let quality = if roll < good {
            Quality::Good
        } else if roll < good + fair {
            Quality::Fair
        } else {
            Quality::Poor
        };
        Self {
            id: uuid(rng),
            stream,
            device,
            player,
            cdn,
            region,
            mobile,
            quality,
            stall_factor: quality.stall_factor() * cdn_factor * region_factor,
            rung: 0,
            stall: (0, 0),
            end: 0,
        }
    }
}

/// Uniformly one of `items` (not empty).
fn pick<T: Copy>(rng: &mut SimRng, items: &[T]) -> T {
    items[weighted(rng, items, |_| 1)]
}

/// How long a session that plays lasts: mostly minutes, some zaps of seconds.
fn session_length(rng: &mut SimRng, b: &crate::Behaviour) -> i64 {
    let length = if chance(rng, b.zap_rate) {
        lognormal(rng, 15_000.0, 0.6)
    } else {
        lognormal(rng, f64::from(b.session_median_ms), b.session_sigma)
    };
    length.clamp(2_000.0, 8.0 * 3_600_000.0) as i64
}

/// Pause before a viewer's next session.
fn return_gap(rng: &mut SimRng, b: &crate::Behaviour) -> i64 {
    lognormal(rng, f64::from(b.return_gap_median_ms), 1.0).clamp(5_000.0, 7.0 * 86_400_000.0) as i64
}

/// Length of `[start, end) ∩ [a, b)`.
fn overlap((start, end): (i64, i64), a: i64, b: i64) -> i64 {
    (end.min(b) - start.max(a)).max(0)
}

/// Key of a (viewer, stream) pair.
fn pair(viewer: usize, stream: u32) -> u64 {
    ((viewer as u64) << 32) | u64::from(stream)
}
