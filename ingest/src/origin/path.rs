//! Object paths inside a stream (`name` or `rendition/name`), validated
//! before anything is stored or looked up.

use std::fmt;

use livepulse_contract::playback::ObjectKind;
use thiserror::Error;

use super::config::is_name_byte;

/// Longest path segment (rendition folder or object name), bytes.
pub(crate) const MAX_SEGMENT_BYTES: usize = 128;

/// The object types the origin stores, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extension {
    /// `.m3u8`: a playlist.
    M3u8,
    /// `.ts`: an MPEG-TS segment.
    Ts,
    /// `.m4s`: an fMP4 media segment.
    M4s,
    /// `.mp4`: an fMP4 initialization segment (ffmpeg's `init_0.mp4`).
    Mp4,
    /// `.aac`: a packed audio segment.
    Aac,
    /// `.vtt`: a WebVTT subtitle segment.
    Vtt,
}

impl Extension {
    fn parse(ext: &str) -> Option<Self> {
        Some(match ext {
            "m3u8" => Self::M3u8,
            "ts" => Self::Ts,
            "m4s" => Self::M4s,
            "mp4" => Self::Mp4,
            "aac" => Self::Aac,
            "vtt" => Self::Vtt,
            _ => return None,
        })
    }

    /// What a request for such an object asks for.
    pub(crate) fn kind(self) -> ObjectKind {
        match self {
            Self::M3u8 => ObjectKind::Playlist,
            Self::Mp4 => ObjectKind::Init,
            Self::Ts | Self::M4s | Self::Aac | Self::Vtt => ObjectKind::Segment,
        }
    }

    /// The `Content-Type` it is served with.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::M3u8 => "application/vnd.apple.mpegurl",
            Self::Ts => "video/mp2t",
            Self::M4s => "video/iso.segment",
            Self::Mp4 => "video/mp4",
            Self::Aac => "audio/aac",
            Self::Vtt => "text/vtt",
        }
    }
}

/// Why a path is refused (400). The `Display` text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PathError {
    /// Nothing after the stream key or id.
    #[error("missing object path")]
    Empty,
    /// `//` or a trailing `/`.
    #[error("empty path segment in `{0}`")]
    EmptySegment(String),
    /// A `.` or `..` segment.
    #[error("path traversal is not allowed: `{0}`")]
    Traversal(String),
    /// A `%` escape: names never need one, and decoding could smuggle `..`.
    #[error("percent-encoded path segment `{0}` is not allowed")]
    Encoded(String),
    /// Bytes outside `[A-Za-z0-9_.-]`.
    #[error("path segment `{0}` has characters outside [A-Za-z0-9_.-]")]
    BadCharacters(String),
    /// A segment longer than [`MAX_SEGMENT_BYTES`].
    #[error("path segment longer than {MAX_SEGMENT_BYTES} bytes")]
    TooLong,
    /// More than `rendition/name`.
    #[error("at most one folder level is allowed: `rendition/name`")]
    TooDeep,
    /// No name before the extension, or an extension the origin does not store.
    #[error("object name `{0}` must be <name>.<m3u8|ts|m4s|mp4|aac|vtt>")]
    BadName(String),
}

/// A validated object path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectPath {
    /// The folder, e.g. `720p`; `None` at the stream's root.
    pub rendition: Option<String>,
    /// The file name, e.g. `seg00001.m4s`.
    pub name: String,
    /// Its extension.
    pub ext: Extension,
}

impl ObjectPath {
    /// Parses the raw (still percent-encoded) path after `/live/{key}/` or
    /// `/hls/{stream_id}/`.
    pub(crate) fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        let segments: Vec<&str> = raw.split('/').collect();
        for segment in &segments {
            check_segment(segment, raw)?;
        }
        let (rendition, name) = match segments.as_slice() {
            [name] => (None, *name),
            [folder, name] => (Some((*folder).to_owned()), *name),
            _ => return Err(PathError::TooDeep),
        };
        let bad_name = || PathError::BadName(name.to_owned());
        let (stem, ext) = name.rsplit_once('.').ok_or_else(bad_name)?;
        if stem.is_empty() {
            return Err(bad_name());
        }
        let ext = Extension::parse(ext).ok_or_else(bad_name)?;
        Ok(Self {
            rendition,
            name: name.to_owned(),
            ext,
        })
    }

    /// The object of this stream that a playlist in `folder` names with
    /// `uri` (query and fragment aside): a sibling (`s1.ts`), from the
    /// root an object in a folder (`720p/s1.ts`), from a folder one at the
    /// root or in another folder (`../s1.ts`, `../audio/a1.aac`). `None`
    /// for absolute URIs and anything that is no object path.
    pub(crate) fn resolve(folder: Option<&str>, uri: &str) -> Option<Self> {
        let uri = uri.split(['?', '#']).next().unwrap_or_default();
        let parts: Vec<&str> = uri.split('/').collect();
        let raw = match (folder, parts.as_slice()) {
            (Some(folder), [name]) => format!("{folder}/{name}"),
            (None, [name]) | (Some(_), ["..", name]) => (*name).to_owned(),
            (None, [sub, name]) | (Some(_), ["..", sub, name]) => format!("{sub}/{name}"),
            _ => return None,
        };
        Self::parse(&raw).ok()
    }
}

fn check_segment(segment: &str, raw: &str) -> Result<(), PathError> {
    let shown = || segment.chars().take(MAX_SEGMENT_BYTES).collect::<String>();
    if segment.is_empty() {
        return Err(PathError::EmptySegment(
            raw.chars().take(MAX_SEGMENT_BYTES).collect(),
        ));
    }
    if segment == "." || segment == ".." {
        return Err(PathError::Traversal(segment.to_owned()));
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(PathError::TooLong);
    }
    if segment.contains('%') {
        return Err(PathError::Encoded(shown()));
    }
    if !segment.bytes().all(is_name_byte) {
        return Err(PathError::BadCharacters(shown()));
    }
    Ok(())
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rendition {
            Some(folder) => write!(f, "{folder}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> ObjectPath {
        ObjectPath::parse(raw).unwrap()
    }

    fn err(raw: &str) -> String {
        ObjectPath::parse(raw).unwrap_err().to_string()
    }

    #[test]
    fn accepts_what_ffmpeg_writes() {
        let p = ok("720p/seg00001.m4s");
        assert_eq!(p.rendition.as_deref(), Some("720p"));
        assert_eq!(p.name, "seg00001.m4s");
        assert_eq!(p.ext, Extension::M4s);
        assert_eq!(p.to_string(), "720p/seg00001.m4s");
        assert_eq!(ok("720p/init_0.mp4").ext.kind(), ObjectKind::Init);
        assert_eq!(ok("master.m3u8").rendition, None);
        assert_eq!(ok("index12.ts").ext.content_type(), "video/mp2t");
        assert_eq!(ok("a-b_c.d/x.y.vtt").ext, Extension::Vtt);
    }

    #[test]
    fn resolves_what_playlists_list() {
        let resolve = |folder, uri| ObjectPath::resolve(folder, uri).map(|p| p.to_string());
        assert_eq!(resolve(Some("720p"), "s1.m4s"), Some("720p/s1.m4s".into()));
        assert_eq!(
            resolve(Some("720p"), "s1.m4s?t=1#x"),
            Some("720p/s1.m4s".into())
        );
        assert_eq!(
            resolve(Some("720p"), "../audio/a1.aac"),
            Some("audio/a1.aac".into())
        );
        assert_eq!(resolve(Some("720p"), "../a1.ts"), Some("a1.ts".into()));
        assert_eq!(resolve(None, "index3.ts"), Some("index3.ts".into()));
        assert_eq!(resolve(None, "720p/s1.m4s"), Some("720p/s1.m4s".into()));
        for (folder, uri) in [
            (None, "http://cdn.example/s1.ts"),
            (None, "/hls/s/s1.ts"),
            (None, "../s1.ts"),
            (Some("720p"), "../../s1.ts"),
            (Some("720p"), "a/b.ts"),
            (None, "s1.exe"),
        ] {
            assert_eq!(resolve(folder, uri), None, "{uri}");
        }
    }

    #[test]
    fn names_the_problem() {
        assert_eq!(err(""), "missing object path");
        assert_eq!(err("../x.ts"), "path traversal is not allowed: `..`");
        assert_eq!(
            err("720p/../../x.ts"),
            "path traversal is not allowed: `..`"
        );
        assert_eq!(err("./x.ts"), "path traversal is not allowed: `.`");
        assert_eq!(
            err("%2e%2e/x.ts"),
            "percent-encoded path segment `%2e%2e` is not allowed"
        );
        assert_eq!(err("a//x.ts"), "empty path segment in `a//x.ts`");
        assert_eq!(err("a/"), "empty path segment in `a/`");
        assert_eq!(
            err("a b/x.ts"),
            "path segment `a b` has characters outside [A-Za-z0-9_.-]"
        );
        assert_eq!(
            err("a/b/x.ts"),
            "at most one folder level is allowed: `rendition/name`"
        );
        assert_eq!(
            err("x.exe"),
            "object name `x.exe` must be <name>.<m3u8|ts|m4s|mp4|aac|vtt>"
        );
        assert_eq!(
            err("720p/.m3u8"),
            "object name `.m3u8` must be <name>.<m3u8|ts|m4s|mp4|aac|vtt>"
        );
        assert_eq!(
            err("noext"),
            "object name `noext` must be <name>.<m3u8|ts|m4s|mp4|aac|vtt>"
        );
        assert_eq!(
            err(&format!("{}.ts", "a".repeat(200))),
            "path segment longer than 128 bytes"
        );
    }
}
