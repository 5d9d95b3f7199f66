//! RTMP publishing for the origin's tests: an origin serving HTTP and RTMP
//! on free loopback ports, and ffmpeg pushing FLV to it as OBS would.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use livepulse_connectors::kafka::KafkaConfig;
use livepulse_ingest::origin::{Origin, OriginConfig, OriginError};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An origin served with its RTMP ingest.
pub struct RtmpOrigin {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The RTMP listener's address.
    pub rtmp: SocketAddr,
    /// HTTP client.
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), OriginError>>,
}

impl RtmpOrigin {
    pub async fn start(cfg: OriginConfig, kafka: &KafkaConfig) -> Self {
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rtmp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", http_listener.local_addr().unwrap());
        let rtmp = rtmp_listener.local_addr().unwrap();
        let origin = Origin::new(cfg, kafka).unwrap().with_rtmp(rtmp_listener);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(origin.serve(http_listener, async {
            let _ = rx.await;
        }));
        Self {
            base,
            rtmp,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task,
        }
    }

    /// `rtmp://127.0.0.1:PORT/live/{key}`.
    pub fn publish_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// `GET` answering 200: its content type and body.
    pub async fn get_ok(&self, path: &str) -> (String, Vec<u8>) {
        let response = self.get(path).await;
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (content_type, response.bytes().await.unwrap().to_vec())
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

    /// `GET /metrics`, the value of one sample line (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Shuts down and waits until `serve` returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// ffmpeg publishing `seconds` of a live synthetic source (test pattern
/// and tone, x264 with one-second GOPs, AAC) to `url` over RTMP.
pub fn spawn_ffmpeg_rtmp(url: &str, seconds: u32) -> Child {
    let args = format!(
        "-hide_banner -nostdin -loglevel error -re \
         -f lavfi -i testsrc2=size=320x180:rate=30 \
         -f lavfi -i sine=frequency=440:sample_rate=48000 \
         -c:v libx264 -preset veryfast -tune zerolatency -g 30 -keyint_min 30 \
         -sc_threshold 0 -pix_fmt yuv420p -b:v 300k -c:a aac -b:a 64k -ac 2 \
         -t {seconds} -f flv {url}"
    );
    Command::new("ffmpeg")
        .args(args.split_whitespace())
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
