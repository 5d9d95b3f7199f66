//! FLV tag bodies as RTMP carries them (video and audio messages): H.264
//! (AVC sequence header, NALUs in AVCC form) and AAC (AudioSpecificConfig,
//! raw frames), turned into what MPEG-TS carries (Annex B, ADTS).

use bytes::{Buf, Bytes};
use thiserror::Error;

/// FLV video codec id of H.264.
const CODEC_AVC: u8 = 7;
/// FLV sound format of AAC.
const SOUND_AAC: u8 = 10;
/// NAL unit types.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_AUD: u8 = 9;
/// Annex B start code and the access unit delimiter ("any slice type"):
/// HLS wants one at the start of every access unit.
const START_CODE: [u8; 4] = [0, 0, 0, 1];
const AUD: [u8; 6] = [0, 0, 0, 1, NAL_AUD, 0xf0];

/// Why an FLV tag body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum FlvError {
    /// A video codec other than H.264 (or enhanced RTMP's extended header).
    #[error("unsupported video codec (FLV codec id {0}): only H.264 is remuxed")]
    VideoCodec(u8),
    /// An audio format other than AAC.
    #[error("unsupported audio format (FLV sound format {0}): only AAC is remuxed")]
    AudioFormat(u8),
    /// An AAC profile ADTS cannot signal, or an explicit sampling rate.
    #[error("unsupported AAC configuration: {0}")]
    AacConfig(&'static str),
    /// Cut short or inconsistent.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A video message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Video {
    /// The decoder configuration (SPS and PPS).
    Config(AvcConfig),
    /// One access unit, NALUs in AVCC (length-prefixed) form.
    Frame {
        /// An IDR frame, where a segment may begin.
        keyframe: bool,
        /// Presentation minus decode time, ms.
        composition_ms: i32,
        /// The NALUs.
        data: Bytes,
    },
    /// Nothing to mux: end of sequence or an info/command frame.
    Skip,
}

/// An audio message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Audio {
    /// The AudioSpecificConfig.
    Config(AacConfig),
    /// One raw AAC frame.
    Frame(Bytes),
}

/// An AVCDecoderConfigurationRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AvcConfig {
    profile: u8,
    compatibility: u8,
    level: u8,
    length_size: usize,
    /// SPS and PPS NALUs, in Annex B form.
    parameter_sets: Vec<u8>,
}

/// The parts of an AudioSpecificConfig ADTS needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AacConfig {
    object_type: u8,
    frequency_index: u8,
    channels: u8,
}

/// Parses the body of an RTMP video message.
pub(crate) fn parse_video(mut data: Bytes) -> Result<Video, FlvError> {
    let malformed = FlvError::Malformed("video tag");
    if data.len() < 2 {
        return Err(malformed);
    }
    let first = data[0];
    let (frame_type, codec) = (first >> 4, first & 0x0f);
    // Enhanced RTMP sets the top bit for its FourCC header (HEVC, AV1...).
    if first & 0x80 != 0 || codec != CODEC_AVC {
        return Err(FlvError::VideoCodec(codec));
    }
    if frame_type == 5 {
        return Ok(Video::Skip);
    }
    if data.len() < 5 {
        return Err(malformed);
    }
    let packet_type = data[1];
    // Signed 24-bit composition time.
    let raw = i32::from_be_bytes([0, data[2], data[3], data[4]]);
    let composition_ms = (raw << 8) >> 8;
    data.advance(5);
    match packet_type {
        0 => AvcConfig::parse(&data).map(Video::Config),
        1 => Ok(Video::Frame {
            keyframe: frame_type == 1,
            composition_ms,
            data,
        }),
        2 => Ok(Video::Skip),
        _ => Err(malformed),
    }
}

/// Parses the body of an RTMP audio message.
pub(crate) fn parse_audio(mut data: Bytes) -> Result<Audio, FlvError> {
    let Some(&first) = data.first() else {
        return Err(FlvError::Malformed("audio tag"));
    };
    let format = first >> 4;
    if format != SOUND_AAC {
        return Err(FlvError::AudioFormat(format));
    }
    if data.len() < 2 {
        return Err(FlvError::Malformed("audio tag"));
    }
    let packet_type = data[1];
    data.advance(2);
    match packet_type {
        0 => AacConfig::parse(&data).map(Audio::Config),
        1 => Ok(Audio::Frame(data)),
        _ => Err(FlvError::Malformed("audio tag")),
    }
}

impl AvcConfig {
    fn parse(record: &[u8]) -> Result<Self, FlvError> {
        let malformed = FlvError::Malformed("AVC decoder configuration");
        if record.len() < 7 || record[0] != 1 {
            return Err(malformed);
        }
        let mut parameter_sets = Vec::new();
        let mut rest = &record[5..];
        // SPS count in the low 5 bits, then the PPS count in a full byte.
        for mask in [0x1f, 0xff] {
            let (&count, tail) = rest.split_first().ok_or(malformed.clone())?;
            rest = tail;
            for _ in 0..(count & mask) {
                let (len, tail) = rest.split_at_checked(2).ok_or(malformed.clone())?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let (nal, tail) = tail.split_at_checked(len).ok_or(malformed.clone())?;
                parameter_sets.extend_from_slice(&START_CODE);
                parameter_sets.extend_from_slice(nal);
                rest = tail;
            }
        }
        Ok(Self {
            profile: record[1],
            compatibility: record[2],
            level: record[3],
            length_size: usize::from(record[4] & 0x03) + 1,
            parameter_sets,
        })
    }

    /// The RFC 6381 codec, e.g. `avc1.64001f`.
    pub(crate) fn codec(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }

    /// An access unit in Annex B form: an AUD, then (on IDR frames that
    /// lack them) the SPS and PPS, then the frame's NALUs.
    pub(crate) fn annex_b(&self, avcc: &[u8]) -> Result<Vec<u8>, FlvError> {
        let mut nalus = Vec::new();
        let mut rest = avcc;
        while !rest.is_empty() {
            let (len, tail) = rest
                .split_at_checked(self.length_size)
                .ok_or(FlvError::Malformed("NALU length"))?;
            let len = len.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
            let (nal, tail) = tail
                .split_at_checked(len)
                .ok_or(FlvError::Malformed("NALU"))?;
            rest = tail;
            // Encoders' own delimiters would repeat ours.
            if nal.first().is_some_and(|b| b & 0x1f != NAL_AUD) {
                nalus.push(nal);
            }
        }
        let types = || nalus.iter().map(|nal| nal[0] & 0x1f);
        let idr = types().any(|t| t == NAL_IDR);
        let has_sps = types().any(|t| t == NAL_SPS);
        let mut out = Vec::with_capacity(avcc.len() + self.parameter_sets.len() + 16);
        out.extend_from_slice(&AUD);
        if idr && !has_sps {
            out.extend_from_slice(&self.parameter_sets);
        }
        for nal in nalus {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        Ok(out)
    }
}

impl AacConfig {
    fn parse(config: &[u8]) -> Result<Self, FlvError> {
        let [a, b, ..] = *config else {
            return Err(FlvError::Malformed("AAC audio specific config"));
        };
        let object_type = a >> 3;
        let frequency_index = ((a & 0x07) << 1) | (b >> 7);
        let channels = (b >> 3) & 0x0f;
        // ADTS has two bits for the profile (object types 1 to 4).
        if !(1..=4).contains(&object_type) {
            return Err(FlvError::AacConfig(
                "audio object type other than Main, LC, SSR or LTP",
            ));
        }
        if frequency_index > 12 {
            return Err(FlvError::AacConfig("explicit sampling rate"));
        }
        if channels == 0 || channels > 7 {
            return Err(FlvError::AacConfig(
                "channel configuration other than 1 to 7",
            ));
        }
        Ok(Self {
            object_type,
            frequency_index,
            channels,
        })
    }

    /// The RFC 6381 codec, e.g. `mp4a.40.2`.
    pub(crate) fn codec(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// A raw frame with its ADTS header.
    pub(crate) fn adts(&self, frame: &[u8]) -> Result<Vec<u8>, FlvError> {
        let len = frame.len() + 7;
        // The frame length field has 13 bits.
        if len >= 1 << 13 {
            return Err(FlvError::Malformed("AAC frame longer than ADTS allows"));
        }
        let profile = self.object_type - 1;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&[
            0xff,
            // MPEG-4, layer 0, no CRC.
            0xf1,
            (profile << 6) | (self.frequency_index << 2) | (self.channels >> 2),
            ((self.channels & 0x03) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len as u8 & 0x07) << 5) | 0x1f,
            // Buffer fullness 0x7ff (variable rate), one raw data block.
            0xfc,
        ]);
        out.extend_from_slice(frame);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3];

    fn avc_config() -> AvcConfig {
        let mut record = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        record.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        record.extend_from_slice(SPS);
        record.push(1);
        record.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        record.extend_from_slice(PPS);
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend_from_slice(&record);
        match parse_video(Bytes::from(tag)).unwrap() {
            Video::Config(config) => config,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn avc_config_and_frames_become_annex_b() {
        let config = avc_config();
        assert_eq!(config.codec(), "avc1.64001f");
        let mut tag = vec![0x17, 1, 0xff, 0xff, 0xdf];
        // An encoder AUD, then an IDR slice.
        tag.extend_from_slice(&[0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let Video::Frame {
            keyframe,
            composition_ms,
            data,
        } = parse_video(Bytes::from(tag)).unwrap()
        else {
            panic!("not a frame");
        };
        assert!(keyframe);
        assert_eq!(composition_ms, -33);
        let annex_b = config.annex_b(&data).unwrap();
        let mut expected = AUD.to_vec();
        for nal in [SPS, PPS, &[0x65, 0x88, 0x84]] {
            expected.extend_from_slice(&START_CODE);
            expected.extend_from_slice(nal);
        }
        assert_eq!(annex_b, expected);
        // Inter frames get no parameter sets.
        let inter = config.annex_b(&[0, 0, 0, 2, 0x41, 0x9a]).unwrap();
        assert_eq!(inter, [&AUD[..], &START_CODE, &[0x41, 0x9a]].concat());
        assert_eq!(
            config.annex_b(&[0, 0, 0, 9, 0x41]),
            Err(FlvError::Malformed("NALU"))
        );
    }

    #[test]
    fn other_codecs_are_refused() {
        assert_eq!(
            parse_video(Bytes::from_static(&[0x1c, 0, 0, 0, 0])),
            Err(FlvError::VideoCodec(12))
        );
        assert_eq!(
            parse_video(Bytes::from_static(&[0x90, 0x68, 0x76, 0x63, 0x31])),
            Err(FlvError::VideoCodec(0))
        );
        assert_eq!(
            parse_audio(Bytes::from_static(&[0x2f, 0x00])),
            Err(FlvError::AudioFormat(2))
        );
    }

    #[test]
    fn aac_frames_get_adts_headers() {
        // LC, 48 kHz, stereo.
        let Audio::Config(config) =
            parse_audio(Bytes::from_static(&[0xaf, 0, 0x11, 0x90])).unwrap()
        else {
            panic!("not a config");
        };
        assert_eq!(config.codec(), "mp4a.40.2");
        let Audio::Frame(frame) = parse_audio(Bytes::from_static(&[0xaf, 1, 0x21, 0x10])).unwrap()
        else {
            panic!("not a frame");
        };
        let adts = config.adts(&frame).unwrap();
        assert_eq!(adts, [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x3f, 0xfc, 0x21, 0x10]);
        // HE-AAC (object type 5) cannot be signalled in ADTS.
        assert!(matches!(
            parse_audio(Bytes::from_static(&[0xaf, 0, 0x2b, 0x92])),
            Err(FlvError::AacConfig(_))
        ));
    }
}
