//! One RTMP publish: FLV messages in, segments and playlists into the
//! store through the origin's one publishing entry point.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use metrics::counter;
use rml_rtmp::sessions::StreamMetadata;
use thiserror::Error;

use super::Claim;
use super::flv::{self, AacConfig, Audio, AvcConfig, FlvError, Video};
use super::segmenter::{
    self, Frame, MASTER_PLAYLIST, MEDIA_PLAYLIST, RENDITION, Segment, SegmentError, Segmenter,
    SegmenterConfig, Track, Variant,
};
use super::ts::Tracks;
use crate::origin::health::{Measured, SegmentHealth, VideoCount};
use crate::origin::keys::Identity;
use crate::origin::metrics::RTMP_SEGMENTS;
use crate::origin::path::{Extension, ObjectPath};
use crate::origin::playlist::{self, PlaylistError};
use crate::origin::service::{PublishError, Shared};
use crate::origin::store::{Content, StoreError};

/// Most segments a media playlist lists: a few target durations, as
/// players start that far behind the live edge.
const PLAYLIST_WINDOW: usize = 6;

/// Why a publish cannot go on.
#[derive(Debug, Error)]
pub(super) enum MediaError {
    /// A message that cannot be remuxed.
    #[error(transparent)]
    Flv(#[from] FlvError),
    /// The stream cannot be segmented.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The key was revoked mid-stream.
    #[error("the stream key was revoked")]
    Revoked,
    /// The store refused an object.
    #[error("cannot store: {0}")]
    Store(StoreError),
    /// A playlist the segmenter wrote does not pass the origin's checks.
    #[error("remuxed playlist refused: {0}")]
    Playlist(PlaylistError),
}

impl From<PublishError> for MediaError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Revoked => Self::Revoked,
            PublishError::Store(err) => Self::Store(err),
        }
    }
}

/// A stream being published over RTMP.
pub(super) struct Publisher {
    shared: Arc<Shared>,
    /// Kept to notice a revocation; never logged.
    key: String,
    identity: Identity,
    _claim: Claim,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    resolution: Option<(u32, u32)>,
    segmenter: Segmenter,
    /// The master playlist as last stored.
    master: String,
}

impl Publisher {
    pub(super) fn new(shared: Arc<Shared>, key: String, identity: Identity, claim: Claim) -> Self {
        let cfg = &shared.cfg;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let segmenter = Segmenter::new(SegmenterConfig {
            target_ms: cfg.rtmp_segment_ms,
            // Below the store's window, so listed segments are still there
            // when a player that read the playlist asks for them.
            window: (cfg.max_segments_per_rendition - 1).clamp(1, PLAYLIST_WINDOW),
            max_bytes: cfg.max_segment_bytes,
            prefix: format!("s{started}_"),
        });
        Self {
            shared,
            key,
            identity,
            _claim: claim,
            avc: None,
            aac: None,
            resolution: None,
            segmenter,
            master: String::new(),
        }
    }

    /// The stream this publishes.
    pub(super) fn stream_id(&self) -> &str {
        &self.identity.stream_id
    }

    /// The encoder's `onMetaData`: the resolution for the master playlist.
    pub(super) fn metadata(&mut self, metadata: &StreamMetadata) {
        if let (Some(width), Some(height)) = (metadata.video_width, metadata.video_height) {
            self.resolution = Some((width, height));
        }
    }

    /// A video message at `timestamp_ms` (decode time).
    pub(super) fn video(&mut self, data: Bytes, timestamp_ms: u32) -> Result<(), MediaError> {
        match flv::parse_video(data)? {
            Video::Config(config) => self.avc = Some(config),
            Video::Frame {
                keyframe,
                composition_ms,
                data,
            } => {
                // Without SPS and PPS nothing could decode it.
                let Some(avc) = &self.avc else {
                    return Ok(());
                };
                let access_unit = avc.annex_b(&data)?;
                let dts_ms = u64::from(timestamp_ms);
                self.push(Frame {
                    track: Track::Video,
                    keyframe,
                    dts_ms,
                    pts_ms: dts_ms.saturating_add_signed(composition_ms.into()),
                    data: &access_unit,
                })?;
            }
            Video::Skip => {}
        }
        Ok(())
    }

    /// An audio message at `timestamp_ms`.
    pub(super) fn audio(&mut self, data: Bytes, timestamp_ms: u32) -> Result<(), MediaError> {
        match flv::parse_audio(data)? {
            Audio::Config(config) => self.aac = Some(config),
            Audio::Frame(frame) => {
                let Some(aac) = &self.aac else {
                    return Ok(());
                };
                let adts = aac.adts(&frame)?;
                let ms = u64::from(timestamp_ms);
                self.push(Frame {
                    track: Track::Audio,
                    keyframe: false,
                    dts_ms: ms,
                    pts_ms: ms,
                    data: &adts,
                })?;
            }
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame<'_>) -> Result<(), MediaError> {
        let tracks = Tracks {
            video: self.avc.is_some(),
            audio: self.aac.is_some(),
        };
        if let Some(segment) = self.segmenter.push(tracks, frame)? {
            self.store(segment, false)?;
        }
        Ok(())
    }

    /// Stores the last segment and the final playlist (`#EXT-X-ENDLIST`),
    /// which ends the stream.
    pub(super) fn finish(mut self) -> Result<(), MediaError> {
        match self.segmenter.finish() {
            Some(segment) => self.store(segment, true),
            // Not one frame since the first keyframe: nothing was stored.
            None => Ok(()),
        }
    }

    /// A closed segment, then the media playlist listing it, then the
    /// master playlist when it changed: a player never finds a name it
    /// cannot fetch.
    fn store(&mut self, segment: Segment, ended: bool) -> Result<(), MediaError> {
        counter!(RTMP_SEGMENTS).increment(1);
        let health = health(&segment);
        self.put(
            Some(RENDITION),
            &segment.name,
            Extension::Ts,
            segment.body,
            Content::Segment(None),
        )?;
        if let Some(health) = health {
            self.shared.report(&self.identity, health);
        }
        // Written by the segmenter, so it passes the checks.
        let media = playlist::parse(
            self.segmenter.media_playlist(ended).as_bytes(),
            &self.key,
            Some(RENDITION),
        )
        .map_err(MediaError::Playlist)?;
        let body = media.body.clone();
        self.put(
            Some(RENDITION),
            MEDIA_PLAYLIST,
            Extension::M3u8,
            body,
            Content::Playlist(&media),
        )?;
        let codecs = [
            self.avc.as_ref().map(AvcConfig::codec),
            self.aac.as_ref().map(AacConfig::codec),
        ];
        let master = segmenter::master_playlist(&Variant {
            bandwidth: self.segmenter.peak_bandwidth(),
            codecs: codecs.into_iter().flatten().collect(),
            resolution: self.resolution,
        });
        if master != self.master {
            let parsed = playlist::parse(master.as_bytes(), &self.key, None)
                .map_err(MediaError::Playlist)?;
            let body = parsed.body.clone();
            self.put(
                None,
                MASTER_PLAYLIST,
                Extension::M3u8,
                body,
                Content::Playlist(&parsed),
            )?;
            self.master = master;
        }
        Ok(())
    }

    /// Stores an object of the stream, in `rendition` (`None`: its root).
    fn put(
        &self,
        rendition: Option<&str>,
        name: &str,
        ext: Extension,
        body: Bytes,
        content: Content<'_>,
    ) -> Result<(), MediaError> {
        let path = ObjectPath {
            rendition: rendition.map(str::to_owned),
            name: name.into(),
            ext,
        };
        self.shared
            .publish(&self.key, &self.identity, &path, body, content)?;
        Ok(())
    }
}

/// Ingest health from the segmenter's counts: what the encoder sent (its
/// audio and video frames) over the segment's media time.
fn health(segment: &Segment) -> Option<SegmentHealth> {
    let measured = Measured {
        bytes: segment.media_bytes,
        video: (segment.video_frames > 0).then_some(VideoCount {
            frames: segment.video_frames,
            keyframes: segment.keyframes,
        }),
    };
    SegmentHealth::of(Some(RENDITION.into()), segment.duration_ms, measured)
}
