//! The object store: per stream, per rendition folder, the objects
//! publishers uploaded, bounded in count and in bytes, and each stream's
//! lifecycle (waiting for media, live, ended).
//!
//! Bounds: a rendition keeps at most `max_segments_per_rendition` media
//! segments (the oldest go first, even when the publisher never deletes
//! them) and [`MAX_OTHER_OBJECTS`] playlists and init segments; a stream at
//! most [`MAX_RENDITIONS`] folders; all streams together `max_memory_bytes`,
//! enforced by evicting the oldest segments of the largest streams. With a
//! [`Spill`], a segment the memory bound would evict while a playlist still
//! lists it goes to disk instead (while the spill has room) and is served
//! from there until it leaves the store. Ended or silent streams are
//! removed by [`Store::sweep`].
//!
//! A media playlist is served up to its last segment that is stored: a
//! playlist can arrive before the segment it adds (ffmpeg does not wait
//! for one upload's answer before the next), and a player must never be
//! sent a name that answers 404. It is whole again the moment the segment
//! lands.
//!
//! The store also joins what a segment's health needs: its measured media
//! (at upload) and its `#EXTINF` (from the playlist listing it), whichever
//! comes first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use livepulse_contract::playback::ObjectKind;
use metrics::{counter, gauge};
use thiserror::Error;
use tracing::warn;

use super::health::fmp4::Init;
use super::health::{Measured, SegmentHealth};
use super::keys::Identity;
use super::metrics::{EVICTIONS, SPILLS, STORE_BYTES, STREAMS};
use super::path::ObjectPath;
use super::playlist::Playlist;
use super::spill::{Spill, SpillFile};

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
    /// Bytes all objects may take in memory.
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

/// What an upload is, as far as the store cares beyond its path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Content<'a> {
    /// A checked playlist.
    Playlist(&'a Playlist),
    /// An fMP4 init segment, with what its folder's segments need from it
    /// when it parsed.
    Init(Option<&'a Arc<Init>>),
    /// A media segment, with its measured media when it is to be reported
    /// once a playlist gives its duration.
    Segment(Option<Measured>),
}

/// How a stored object may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// A playlist that still changes.
    Live,
    /// A segment, or a playlist that will not change again.
    Final,
}

/// Where a found object's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum FoundBody {
    /// In memory.
    Memory(Bytes),
    /// In the spill directory; the file stays while this is held.
    Disk(Arc<SpillFile>),
}

/// An object found for a viewer.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Its bytes.
    pub body: FoundBody,
    /// How it may be cached.
    pub freshness: Freshness,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// It replaced an object of the same name.
    pub replaced: bool,
    /// Lifecycle changes it caused.
    pub lifecycle: Vec<Lifecycle>,
    /// Segments whose body and duration are now both known.
    pub health: Vec<SegmentHealth>,
}

/// A segment a stored media playlist lists.
#[derive(Debug)]
struct Entry {
    /// The object, unless the URI points elsewhere.
    path: Option<ObjectPath>,
    duration_ms: u64,
    /// Where its entry starts and ends in the playlist's body.
    start: usize,
    end: usize,
}

impl Entry {
    fn is(&self, folder: &Option<String>, name: &str) -> bool {
        self.path
            .as_ref()
            .is_some_and(|p| p.rendition == *folder && p.name == name)
    }
}

/// What a playlist upload said about itself.
#[derive(Debug)]
struct PlaylistMeta {
    master: bool,
    ended: bool,
    entries: Vec<Entry>,
}

#[derive(Debug)]
enum Data {
    Memory(Bytes),
    /// Being written to the spill directory (the write with this ticket);
    /// served from memory meanwhile, no longer counted in it.
    Spilling(Bytes, u64),
    Disk(Arc<SpillFile>),
}

impl Data {
    /// Bytes counted against the memory bound.
    fn memory(&self) -> usize {
        match self {
            Self::Memory(bytes) => bytes.len(),
            Self::Spilling(..) | Self::Disk(_) => 0,
        }
    }
}

#[derive(Debug)]
struct Object {
    data: Data,
    playlist: Option<PlaylistMeta>,
    /// A segment's measured media, until its health is reported.
    unreported: Option<Measured>,
}

#[derive(Debug, Default)]
struct Rendition {
    objects: HashMap<String, Object>,
    /// Media segments, oldest first, with their global upload sequence.
    segments: VecDeque<(u64, String)>,
    /// Playlists and init segments.
    others: usize,
    /// The latest init segment, when it parsed.
    init: Option<Arc<Init>>,
}

impl Rendition {
    /// The duration a media playlist of this folder gives `name`, ms.
    fn listed_duration(&self, folder: &Option<String>, name: &str) -> Option<u64> {
        self.objects
            .values()
            .filter_map(|o| o.playlist.as_ref().filter(|p| !p.master))
            .flat_map(|p| &p.entries)
            .find(|e| e.is(folder, name))
            .map(|e| e.duration_ms)
    }

    /// Removes a segment; returns its bytes in memory.
    fn remove_segment(&mut self, name: &str) -> usize {
        self.segments.retain(|(_, n)| n != name);
        self.objects.remove(name).map_or(0, |o| o.data.memory())
    }
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
    /// Bytes of its objects in memory.
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

    fn media_playlists(&self) -> impl Iterator<Item = &PlaylistMeta> {
        self.renditions
            .values()
            .flat_map(|r| r.objects.values())
            .filter_map(|o| o.playlist.as_ref().filter(|p| !p.master))
    }

    /// Every media playlist is final (and there is one).
    fn all_ended(&self) -> bool {
        let mut media = self.media_playlists().peekable();
        media.peek().is_some() && media.all(|p| p.ended)
    }

    /// Whether a media playlist lists `folder/name`.
    fn lists(&self, folder: &Option<String>, name: &str) -> bool {
        self.media_playlists()
            .flat_map(|p| &p.entries)
            .any(|e| e.is(folder, name))
    }

    /// Whether the object an entry names is stored (or is not ours).
    fn holds(&self, entry: &Entry) -> bool {
        entry.path.as_ref().is_none_or(|p| {
            self.renditions
                .get(&p.rendition)
                .is_some_and(|r| r.objects.contains_key(&p.name))
        })
    }

    /// Where a media playlist must be cut so that it lists no segment yet
    /// to arrive: after the last stored entry before the first missing one
    /// that follows a stored one. Missing entries before any stored one
    /// are gone already (evicted or deleted), not yet to come. `None`: it
    /// is whole.
    fn cut(&self, entries: &[Entry]) -> Option<usize> {
        let mut stored_until = None;
        for entry in entries {
            if self.holds(entry) {
                stored_until = Some(entry.end);
            } else if stored_until.is_some() {
                return stored_until;
            }
        }
        match stored_until {
            Some(_) => None,
            None => entries.first().map(|e| e.start),
        }
    }

    /// The stream's oldest segment in memory: its folder and name.
    fn oldest_in_memory(&self) -> Option<(Option<String>, String)> {
        self.renditions
            .iter()
            .filter_map(|(folder, r)| {
                r.segments
                    .iter()
                    .find(|(_, name)| {
                        r.objects
                            .get(name)
                            .is_some_and(|o| matches!(o.data, Data::Memory(_)))
                    })
                    .map(|(seq, name)| (*seq, folder, name))
            })
            .min_by_key(|(seq, ..)| *seq)
            .map(|(_, folder, name)| (folder.clone(), name.clone()))
    }

    /// The stream's oldest segment on disk: its upload sequence, folder
    /// and name.
    fn oldest_on_disk(&self) -> Option<(u64, Option<String>, String)> {
        self.renditions
            .iter()
            .filter_map(|(folder, r)| {
                r.segments
                    .iter()
                    .find(|(_, name)| {
                        r.objects
                            .get(name)
                            .is_some_and(|o| matches!(o.data, Data::Disk(_)))
                    })
                    .map(|(seq, name)| (*seq, folder.clone(), name.clone()))
            })
            .min_by_key(|(seq, ..)| *seq)
    }

    /// Removes the segments on disk that no media playlist lists any more.
    fn drop_unlisted_spills(&mut self) {
        let listed: HashSet<(Option<String>, String)> = self
            .media_playlists()
            .flat_map(|p| &p.entries)
            .filter_map(|e| e.path.as_ref())
            .map(|p| (p.rendition.clone(), p.name.clone()))
            .collect();
        for (folder, rendition) in &mut self.renditions {
            let unlisted: Vec<String> = rendition
                .objects
                .iter()
                .filter(|(name, o)| {
                    matches!(o.data, Data::Spilling(..) | Data::Disk(_))
                        && !listed.contains(&(folder.clone(), (*name).clone()))
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in unlisted {
                rendition.remove_segment(&name);
            }
        }
    }
}

/// A segment to write to the spill directory.
#[derive(Debug)]
struct SpillJob {
    stream_id: Arc<str>,
    folder: Option<String>,
    name: String,
    bytes: Bytes,
    ticket: u64,
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<Arc<str>, Stream>,
    /// Bytes in memory.
    bytes: usize,
    next_seq: u64,
}

impl Inner {
    fn publish_gauges(&self) {
        gauge!(STORE_BYTES).set(self.bytes as f64);
        gauge!(STREAMS).set(self.streams.len() as f64);
    }

    /// Frees memory until the store fits `max` (or no segment is left in
    /// memory): the oldest segments of the largest streams go to `spill`
    /// when a playlist lists them, otherwise they are evicted. A full
    /// spill makes room by dropping its oldest segments, the first to
    /// leave any playlist. Returns the writes to make.
    fn fit(&mut self, max: usize, spill: Option<&Spill>) -> Vec<SpillJob> {
        let mut jobs = Vec::new();
        while self.bytes > max {
            let victim = self
                .streams
                .iter()
                .filter_map(|(id, s)| s.oldest_in_memory().map(|v| (s.bytes, id, v)))
                .max_by_key(|(bytes, ..)| *bytes)
                .map(|(_, id, (folder, name))| (id.clone(), folder, name));
            let Some((stream_id, folder, name)) = victim else {
                break;
            };
            let Some(stream) = self.streams.get(&stream_id) else {
                break;
            };
            let listed = stream.lists(&folder, &name);
            let size = stream
                .renditions
                .get(&folder)
                .and_then(|r| r.objects.get(&name))
                .map_or(0, |o| o.data.memory());
            let spilled = listed && spill.is_some_and(|spill| self.make_room(spill, size));
            let Some(stream) = self.streams.get_mut(&stream_id) else {
                break;
            };
            let Some(rendition) = stream.renditions.get_mut(&folder) else {
                break;
            };
            let object = rendition.objects.get_mut(&name);
            let bytes = match object.as_deref() {
                Some(Object {
                    data: Data::Memory(bytes),
                    ..
                }) if spilled => Some(bytes.clone()),
                _ => None,
            };
            match (object, bytes) {
                (Some(object), Some(bytes)) => {
                    let ticket = self.next_seq;
                    self.next_seq += 1;
                    object.data = Data::Spilling(bytes.clone(), ticket);
                    jobs.push(SpillJob {
                        stream_id,
                        folder,
                        name,
                        bytes,
                        ticket,
                    });
                }
                _ => {
                    if spilled && let Some(spill) = spill {
                        spill.unreserve(size);
                    }
                    rendition.remove_segment(&name);
                    counter!(EVICTIONS, "reason" => "memory").increment(1);
                }
            }
            stream.bytes -= size;
            self.bytes -= size;
        }
        jobs
    }

    /// Claims `size` bytes of `spill`, dropping its oldest segments until
    /// they fit; `false` when they cannot.
    fn make_room(&mut self, spill: &Spill, size: usize) -> bool {
        loop {
            if spill.reserve(size) {
                return true;
            }
            let oldest = self
                .streams
                .iter()
                .filter_map(|(id, s)| s.oldest_on_disk().map(|(seq, f, n)| (seq, id, f, n)))
                .min_by_key(|(seq, ..)| *seq)
                .map(|(_, id, folder, name)| (id.clone(), folder, name));
            let Some((stream_id, folder, name)) = oldest else {
                return false;
            };
            if let Some(rendition) = self
                .streams
                .get_mut(&stream_id)
                .and_then(|s| s.renditions.get_mut(&folder))
            {
                rendition.remove_segment(&name);
                counter!(EVICTIONS, "reason" => "spill").increment(1);
            }
        }
    }
}

/// The objects of every stream.
#[derive(Debug)]
pub(crate) struct Store {
    limits: StoreLimits,
    spill: Option<Spill>,
    inner: Mutex<Inner>,
}

impl Store {
    /// A store within `limits`, spilling to `spill` when there is one.
    pub(crate) fn new(limits: StoreLimits, spill: Option<Spill>) -> Self {
        Self {
            limits,
            spill,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores an upload of `identity`'s stream. A media segment arriving
    /// [`STRAGGLER_GRACE`] or more after the stream ended begins a new
    /// session; the new publisher's objects replace the old ones by name,
    /// and the rest age out of the window or go with the stream. Segments
    /// the memory bound moves to disk are written after the store is
    /// unlocked, served from memory until they are.
    pub(crate) fn put(
        &self,
        identity: &Identity,
        path: &ObjectPath,
        body: Bytes,
        content: Content<'_>,
        now: Instant,
    ) -> Result<Stored, StoreError> {
        let (stored, jobs) = self.put_locked(identity, path, body, content, now)?;
        for job in jobs {
            self.spill_one(job);
        }
        Ok(stored)
    }

    fn put_locked(
        &self,
        identity: &Identity,
        path: &ObjectPath,
        body: Bytes,
        content: Content<'_>,
        now: Instant,
    ) -> Result<(Stored, Vec<SpillJob>), StoreError> {
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
        let existed = rendition.objects.contains_key(&path.name);
        if !existed && !segment && rendition.others >= MAX_OTHER_OBJECTS {
            return Err(StoreError::TooManyObjects);
        }
        stream.last_upload = now;
        let size = body.len();
        let (playlist, measured) = match content {
            Content::Playlist(p) => (Some(meta(p, path.rendition.as_deref())), None),
            Content::Init(init) => {
                rendition.init = init.cloned();
                (None, None)
            }
            Content::Segment(measured) => (None, measured),
        };
        let media_playlist = playlist.as_ref().is_some_and(|p| !p.master);
        let ended_playlist = playlist.as_ref().is_some_and(|p| p.ended);
        let object = Object {
            data: Data::Memory(body),
            playlist,
            unreported: measured,
        };
        if let Some(old) = rendition.objects.insert(path.name.clone(), object) {
            stream.bytes -= old.data.memory();
            inner.bytes -= old.data.memory();
        } else if segment {
            rendition
                .segments
                .push_back((inner.next_seq, path.name.clone()));
            inner.next_seq += 1;
        } else {
            rendition.others += 1;
        }
        stream.bytes += size;
        inner.bytes += size;
        while rendition.segments.len() > self.limits.max_segments_per_rendition {
            let Some((_, name)) = rendition.segments.pop_front() else {
                break;
            };
            let freed = rendition
                .objects
                .remove(&name)
                .map_or(0, |o| o.data.memory());
            stream.bytes -= freed;
            inner.bytes -= freed;
            counter!(EVICTIONS, "reason" => "window").increment(1);
        }
        let health = report(rendition, path);
        if media_playlist {
            stream.drop_unlisted_spills();
        }

        let mut lifecycle = Vec::new();
        if segment && stream.state == State::Waiting {
            stream.state = State::Live;
            lifecycle.push(Lifecycle::Started(stream.identity.clone()));
        }
        if ended_playlist && !matches!(stream.state, State::Ended(_)) && stream.all_ended() {
            if stream.state == State::Live {
                lifecycle.push(Lifecycle::Ended(
                    stream.identity.clone(),
                    EndReason::EndList,
                ));
            }
            stream.state = State::Ended(now);
        }
        let jobs = inner.fit(self.limits.max_memory_bytes, self.spill.as_ref());
        inner.publish_gauges();
        let stored = Stored {
            replaced: existed,
            lifecycle,
            health,
        };
        Ok((stored, jobs))
    }

    /// Writes a segment to the spill directory and serves it from there,
    /// unless it left the store meanwhile; a failed write evicts it.
    fn spill_one(&self, job: SpillJob) {
        let Some(spill) = &self.spill else {
            return;
        };
        let written = spill.write(&job.bytes);
        let mut inner = self.lock();
        let rendition = inner
            .streams
            .get_mut(&job.stream_id)
            .and_then(|s| s.renditions.get_mut(&job.folder));
        let Some(rendition) = rendition else {
            return;
        };
        let pending = rendition
            .objects
            .get(&job.name)
            .is_some_and(|o| matches!(o.data, Data::Spilling(_, t) if t == job.ticket));
        if !pending {
            // Replaced or gone: dropping the file removes it.
            return;
        }
        match written {
            Ok(file) => {
                if let Some(object) = rendition.objects.get_mut(&job.name) {
                    object.data = Data::Disk(Arc::new(file));
                }
                counter!(SPILLS, "result" => "ok").increment(1);
            }
            Err(err) => {
                rendition.remove_segment(&job.name);
                counter!(SPILLS, "result" => "error").increment(1);
                counter!(EVICTIONS, "reason" => "memory").increment(1);
                warn!(stream_id = %job.stream_id, segment = %job.name, error = %err,
                    "cannot spill a segment to disk: evicted");
            }
        }
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
        stream.bytes -= object.data.memory();
        inner.bytes -= object.data.memory();
        inner.publish_gauges();
        true
    }

    /// The object a viewer asks for; a media playlist cut before the
    /// segments still to arrive.
    pub(crate) fn get(&self, stream_id: &str, path: &ObjectPath) -> Option<Found> {
        let inner = self.lock();
        let stream = inner.streams.get(stream_id)?;
        let object = stream
            .renditions
            .get(&path.rendition)?
            .objects
            .get(&path.name)?;
        let cut = object
            .playlist
            .as_ref()
            .filter(|meta| !meta.master)
            .and_then(|meta| stream.cut(&meta.entries));
        let body = match (&object.data, cut) {
            (Data::Memory(bytes) | Data::Spilling(bytes, _), Some(cut)) => {
                FoundBody::Memory(bytes.slice(..cut.min(bytes.len())))
            }
            (Data::Memory(bytes) | Data::Spilling(bytes, _), None) => {
                FoundBody::Memory(bytes.clone())
            }
            (Data::Disk(file), _) => FoundBody::Disk(file.clone()),
        };
        let freshness = match &object.playlist {
            // A cut playlist grows again when its segment lands.
            Some(_) if cut.is_some() => Freshness::Live,
            Some(PlaylistMeta { ended: true, .. }) => Freshness::Final,
            Some(PlaylistMeta { master: true, .. }) if matches!(stream.state, State::Ended(_)) => {
                Freshness::Final
            }
            Some(_) => Freshness::Live,
            None => Freshness::Final,
        };
        Some(Found { body, freshness })
    }

    /// What the segments in `folder` of a stream need from its init
    /// segment, when one parsed.
    pub(crate) fn init(&self, stream_id: &str, folder: &Option<String>) -> Option<Arc<Init>> {
        let inner = self.lock();
        inner
            .streams
            .get(stream_id)?
            .renditions
            .get(folder)?
            .init
            .clone()
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

    /// Removes every stream and what they spilled (the origin stopped).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.streams.clear();
        inner.bytes = 0;
        inner.publish_gauges();
    }
}

/// How a checked playlist uploaded to `folder` is kept.
fn meta(playlist: &Playlist, folder: Option<&str>) -> PlaylistMeta {
    let entries = playlist
        .segments
        .iter()
        .map(|listed| Entry {
            path: ObjectPath::resolve(folder, &listed.uri),
            duration_ms: listed.duration_ms,
            start: listed.start,
            end: listed.end,
        })
        .collect();
    PlaylistMeta {
        master: playlist.master,
        ended: playlist.ended,
        entries,
    }
}

/// The health of the segments of `rendition` whose body and duration the
/// upload of `path` (a segment or a media playlist there) completed.
fn report(rendition: &mut Rendition, path: &ObjectPath) -> Vec<SegmentHealth> {
    let folder = &path.rendition;
    let label = || folder.as_deref().map(Arc::from);
    // The segment, or the same-folder segments the playlist lists.
    let durations: Vec<(String, u64)> = match rendition.objects.get(&path.name) {
        Some(Object {
            unreported: Some(_),
            ..
        }) => rendition
            .listed_duration(folder, &path.name)
            .map(|ms| (path.name.clone(), ms))
            .into_iter()
            .collect(),
        Some(Object {
            playlist: Some(meta),
            ..
        }) if !meta.master => meta
            .entries
            .iter()
            .filter_map(|e| {
                let p = e.path.as_ref().filter(|p| p.rendition == *folder)?;
                Some((p.name.clone(), e.duration_ms))
            })
            .collect(),
        _ => Vec::new(),
    };
    durations
        .into_iter()
        .filter_map(|(name, duration_ms)| {
            let measured = rendition.objects.get_mut(&name)?.unreported.take()?;
            SegmentHealth::of(label(), duration_ms, measured)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::health::VideoCount;
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

    /// Stores a segment (unmeasured) or an init segment (unparsed).
    fn put(store: &Store, stream: &str, raw: &str, size: usize, now: Instant) -> Stored {
        let p = path(raw);
        let content = match p.ext.kind() {
            ObjectKind::Segment => Content::Segment(None),
            _ => Content::Init(None),
        };
        store
            .put(
                &identity(stream),
                &p,
                Bytes::from(vec![b'x'; size]),
                content,
                now,
            )
            .unwrap()
    }

    /// Stores a segment of `size` bytes measured with `frames` frames.
    fn put_measured(store: &Store, raw: &str, size: usize, frames: u32) -> Stored {
        let measured = Measured {
            bytes: size as u64,
            video: Some(VideoCount {
                frames,
                keyframes: 1,
            }),
        };
        store
            .put(
                &identity("s"),
                &path(raw),
                Bytes::from(vec![b'x'; size]),
                Content::Segment(Some(measured)),
                Instant::now(),
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
                Content::Playlist(&parsed),
                now,
            )
            .unwrap()
    }

    fn has(store: &Store, stream: &str, raw: &str) -> bool {
        store.get(stream, &path(raw)).is_some()
    }

    /// The body of an object in memory, as text.
    fn served(store: &Store, raw: &str) -> String {
        match store.get("s", &path(raw)).unwrap().body {
            FoundBody::Memory(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
            FoundBody::Disk(_) => panic!("{raw} is on disk"),
        }
    }

    fn bytes(store: &Store) -> usize {
        store.lock().bytes
    }

    const LIVE: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.m4s\n";
    const ENDED: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.m4s\n#EXT-X-ENDLIST\n";

    #[test]
    fn window_keeps_the_newest_segments_per_rendition() {
        let store = Store::new(limits(), None);
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
        let store = Store::new(
            StoreLimits {
                max_segments_per_rendition: 100,
                ..limits()
            },
            None,
        );
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
        let store = Store::new(limits(), None);
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
        let store = Store::new(limits(), None);
        let t0 = Instant::now();
        put(&store, "live", "s1.ts", 5, t0);
        put(&store, "waiting", "init.mp4", 0, t0);
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
        let store = Store::new(limits(), None);
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
        let store = Store::new(limits(), None);
        let now = Instant::now();
        for n in 0..MAX_RENDITIONS {
            put(&store, "s", &format!("r{n}/init.mp4"), 1, now);
        }
        let more = store.put(
            &identity("s"),
            &path("r99/init.mp4"),
            Bytes::new(),
            Content::Init(None),
            now,
        );
        assert_eq!(
            more.unwrap_err().to_string(),
            "the stream already has 16 rendition folders"
        );
        for n in 1..MAX_OTHER_OBJECTS {
            put(&store, "s", &format!("r0/init{n}.mp4"), 1, now);
        }
        let more = store.put(
            &identity("s"),
            &path("r0/x.mp4"),
            Bytes::new(),
            Content::Init(None),
            now,
        );
        assert_eq!(
            more.unwrap_err().to_string(),
            "the rendition already has 8 playlists and init segments"
        );
        // Replacing one is fine, and segments do not count.
        put(&store, "s", "r0/init.mp4", 2, now);
        put(&store, "s", "r0/s1.m4s", 2, now);
    }

    const HEAD: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n";
    const THREE: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.ts\n#EXTINF:1,\ns2.ts\n#EXTINF:1,\ns3.ts\n";

    #[test]
    fn a_playlist_lists_only_segments_that_are_stored() {
        let store = Store::new(limits(), None);
        let now = Instant::now();
        // The playlist came first: nothing it lists can be fetched yet.
        put_playlist(&store, "s", "v/index.m3u8", THREE, now);
        assert_eq!(served(&store, "v/index.m3u8"), HEAD);
        put(&store, "s", "v/s1.ts", 5, now);
        let one = format!("{HEAD}#EXTINF:1,\ns1.ts\n");
        assert_eq!(served(&store, "v/index.m3u8"), one);
        // s3 landed before s2: still cut before s2.
        put(&store, "s", "v/s3.ts", 5, now);
        assert_eq!(served(&store, "v/index.m3u8"), one);
        put(&store, "s", "v/s2.ts", 5, now);
        assert_eq!(served(&store, "v/index.m3u8"), THREE);

        // The final playlist is live while cut, final once whole.
        let ended = format!("{THREE}#EXTINF:1,\ns4.ts\n#EXT-X-ENDLIST\n");
        put_playlist(&store, "s", "v/index.m3u8", &ended, now);
        let found = store.get("s", &path("v/index.m3u8")).unwrap();
        assert_eq!(found.freshness, Freshness::Live);
        assert_eq!(served(&store, "v/index.m3u8"), THREE);
        put(&store, "s", "v/s4.ts", 5, now);
        let found = store.get("s", &path("v/index.m3u8")).unwrap();
        assert_eq!(found.freshness, Freshness::Final);
        assert_eq!(served(&store, "v/index.m3u8"), ended);
        // s1 fell out of the window (3 segments): gone, not to come, so
        // the playlist stays whole.
        assert!(!has(&store, "s", "v/s1.ts"));
        assert_eq!(served(&store, "v/index.m3u8"), ended);
    }

    #[test]
    fn health_is_reported_once_body_and_duration_are_known() {
        let store = Store::new(limits(), None);
        let now = Instant::now();
        let listing = |names: &[(&str, f64)]| {
            let mut text = HEAD.to_owned();
            for (name, seconds) in names {
                text.push_str(&format!("#EXTINF:{seconds},\n{name}\n"));
            }
            text
        };
        // Segment first: reported with the playlist listing it.
        assert_eq!(put_measured(&store, "v/s1.ts", 1000, 30).health, []);
        let stored = put_playlist(
            &store,
            "s",
            "v/index.m3u8",
            &listing(&[("s1.ts", 1.0)]),
            now,
        );
        assert_eq!(
            stored.health,
            [SegmentHealth {
                rendition: Some("v".into()),
                segment_ms: 1000,
                bitrate_kbps: 8,
                frame_rate: Some(30.0),
                keyframe_interval_ms: Some(1000),
            }]
        );
        // Playlist first: reported with the segment; never twice.
        let next = listing(&[("s1.ts", 1.0), ("s2.ts", 0.5)]);
        assert_eq!(
            put_playlist(&store, "s", "v/index.m3u8", &next, now).health,
            []
        );
        let health = put_measured(&store, "v/s2.ts", 1000, 15).health;
        let shape: Vec<_> = health
            .iter()
            .map(|h| (h.segment_ms, h.bitrate_kbps))
            .collect();
        assert_eq!(shape, [(500, 16)]);
        assert_eq!(
            put_playlist(&store, "s", "v/index.m3u8", &next, now).health,
            []
        );
        // Another folder's playlist does not give durations here, and an
        // unmeasured segment has no health.
        put_measured(&store, "a/s1.ts", 1000, 0);
        assert_eq!(
            put_playlist(
                &store,
                "s",
                "index.m3u8",
                &listing(&[("a/s1.ts", 1.0)]),
                now
            )
            .health,
            []
        );
        put(&store, "s", "v/s3.ts", 10, now);
        let three = listing(&[("s2.ts", 0.5), ("s3.ts", 1.0)]);
        assert_eq!(
            put_playlist(&store, "s", "v/index.m3u8", &three, now).health,
            []
        );
    }

    #[test]
    fn listed_segments_beyond_memory_are_served_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), 700).unwrap();
        let cfg = StoreLimits {
            max_segments_per_rendition: 100,
            ..limits()
        };
        let store = Store::new(cfg, Some(spill));
        let now = Instant::now();
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        let on_disk = |raw: &str| match store.get("s", &path(raw)).map(|f| f.body) {
            Some(FoundBody::Disk(file)) => Some(std::fs::read(file.path()).unwrap()),
            _ => None,
        };
        put(&store, "s", "v/old.ts", 300, now);
        let five = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.ts\n#EXTINF:1,\ns2.ts\n#EXTINF:1,\ns3.ts\n#EXTINF:1,\ns4.ts\n#EXTINF:1,\ns5.ts\n";
        put_playlist(&store, "s", "v/index.m3u8", five, now);
        put(&store, "s", "v/s1.ts", 300, now);
        put(&store, "s", "v/s2.ts", 300, now);
        // Beyond 1000 bytes: the segment no playlist lists is evicted.
        assert!(!has(&store, "s", "v/old.ts"));
        assert_eq!(files(), 0);
        // Then the oldest listed ones go to disk, while it has room.
        put(&store, "s", "v/s3.ts", 300, now);
        assert_eq!(on_disk("v/s1.ts"), Some(vec![b'x'; 300]));
        assert_eq!(files(), 1);
        put(&store, "s", "v/s4.ts", 300, now);
        assert!(on_disk("v/s2.ts").is_some());
        assert_eq!(files(), 2);
        assert!(bytes(&store) <= 1000);
        // The spill holds two: the oldest on disk makes room.
        put(&store, "s", "v/s5.ts", 300, now);
        assert!(!has(&store, "s", "v/s1.ts"));
        assert!(on_disk("v/s3.ts").is_some());
        assert_eq!(files(), 2);
        assert_eq!(
            served(&store, "v/index.m3u8"),
            five,
            "s1 is gone, not to come"
        );
        // Dropped from the playlist: removed from disk.
        let later = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns2.ts\n#EXTINF:1,\ns4.ts\n#EXTINF:1,\ns5.ts\n";
        put_playlist(&store, "s", "v/index.m3u8", later, now);
        assert!(!has(&store, "s", "v/s3.ts"));
        assert_eq!(files(), 1);
        // A viewer holding the file keeps it readable until done.
        let held = store.get("s", &path("v/s2.ts")).unwrap();
        store.remove("s");
        assert_eq!(files(), 1);
        drop(held);
        assert_eq!(files(), 0);
    }
}
