//! A small MPEG-TS muxer (ISO/IEC 13818-1) for HLS segments: one program
//! with H.264 (Annex B) and AAC (ADTS) elementary streams, PAT and PMT at
//! the start of every segment so each one decodes on its own, PCR on the
//! video PID (the audio PID without video).

/// Bytes of a transport stream packet.
pub(crate) const PACKET_SIZE: usize = 188;
/// Payload bytes of a packet without an adaptation field.
const PAYLOAD_SIZE: usize = PACKET_SIZE - 4;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const PMT_PID: u16 = 0x1000;
/// The H.264 stream's PID.
pub(crate) const VIDEO_PID: u16 = 0x100;
/// The AAC stream's PID.
pub(crate) const AUDIO_PID: u16 = 0x101;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
const STREAM_ID_VIDEO: u8 = 0xe0;
const STREAM_ID_AUDIO: u8 = 0xc0;
/// PTS, DTS and PCR bases are 33-bit counters of a 90 kHz clock.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// How far the PCR runs behind the video's decode time, 90 kHz: decoders
/// expect data before the clock reaches its decode time.
const PCR_LEAD: u64 = 9_000;

/// The elementary streams a program carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tracks {
    /// H.264 on [`VIDEO_PID`].
    pub video: bool,
    /// AAC on [`AUDIO_PID`].
    pub audio: bool,
}

/// Writes transport stream packets, keeping each PID's continuity counter
/// across segments.
#[derive(Debug, Default)]
pub(crate) struct Muxer {
    /// PAT, PMT, video, audio.
    counters: [u8; 4],
}

impl Muxer {
    fn next_counter(&mut self, pid: u16) -> u8 {
        let slot = match pid {
            PAT_PID => 0,
            PMT_PID => 1,
            VIDEO_PID => 2,
            _ => 3,
        };
        let current = self.counters[slot];
        self.counters[slot] = (current + 1) & 0x0f;
        current
    }

    /// The PAT and the PMT announcing `tracks`: what a segment starts with.
    pub(crate) fn write_tables(&mut self, tracks: Tracks, out: &mut Vec<u8>) {
        // Transport stream id 1, version 0, current, one section.
        let mut pat = vec![0x00, 0x01, 0xc1, 0x00, 0x00];
        // Program 1 and its PMT PID.
        pat.extend_from_slice(&[0x00, 0x01]);
        pat.extend_from_slice(&(0xe000 | PMT_PID).to_be_bytes());
        self.write_section(PAT_PID, 0x00, pat, out);

        let pcr_pid = if tracks.video || !tracks.audio {
            VIDEO_PID
        } else {
            AUDIO_PID
        };
        // Program 1, version 0, current, one section.
        let mut pmt = vec![0x00, 0x01, 0xc1, 0x00, 0x00];
        pmt.extend_from_slice(&(0xe000 | pcr_pid).to_be_bytes());
        // No program descriptors.
        pmt.extend_from_slice(&[0xf0, 0x00]);
        let streams = [
            (tracks.video, STREAM_TYPE_H264, VIDEO_PID),
            (tracks.audio, STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ];
        for (_, stream_type, pid) in streams.into_iter().filter(|(on, ..)| *on) {
            pmt.push(stream_type);
            pmt.extend_from_slice(&(0xe000 | pid).to_be_bytes());
            pmt.extend_from_slice(&[0xf0, 0x00]);
        }
        self.write_section(PMT_PID, 0x02, pmt, out);
    }

    /// One PSI section (`table_id`, then `body` from the field after
    /// `section_length`) in one packet, with its CRC.
    fn write_section(&mut self, pid: u16, table_id: u8, body: Vec<u8>, out: &mut Vec<u8>) {
        let length = body.len() + 4;
        let mut section = Vec::with_capacity(3 + length);
        section.push(table_id);
        // Section syntax indicator, reserved bits, 12-bit length.
        section.extend_from_slice(&(0xb000 | length as u16).to_be_bytes());
        section.extend_from_slice(&body);
        section.extend_from_slice(&crc32_mpeg2(&section).to_be_bytes());
        let start = out.len();
        self.write_header(pid, true, false, out);
        // Pointer field: the section starts right away.
        out.push(0x00);
        out.extend_from_slice(&section);
        out.resize(start + PACKET_SIZE, 0xff);
    }

    /// One H.264 access unit (Annex B), times in the 90 kHz clock.
    pub(crate) fn write_video(
        &mut self,
        pts: u64,
        dts: u64,
        keyframe: bool,
        access_unit: &[u8],
        out: &mut Vec<u8>,
    ) {
        let mut pes = pes_header(STREAM_ID_VIDEO, pts, Some(dts), 0);
        pes.extend_from_slice(access_unit);
        let first = FirstPacket {
            pcr: Some(dts.saturating_sub(PCR_LEAD)),
            random_access: keyframe,
        };
        self.write_pes(VIDEO_PID, first, &pes, out);
    }

    /// One ADTS frame; `pcr` when the program has no video.
    pub(crate) fn write_audio(&mut self, pts: u64, pcr: bool, adts: &[u8], out: &mut Vec<u8>) {
        let mut pes = pes_header(STREAM_ID_AUDIO, pts, None, adts.len());
        pes.extend_from_slice(adts);
        let first = FirstPacket {
            pcr: pcr.then(|| pts.saturating_sub(PCR_LEAD)),
            random_access: pcr,
        };
        self.write_pes(AUDIO_PID, first, &pes, out);
    }

    /// Splits a PES packet into transport packets; the last one is padded
    /// with adaptation field stuffing.
    fn write_pes(&mut self, pid: u16, first: FirstPacket, pes: &[u8], out: &mut Vec<u8>) {
        let mut rest = pes;
        let mut start = true;
        while !rest.is_empty() {
            // Adaptation field after its length byte: flags, PCR, stuffing.
            let mut field = Vec::new();
            if start && (first.pcr.is_some() || first.random_access) {
                let mut flags = 0;
                if first.random_access {
                    flags |= 0x40;
                }
                if first.pcr.is_some() {
                    flags |= 0x10;
                }
                field.push(flags);
                if let Some(pcr) = first.pcr {
                    field.extend_from_slice(&pcr_bytes(pcr));
                }
            }
            let mut has_field = !field.is_empty();
            let room = PAYLOAD_SIZE - if has_field { 1 + field.len() } else { 0 };
            if rest.len() < room {
                let mut stuffing = room - rest.len();
                if !has_field {
                    // The length byte itself takes one of the bytes to fill.
                    has_field = true;
                    stuffing -= 1;
                    if stuffing > 0 {
                        field.push(0x00);
                        stuffing -= 1;
                    }
                }
                field.resize(field.len() + stuffing, 0xff);
            }
            let field_len = if has_field { 1 + field.len() } else { 0 };
            let take = rest.len().min(PAYLOAD_SIZE - field_len);
            self.write_header(pid, start, has_field, out);
            if has_field {
                out.push(field.len() as u8);
                out.extend_from_slice(&field);
            }
            out.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            start = false;
        }
    }

    fn write_header(&mut self, pid: u16, unit_start: bool, adaptation: bool, out: &mut Vec<u8>) {
        let counter = self.next_counter(pid);
        out.push(SYNC_BYTE);
        let start = if unit_start { 0x40 } else { 0x00 };
        out.push(start | (pid >> 8) as u8 & 0x1f);
        out.push(pid as u8);
        let control = if adaptation { 0x30 } else { 0x10 };
        out.push(control | counter);
    }
}

/// What the first packet of a PES packet carries in its adaptation field.
#[derive(Debug, Clone, Copy)]
struct FirstPacket {
    pcr: Option<u64>,
    random_access: bool,
}

/// A PES header with PTS (and DTS when it differs); `payload_len` 0 leaves
/// the length open, as video PES packets may exceed 64 KiB.
fn pes_header(stream_id: u8, pts: u64, dts: Option<u64>, payload_len: usize) -> Vec<u8> {
    let dts = dts.filter(|dts| *dts != pts);
    let header_len = if dts.is_some() { 10 } else { 5 };
    let packet_len = if payload_len == 0 {
        0
    } else {
        // Bytes after the length field: flags, header length, timestamps.
        u16::try_from(3 + header_len + payload_len).unwrap_or(0)
    };
    let mut header = vec![0x00, 0x00, 0x01, stream_id];
    header.extend_from_slice(&packet_len.to_be_bytes());
    header.push(0x80);
    match dts {
        Some(dts) => {
            header.extend_from_slice(&[0xc0, 10]);
            header.extend_from_slice(&timestamp(0b0011, pts));
            header.extend_from_slice(&timestamp(0b0001, dts));
        }
        None => {
            header.extend_from_slice(&[0x80, 5]);
            header.extend_from_slice(&timestamp(0b0010, pts));
        }
    }
    header
}

/// A 33-bit PES timestamp with its 4-bit prefix and marker bits.
fn timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7f) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7f) << 1) | 1,
    ]
}

/// A PCR from the 90 kHz clock (its 27 MHz extension stays 0).
fn pcr_bytes(base: u64) -> [u8; 6] {
    let base = base & TIMESTAMP_MASK;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base as u8 & 1) << 7) | 0x7e,
        0x00,
    ]
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, no final XOR).
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for byte in data {
        crc ^= u32::from(*byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(packet: &[u8]) -> u16 {
        u16::from_be_bytes([packet[1], packet[2]]) & 0x1fff
    }

    /// The section of a PSI packet (after the pointer field), CRC included.
    fn section(packet: &[u8]) -> &[u8] {
        assert_eq!(packet[4], 0, "pointer field");
        let length = (usize::from(packet[6] & 0x0f) << 8) | usize::from(packet[7]);
        &packet[5..8 + length]
    }

    fn packets(out: &[u8]) -> Vec<&[u8]> {
        assert_eq!(out.len() % PACKET_SIZE, 0);
        let packets: Vec<&[u8]> = out.chunks(PACKET_SIZE).collect();
        assert!(packets.iter().all(|p| p[0] == SYNC_BYTE));
        packets
    }

    /// The payload of a packet, after its adaptation field.
    fn payload(packet: &[u8]) -> &[u8] {
        if packet[3] & 0x20 != 0 {
            &packet[5 + usize::from(packet[4])..]
        } else {
            &packet[4..]
        }
    }

    #[test]
    fn crc_is_crc32_mpeg2() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn tables_are_one_packet_each_with_a_valid_crc() {
        let mut muxer = Muxer::default();
        let mut out = Vec::new();
        let both = Tracks {
            video: true,
            audio: true,
        };
        muxer.write_tables(both, &mut out);
        let tables = packets(&out);
        assert_eq!(tables.len(), 2);
        assert_eq!((pid(tables[0]), pid(tables[1])), (PAT_PID, PMT_PID));
        for packet in &tables {
            assert_eq!(packet[1] & 0x40, 0x40, "payload unit start");
            // A CRC over a section including its own CRC leaves 0.
            assert_eq!(crc32_mpeg2(section(packet)), 0);
        }
        let pat = section(tables[0]);
        assert_eq!(pat[0], 0x00);
        assert_eq!(&pat[8..12], &[0x00, 0x01, 0xf0, 0x00], "program 1 -> PMT");
        let pmt = section(tables[1]);
        assert_eq!(pmt[0], 0x02);
        assert_eq!(u16::from_be_bytes([pmt[8], pmt[9]]) & 0x1fff, VIDEO_PID);
        assert_eq!(&pmt[12..17], &[0x1b, 0xe1, 0x00, 0xf0, 0x00]);
        assert_eq!(&pmt[17..22], &[0x0f, 0xe1, 0x01, 0xf0, 0x00]);

        let mut audio_only = Vec::new();
        muxer.write_tables(
            Tracks {
                video: false,
                audio: true,
            },
            &mut audio_only,
        );
        let pmt = section(packets(&audio_only)[1]);
        assert_eq!(crc32_mpeg2(pmt), 0);
        assert_eq!(u16::from_be_bytes([pmt[8], pmt[9]]) & 0x1fff, AUDIO_PID);
        assert_eq!(pmt.len(), 12 + 5 + 4);
    }

    #[test]
    fn pes_packets_fill_whole_packets_and_count_continuity() {
        let mut muxer = Muxer::default();
        let mut out = Vec::new();
        let frame: Vec<u8> = (0..1000u32).map(|n| n as u8).collect();
        muxer.write_video(3003, 0, true, &frame, &mut out);
        muxer.write_video(6006, 6006, false, &frame[..10], &mut out);
        for size in [0, 1, 2, 150, 165, 166, 167, 168, 183, 184, 185, 400] {
            muxer.write_audio(9000, false, &frame[..size.max(1)], &mut out);
        }
        let all = packets(&out);
        let mut expected = [0u8; 2];
        let mut reassembled: Vec<Vec<u8>> = Vec::new();
        for packet in &all {
            let slot = usize::from(pid(packet) == AUDIO_PID);
            assert_eq!(packet[3] & 0x0f, expected[slot], "continuity counter");
            expected[slot] = (expected[slot] + 1) & 0x0f;
            if packet[1] & 0x40 != 0 {
                reassembled.push(Vec::new());
            }
            reassembled
                .last_mut()
                .unwrap()
                .extend_from_slice(payload(packet));
        }
        // The keyframe's first packet: random access, PCR behind its DTS.
        let first = all[0];
        assert_eq!(first[3] & 0x30, 0x30);
        assert_eq!(first[5], 0x50);
        // Video PES: PTS and DTS, open length, then the frame unchanged.
        let video = &reassembled[0];
        assert_eq!(&video[..9], &[0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10]);
        assert_eq!(&video[19..], frame.as_slice());
        assert_eq!(&reassembled[1][14..], &frame[..10], "PTS only when equal");
        // Audio PES: PTS only and an exact length.
        for pes in &reassembled[2..] {
            let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
            assert_eq!(len, pes.len() - 6);
            assert_eq!(&pes[6..9], &[0x80, 0x80, 5]);
        }
    }

    #[test]
    fn timestamps_encode_33_bits_with_markers() {
        let ts = (1u64 << 32) | 0x1234_5678;
        let bytes = timestamp(0b0010, ts);
        assert_eq!(bytes[0] & 1, 1);
        assert_eq!(bytes[2] & 1, 1);
        assert_eq!(bytes[4] & 1, 1);
        let decoded = (u64::from(bytes[0] >> 1) & 7) << 30
            | u64::from(bytes[1]) << 22
            | u64::from(bytes[2] >> 1) << 15
            | u64::from(bytes[3]) << 7
            | u64::from(bytes[4] >> 1);
        assert_eq!(decoded, ts);
        assert_eq!(bytes[0] >> 4, 0b0010);
        let pcr = pcr_bytes(ts);
        let base = u64::from(pcr[0]) << 25
            | u64::from(pcr[1]) << 17
            | u64::from(pcr[2]) << 9
            | u64::from(pcr[3]) << 1
            | u64::from(pcr[4] >> 7);
        assert_eq!(base, ts);
    }
}
