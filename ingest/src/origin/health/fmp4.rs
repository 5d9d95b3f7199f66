//! Counts the video samples and sync samples of a fragmented MP4 segment
//! (`moof`/`traf`/`trun`, decoded by `mp4-atom`). Which track is video,
//! and the sample flags a fragment may leave out, are in the init
//! segment's `moov` (`hdlr`, `trex`).

use mp4_atom::{Atom, Buf, Decode, FourCC, Header, Moof, Moov};

use super::{ParseError, VideoCount};

/// `sample_is_non_sync_sample` in ISO/IEC 14496-12 sample flags.
const NON_SYNC: u32 = 0x0001_0000;
const VIDEO_HANDLER: FourCC = FourCC::new(b"vide");

/// A video track of an init segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VideoTrack {
    id: u32,
    /// `trex` default sample flags.
    default_flags: u32,
}

/// What the segments of a rendition need from its init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Init {
    video: Vec<VideoTrack>,
}

/// The top-level boxes of `body`: their kind and whole bytes (header
/// included).
fn boxes(mut body: &[u8]) -> impl Iterator<Item = Result<(FourCC, &[u8]), ParseError>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        let mut rest = body;
        let header = match Header::decode(&mut rest) {
            Ok(header) => header,
            Err(err) => {
                body = &[];
                return Some(Err(ParseError::Mp4(format!("box header: {err}"))));
            }
        };
        let len = body.len() - rest.remaining() + header.size.unwrap_or(rest.remaining());
        if len > body.len() {
            body = &[];
            return Some(Err(ParseError::Mp4(format!(
                "`{}` box is cut short",
                header.kind
            ))));
        }
        let (whole, after) = body.split_at(len);
        body = after;
        Some(Ok((header.kind, whole)))
    })
}

fn decode<T: Atom>(mut whole: &[u8]) -> Result<T, ParseError> {
    T::decode(&mut whole).map_err(|err| ParseError::Mp4(format!("`{}`: {err}", T::KIND)))
}

/// The video tracks of an init segment (`ftyp`, `moov`).
pub(crate) fn parse_init(body: &[u8]) -> Result<Init, ParseError> {
    for found in boxes(body) {
        let (kind, whole) = found?;
        if kind != Moov::KIND {
            continue;
        }
        let moov: Moov = decode(whole)?;
        let trex = moov.mvex.map(|mvex| mvex.trex).unwrap_or_default();
        let video = moov
            .trak
            .iter()
            .filter(|trak| trak.mdia.hdlr.handler == VIDEO_HANDLER)
            .map(|trak| {
                let id = trak.tkhd.track_id;
                let default_flags = trex
                    .iter()
                    .find(|t| t.track_id == id)
                    .map_or(0, |t| t.default_sample_flags);
                VideoTrack { id, default_flags }
            })
            .collect();
        return Ok(Init { video });
    }
    Err(ParseError::Mp4("init segment has no `moov` box".into()))
}

/// The video of a media segment (`styp`, `sidx`, `moof`, `mdat`, ...) of
/// a rendition initialised by `init`; `None` when it has no video track.
pub(crate) fn count_video(body: &[u8], init: &Init) -> Result<Option<VideoCount>, ParseError> {
    let mut count = VideoCount::default();
    let mut fragments = 0;
    for found in boxes(body) {
        let (kind, whole) = found?;
        if kind != Moof::KIND {
            continue;
        }
        fragments += 1;
        let moof: Moof = decode(whole)?;
        for traf in &moof.traf {
            let Some(track) = init.video.iter().find(|t| t.id == traf.tfhd.track_id) else {
                continue;
            };
            let default_flags = traf
                .tfhd
                .default_sample_flags
                .unwrap_or(track.default_flags);
            for sample in traf.trun.iter().flat_map(|run| run.samples.iter()) {
                count.frames += 1;
                if sample.flags.unwrap_or(default_flags) & NON_SYNC == 0 {
                    count.keyframes += 1;
                }
            }
        }
    }
    if fragments == 0 {
        return Err(ParseError::Mp4("segment has no `moof` box".into()));
    }
    Ok((!init.video.is_empty()).then_some(count))
}

#[cfg(test)]
mod tests {
    use mp4_atom::{
        Encode, Ftyp, Hdlr, Mdat, Mdia, Mfhd, Mvex, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
        TrunSamples,
    };

    use super::*;

    /// Depends on no other sample: what encoders write on keyframes.
    const SYNC: u32 = 0x0200_0000;
    /// Depends on others, not a sync sample.
    const DELTA: u32 = 0x0101_0000;

    fn encode(atom: &impl Encode) -> Vec<u8> {
        let mut out = Vec::new();
        atom.encode(&mut out).unwrap();
        out
    }

    fn trak(id: u32, handler: &[u8; 4]) -> Trak {
        Trak {
            tkhd: Tkhd {
                track_id: id,
                ..Tkhd::default()
            },
            mdia: Mdia {
                hdlr: Hdlr {
                    handler: handler.into(),
                    name: String::new(),
                },
                ..Mdia::default()
            },
            ..Trak::default()
        }
    }

    /// An init segment with video track 1 (trex flags `video_flags`) and
    /// audio track 2, as ffmpeg writes them.
    fn init_segment(video_flags: u32) -> Vec<u8> {
        let ftyp = Ftyp {
            major_brand: b"iso5".into(),
            minor_version: 512,
            compatible_brands: vec![b"iso6".into(), b"mp41".into()],
        };
        let trex = |track_id, default_sample_flags| Trex {
            track_id,
            default_sample_description_index: 1,
            default_sample_duration: 0,
            default_sample_size: 0,
            default_sample_flags,
        };
        let moov = Moov {
            trak: vec![trak(1, b"vide"), trak(2, b"soun")],
            mvex: Some(Mvex {
                mehd: None,
                trex: vec![trex(1, video_flags), trex(2, 0)],
            }),
            ..Moov::default()
        };
        [encode(&ftyp), encode(&moov)].concat()
    }

    fn traf(track_id: u32, default_sample_flags: Option<u32>, samples: TrunSamples) -> Traf {
        Traf {
            tfhd: Tfhd {
                track_id,
                default_sample_flags,
                default_base_is_moof: true,
                ..Tfhd::default()
            },
            trun: vec![Trun {
                data_offset: Some(0),
                samples,
            }],
            ..Traf::default()
        }
    }

    fn fragment(trafs: Vec<Traf>) -> Vec<u8> {
        let moof = Moof {
            mfhd: Mfhd { sequence_number: 1 },
            traf: trafs,
        };
        let mdat = Mdat { data: vec![0; 64] };
        [encode(&moof), encode(&mdat)].concat()
    }

    fn counted(frames: u32, keyframes: u32) -> Result<Option<VideoCount>, ParseError> {
        Ok(Some(VideoCount { frames, keyframes }))
    }

    #[test]
    fn counts_video_samples_with_first_and_default_flags() {
        let init = parse_init(&init_segment(0)).unwrap();
        // ffmpeg: tfhd defaults to delta samples, the run's first is sync;
        // the audio track's samples do not count.
        let inherited = TrunSamples::Inherited {
            count: 30,
            first_flags: Some(SYNC),
        };
        let audio = TrunSamples::Inherited {
            count: 47,
            first_flags: None,
        };
        let segment = fragment(vec![traf(1, Some(DELTA), inherited), traf(2, None, audio)]);
        assert_eq!(count_video(&segment, &init), counted(30, 1));
        // Two fragments in one segment, flags per sample.
        let explicit = |flags: &[u32]| {
            TrunSamples::Explicit(
                flags
                    .iter()
                    .map(|f| TrunEntry {
                        flags: Some(*f),
                        ..TrunEntry::default()
                    })
                    .collect(),
            )
        };
        let mut two = fragment(vec![traf(1, None, explicit(&[SYNC, DELTA, DELTA]))]);
        two.extend(fragment(vec![traf(1, None, explicit(&[SYNC, DELTA]))]));
        assert_eq!(count_video(&two, &init), counted(5, 2));
    }

    #[test]
    fn flags_left_out_come_from_trex() {
        // No tfhd defaults and no first flags: trex says delta...
        let none = TrunSamples::Inherited {
            count: 10,
            first_flags: None,
        };
        let delta = parse_init(&init_segment(DELTA)).unwrap();
        let segment = fragment(vec![traf(1, None, none)]);
        assert_eq!(count_video(&segment, &delta), counted(10, 0));
        // ...or sync (an intra-only stream).
        let sync = parse_init(&init_segment(SYNC)).unwrap();
        assert_eq!(count_video(&segment, &sync), counted(10, 10));
    }

    #[test]
    fn audio_only_renditions_have_no_video() {
        let moov = Moov {
            trak: vec![trak(1, b"soun")],
            ..Moov::default()
        };
        let init = parse_init(&encode(&moov)).unwrap();
        let samples = TrunSamples::Inherited {
            count: 47,
            first_flags: None,
        };
        let segment = fragment(vec![traf(1, None, samples)]);
        assert_eq!(count_video(&segment, &init), Ok(None));
    }

    #[test]
    fn garbage_is_an_error() {
        let init = parse_init(&init_segment(0)).unwrap();
        assert_eq!(
            parse_init(b"\0\0\0\x10ftypiso5\0\0\0\0"),
            Err(ParseError::Mp4("init segment has no `moov` box".into()))
        );
        let segment = fragment(vec![traf(1, None, TrunSamples::default())]);
        assert_eq!(
            count_video(&segment[..40], &init),
            Err(ParseError::Mp4("`moof` box is cut short".into()))
        );
        assert_eq!(
            count_video(b"\0\0\0\x03xxxx", &init),
            Err(ParseError::Mp4("box header: invalid size".into()))
        );
        assert_eq!(
            count_video(&[0x47; 188], &init)
                .unwrap_err()
                .to_string()
                .get(..6),
            Some("fMP4: ")
        );
        assert_eq!(
            count_video(b"\0\0\0\x08mdat", &init),
            Err(ParseError::Mp4("segment has no `moof` box".into()))
        );
        // A moof whose body is not a moof.
        let mut broken = b"\0\0\0\x10moof\0\0\0\x08junk".to_vec();
        broken.extend_from_slice(b"\0\0\0\x08mdat");
        assert!(
            count_video(&broken, &init)
                .unwrap_err()
                .to_string()
                .starts_with("fMP4: `moof`: "),
        );
    }
}
