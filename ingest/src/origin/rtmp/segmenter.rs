//! Cuts a remuxed stream into MPEG-TS segments and writes its playlists.
//!
//! A segment begins on a video keyframe (any audio frame when the stream
//! has no video) and closes at the first such frame at least the target
//! duration later, so every segment decodes on its own. The media playlist
//! lists the newest `window` segments; the master playlist names the one
//! rendition with its peak bandwidth and codecs.

use std::collections::VecDeque;
use std::fmt::Write;

use bytes::Bytes;
use thiserror::Error;

use super::ts::{Muxer, Tracks};

/// The folder of an RTMP stream's only rendition.
pub(crate) const RENDITION: &str = "src";
/// Its media playlist, inside [`RENDITION`].
pub(crate) const MEDIA_PLAYLIST: &str = "index.m3u8";
/// The master playlist, at the stream's root.
pub(crate) const MASTER_PLAYLIST: &str = "master.m3u8";

/// Which elementary stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    /// H.264.
    Video,
    /// AAC.
    Audio,
}

/// One access unit or audio frame, ready to mux.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    /// Its stream.
    pub track: Track,
    /// A video IDR frame (ignored for audio).
    pub keyframe: bool,
    /// Decode time, ms.
    pub dts_ms: u64,
    /// Presentation time, ms.
    pub pts_ms: u64,
    /// Annex B (video) or ADTS (audio).
    pub data: &'a [u8],
}

/// Why the stream cannot be segmented.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum SegmentError {
    /// No keyframe came before the segment outgrew the store's limit.
    #[error("segment exceeds max_segment_bytes ({0}) before the next keyframe")]
    TooLarge(usize),
}

/// A closed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// File name inside [`RENDITION`].
    pub name: String,
    /// MPEG-TS packets.
    pub body: Bytes,
    /// Media time it covers, ms.
    pub duration_ms: u64,
    /// Video frames in it.
    pub video_frames: u32,
    /// Video keyframes in it.
    pub keyframes: u32,
    /// Bytes of the audio and video frames the encoder sent for it.
    pub media_bytes: u64,
}

/// How segments are cut and listed.
#[derive(Debug, Clone)]
pub(crate) struct SegmenterConfig {
    /// Shortest segment, ms (unless the stream ends).
    pub target_ms: u64,
    /// Segments the media playlist lists.
    pub window: usize,
    /// Largest segment, bytes.
    pub max_bytes: usize,
    /// Start of every segment name: unique per session, as segments are
    /// cached as immutable by name.
    pub prefix: String,
}

/// The segment being written.
#[derive(Debug)]
struct Open {
    sequence: u64,
    start_ms: u64,
    last_ms: u64,
    /// Decode time between the last two frames of the cutting track: the
    /// last frame's duration when the stream ends.
    step_ms: u64,
    body: Vec<u8>,
    video_frames: u32,
    keyframes: u32,
    media_bytes: u64,
}

/// A listed segment.
#[derive(Debug)]
struct Listed {
    sequence: u64,
    name: String,
    duration_ms: u64,
}

/// Turns frames into segments and playlists.
#[derive(Debug)]
pub(crate) struct Segmenter {
    cfg: SegmenterConfig,
    muxer: Muxer,
    open: Option<Open>,
    next_sequence: u64,
    listed: VecDeque<Listed>,
    /// Longest segment so far, ms: the target duration never shrinks.
    longest_ms: u64,
    /// Highest segment bit rate so far, bit/s.
    peak_bps: u64,
}

impl Segmenter {
    pub(crate) fn new(cfg: SegmenterConfig) -> Self {
        Self {
            cfg,
            muxer: Muxer::default(),
            open: None,
            next_sequence: 0,
            listed: VecDeque::new(),
            longest_ms: 0,
            peak_bps: 0,
        }
    }

    /// Muxes `frame` (of a program carrying `tracks`); returns the segment
    /// it closed by starting a new one. Frames before the first keyframe
    /// are dropped: nothing could decode them.
    pub(crate) fn push(
        &mut self,
        tracks: Tracks,
        frame: Frame<'_>,
    ) -> Result<Option<Segment>, SegmentError> {
        let cuts_here = match frame.track {
            Track::Video => frame.keyframe,
            Track::Audio => !tracks.video,
        };
        let target = self.cfg.target_ms;
        let mut closed = None;
        if let Some(open) = &self.open
            && cuts_here
            && frame.dts_ms >= open.start_ms + target
        {
            let duration = frame.dts_ms - open.start_ms;
            closed = self.close(duration);
        }
        if self.open.is_none() {
            if !cuts_here {
                return Ok(closed);
            }
            let mut body = Vec::with_capacity(256 * 1024);
            self.muxer.write_tables(tracks, &mut body);
            self.open = Some(Open {
                sequence: self.next_sequence,
                start_ms: frame.dts_ms,
                last_ms: frame.dts_ms,
                step_ms: 0,
                body,
                video_frames: 0,
                keyframes: 0,
                media_bytes: 0,
            });
            self.next_sequence += 1;
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(closed);
        };
        open.media_bytes += frame.data.len() as u64;
        let (pts, dts) = (frame.pts_ms * 90, frame.dts_ms * 90);
        match frame.track {
            Track::Video => {
                self.muxer
                    .write_video(pts, dts, frame.keyframe, frame.data, &mut open.body);
                open.video_frames += 1;
                open.keyframes += u32::from(frame.keyframe);
            }
            Track::Audio => self
                .muxer
                .write_audio(pts, !tracks.video, frame.data, &mut open.body),
        }
        if frame.track == Track::Video || !tracks.video {
            open.step_ms = frame.dts_ms.saturating_sub(open.last_ms);
            open.last_ms = open.last_ms.max(frame.dts_ms);
        }
        if open.body.len() > self.cfg.max_bytes {
            return Err(SegmentError::TooLarge(self.cfg.max_bytes));
        }
        Ok(closed)
    }

    /// Closes the open segment (the stream ended); its last frame lasts
    /// as long as the one before it.
    pub(crate) fn finish(&mut self) -> Option<Segment> {
        let open = self.open.as_ref()?;
        let duration = (open.last_ms - open.start_ms + open.step_ms).max(1);
        self.close(duration)
    }

    fn close(&mut self, duration_ms: u64) -> Option<Segment> {
        let open = self.open.take()?;
        let name = format!("{}{:05}.ts", self.cfg.prefix, open.sequence);
        self.longest_ms = self.longest_ms.max(duration_ms);
        let bps = open.body.len() as u64 * 8 * 1000 / duration_ms.max(1);
        self.peak_bps = self.peak_bps.max(bps);
        self.listed.push_back(Listed {
            sequence: open.sequence,
            name: name.clone(),
            duration_ms,
        });
        while self.listed.len() > self.cfg.window {
            self.listed.pop_front();
        }
        Some(Segment {
            name,
            body: Bytes::from(open.body),
            duration_ms,
            video_frames: open.video_frames,
            keyframes: open.keyframes,
            media_bytes: open.media_bytes,
        })
    }

    /// Highest segment bit rate so far, bit/s.
    pub(crate) fn peak_bandwidth(&self) -> u64 {
        self.peak_bps
    }

    /// The media playlist of the listed segments; `ended` adds
    /// `#EXT-X-ENDLIST`.
    pub(crate) fn media_playlist(&self, ended: bool) -> String {
        // Every EXTINF rounded to the nearest second must fit the target.
        let target = ((self.longest_ms + 500) / 1000).max(1);
        let first = self.listed.front().map_or(0, |s| s.sequence);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for segment in &self.listed {
            let seconds = segment.duration_ms as f64 / 1000.0;
            let _ = write!(out, "#EXTINF:{seconds:.3},\n{}\n", segment.name);
        }
        if ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// What the master playlist says about the rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variant {
    /// Peak segment bit rate, bit/s.
    pub bandwidth: u64,
    /// RFC 6381 codecs of its streams.
    pub codecs: Vec<String>,
    /// Width and height, when the encoder announced them.
    pub resolution: Option<(u32, u32)>,
}

/// The master playlist naming the one rendition.
pub(crate) fn master_playlist(variant: &Variant) -> String {
    let mut attributes = format!("BANDWIDTH={}", variant.bandwidth.max(1));
    if !variant.codecs.is_empty() {
        let _ = write!(attributes, ",CODECS=\"{}\"", variant.codecs.join(","));
    }
    if let Some((width, height)) = variant.resolution {
        let _ = write!(attributes, ",RESOLUTION={width}x{height}");
    }
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:{attributes}\n{RENDITION}/{MEDIA_PLAYLIST}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::playlist;
    use crate::origin::rtmp::ts::PACKET_SIZE;

    const AV: Tracks = Tracks {
        video: true,
        audio: true,
    };

    fn segmenter(window: usize, max_bytes: usize) -> Segmenter {
        Segmenter::new(SegmenterConfig {
            target_ms: 1000,
            window,
            max_bytes,
            prefix: "s1_".into(),
        })
    }

    fn video(ms: u64, keyframe: bool) -> Frame<'static> {
        Frame {
            track: Track::Video,
            keyframe,
            dts_ms: ms,
            pts_ms: ms + 66,
            data: &[0, 0, 0, 1, 9, 0xf0],
        }
    }

    fn audio(ms: u64) -> Frame<'static> {
        Frame {
            track: Track::Audio,
            keyframe: false,
            dts_ms: ms,
            pts_ms: ms,
            data: &[0xff, 0xf1, 0x4c, 0x80, 0x01, 0x3f, 0xfc, 0x21, 0x10],
        }
    }

    /// Pushes 30 fps video with a keyframe every `gop` frames and audio
    /// every 21 ms up to `until_ms`; the durations of the closed segments.
    fn feed(seg: &mut Segmenter, gop: u64, until_ms: u64) -> Vec<u64> {
        let mut closed = Vec::new();
        let mut audio_ms = 0;
        for n in 0..until_ms * 30 / 1000 {
            let ms = n * 1000 / 30;
            while audio_ms <= ms {
                closed.extend(seg.push(AV, audio(audio_ms)).unwrap());
                audio_ms += 21;
            }
            closed.extend(seg.push(AV, video(ms, n % gop == 0)).unwrap());
        }
        closed.iter().map(|s| s.duration_ms).collect()
    }

    #[test]
    fn cuts_only_on_keyframes_once_the_target_elapsed() {
        // Keyframes every 0.5 s: cut at every second one.
        let mut seg = segmenter(10, 1 << 20);
        assert_eq!(feed(&mut seg, 15, 3000), [1000, 1000]);
        let last = seg.finish().unwrap();
        // Frames up to 2966 ms, plus the last frame's 33 ms.
        assert_eq!(last.duration_ms, 999);
        assert_eq!((last.video_frames, last.keyframes), (30, 2));
        // Keyframes every 1.5 s: segments wait for them.
        let mut seg = segmenter(10, 1 << 20);
        assert_eq!(feed(&mut seg, 45, 4600), [1500, 1500, 1500]);
        let last = seg.finish().unwrap();
        assert_eq!(last.duration_ms, 99);
        assert_eq!((last.video_frames, last.keyframes), (3, 1));
        assert_eq!(seg.finish(), None);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_dropped() {
        let mut seg = segmenter(10, 1 << 20);
        assert_eq!(seg.push(AV, audio(0)).unwrap(), None);
        assert_eq!(seg.push(AV, video(0, false)).unwrap(), None);
        assert!(seg.open.is_none());
        seg.push(AV, video(33, true)).unwrap();
        seg.push(AV, audio(40)).unwrap();
        let segment = seg.finish().unwrap();
        assert_eq!(segment.name, "s1_00000.ts");
        assert_eq!((segment.video_frames, segment.keyframes), (1, 1));
        // One access unit and one ADTS frame.
        assert_eq!(segment.media_bytes, 6 + 9);
        // PAT, PMT, one video and one audio packet.
        assert_eq!(segment.body.len(), 4 * PACKET_SIZE);
        assert_eq!(segment.body[0], 0x47);
    }

    #[test]
    fn audio_only_streams_cut_on_audio_frames() {
        let mut seg = segmenter(10, 1 << 20);
        let only_audio = Tracks {
            video: false,
            audio: true,
        };
        let closed: Vec<Segment> = (0..100)
            .filter_map(|n| seg.push(only_audio, audio(n * 21)).unwrap())
            .collect();
        let durations: Vec<u64> = closed.iter().map(|s| s.duration_ms).collect();
        assert_eq!(durations, [1008, 1008]);
    }

    #[test]
    fn a_segment_without_keyframes_is_bounded() {
        let mut seg = segmenter(10, 4 * PACKET_SIZE);
        seg.push(AV, video(0, true)).unwrap();
        seg.push(AV, video(33, false)).unwrap();
        assert_eq!(
            seg.push(AV, video(66, false)),
            Err(SegmentError::TooLarge(4 * PACKET_SIZE))
        );
    }

    #[test]
    fn playlists_slide_end_and_pass_the_origin_checks() {
        let mut seg = segmenter(3, 1 << 20);
        feed(&mut seg, 30, 5100);
        seg.finish();
        let live = seg.media_playlist(false);
        assert_eq!(
            live,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:3\n\
             #EXTINF:1.000,\ns1_00003.ts\n#EXTINF:1.000,\ns1_00004.ts\n#EXTINF:0.099,\ns1_00005.ts\n"
        );
        let key = "sk_0123456789abcdef";
        let parsed = playlist::parse(live.as_bytes(), key, Some(RENDITION)).unwrap();
        assert!(!parsed.master && !parsed.ended);
        let ended = seg.media_playlist(true);
        assert!(ended.ends_with("s1_00005.ts\n#EXT-X-ENDLIST\n"));
        assert!(
            playlist::parse(ended.as_bytes(), key, Some(RENDITION))
                .unwrap()
                .ended
        );

        assert!(seg.peak_bandwidth() > 0);
        let master = master_playlist(&Variant {
            bandwidth: 123_456,
            codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
            resolution: Some((320, 180)),
        });
        assert_eq!(
            master,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=123456,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=320x180\n\
             src/index.m3u8\n"
        );
        assert!(
            playlist::parse(master.as_bytes(), key, None)
                .unwrap()
                .master
        );
    }
}
