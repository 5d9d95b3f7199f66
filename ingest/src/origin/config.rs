//! The origin's configuration (`[origin]` in `livepulse.toml`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use livepulse_connectors::ConfigError;
use livepulse_contract::validate::MAX_ID_LEN;
use serde::{Deserialize, Serialize};

/// Shortest accepted stream key and admin token, characters: short secrets
/// can be guessed.
pub const MIN_SECRET_CHARS: usize = 16;
/// Smallest `max_segment_bytes`.
pub const MIN_SEGMENT_BYTES: usize = 64 * 1024;
/// Smallest `max_playlist_bytes`.
pub const MIN_PLAYLIST_BYTES: usize = 4 * 1024;
/// Smallest `max_record_bytes`: always room for the largest request record.
pub const MIN_RECORD_BYTES: usize = 16 * 1024;
/// Largest `max_record_bytes`: a record plus its framing must stay under
/// librdkafka's default `message.max.bytes` (1,000,000).
pub const MAX_RECORD_BYTES: usize = 900 * 1024;
/// Smallest `rtmp_max_message_bytes`: room for a keyframe of a small stream.
pub const MIN_RTMP_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest `rtmp_max_message_bytes`: RTMP message lengths have 24 bits.
pub const MAX_RTMP_MESSAGE_BYTES: usize = (1 << 24) - 1;

/// How the origin listens, which publishers it accepts and what it bounds.
///
/// ```
/// use livepulse_ingest::origin::OriginConfig;
///
/// let cfg: OriginConfig = toml::from_str(r#"
///     admin_token = "adm_0123456789abcdef"
///     max_segments_per_rendition = 10
///
///     [[streams]]
///     key = "sk_0123456789abcdef"
///     stream_id = "speedrun"
///     creator_id = "creator-1"
/// "#).unwrap();
/// cfg.validate().unwrap();
/// assert_eq!(cfg.listen.to_string(), "127.0.0.1:8081");
/// assert_eq!(cfg.rtmp_listen.unwrap().to_string(), "127.0.0.1:1935");
/// assert_eq!(cfg.max_segment_bytes, 32 * 1024 * 1024);
///
/// let no_rtmp: OriginConfig = toml::from_str(r#"rtmp_listen = "off""#).unwrap();
/// assert_eq!(no_rtmp.rtmp_listen, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Address the HTTP server binds (the `livepulse` binary binds it).
    pub listen: SocketAddr,
    /// Stream keys known at start; more are added with the admin API.
    pub streams: Vec<StreamKey>,
    /// Bearer token of the admin API (`/admin/streams`); without one the
    /// admin API answers 404.
    pub admin_token: Option<Secret>,
    /// Largest segment or init upload, bytes.
    pub max_segment_bytes: usize,
    /// Largest playlist upload, bytes.
    pub max_playlist_bytes: usize,
    /// Time an upload may take from its headers to its last byte, ms.
    pub upload_timeout_ms: u64,
    /// Longest pause between two body chunks of an upload, ms.
    pub upload_idle_timeout_ms: u64,
    /// Media segments kept per rendition; older ones are evicted even when
    /// the publisher never deletes them.
    pub max_segments_per_rendition: usize,
    /// Memory all stored objects may take, bytes; beyond it the oldest
    /// segments of the largest streams are evicted.
    pub max_memory_bytes: usize,
    /// A stream with no upload for this long has ended, ms.
    pub stream_idle_timeout_ms: u64,
    /// How long an ended stream stays served before it is removed, ms.
    pub ended_retention_ms: u64,
    /// Playback requests waiting for Kafka at most; beyond it new ones are
    /// dropped and counted.
    pub access_buffer_requests: usize,
    /// How often buffered playback requests are produced, ms.
    pub access_flush_ms: u64,
    /// Largest Kafka record value, bytes; larger batches are split.
    pub max_record_bytes: usize,
    /// How long the broker gets to acknowledge a record before it is
    /// dropped and counted, ms.
    pub delivery_timeout_ms: u64,
    /// Address RTMP publishers connect to
    /// (`rtmp://host:port/live/{stream_key}`), or `"off"`. The `livepulse`
    /// binary binds it and hands the listener to
    /// [`Origin::with_rtmp`](super::Origin::with_rtmp).
    #[serde(with = "optional_addr")]
    pub rtmp_listen: Option<SocketAddr>,
    /// Target duration of segments remuxed from RTMP, ms: a segment closes
    /// on the first keyframe at least this long after it began, so
    /// encoders should send a keyframe at least this often.
    pub rtmp_segment_ms: u64,
    /// RTMP connections served at once; more are closed right away.
    pub rtmp_max_connections: usize,
    /// Largest RTMP audio or video message, bytes; a larger one closes the
    /// connection.
    pub rtmp_max_message_bytes: usize,
    /// An RTMP connection silent this long is closed (its stream ends), ms.
    pub rtmp_idle_timeout_ms: u64,
    /// Where stream keys created and revoked with the admin API are kept
    /// across restarts (JSON, mode `0600`, replaced atomically on every
    /// change). Loaded at start over [`OriginConfig::streams`]: a revoked
    /// configured key stays revoked; a created key whose stream has a
    /// configured key again is dropped (the config wins). Without it,
    /// admin changes last until the origin stops.
    pub keys_file: Option<PathBuf>,
    /// A directory for segments the memory bound would evict while a
    /// playlist still lists them: they are served from disk instead until
    /// they leave the playlist, the window or the store. Off without it.
    pub spill_dir: Option<PathBuf>,
    /// Bytes the spill directory may hold; when full, its oldest segments
    /// make room for newer ones.
    pub spill_max_bytes: usize,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` is believed:
    /// a request from one of them is counted in the network cohort of the
    /// right-most address in that header that is not a trusted proxy.
    #[serde(with = "cidrs")]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            streams: Vec::new(),
            admin_token: None,
            max_segment_bytes: 32 * 1024 * 1024,
            max_playlist_bytes: 256 * 1024,
            upload_timeout_ms: 10_000,
            upload_idle_timeout_ms: 2_000,
            max_segments_per_rendition: 30,
            max_memory_bytes: 1024 * 1024 * 1024,
            stream_idle_timeout_ms: 30_000,
            ended_retention_ms: 300_000,
            access_buffer_requests: 65_536,
            access_flush_ms: 200,
            max_record_bytes: 512 * 1024,
            delivery_timeout_ms: 10_000,
            rtmp_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 1935))),
            rtmp_segment_ms: 1000,
            rtmp_max_connections: 64,
            rtmp_max_message_bytes: 4 * 1024 * 1024,
            rtmp_idle_timeout_ms: 10_000,
            keys_file: None,
            spill_dir: None,
            spill_max_bytes: 4 * 1024 * 1024 * 1024,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `trusted_proxies` as written: CIDRs (`10.0.0.0/8`) or single addresses.
mod cidrs {
    use std::net::IpAddr;

    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        nets: &[IpNet],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        de::Error::custom(format!(
                            "`{text}` is neither a CIDR (10.0.0.0/8) nor an IP address"
                        ))
                    })
            })
            .collect()
    }
}

/// `rtmp_listen` as written in files and the environment: an address or
/// `"off"` (TOML has no null).
mod optional_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        addr: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => serializer.collect_str(addr),
            None => serializer.serialize_str("off"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "off" {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            de::Error::custom(format!(
                "`{text}` is neither an address (host:port) nor \"off\""
            ))
        })
    }
}

/// A secret (stream key or admin token) whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A publisher's stream key and the stream it publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamKey {
    /// The secret in the publish URL `/live/{key}/...`: at least
    /// [`MIN_SECRET_CHARS`] of `[A-Za-z0-9_.-]`.
    pub key: Secret,
    /// The stream it publishes, as viewers address it (`/hls/{stream_id}/`).
    pub stream_id: String,
    /// The creator who owns the stream.
    pub creator_id: String,
}

/// Why a stream id, creator id or key is not acceptable.
pub(crate) fn check_stream_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("must be 1..={MAX_ID_LEN} bytes"));
    }
    if !id.bytes().all(is_name_byte) || id.bytes().all(|b| b == b'.') {
        return Err("must be made of [A-Za-z0-9_.-] and not only dots".into());
    }
    Ok(())
}

pub(crate) fn check_creator_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("must be 1..={MAX_ID_LEN} bytes, not blank"));
    }
    Ok(())
}

pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.len() < MIN_SECRET_CHARS || key.len() > MAX_ID_LEN {
        return Err(format!(
            "must be {MIN_SECRET_CHARS}..={MAX_ID_LEN} characters"
        ));
    }
    // The key is a URL path segment, so it must not need escaping.
    if !key.bytes().all(is_name_byte) {
        return Err("must be made of [A-Za-z0-9_.-]".into());
    }
    Ok(())
}

/// The bytes allowed in stream ids, keys, rendition folders and object names.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

impl OriginConfig {
    /// Rejects settings the origin cannot run with, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem: String| ConfigError {
            section: "origin",
            field,
            problem,
        };
        for (i, stream) in self.streams.iter().enumerate() {
            check_key(stream.key.expose())
                .map_err(|p| err("streams", format!("entry {i}: key {p}")))?;
            check_stream_id(&stream.stream_id)
                .map_err(|p| err("streams", format!("entry {i}: stream_id {p}")))?;
            check_creator_id(&stream.creator_id)
                .map_err(|p| err("streams", format!("entry {i}: creator_id {p}")))?;
            let earlier = &self.streams[..i];
            if earlier.iter().any(|o| o.key == stream.key) {
                return Err(err("streams", format!("entry {i}: key is used twice")));
            }
            if earlier.iter().any(|o| o.stream_id == stream.stream_id) {
                return Err(err(
                    "streams",
                    format!("entry {i}: stream_id `{}` is used twice", stream.stream_id),
                ));
            }
        }
        if let Some(token) = &self.admin_token {
            let token = token.expose();
            if token.chars().count() < MIN_SECRET_CHARS {
                return Err(err(
                    "admin_token",
                    format!("is shorter than {MIN_SECRET_CHARS} characters"),
                ));
            }
            // A Bearer token must be a single header token.
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err(
                    "admin_token",
                    "must be printable ASCII without spaces".into(),
                ));
            }
        }
        if self.max_segment_bytes < MIN_SEGMENT_BYTES {
            return Err(err(
                "max_segment_bytes",
                format!("must be at least {MIN_SEGMENT_BYTES}"),
            ));
        }
        if self.max_playlist_bytes < MIN_PLAYLIST_BYTES {
            return Err(err(
                "max_playlist_bytes",
                format!("must be at least {MIN_PLAYLIST_BYTES}"),
            ));
        }
        if !(100..=600_000).contains(&self.upload_timeout_ms) {
            return Err(err("upload_timeout_ms", "must be 100..=600000".into()));
        }
        if !(50..=self.upload_timeout_ms).contains(&self.upload_idle_timeout_ms) {
            return Err(err(
                "upload_idle_timeout_ms",
                "must be 50..=upload_timeout_ms".into(),
            ));
        }
        if !(2..=10_000).contains(&self.max_segments_per_rendition) {
            return Err(err(
                "max_segments_per_rendition",
                "must be 2..=10000".into(),
            ));
        }
        // Room for a few whole segments, so an upload never evicts itself.
        let floor = self.max_segment_bytes.saturating_mul(4);
        if self.max_memory_bytes < floor {
            return Err(err(
                "max_memory_bytes",
                format!("must be at least 4 x max_segment_bytes ({floor})"),
            ));
        }
        if !(1_000..=86_400_000).contains(&self.stream_idle_timeout_ms) {
            return Err(err(
                "stream_idle_timeout_ms",
                "must be 1000..=86400000".into(),
            ));
        }
        if self.ended_retention_ms > 86_400_000 {
            return Err(err("ended_retention_ms", "must be at most 86400000".into()));
        }
        if self.access_buffer_requests == 0 {
            return Err(err("access_buffer_requests", "must be at least 1".into()));
        }
        if !(10..=60_000).contains(&self.access_flush_ms) {
            return Err(err("access_flush_ms", "must be 10..=60000".into()));
        }
        if !(MIN_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&self.max_record_bytes) {
            return Err(err(
                "max_record_bytes",
                format!("must be {MIN_RECORD_BYTES}..={MAX_RECORD_BYTES}"),
            ));
        }
        if !(100..=600_000).contains(&self.delivery_timeout_ms) {
            return Err(err("delivery_timeout_ms", "must be 100..=600000".into()));
        }
        self.validate_rtmp()
    }

    fn validate_rtmp(&self) -> Result<(), ConfigError> {
        let err = |field, problem: String| ConfigError {
            section: "origin",
            field,
            problem,
        };
        if self.rtmp_listen == Some(self.listen) {
            return Err(err("rtmp_listen", "must differ from listen".into()));
        }
        if !(200..=30_000).contains(&self.rtmp_segment_ms) {
            return Err(err("rtmp_segment_ms", "must be 200..=30000".into()));
        }
        if !(1..=10_000).contains(&self.rtmp_max_connections) {
            return Err(err("rtmp_max_connections", "must be 1..=10000".into()));
        }
        // A message beyond max_segment_bytes cannot fit a segment either:
        // the segmenter refuses it, so the two limits need no order.
        let sizes = MIN_RTMP_MESSAGE_BYTES..=MAX_RTMP_MESSAGE_BYTES;
        if !sizes.contains(&self.rtmp_max_message_bytes) {
            return Err(err(
                "rtmp_max_message_bytes",
                format!("must be {MIN_RTMP_MESSAGE_BYTES}..={MAX_RTMP_MESSAGE_BYTES}"),
            ));
        }
        if !(1_000..=600_000).contains(&self.rtmp_idle_timeout_ms) {
            return Err(err("rtmp_idle_timeout_ms", "must be 1000..=600000".into()));
        }
        self.validate_files()
    }

    fn validate_files(&self) -> Result<(), ConfigError> {
        let err = |field, problem: String| ConfigError {
            section: "origin",
            field,
            problem,
        };
        if self
            .keys_file
            .as_ref()
            .is_some_and(|path| path.file_name().is_none())
        {
            return Err(err("keys_file", "must name a file".into()));
        }
        if self
            .spill_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(err("spill_dir", "must name a directory".into()));
        }
        if self.spill_dir.is_some() && self.spill_max_bytes < self.max_segment_bytes {
            return Err(err(
                "spill_max_bytes",
                format!(
                    "must be at least max_segment_bytes ({})",
                    self.max_segment_bytes
                ),
            ));
        }
        Ok(())
    }

    /// [`OriginConfig::upload_timeout_ms`] as a duration.
    pub fn upload_timeout(&self) -> Duration {
        Duration::from_millis(self.upload_timeout_ms)
    }

    /// [`OriginConfig::upload_idle_timeout_ms`] as a duration.
    pub fn upload_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.upload_idle_timeout_ms)
    }

    /// [`OriginConfig::rtmp_idle_timeout_ms`] as a duration.
    pub fn rtmp_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.rtmp_idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_stream(key: &str, stream_id: &str) -> OriginConfig {
        OriginConfig {
            streams: vec![StreamKey {
                key: key.into(),
                stream_id: stream_id.into(),
                creator_id: "c1".into(),
            }],
            ..OriginConfig::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_streams_optional() {
        let cfg: OriginConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, OriginConfig::default());
        cfg.validate().unwrap();
        assert_eq!(cfg.upload_timeout(), Duration::from_secs(10));
        assert_eq!(cfg.upload_idle_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut cfg = with_stream("sk_0123456789abcdef", "s1");
        cfg.admin_token = Some("adm_0123456789abcdef".into());
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn names_what_is_wrong() {
        let problem = |cfg: OriginConfig| cfg.validate().unwrap_err().to_string();
        assert_eq!(
            problem(with_stream("short", "s1")),
            "invalid origin config: `streams` entry 0: key must be 16..=128 characters"
        );
        assert_eq!(
            problem(with_stream("sk_0123456789abcdef/", "s1")),
            "invalid origin config: `streams` entry 0: key must be made of [A-Za-z0-9_.-]"
        );
        assert_eq!(
            problem(with_stream("sk_0123456789abcdef", "../s1")),
            "invalid origin config: `streams` entry 0: stream_id must be made of [A-Za-z0-9_.-] and not only dots"
        );
        assert_eq!(
            problem(with_stream("sk_0123456789abcdef", "..")),
            "invalid origin config: `streams` entry 0: stream_id must be made of [A-Za-z0-9_.-] and not only dots"
        );
        let mut twice = with_stream("sk_0123456789abcdef", "s1");
        twice.streams.push(StreamKey {
            key: "sk_0123456789abcdeX".into(),
            stream_id: "s1".into(),
            creator_id: "c2".into(),
        });
        assert_eq!(
            problem(twice),
            "invalid origin config: `streams` entry 1: stream_id `s1` is used twice"
        );
        let token = OriginConfig {
            admin_token: Some("short".into()),
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(token),
            "invalid origin config: `admin_token` is shorter than 16 characters"
        );
        let memory = OriginConfig {
            max_memory_bytes: 32 * 1024 * 1024,
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(memory),
            "invalid origin config: `max_memory_bytes` must be at least 4 x max_segment_bytes (134217728)"
        );
        let idle = OriginConfig {
            upload_idle_timeout_ms: 10_001,
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(idle),
            "invalid origin config: `upload_idle_timeout_ms` must be 50..=upload_timeout_ms"
        );
    }

    #[test]
    fn rtmp_settings_are_checked_and_can_be_off() {
        let problem = |cfg: OriginConfig| cfg.validate().unwrap_err().to_string();
        let same = OriginConfig {
            rtmp_listen: Some(OriginConfig::default().listen),
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(same),
            "invalid origin config: `rtmp_listen` must differ from listen"
        );
        let message = OriginConfig {
            rtmp_max_message_bytes: 1024,
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(message),
            "invalid origin config: `rtmp_max_message_bytes` must be 65536..=16777215"
        );
        let segment = OriginConfig {
            rtmp_segment_ms: 100,
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(segment),
            "invalid origin config: `rtmp_segment_ms` must be 200..=30000"
        );

        let off: OriginConfig = toml::from_str(r#"rtmp_listen = "off""#).unwrap();
        assert_eq!(off.rtmp_listen, None);
        off.validate().unwrap();
        let text = toml::to_string(&off).unwrap();
        assert!(text.contains(r#"rtmp_listen = "off""#), "{text}");
        assert_eq!(toml::from_str::<OriginConfig>(&text).unwrap(), off);
        let bad = toml::from_str::<OriginConfig>(r#"rtmp_listen = "nowhere""#).unwrap_err();
        assert!(bad.to_string().contains("neither an address"), "{bad}");
    }

    #[test]
    fn files_spill_and_proxies_are_checked() {
        let cfg: OriginConfig = toml::from_str(
            r#"
            keys_file = "/var/lib/livepulse/stream-keys.json"
            spill_dir = "/var/cache/livepulse/spill"
            spill_max_bytes = 1073741824
            trusted_proxies = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        let shown: Vec<String> = cfg
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<OriginConfig>(&text).unwrap(), cfg);
        assert_eq!(OriginConfig::default().spill_dir, None);

        let bad = toml::from_str::<OriginConfig>(r#"trusted_proxies = ["10.0.0.0/33"]"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("`10.0.0.0/33` is neither a CIDR (10.0.0.0/8) nor an IP address"),
        );
        let problem = |cfg: OriginConfig| cfg.validate().unwrap_err().to_string();
        let small = OriginConfig {
            spill_dir: Some("spill".into()),
            spill_max_bytes: 1024,
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(small),
            "invalid origin config: `spill_max_bytes` must be at least max_segment_bytes (33554432)"
        );
        let dir = OriginConfig {
            keys_file: Some("/".into()),
            ..OriginConfig::default()
        };
        assert_eq!(
            problem(dir),
            "invalid origin config: `keys_file` must name a file"
        );
    }
}
