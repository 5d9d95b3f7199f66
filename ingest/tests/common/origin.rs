//! Shared by the origin's integration tests: an origin served on loopback,
//! raw HTTP for what `reqwest` refuses to send (`..`, stalls, chunked
//! uploads), ffmpeg runs, and readers of the origin's Kafka topics.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use arrow_array::RecordBatch;
use livepulse_connectors::kafka::{KafkaConfig, group_consumer};
use livepulse_contract::arrow::{events_of, requests_of};
use livepulse_contract::playback::PlaybackRequest;
use livepulse_contract::record::{self, Payload};
use livepulse_contract::{Event, Kind, Limits, topics};
use livepulse_ingest::origin::{Origin, OriginConfig, OriginError, StreamKey};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The stream key of [`STREAM`].
pub const KEY: &str = "sk_test0123456789abcdef";
/// The stream [`KEY`] publishes.
pub const STREAM: &str = "speedrun";
/// Its creator.
pub const CREATOR: &str = "creator-1";
/// The admin token of [`config`].
pub const ADMIN: &str = "adm_test0123456789abcdef";

/// An origin config knowing [`KEY`], with the admin API on and a quick
/// request log.
pub fn config() -> OriginConfig {
    OriginConfig {
        streams: vec![StreamKey {
            key: KEY.into(),
            stream_id: STREAM.into(),
            creator_id: CREATOR.into(),
        }],
        admin_token: Some(ADMIN.into()),
        access_flush_ms: 50,
        delivery_timeout_ms: 5000,
        ..OriginConfig::default()
    }
}

/// An origin served on a free loopback port.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The RTMP listener's address, when the origin has one.
    pub rtmp: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), OriginError>>,
}

impl Running {
    pub async fn start(cfg: OriginConfig, kafka: &KafkaConfig) -> Self {
        Self::serve(Origin::new(cfg, kafka).unwrap(), None).await
    }

    /// Serves `origin` over HTTP on a free port; `rtmp` is the address of
    /// the RTMP listener it was given, if any.
    pub async fn serve(origin: Origin, rtmp: Option<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(origin.serve(listener, async {
            let _ = rx.await;
        }));
        Self {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            rtmp,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `PUT` with a `Content-Length` body.
    pub async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .put(self.url(path))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// `GET` answering 200, its body.
    pub async fn get_ok(&self, path: &str) -> (String, Vec<u8>) {
        let response = self.get(path).await;
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (content_type, response.bytes().await.unwrap().to_vec())
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

/// Sends `request` as is on a new connection and reads the answer to its
/// end (the request should say `Connection: close`): status and body.
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

/// Reads one response to the end of the connection.
pub async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("no answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// A request as ffmpeg sends it: `Transfer-Encoding: chunked`, no
/// `Content-Type`, the body in chunks.
pub fn chunked(method: &str, path: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: origin\r\nUser-Agent: Lavf/59.27.100\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The error text of an `{"error": "..."}` answer body.
pub fn error_text(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    value["error"].as_str().unwrap().to_owned()
}

/// Status and error text of a `reqwest` answer.
pub async fn refused(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, error_text(&response.text().await.unwrap()))
}

/// A live synthetic source (`-re`, test pattern and tone) for `seconds`.
pub(super) fn source(seconds: u32) -> Vec<String> {
    let mut args = words(
        "-hide_banner -nostdin -loglevel error -re \
         -f lavfi -i testsrc2=size=320x180:rate=30 \
         -f lavfi -i sine=frequency=440:sample_rate=48000",
    );
    args.extend(["-t".to_owned(), seconds.to_string()]);
    args
}

/// x264 with one-second GOPs, so segments close every second, and AAC.
pub(super) const ENCODE: &str = "-c:v libx264 -preset veryfast -tune zerolatency -g 30 -keyint_min 30 \
    -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 64k -ac 2";

/// The whitespace-separated words of `text`, as arguments.
pub(super) fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// ffmpeg pushing two fMP4 renditions (`180p`, `90p`) and a master
/// playlist to `/live/{key}/` for `seconds`.
pub async fn ffmpeg_fmp4(base: &str, key: &str, seconds: u32) {
    let mut args = source(seconds);
    args.extend(words("-map 0:v -map 1:a -map 0:v -map 1:a"));
    args.extend(words(ENCODE));
    args.extend(words(
        "-b:v:0 300k -s:v:1 160x90 -b:v:1 100k -f hls -hls_time 1 -hls_list_size 4 \
         -hls_flags delete_segments -master_pl_name master.m3u8 -hls_segment_type fmp4 \
         -method PUT -http_persistent 1",
    ));
    args.push("-var_stream_map".into());
    args.push("v:0,a:0,name:180p v:1,a:1,name:90p".into());
    args.push("-hls_segment_filename".into());
    args.push(format!("{base}/live/{key}/%v/seg%05d.m4s"));
    args.push(format!("{base}/live/{key}/%v/index.m3u8"));
    run_ffmpeg(args).await;
}

/// ffmpeg pushing one MPEG-TS rendition to `/live/{key}/index.m3u8`, with
/// absolute segment URLs (`-hls_base_url`) into the publish path, a
/// two-segment window and deletes.
pub async fn ffmpeg_ts(base: &str, key: &str, seconds: u32) {
    let mut args = source(seconds);
    args.extend(words(ENCODE));
    args.extend(words(
        "-b:v 300k -f hls -hls_time 1 -hls_list_size 2 -hls_flags delete_segments -method PUT",
    ));
    args.push("-hls_base_url".into());
    args.push(format!("{base}/live/{key}/"));
    args.push(format!("{base}/live/{key}/index.m3u8"));
    run_ffmpeg(args).await;
}

async fn run_ffmpeg(args: Vec<String>) {
    let output = Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("ffmpeg is not installed: run dev/setup");
    assert!(
        output.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // ffmpeg does not wait for the answer to its last uploads: give the
    // origin a moment to finish them.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Reads `topic` from the beginning until `done` holds for what was read
/// (or 30 s passed): the records' partitions and values.
pub async fn read_topic(
    kafka: &KafkaConfig,
    topic: topics::Topic,
    done: impl Fn(&[(i32, Vec<u8>)]) -> bool,
) -> Vec<(i32, Vec<u8>)> {
    let consumer = group_consumer(kafka, &format!("test-{}", uuid::Uuid::new_v4())).unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..topic.partitions {
        assignment
            .add_partition_offset(topic.name, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&out) {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: condition not met with {} records",
                    topic.name,
                    out.len()
                )
            });
        match message {
            Ok(m) => out.push((m.partition(), m.payload().unwrap().to_vec())),
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(err) => panic!("consume failed: {err}"),
        }
    }
    out
}

/// The rows of columnar records of `payload`, each checked to be in the
/// partition of its stream.
fn rows_of<T>(
    records: &[(i32, Vec<u8>)],
    payload: Payload,
    read: impl Fn(&RecordBatch) -> Vec<T>,
    stream_of: impl Fn(&T) -> &str,
) -> Vec<T> {
    records
        .iter()
        .flat_map(|(partition, value)| {
            let rows = read(&record::decode(payload, value).unwrap());
            for row in &rows {
                let stream = stream_of(row);
                assert_eq!(
                    *partition,
                    topics::partition_for(stream, topics::STREAM_PARTITIONS),
                    "{stream} outside its partition"
                );
            }
            rows
        })
        .collect()
}

fn requests(records: &[(i32, Vec<u8>)]) -> Vec<PlaybackRequest> {
    rows_of(
        records,
        Payload::PlaybackRequests,
        |b| requests_of(b).unwrap(),
        |r| &r.stream_id,
    )
}

fn events(records: &[(i32, Vec<u8>)]) -> Vec<(i64, Event<'static>)> {
    rows_of(
        records,
        Payload::Events,
        |b| events_of(b).unwrap(),
        |(_, e)| &e.stream_id,
    )
}

/// Playback requests in the request log until `done` holds, with the raw
/// record values.
pub async fn playback_requests(
    kafka: &KafkaConfig,
    done: impl Fn(&[PlaybackRequest]) -> bool,
) -> (Vec<PlaybackRequest>, Vec<Vec<u8>>) {
    let records = read_topic(kafka, topics::PLAYBACK_REQUESTS, |r| done(&requests(r))).await;
    let raw = records.iter().map(|(_, v)| v.clone()).collect();
    (requests(&records), raw)
}

/// `(stream_id, event, creator_id)` of the stream topic's lifecycle
/// events (`start`, `end`) until `done` holds.
pub async fn stream_events(
    kafka: &KafkaConfig,
    done: impl Fn(&[(String, String, String)]) -> bool,
) -> Vec<(String, String, String)> {
    let decode = |records: &[(i32, Vec<u8>)]| -> Vec<(String, String, String)> {
        events(records)
            .into_iter()
            .filter(|(_, e)| e.event != Some(Kind::Health))
            .map(|(_, e)| {
                let event = e.event.map(|k| k.as_str()).unwrap_or_default();
                let creator = e.creator_id.as_deref().unwrap_or_default();
                (
                    e.stream_id.to_string(),
                    event.to_owned(),
                    creator.to_owned(),
                )
            })
            .collect()
    };
    let records = read_topic(kafka, topics::STREAM_EVENTS, |r| done(&decode(r))).await;
    decode(&records)
}

/// A `stream`/`health` event as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub rendition: Option<String>,
    pub segment_ms: u32,
    pub bitrate_kbps: u32,
    pub frame_rate: Option<f64>,
    pub keyframe_interval_ms: Option<u32>,
}

/// [`STREAM`]'s health events, in the order produced, until `done` holds;
/// each one passed the contract's validation.
pub async fn health_events(kafka: &KafkaConfig, done: impl Fn(&[Health]) -> bool) -> Vec<Health> {
    let decode = |records: &[(i32, Vec<u8>)]| -> Vec<Health> {
        events(records)
            .into_iter()
            .filter(|(_, e)| e.event == Some(Kind::Health))
            .map(|(received_ms, e)| {
                assert_eq!(&*e.stream_id, STREAM);
                assert_eq!(e.creator_id.as_deref(), Some(CREATOR));
                let valid = e.validate(received_ms, &Limits::default());
                assert_eq!(valid, Ok(()), "{e:?}");
                Health {
                    rendition: e.rendition.as_deref().map(str::to_owned),
                    segment_ms: e.segment_ms.unwrap(),
                    bitrate_kbps: e.bitrate_kbps.unwrap(),
                    frame_rate: e.frame_rate,
                    keyframe_interval_ms: e.keyframe_interval_ms,
                }
            })
            .collect()
    };
    let records = read_topic(kafka, topics::STREAM_EVENTS, |r| done(&decode(r))).await;
    decode(&records)
}

/// The `#EXTINF` durations of a media playlist, ms, and how many segments
/// the stream had in all (its media sequence plus those listed).
pub fn extinf_ms(playlist: &str) -> (Vec<u64>, usize) {
    let mut first = 0;
    let mut listed = Vec::new();
    for line in playlist.lines() {
        if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            first = n.trim().parse().unwrap();
        } else if let Some(info) = line.strip_prefix("#EXTINF:") {
            let seconds: f64 = info.split(',').next().unwrap().parse().unwrap();
            listed.push((seconds * 1000.0).round() as u64);
        }
    }
    let total = first + listed.len();
    (listed, total)
}

/// Checks a rendition's health events against what the encoder was told
/// ([`ENCODE`]: 30 fps, a keyframe a second) and against its final
/// playlist: one event per segment, in order, the last ones with the
/// playlist's `#EXTINF`s, and a bit rate in `kbps`.
pub fn check_health(events: &[&Health], playlist: &str, kbps: std::ops::RangeInclusive<u32>) {
    let (listed, total) = extinf_ms(playlist);
    assert_eq!(events.len(), total, "one per segment: {events:?}");
    let tail: Vec<u64> = events[total - listed.len()..]
        .iter()
        .map(|h| u64::from(h.segment_ms))
        .collect();
    assert_eq!(tail, listed, "segment_ms is the EXTINF: {playlist}");
    // The last segment may be cut short by the end of the stream.
    for health in &events[..total - 1] {
        let fps = health.frame_rate.unwrap();
        assert!((fps - 30.0).abs() <= 0.5, "{health:?}");
        let gop = health.keyframe_interval_ms.unwrap();
        assert!(gop.abs_diff(1000) <= 50, "{health:?}");
        assert!(kbps.contains(&health.bitrate_kbps), "{health:?}");
    }
    assert!(events[total - 1].frame_rate.is_some());
}

/// `(stream_id, "start" | "end", creator)`.
pub fn lifecycle(stream: &str, event: &str, creator: &str) -> (String, String, String) {
    (stream.to_owned(), event.to_owned(), creator.to_owned())
}

/// Asserts that the stream topic holds exactly [`STREAM`]'s start and end.
pub async fn started_and_ended(kafka: &KafkaConfig) {
    let events = stream_events(kafka, |e| e.len() >= 2).await;
    assert_eq!(
        events,
        [
            lifecycle(STREAM, "start", CREATOR),
            lifecycle(STREAM, "end", CREATOR)
        ]
    );
}
