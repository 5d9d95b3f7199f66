//! The live test stream of `livepulse up`: ffmpeg publishing a synthetic
//! picture and tone in two renditions to the origin over HTTP PUT, in real
//! time, until stopped.

use std::process::Stdio;

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

/// The renditions published: name, size, video bitrate.
// Small, so encoding in real time leaves the cores to the rest of `up`.
const RENDITIONS: [(&str, &str, &str); 2] =
    [("360p", "640x360", "800k"), ("180p", "320x180", "250k")];

/// Starts ffmpeg publishing to `origin` (`http://HOST:PORT`) with `key`.
/// The process is killed when the returned child is dropped.
pub fn start(origin: &str, key: &str) -> Result<Child> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    let mut stream_map = Vec::new();
    for (n, (name, size, bitrate)) in RENDITIONS.iter().enumerate() {
        cmd.args(["-map", "0:v", "-map", "1:a"])
            .arg(format!("-s:v:{n}"))
            .arg(size)
            .arg(format!("-b:v:{n}"))
            .arg(bitrate);
        stream_map.push(format!("v:{n},a:{n},name:{name}"));
    }
    // One-second GOPs, so every segment starts on a keyframe and lasts 1 s.
    cmd.args([
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
    ])
    .args([
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
    ])
    .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"])
    .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
    .args(["-hls_flags", "delete_segments", "-hls_segment_type", "fmp4"])
    // Segment numbers from the clock: a restart never reuses a cached name.
    .args(["-hls_start_number_source", "epoch"])
    .args([
        "-master_pl_name",
        "master.m3u8",
        "-method",
        "PUT",
        "-http_persistent",
        "1",
    ])
    .arg("-var_stream_map")
    .arg(stream_map.join(" "))
    .arg("-hls_segment_filename")
    .arg(format!("{origin}/live/{key}/%v/seg%d.m4s"))
    .arg(format!("{origin}/live/{key}/%v/index.m3u8"))
    .stdin(Stdio::null())
    .kill_on_drop(true);
    cmd.spawn().context(
        "cannot start ffmpeg for the test stream (install ffmpeg, or pass --no-test-stream)",
    )
}
