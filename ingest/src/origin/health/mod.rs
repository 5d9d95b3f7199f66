//! Ingest health: per segment of each rendition, its duration, the bit
//! rate the encoder sent, the frame rate and the keyframe interval, as
//! `stream`/`health` events.
//!
//! RTMP segments are measured by their segmenter. Segments uploaded over
//! HTTP are parsed here (`ts`: MPEG-TS, `fmp4`: fragmented MP4) and get
//! their duration from the `#EXTINF` of the playlist listing them, so the
//! store reports them once it holds both.

pub(crate) mod fmp4;
pub(crate) mod ts;

use std::sync::Arc;

use livepulse_contract::validate::{MAX_DURATION_MS, MAX_FRAME_RATE};
use metrics::counter;
use thiserror::Error;
use tracing::debug;

use super::metrics::HEALTH_UNPARSED;
use super::path::{Extension, ObjectPath};

/// Video frames counted in one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct VideoCount {
    /// Access units (pictures).
    pub frames: u32,
    /// Of which keyframes (IDR, sync samples).
    pub keyframes: u32,
}

/// What is known of a segment before its duration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Measured {
    /// Its size, bytes.
    pub bytes: u64,
    /// Its video, when it parsed and has a video stream.
    pub video: Option<VideoCount>,
}

/// Why a segment's media could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum ParseError {
    /// Not a transport stream the origin can read.
    #[error("MPEG-TS: {0}")]
    Ts(String),
    /// Not fragmented MP4 the origin can read.
    #[error("fMP4: {0}")]
    Mp4(String),
    /// An fMP4 segment whose folder has no init segment that parsed: which
    /// track is video is only written there.
    #[error("fMP4 segment without a readable init segment in its folder")]
    NoInit,
}

/// Measures an uploaded media segment; `None` for objects without
/// health (subtitles). A segment whose media does not parse is still
/// measured (its size), counted and logged.
pub(crate) fn measure(
    stream_id: &str,
    path: &ObjectPath,
    body: &[u8],
    init: Option<&fmp4::Init>,
) -> Option<Measured> {
    let (format, video) = match path.ext {
        Extension::Ts => ("ts", ts::count_video(body)),
        Extension::M4s => (
            "fmp4",
            init.map_or(Err(ParseError::NoInit), |init| {
                fmp4::count_video(body, init)
            }),
        ),
        Extension::Aac => ("aac", Ok(None)),
        Extension::Vtt | Extension::M3u8 | Extension::Mp4 => return None,
    };
    let video = video.unwrap_or_else(|err| {
        counter!(HEALTH_UNPARSED, "format" => format).increment(1);
        debug!(stream_id, object = %path, error = %err, "segment media not counted");
        None
    });
    Some(Measured {
        bytes: body.len() as u64,
        video,
    })
}

/// What the segments of an uploaded init segment's folder need from it;
/// `None` (logged) when it does not parse.
pub(crate) fn read_init(stream_id: &str, path: &ObjectPath, body: &[u8]) -> Option<fmp4::Init> {
    fmp4::parse_init(body)
        .inspect_err(|err| {
            debug!(stream_id, object = %path, error = %err, "init segment not readable: its segments will not be counted");
        })
        .ok()
}

/// The ingest health of one segment of one rendition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentHealth {
    /// The rendition's folder (`None`: the stream's root).
    pub rendition: Option<Arc<str>>,
    /// Its duration, ms.
    pub segment_ms: u32,
    /// Its bytes over its duration, kbit/s.
    pub bitrate_kbps: u32,
    /// Video frames per second, when it has video.
    pub frame_rate: Option<f64>,
    /// Duration per keyframe, ms, when it has keyframes.
    pub keyframe_interval_ms: Option<u32>,
}

impl SegmentHealth {
    /// The health of `measured` lasting `duration_ms`; `None` when the
    /// duration is 0 or beyond what the contract accepts.
    pub(crate) fn of(
        rendition: Option<Arc<str>>,
        duration_ms: u64,
        measured: Measured,
    ) -> Option<Self> {
        let segment_ms = u32::try_from(duration_ms)
            .ok()
            .filter(|ms| (1..=MAX_DURATION_MS).contains(ms))?;
        let ms = f64::from(segment_ms);
        let bitrate = (measured.bytes as f64 * 8.0 / ms).round();
        let video = measured.video.unwrap_or_default();
        let frame_rate = (f64::from(video.frames) * 1000.0 / ms * 100.0).round() / 100.0;
        Some(Self {
            rendition,
            segment_ms,
            bitrate_kbps: bitrate.min(f64::from(u32::MAX)) as u32,
            frame_rate: (frame_rate > 0.0 && frame_rate <= MAX_FRAME_RATE).then_some(frame_rate),
            keyframe_interval_ms: (video.keyframes > 0)
                .then(|| (ms / f64::from(video.keyframes)).round() as u32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(bytes: u64, frames: u32, keyframes: u32) -> Measured {
        Measured {
            bytes,
            video: Some(VideoCount { frames, keyframes }),
        }
    }

    #[test]
    fn rates_come_from_the_duration() {
        let health = SegmentHealth::of(Some("720p".into()), 1000, measured(37_500, 30, 1));
        assert_eq!(
            health,
            Some(SegmentHealth {
                rendition: Some("720p".into()),
                segment_ms: 1000,
                bitrate_kbps: 300,
                frame_rate: Some(30.0),
                keyframe_interval_ms: Some(1000),
            })
        );
        // 29.97 fps over 2.002 s with keyframes every second.
        let ntsc = SegmentHealth::of(None, 2002, measured(250_250, 60, 2)).unwrap();
        assert_eq!(ntsc.frame_rate, Some(29.97));
        assert_eq!(
            (ntsc.bitrate_kbps, ntsc.keyframe_interval_ms),
            (1000, Some(1001))
        );
    }

    #[test]
    fn what_is_unknown_is_left_out() {
        let audio = SegmentHealth::of(
            None,
            1000,
            Measured {
                bytes: 8000,
                video: None,
            },
        )
        .unwrap();
        assert_eq!((audio.bitrate_kbps, audio.frame_rate), (64, None));
        assert_eq!(audio.keyframe_interval_ms, None);
        let no_keyframe = SegmentHealth::of(None, 1000, measured(1, 30, 0)).unwrap();
        assert_eq!(no_keyframe.keyframe_interval_ms, None);
        assert_eq!(SegmentHealth::of(None, 0, measured(1, 1, 1)), None);
        assert_eq!(SegmentHealth::of(None, 600_001, measured(1, 1, 1)), None);
        // 2 frames in 1 ms is beyond any real frame rate.
        assert_eq!(
            SegmentHealth::of(None, 1, measured(1, 2, 1))
                .unwrap()
                .frame_rate,
            None
        );
    }
}
