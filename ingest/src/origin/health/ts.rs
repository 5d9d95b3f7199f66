//! Counts the video frames and keyframes of an MPEG-TS segment: the
//! packets come from `mpeg2ts`; a frame is a PES packet starting on the
//! program's first video stream, a keyframe one whose first packet has
//! the random access indicator or whose access unit holds an IDR picture
//! (encoders differ in which of the two they mark).

use mpeg2ts::es::StreamType;
use mpeg2ts::ts::payload::Pmt;
use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

use super::{ParseError, VideoCount};

/// The video codecs whose frames are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    H265,
    /// MPEG-1/2 video: keyframes only from the random access indicator.
    Mpeg,
}

/// The access unit being read.
#[derive(Debug, Default)]
struct Unit {
    keyframe: bool,
    data: Vec<u8>,
}

/// The video of `body`; `None` when its program has no video stream.
pub(crate) fn count_video(body: &[u8]) -> Result<Option<VideoCount>, ParseError> {
    let mut reader = TsPacketReader::new(body);
    let mut video: Option<(u16, Codec)> = None;
    let mut count = VideoCount::default();
    let mut unit: Option<Unit> = None;
    let mut program = false;
    while let Some(packet) = reader
        .read_ts_packet()
        .map_err(|err| ParseError::Ts(err.to_string()))?
    {
        let pid = packet.header.pid.as_u16();
        match packet.payload {
            Some(TsPayload::Pmt(pmt)) => {
                program = true;
                video = video.or_else(|| first_video(&pmt));
            }
            Some(TsPayload::PesStart(pes)) if video.is_some_and(|(v, _)| v == pid) => {
                let codec = video.map_or(Codec::Mpeg, |(_, codec)| codec);
                if let Some(done) = unit.take() {
                    finish(done, codec, &mut count);
                }
                let random_access = packet
                    .adaptation_field
                    .is_some_and(|field| field.random_access_indicator);
                unit = Some(Unit {
                    keyframe: random_access,
                    data: pes.data.to_vec(),
                });
            }
            Some(TsPayload::PesContinuation(data)) if video.is_some_and(|(v, _)| v == pid) => {
                // Only a unit not yet known to be a keyframe needs its bytes.
                if let Some(unit) = unit.as_mut().filter(|u| !u.keyframe) {
                    unit.data.extend_from_slice(&data);
                }
            }
            _ => {}
        }
    }
    if !program {
        return Err(ParseError::Ts("no program map table".into()));
    }
    let Some((_, codec)) = video else {
        return Ok(None);
    };
    if let Some(done) = unit {
        finish(done, codec, &mut count);
    }
    Ok(Some(count))
}

/// The PID and codec of the program's first video stream.
fn first_video(pmt: &Pmt) -> Option<(u16, Codec)> {
    pmt.es_info.iter().find_map(|es| {
        let codec = match es.stream_type {
            StreamType::H264 => Codec::H264,
            StreamType::H265 => Codec::H265,
            StreamType::Mpeg1Video | StreamType::Mpeg2Video => Codec::Mpeg,
            _ => return None,
        };
        Some((es.elementary_pid.as_u16(), codec))
    })
}

fn finish(unit: Unit, codec: Codec, count: &mut VideoCount) {
    count.frames += 1;
    if unit.keyframe || has_idr(&unit.data, codec) {
        count.keyframes += 1;
    }
}

/// Whether an Annex B access unit holds an IDR (H.264) or IRAP (H.265)
/// picture.
fn has_idr(data: &[u8], codec: Codec) -> bool {
    data.windows(4).any(|w| {
        w[..3] == [0, 0, 1]
            && match codec {
                Codec::H264 => w[3] & 0x1f == 5,
                Codec::H265 => (16..=21).contains(&((w[3] >> 1) & 0x3f)),
                Codec::Mpeg => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::rtmp::ts::{Muxer, PACKET_SIZE, Tracks};

    const AV: Tracks = Tracks {
        video: true,
        audio: true,
    };
    /// An access unit delimiter and a non-IDR slice.
    const P_FRAME: &[u8] = &[0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x41, 0x9a];
    const ADTS: &[u8] = &[0xff, 0xf1, 0x4c, 0x80, 0x01, 0x3f, 0xfc, 0x21, 0x10];

    /// A segment of `frames` video frames, keyframes where `key(n)`, with
    /// audio in between; access units of `size` bytes.
    fn segment(frames: u64, size: usize, key: impl Fn(u64) -> bool) -> Vec<u8> {
        let mut muxer = Muxer::default();
        let mut out = Vec::new();
        muxer.write_tables(AV, &mut out);
        for n in 0..frames {
            let mut unit = P_FRAME.to_vec();
            unit.resize(size, 0xab);
            let ts = n * 3000;
            muxer.write_video(ts + 6000, ts, key(n), &unit, &mut out);
            muxer.write_audio(ts, false, ADTS, &mut out);
        }
        out
    }

    #[test]
    fn counts_frames_and_marked_keyframes() {
        // Units over several packets, a keyframe every 15 frames.
        let body = segment(30, 1000, |n| n % 15 == 0);
        assert_eq!(
            count_video(&body),
            Ok(Some(VideoCount {
                frames: 30,
                keyframes: 2
            }))
        );
    }

    #[test]
    fn an_unmarked_idr_picture_is_a_keyframe() {
        let mut muxer = Muxer::default();
        let mut body = Vec::new();
        muxer.write_tables(AV, &mut body);
        // No random access indicator, but an IDR slice after 300 bytes of
        // SEI: found in a later packet of the unit.
        let mut idr = vec![0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 6];
        idr.resize(300, 0x80);
        idr.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88]);
        muxer.write_video(6000, 0, false, &idr, &mut body);
        muxer.write_video(9000, 3000, false, P_FRAME, &mut body);
        assert_eq!(
            count_video(&body),
            Ok(Some(VideoCount {
                frames: 2,
                keyframes: 1
            }))
        );
    }

    #[test]
    fn audio_only_has_no_video() {
        let mut muxer = Muxer::default();
        let mut body = Vec::new();
        let audio = Tracks {
            video: false,
            audio: true,
        };
        muxer.write_tables(audio, &mut body);
        muxer.write_audio(0, true, ADTS, &mut body);
        assert_eq!(count_video(&body), Ok(None));
    }

    #[test]
    fn garbage_is_an_error() {
        let bad = |body: &[u8]| count_video(body).unwrap_err().to_string();
        assert!(
            bad(&[0x47; 100]).starts_with("MPEG-TS: "),
            "{}",
            bad(&[0x47; 100])
        );
        assert!(bad(&vec![0u8; PACKET_SIZE * 2]).starts_with("MPEG-TS: "));
        // Whole packets, but cut before the program map.
        let body = segment(2, 100, |_| true);
        assert_eq!(
            count_video(&body[..PACKET_SIZE]),
            Err(ParseError::Ts("no program map table".into()))
        );
        // A segment cut mid-packet.
        assert!(bad(&body[..body.len() - 10]).starts_with("MPEG-TS: "));
        assert_eq!(
            count_video(&[]),
            Err(ParseError::Ts("no program map table".into()))
        );
    }
}
