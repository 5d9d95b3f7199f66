//! The audience's guarantees: determinism, chunking, validity, bounded
//! disorder and duplicates, and a realistic mix.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use livepulse_contract::{Event, Family, Kind, Limits};
use livepulse_simulator::catalogue::{GIFTS, LADDER, MESSAGES};
use livepulse_simulator::{Audience, AudienceConfig};

const START: i64 = 1_750_000_000_000;
const MINUTE: i64 = 60_000;

fn config(seed: u64, streams: u32, viewers: u32) -> AudienceConfig {
    AudienceConfig::new(seed, streams, viewers, START)
}

fn kind(e: &Event<'_>) -> (Family, Kind) {
    (e.family.unwrap(), e.event.unwrap())
}

#[test]
fn same_seed_same_events_other_seed_other_events() {
    let a = Audience::run_for(config(11, 5, 500), 5 * MINUTE).unwrap();
    let b = Audience::run_for(config(11, 5, 500), 5 * MINUTE).unwrap();
    assert!(a.len() > 10_000, "{}", a.len());
    assert_eq!(a, b);
    let c = Audience::run_for(config(12, 5, 500), 5 * MINUTE).unwrap();
    assert_ne!(a, c);
    let ids = |events: &[Event<'_>]| -> BTreeSet<String> {
        events.iter().map(|e| e.event_id.to_string()).collect()
    };
    assert!(ids(&a).is_disjoint(&ids(&c)));
}

#[test]
fn chunked_equals_all_at_once() {
    let cfg = config(3, 4, 400);
    let whole = Audience::run_for(cfg.clone(), 6 * MINUTE).unwrap();
    for step in [1_i64, 197, 200, 10_000, 61_234] {
        let mut audience = Audience::new(cfg.clone()).unwrap();
        let mut chunked = Vec::new();
        let mut until = START;
        while until < START + 6 * MINUTE {
            until = (until + step).min(START + 6 * MINUTE);
            chunked.extend(audience.events_until(until));
        }
        assert_eq!(chunked.len(), whole.len(), "step {step}");
        assert!(chunked == whole, "step {step}: streams differ");
        // Asking again for the past yields nothing new.
        assert!(audience.events_until(until).is_empty());
    }
}

#[test]
fn every_event_passes_the_contract() {
    let mut cfg = config(5, 8, 2_000);
    cfg.stream_duration_ms = Some(8 * MINUTE as u64);
    let events = Audience::run_for(cfg, 10 * MINUTE).unwrap();
    let limits = Limits {
        max_future_ms: i64::MAX / 4,
        max_past_ms: i64::MAX / 4,
    };
    for e in &events {
        if let Err(reason) = e.validate(START, &limits) {
            panic!("{reason}: {}", serde_json::to_string(e).unwrap());
        }
        // It also survives the wire: JSON there and back is the same event.
        let json = serde_json::to_string(e).unwrap();
        assert_eq!(&serde_json::from_str::<Event<'_>>(&json).unwrap(), e);
    }
    // Streams went offline at 8 minutes: one end each, nothing later.
    let ends = events
        .iter()
        .filter(|e| kind(e) == (Family::Stream, Kind::End))
        .count();
    assert_eq!(ends, 8);
    assert!(events.iter().all(|e| e.ts <= START + 8 * MINUTE));
}

#[test]
fn disorder_and_duplicates_stay_within_bounds() {
    let mut cfg = config(9, 6, 1_500);
    cfg.duplicate_rate = 0.05;
    cfg.max_disorder_ms = 2_500;
    let mut audience = Audience::new(cfg).unwrap();
    // Drawing one millisecond at a time, an event returned for `until`
    // was sent at exactly `until - 1`.
    let mut sent = Vec::new();
    for until in START + 1..=START + 4 * MINUTE {
        for e in audience.events_until(until) {
            sent.push((until - 1, e));
        }
    }
    let mut copies: BTreeMap<&str, Vec<&(i64, Event<'_>)>> = BTreeMap::new();
    let mut max_delay = 0;
    let mut late = 0;
    let mut highest_ts = i64::MIN;
    for pair in &sent {
        let (send, e) = pair;
        let delay = send - e.ts;
        assert!((0..=2_500).contains(&delay), "sent {delay} ms after its ts");
        max_delay = max_delay.max(delay);
        if e.ts < highest_ts {
            late += 1;
        }
        highest_ts = highest_ts.max(e.ts);
        copies.entry(&e.event_id).or_default().push(pair);
    }
    assert!(max_delay > 2_000, "{max_delay}");
    // Arrival order really differs from ts order.
    assert!(late > sent.len() / 20, "{late} of {}", sent.len());

    let mut duplicated = 0;
    for sends in copies.values() {
        assert!(sends.len() <= 2);
        if let [first, second] = sends.as_slice() {
            duplicated += 1;
            assert_eq!(first.1, second.1, "a duplicate is an identical copy");
            assert!(first.0 <= second.0);
        }
    }
    let rate = duplicated as f64 / copies.len() as f64;
    assert!((0.045..0.055).contains(&rate), "duplicate rate {rate}");
}

#[test]
fn no_disorder_and_no_duplicates_when_configured_off() {
    let mut cfg = config(2, 3, 300);
    cfg.duplicate_rate = 0.0;
    cfg.max_disorder_ms = 0;
    let events = Audience::run_for(cfg, 3 * MINUTE).unwrap();
    assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
    let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_ref()).collect();
    assert_eq!(ids.len(), events.len());
}

/// Each session's player events (duplicates dropped), in ts order.
fn sessions(events: &[Event<'static>]) -> BTreeMap<String, Vec<Event<'static>>> {
    let mut seen = BTreeSet::new();
    let mut by_session: BTreeMap<String, Vec<Event<'static>>> = BTreeMap::new();
    for e in events {
        if e.family == Some(Family::Player) && seen.insert(e.event_id.clone()) {
            let id = e.session_id.as_deref().unwrap().to_owned();
            by_session.entry(id).or_default().push(e.clone());
        }
    }
    // Events of one millisecond arrive in any order; `start` opens and
    // `end` closes a session whatever shares its millisecond.
    let rank = |e: &Event<'_>| match e.event {
        Some(Kind::Start) => 0,
        Some(Kind::End) => 2,
        _ => 1,
    };
    for list in by_session.values_mut() {
        list.sort_by_key(|e| (e.ts, rank(e)));
    }
    by_session
}

#[test]
fn sessions_are_consistent_and_the_mix_is_realistic() {
    let mut cfg = config(2024, 20, 3_000);
    // Every session closes by then, so each can be checked whole.
    cfg.stream_duration_ms = Some(10 * MINUTE as u64);
    let events = Audience::run_for(cfg.clone(), 12 * MINUTE).unwrap();
    let hb = i64::from(cfg.heartbeat_ms);

    let (mut plays, mut ebvs, mut failures, mut playback_failures) = (0, 0, 0, 0);
    let (mut stalls, mut switches) = (0, 0);
    // (viewer, stream) -> watching intervals, for the chat check below.
    let mut watching: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for (id, list) in sessions(&events) {
        let first = &list[0];
        let last = list.last().unwrap();
        assert_eq!(first.event, Some(Kind::Start), "{id} begins with start");
        assert_eq!(last.event, Some(Kind::End), "{id} closes with end");
        assert!(list.iter().all(|e| e.viewer_id == first.viewer_id
            && e.stream_id == first.stream_id
            && e.device == first.device
            && e.cdn == first.cdn));
        let count = |k| list.iter().filter(|e| e.event == Some(k)).count();
        assert_eq!((count(Kind::Start), count(Kind::End)), (1, 1), "{id}");
        let fatal = list.iter().any(|e| e.fatal == Some(true));
        let Some(playing) = list.iter().find(|e| e.event == Some(Kind::Playing)) else {
            // Never played: a start failure or an exit before video start.
            if fatal {
                failures += 1;
            } else {
                ebvs += 1;
            }
            assert_eq!(list.len(), 1 + usize::from(fatal) + 1, "{id}");
            continue;
        };
        plays += 1;
        playback_failures += usize::from(fatal);
        let startup = playing.startup_ms.unwrap();
        assert!((300..=8_000).contains(&startup), "{startup}");
        assert_eq!(playing.ts - first.ts, i64::from(startup));
        // Heartbeats tick exactly every interval after the first frame.
        let beats: Vec<&Event<'_>> = list
            .iter()
            .filter(|e| e.event == Some(Kind::Heartbeat))
            .collect();
        for (k, beat) in beats.iter().enumerate() {
            assert_eq!(beat.ts, playing.ts + (k as i64 + 1) * hb);
            assert!(
                LADDER
                    .iter()
                    .any(|r| Some(r.bitrate_kbps) == beat.bitrate_kbps
                        && beat.rendition.as_deref() == Some(r.name))
            );
            assert!(beat.played_ms.unwrap() <= cfg.heartbeat_ms);
        }
        // Watch time plus stall time covers first frame to end exactly.
        let played: i64 = list.iter().filter_map(|e| e.played_ms).map(i64::from).sum();
        let stalled: i64 = list.iter().filter_map(|e| e.stall_ms).map(i64::from).sum();
        assert_eq!(played + stalled, last.ts - playing.ts, "{id}");
        assert_eq!(count(Kind::StallStart), count(Kind::StallEnd), "{id}");
        stalls += count(Kind::StallStart);
        switches += count(Kind::BitrateChange);
        watching
            .entry((
                first.viewer_id.as_deref().unwrap().to_owned(),
                first.stream_id.to_string(),
            ))
            .or_default()
            .push((playing.ts, last.ts));
    }
    let attempts = plays + ebvs + failures;
    eprintln!(
        "attempts {attempts}, plays {plays}, ebvs {ebvs}, start failures {failures}, \
         playback failures {playback_failures}, stalls {stalls}, switches {switches}"
    );
    assert!(attempts > 4_000, "{attempts}");
    let share = |n: usize| n as f64 / attempts as f64;
    assert!(
        (0.85..0.97).contains(&share(plays)),
        "plays {}",
        share(plays)
    );
    assert!((0.02..0.10).contains(&share(ebvs)), "ebvs {}", share(ebvs));
    assert!(
        failures > 0 && share(failures) < 0.03,
        "failures {failures}"
    );
    assert!(stalls > 100, "{stalls}");
    assert!(switches > 100, "{switches}");

    // Popularity is skewed: the top stream draws far more sessions than the last.
    let mut per_stream: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        if kind(e) == (Family::Player, Kind::Start) {
            *per_stream.entry(e.stream_id.as_ref()).or_default() += 1;
        }
    }
    let most = per_stream.values().max().unwrap();
    let least = per_stream.values().min().unwrap();
    assert!(*most > 5 * least, "{most} vs {least}");

    // Chat: only while watching that stream, follows once per viewer and stream.
    let mut chat_kinds: HashMap<Kind, usize> = HashMap::new();
    let mut follows = BTreeSet::new();
    let mut cjk = 0;
    let mut seen = BTreeSet::new();
    for e in events.iter().filter(|e| e.family == Some(Family::Chat)) {
        if !seen.insert(e.event_id.as_ref()) {
            continue;
        }
        let k = e.event.unwrap();
        *chat_kinds.entry(k).or_default() += 1;
        let key = (
            e.viewer_id.as_deref().unwrap().to_owned(),
            e.stream_id.to_string(),
        );
        let intervals = &watching[&key];
        assert!(
            intervals
                .iter()
                .any(|&(from, to)| from <= e.ts && e.ts <= to),
            "{k:?} outside a view"
        );
        match k {
            Kind::Follow => assert!(follows.insert(key), "followed twice"),
            Kind::Gift => {
                let gift = GIFTS
                    .iter()
                    .find(|g| Some(g.id) == e.gift_id.as_deref())
                    .unwrap();
                assert_eq!(
                    e.value_cents,
                    Some(u64::from(e.count.unwrap()) * gift.unit_cents)
                );
            }
            Kind::Message => {
                let text = e.text.as_deref().unwrap();
                assert!(MESSAGES.contains(&text));
                cjk += usize::from(text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            }
            _ => {}
        }
    }
    eprintln!("chat {chat_kinds:?}");
    assert!(chat_kinds[&Kind::Gift] > 10, "{chat_kinds:?}");
    assert!(chat_kinds[&Kind::Like] > chat_kinds[&Kind::Message]);
    assert!(chat_kinds[&Kind::Message] > 1_000);
    assert!(chat_kinds[&Kind::Follow] > 10);
    assert!(chat_kinds.contains_key(&Kind::Share));
    assert!(cjk > 100, "{cjk}");

    // The stream events: one start per stream with title and category, at time 0.
    let starts: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| kind(e) == (Family::Stream, Kind::Start))
        .collect();
    let distinct: BTreeSet<&str> = starts.iter().map(|e| e.event_id.as_ref()).collect();
    assert_eq!(distinct.len(), 20);
    assert!(
        starts
            .iter()
            .all(|e| e.ts == START && e.title.is_some() && e.category.is_some())
    );
}

#[test]
fn invalid_config_is_refused() {
    let mut cfg = config(1, 1, 1);
    cfg.duplicate_rate = 1.5;
    let err = Audience::new(cfg).err().unwrap();
    assert_eq!(
        err.to_string(),
        "audience config: `duplicate_rate` is 1.5, expected 0..=1"
    );
}
