//! The in-memory object store: per stream, per rendition folder, the
//! objects publishers uploaded, bounded in count and in bytes, and each
//! stream's lifecycle (waiting for media, live, ended).
//!
//! Bounds: a rendition keeps at most `max_segments_per_rendition` media
//! segments (the oldest go first, even when the publisher never deletes
//! them) and [`MAX_OTHER_OBJECTS`] playlists and init segments; a stream at
//! most [`MAX_RENDITIONS`] folders; all streams together `max_memory_bytes`,
//! enforced by evicting the oldest segments of the largest streams. Ended or
//! silent streams are removed by [`Store::sweep`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use livepulse_contract::playback::ObjectKind;
use metrics::{counter, gauge};
use thiserror::Error;

use super::keys::Identity;
use super::metrics::{EVICTIONS, STORE_BYTES, STREAMS};
use super::path::ObjectPath;
use super::playlist::Playlist;

/// Rendition folders per stream (the root counts as one).
pub(crate) const MAX_RENDITIONS: usize = 16;
/// Playlists and init segments per rendition folder.
pub(crate) const MAX_OTHER_OBJECTS: usize = 8;
/// ffmpeg does not wait for one upload's answer before starting the next,
/// so the origin can finish a session's last segment after its final
/// playlist. A segment within this time after a stream ended is such a
/// straggler; a later one begins a new session.
pub(crate) const STRAGGLER_GRACE: Duration = Duration::from_secs(1);

/// The store's bounds and timers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreLimits {
    /// Media segments kept per rendition.
    pub max_segments_per_rendition: usize,
    /// Bytes all objects may take.
    pub max_memory_bytes: usize,
    /// Silence after which a stream has ended.
    pub idle_timeout: Duration,
    /// How long an ended stream stays served.
    pub retention: Duration,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// Every media playlist carries `#EXT-X-ENDLIST`.
    EndList,
    /// Its key was revoked.
    Revoked,
    /// No upload within the idle timeout.
    Idle,
    /// The origin stopped.
    Shutdown,
}

impl EndReason {
    /// Label for logs and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::EndList => "endlist",
            Self::Revoked => "revoked",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
        }
    }
}

/// A stream lifecycle change, to be announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// The first media segment arrived.
    Started(Identity),
    /// A stream that had started ended.
    Ended(Identity, EndReason),
}

/// Why an upload cannot be stored (507).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum StoreError {
    /// A new folder beyond [`MAX_RENDITIONS`].
    #[error("the stream already has {MAX_RENDITIONS} rendition folders")]
    TooManyRenditions,
    /// A new playlist or init segment beyond [`MAX_OTHER_OBJECTS`].
    #[error("the rendition already has {MAX_OTHER_OBJECTS} playlists and init segments")]
    TooManyObjects,
}

/// How a stored object may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// A playlist that still changes.
    Live,
    /// A segment, or a playlist that will not change again.
    Final,
}

/// An object found for a viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Its bytes.
    pub body: Bytes,
    /// How it may be cached.
    pub freshness: Freshness,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// It replaced an object of the same name.
    pub replaced: bool,
    /// Lifecycle changes it caused.
    pub lifecycle: Vec<Lifecycle>,
}

/// What a playlist upload said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlaylistMeta {
    master: bool,
    ended: bool,
}

#[derive(Debug)]
struct Object {
    body: Bytes,
    playlist: Option<PlaylistMeta>,
}

#[derive(Debug, Default)]
struct Rendition {
    objects: HashMap<String, Object>,
    /// Media segments, oldest first, with their global upload sequence.
    segments: VecDeque<(u64, String)>,
    /// Playlists and init segments.
    others: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Objects arrived, no media segment yet.
    Waiting,
    Live,
    Ended(Instant),
}

#[derive(Debug)]
struct Stream {
    identity: Identity,
    renditions: HashMap<Option<String>, Rendition>,
    bytes: usize,
    state: State,
    last_upload: Instant,
}

impl Stream {
    fn new(identity: Identity, now: Instant) -> Self {
        Self {
            identity,
            renditions: HashMap::new(),
            bytes: 0,
            state: State::Waiting,
            last_upload: now,
        }
    }

    /// Every media playlist is final (and there is one).
    fn all_ended(&self) -> bool {
        let mut media = self
            .renditions
            .values()
            .flat_map(|r| r.objects.values())
            .filter_map(|o| o.playlist.filter(|p| !p.master))
            .peekable();
        media.peek().is_some() && media.all(|p| p.ended)
    }

    /// Removes the oldest segment of `folder`; returns its size.
    fn evict_oldest(&mut self, folder: &Option<String>) -> usize {
        let Some(rendition) = self.renditions.get_mut(folder) else {
            return 0;
        };
        let Some((_, name)) = rendition.segments.pop_front() else {
            return 0;
        };
        let size = rendition.objects.remove(&name).map_or(0, |o| o.body.len());
        self.bytes -= size;
        size
    }

    /// The folder holding the stream's oldest segment.
    fn oldest_segment_folder(&self) -> Option<Option<String>> {
        self.renditions
            .iter()
            .filter_map(|(folder, r)| r.segments.front().map(|(seq, _)| (*seq, folder)))
            .min_by_key(|(seq, _)| *seq)
            .map(|(_, folder)| folder.clone())
    }
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<Arc<str>, Stream>,
    bytes: usize,
    next_seq: u64,
}

impl Inner {
    fn publish_gauges(&self) {
        gauge!(STORE_BYTES).set(self.bytes as f64);
        gauge!(STREAMS).set(self.streams.len() as f64);
    }

    /// Evicts the oldest segments of the largest streams until the store
    /// fits `max` (or no segment is left to evict).
    fn fit(&mut self, max: usize) {
        while self.bytes > max {
            let victim = self
                .streams
                .values_mut()
                .filter_map(|s| s.oldest_segment_folder().map(|f| (s.bytes, f, s)))
                .max_by_key(|(bytes, _, _)| *bytes);
            let Some((_, folder, stream)) = victim else {
                return;
            };
            self.bytes -= stream.evict_oldest(&folder);
            counter!(EVICTIONS, "reason" => "memory").increment(1);
        }
    }
}

/// The objects of every stream.
#[derive(Debug)]
pub(crate) struct Store {
    limits: StoreLimits,
    inner: Mutex<Inner>,
}

impl Store {
    pub(crate) fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores an upload of `identity`'s stream (`playlist` for `.m3u8`,
    /// already checked). A media segment arriving [`STRAGGLER_GRACE`] or
    /// more after the stream ended begins a new session; the new
    /// publisher's objects replace the old ones by name, and the rest age
    /// out of the window or go with the stream.
    pub(crate) fn put(
        &self,
        identity: &Identity,
        path: &ObjectPath,
        body: Bytes,
        playlist: Option<&Playlist>,
        now: Instant,
    ) -> Result<Stored, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let stream = inner
            .streams
            .entry(identity.stream_id.clone())
            .or_insert_with(|| Stream::new(identity.clone(), now));
        let segment = path.ext.kind() == ObjectKind::Segment;
        if let State::Ended(at) = stream.state
            && segment
            && now.saturating_duration_since(at) >= STRAGGLER_GRACE
        {
            stream.state = State::Waiting;
        }
        if !stream.renditions.contains_key(&path.rendition)
            && stream.renditions.len() >= MAX_RENDITIONS
        {
            return Err(StoreError::TooManyRenditions);
        }
        let rendition = stream.renditions.entry(path.rendition.clone()).or_default();
        let previous = rendition.objects.get(&path.name).map(|o| o.body.len());
        if previous.is_none() && !segment && rendition.others >= MAX_OTHER_OBJECTS {
            return Err(StoreError::TooManyObjects);
        }
        stream.last_upload = now;
        let size = body.len();
        let object = Object {
            body,
            playlist: playlist.map(|p| PlaylistMeta {
                master: p.master,
                ended: p.ended,
            }),
        };
        rendition.objects.insert(path.name.clone(), object);
        match previous {
            Some(old) => {
                stream.bytes -= old;
                inner.bytes -= old;
            }
            None if segment => {
                rendition
                    .segments
                    .push_back((inner.next_seq, path.name.clone()));
                inner.next_seq += 1;
            }
            None => rendition.others += 1,
        }
        stream.bytes += size;
        inner.bytes += size;
        while rendition.segments.len() > self.limits.max_segments_per_rendition {
            let Some((_, name)) = rendition.segments.pop_front() else {
                break;
            };
            let freed = rendition.objects.remove(&name).map_or(0, |o| o.body.len());
            stream.bytes -= freed;
            inner.bytes -= freed;
            counter!(EVICTIONS, "reason" => "window").increment(1);
        }

        let mut lifecycle = Vec::new();
        if segment && stream.state == State::Waiting {
            stream.state = State::Live;
            lifecycle.push(Lifecycle::Started(stream.identity.clone()));
        }
        if playlist.is_some_and(|p| p.ended)
            && !matches!(stream.state, State::Ended(_))
            && stream.all_ended()
        {
            if stream.state == State::Live {
                lifecycle.push(Lifecycle::Ended(
                    stream.identity.clone(),
                    EndReason::EndList,
                ));
            }
            stream.state = State::Ended(now);
        }
        inner.fit(self.limits.max_memory_bytes);
        inner.publish_gauges();
        Ok(Stored {
            replaced: previous.is_some(),
            lifecycle,
        })
    }

    /// Deletes an object; `false` when there is none.
    pub(crate) fn delete(&self, stream_id: &str, path: &ObjectPath, now: Instant) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(stream) = inner.streams.get_mut(stream_id) else {
            return false;
        };
        stream.last_upload = now;
        let Some(rendition) = stream.renditions.get_mut(&path.rendition) else {
            return false;
        };
        let Some(object) = rendition.objects.remove(&path.name) else {
            return false;
        };
        if path.ext.kind() == ObjectKind::Segment {
            rendition.segments.retain(|(_, name)| *name != path.name);
        } else {
            rendition.others -= 1;
        }
        stream.bytes -= object.body.len();
        inner.bytes -= object.body.len();
        inner.publish_gauges();
        true
    }

    /// The object a viewer asks for.
    pub(crate) fn get(&self, stream_id: &str, path: &ObjectPath) -> Option<Found> {
        let inner = self.lock();
        let stream = inner.streams.get(stream_id)?;
        let object = stream
            .renditions
            .get(&path.rendition)?
            .objects
            .get(&path.name)?;
        let freshness = match object.playlist {
            Some(PlaylistMeta { ended: true, .. }) => Freshness::Final,
            Some(PlaylistMeta { master: true, .. }) if matches!(stream.state, State::Ended(_)) => {
                Freshness::Final
            }
            Some(_) => Freshness::Live,
            None => Freshness::Final,
        };
        Some(Found {
            body: object.body.clone(),
            freshness,
        })
    }

    /// Removes a stream at once (its key was revoked).
    pub(crate) fn remove(&self, stream_id: &str) -> Option<Lifecycle> {
        let mut inner = self.lock();
        let stream = inner.streams.remove(stream_id)?;
        inner.bytes -= stream.bytes;
        inner.publish_gauges();
        (stream.state == State::Live)
            .then_some(Lifecycle::Ended(stream.identity, EndReason::Revoked))
    }

    /// Ends streams silent for the idle timeout and removes streams ended
    /// longer than the retention.
    pub(crate) fn sweep(&self, now: Instant) -> Vec<Lifecycle> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut lifecycle = Vec::new();
        let mut freed = 0;
        inner.streams.retain(|_, stream| {
            match stream.state {
                State::Ended(at) if now.saturating_duration_since(at) >= self.limits.retention => {
                    freed += stream.bytes;
                    return false;
                }
                State::Ended(_) => {}
                state
                    if now.saturating_duration_since(stream.last_upload)
                        >= self.limits.idle_timeout =>
                {
                    if state == State::Live {
                        lifecycle.push(Lifecycle::Ended(stream.identity.clone(), EndReason::Idle));
                    }
                    stream.state = State::Ended(now);
                }
                _ => {}
            }
            true
        });
        inner.bytes -= freed;
        inner.publish_gauges();
        lifecycle
    }

    /// Ends every live stream (the origin is stopping).
    pub(crate) fn end_all(&self, now: Instant) -> Vec<Lifecycle> {
        let mut inner = self.lock();
        let mut lifecycle = Vec::new();
        for stream in inner.streams.values_mut() {
            if stream.state == State::Live {
                lifecycle.push(Lifecycle::Ended(
                    stream.identity.clone(),
                    EndReason::Shutdown,
                ));
            }
            if !matches!(stream.state, State::Ended(_)) {
                stream.state = State::Ended(now);
            }
        }
        lifecycle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::playlist;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits() -> StoreLimits {
        StoreLimits {
            max_segments_per_rendition: 3,
            max_memory_bytes: 1000,
            idle_timeout: 10 * SECOND,
            retention: 60 * SECOND,
        }
    }

    fn identity(stream_id: &str) -> Identity {
        Identity {
            stream_id: stream_id.into(),
            creator_id: "c".into(),
        }
    }

    fn path(raw: &str) -> ObjectPath {
        ObjectPath::parse(raw).unwrap()
    }

    fn put(store: &Store, stream: &str, raw: &str, size: usize, now: Instant) -> Stored {
        store
            .put(
                &identity(stream),
                &path(raw),
                Bytes::from(vec![b'x'; size]),
                None,
                now,
            )
            .unwrap()
    }

    fn put_playlist(store: &Store, stream: &str, raw: &str, text: &str, now: Instant) -> Stored {
        let p = path(raw);
        let parsed = playlist::parse(
            text.as_bytes(),
            "sk_0123456789abcdef",
            p.rendition.as_deref(),
        )
        .unwrap();
        store
            .put(
                &identity(stream),
                &p,
                parsed.body.clone(),
                Some(&parsed),
                now,
            )
            .unwrap()
    }

    fn has(store: &Store, stream: &str, raw: &str) -> bool {
        store.get(stream, &path(raw)).is_some()
    }

    fn bytes(store: &Store) -> usize {
        store.lock().bytes
    }

    const LIVE: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.ts\n";
    const ENDED: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn window_keeps_the_newest_segments_per_rendition() {
        let store = Store::new(limits());
        let now = Instant::now();
        put(&store, "s", "720p/init_0.mp4", 10, now);
        for n in 1..=5 {
            put(&store, "s", &format!("720p/s{n}.m4s"), 10, now);
        }
        put(&store, "s", "360p/s1.m4s", 10, now);
        let kept: Vec<bool> = (1..=5)
            .map(|n| has(&store, "s", &format!("720p/s{n}.m4s")))
            .collect();
        assert_eq!(kept, [false, false, true, true, true]);
        assert!(has(&store, "s", "720p/init_0.mp4") && has(&store, "s", "360p/s1.m4s"));
        assert_eq!(bytes(&store), 50);
        // Re-uploading a segment replaces it in place.
        let again = put(&store, "s", "720p/s5.m4s", 20, now);
        assert!(again.replaced);
        assert_eq!(bytes(&store), 60);
        assert!(store.delete("s", &path("720p/s4.m4s"), now));
        assert!(!store.delete("s", &path("720p/s4.m4s"), now));
        assert!(!store.delete("nope", &path("720p/s4.m4s"), now));
        assert_eq!(bytes(&store), 50);
    }

    #[test]
    fn memory_bound_evicts_the_oldest_segments_of_the_largest_stream() {
        let store = Store::new(StoreLimits {
            max_segments_per_rendition: 100,
            ..limits()
        });
        let now = Instant::now();
        put(&store, "small", "a.ts", 100, now);
        for n in 1..=4 {
            put(&store, "big", &format!("v/{n}.ts"), 200, now);
        }
        assert_eq!(bytes(&store), 900);
        put(&store, "big", "a/1.ts", 200, now);
        // 1100 > 1000: the big stream's oldest segment (v/1.ts) goes.
        assert!(!has(&store, "big", "v/1.ts"));
        assert!(has(&store, "big", "a/1.ts") && has(&store, "small", "a.ts"));
        assert_eq!(bytes(&store), 900);
    }

    #[test]
    fn lifecycle_start_endlist_and_a_new_session() {
        let store = Store::new(limits());
        let now = Instant::now();
        assert_eq!(put(&store, "s", "v/init.mp4", 5, now).lifecycle, []);
        let started = put(&store, "s", "v/s1.m4s", 5, now).lifecycle;
        assert_eq!(started, [Lifecycle::Started(identity("s"))]);
        assert_eq!(put(&store, "s", "a/s1.m4s", 5, now).lifecycle, []);
        put_playlist(
            &store,
            "s",
            "master.m3u8",
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv/index.m3u8\n",
            now,
        );
        put_playlist(&store, "s", "v/index.m3u8", LIVE, now);
        put_playlist(&store, "s", "a/index.m3u8", LIVE, now);
        let master = store.get("s", &path("master.m3u8")).unwrap();
        assert_eq!(master.freshness, Freshness::Live);
        // One rendition ended, the other not yet: still live.
        assert_eq!(
            put_playlist(&store, "s", "v/index.m3u8", ENDED, now).lifecycle,
            []
        );
        assert_eq!(
            store.get("s", &path("v/index.m3u8")).unwrap().freshness,
            Freshness::Final
        );
        let ended = put_playlist(&store, "s", "a/index.m3u8", ENDED, now).lifecycle;
        assert_eq!(ended, [Lifecycle::Ended(identity("s"), EndReason::EndList)]);
        assert_eq!(
            store.get("s", &path("master.m3u8")).unwrap().freshness,
            Freshness::Final
        );
        // A last segment finishing after the final playlist belongs to the
        // session that ended.
        let late = now + STRAGGLER_GRACE / 2;
        assert_eq!(put(&store, "s", "a/s2.m4s", 5, late).lifecycle, []);
        assert!(has(&store, "s", "a/s2.m4s"));
        // A segment well after the end: a new session over the old objects.
        let again = put(&store, "s", "v/s1.m4s", 7, now + STRAGGLER_GRACE).lifecycle;
        assert_eq!(again, [Lifecycle::Started(identity("s"))]);
        assert_eq!(
            store.get("s", &path("master.m3u8")).unwrap().freshness,
            Freshness::Live
        );
    }

    #[test]
    fn idle_streams_end_and_ended_streams_go_after_the_retention() {
        let store = Store::new(limits());
        let t0 = Instant::now();
        put(&store, "live", "s1.ts", 5, t0);
        put(&store, "waiting", "index.m3u8", 0, t0);
        assert_eq!(store.sweep(t0 + 9 * SECOND), []);
        let swept = store.sweep(t0 + 10 * SECOND);
        assert_eq!(swept, [Lifecycle::Ended(identity("live"), EndReason::Idle)]);
        assert!(has(&store, "live", "s1.ts"), "ended streams stay served");
        assert_eq!(store.sweep(t0 + 69 * SECOND), []);
        assert!(has(&store, "live", "s1.ts"));
        assert_eq!(store.sweep(t0 + 70 * SECOND), []);
        assert!(!has(&store, "live", "s1.ts"));
        assert_eq!(bytes(&store), 0);
    }

    #[test]
    fn revocation_and_shutdown_end_live_streams() {
        let store = Store::new(limits());
        let now = Instant::now();
        put(&store, "a", "s1.ts", 5, now);
        put(&store, "b", "s1.ts", 5, now);
        put(&store, "c", "init.mp4", 5, now);
        assert_eq!(
            store.remove("a"),
            Some(Lifecycle::Ended(identity("a"), EndReason::Revoked))
        );
        assert!(!has(&store, "a", "s1.ts"));
        assert_eq!(store.remove("c"), None);
        assert_eq!(
            store.end_all(now),
            [Lifecycle::Ended(identity("b"), EndReason::Shutdown)]
        );
        assert_eq!(store.end_all(now), []);
    }

    #[test]
    fn folder_and_object_counts_are_bounded() {
        let store = Store::new(limits());
        let now = Instant::now();
        for n in 0..MAX_RENDITIONS {
            put(&store, "s", &format!("r{n}/init.mp4"), 1, now);
        }
        let more = store.put(
            &identity("s"),
            &path("r99/init.mp4"),
            Bytes::new(),
            None,
            now,
        );
        assert_eq!(
            more.unwrap_err().to_string(),
            "the stream already has 16 rendition folders"
        );
        for n in 1..MAX_OTHER_OBJECTS {
            put(&store, "s", &format!("r0/init{n}.mp4"), 1, now);
        }
        let more = store.put(&identity("s"), &path("r0/x.mp4"), Bytes::new(), None, now);
        assert_eq!(
            more.unwrap_err().to_string(),
            "the rendition already has 8 playlists and init segments"
        );
        // Replacing one is fine, and segments do not count.
        put(&store, "s", "r0/init.mp4", 2, now);
        put(&store, "s", "r0/s1.m4s", 2, now);
    }
}
