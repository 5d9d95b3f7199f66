//! RTMP publishing for the origin's tests: an origin serving HTTP and RTMP
//! on free loopback ports, and ffmpeg pushing FLV to it as OBS would.

use std::process::Stdio;
use std::time::Duration;

use livepulse_connectors::kafka::KafkaConfig;
use livepulse_ingest::origin::{Origin, OriginConfig};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use super::origin::{ENCODE, Running, source, words};

impl Running {
    /// An origin serving HTTP and RTMP on free loopback ports.
    pub async fn start_with_rtmp(cfg: OriginConfig, kafka: &KafkaConfig) -> Self {
        let rtmp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = rtmp.local_addr().unwrap();
        let origin = Origin::new(cfg, kafka).unwrap().with_rtmp(rtmp);
        Self::serve(origin, Some(addr)).await
    }

    /// `rtmp://127.0.0.1:PORT/live/{key}`.
    pub fn publish_url(&self, key: &str) -> String {
        let rtmp = self.rtmp.expect("started with RTMP");
        format!("rtmp://{rtmp}/live/{key}")
    }

    /// Polls `path` until `done` holds for its body (or 15 s passed).
    pub async fn wait_for(&self, path: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let response = self.get(path).await;
            let ok = response.status().is_success();
            let body = response.text().await.unwrap();
            if ok && done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path}: condition not met: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// ffmpeg publishing `seconds` of a live synthetic source (test pattern
/// and tone, x264 with one-second GOPs, AAC) to `url` over RTMP.
pub fn spawn_ffmpeg_rtmp(url: &str, seconds: u32) -> Child {
    let mut args = source(seconds);
    args.extend(words(ENCODE));
    args.extend(words("-b:v 300k -f flv"));
    args.push(url.to_owned());
    Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is not installed: run dev/setup")
}

/// Waits for an ffmpeg run (at most 30 s): whether it succeeded, and what
/// it printed.
pub async fn finished(ffmpeg: Child) -> (bool, String) {
    let output = tokio::time::timeout(Duration::from_secs(30), ffmpeg.wait_with_output())
        .await
        .expect("ffmpeg still running after 30 s")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `ffprobe` of an MPEG-TS file: its codecs (sorted) and its duration, s.
pub async fn probe(path: &std::path::Path) -> (Vec<String>, f64) {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .await
        .expect("ffprobe is not installed: run dev/setup");
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut codecs: Vec<String> = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect();
    codecs.sort();
    let duration = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap();
    (codecs, duration)
}
