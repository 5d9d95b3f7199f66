//! Playlist checks before a playlist is stored: it must be a well-formed
//! master or media playlist (RFC 8216, the parts players rely on), and the
//! stream key must not survive into what viewers get. URIs pointing into the
//! publish path (`.../live/{key}/...`, as ffmpeg writes with
//! `-hls_base_url`) become relative; ffmpeg 5.1 otherwise writes relative
//! URIs already.

use bytes::Bytes;
use thiserror::Error;

/// Tags whose `URI="..."` attribute names another object.
const URI_TAGS: [&str; 9] = [
    "#EXT-X-MAP:",
    "#EXT-X-MEDIA:",
    "#EXT-X-KEY:",
    "#EXT-X-SESSION-KEY:",
    "#EXT-X-I-FRAME-STREAM-INF:",
    "#EXT-X-PART:",
    "#EXT-X-PRELOAD-HINT:",
    "#EXT-X-RENDITION-REPORT:",
    "#EXT-X-SESSION-DATA:",
];

/// A playlist that passed the checks, as it will be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Playlist {
    /// The body with publish URLs made relative.
    pub body: Bytes,
    /// A master playlist (variant streams) rather than a media playlist.
    pub master: bool,
    /// A media playlist with `#EXT-X-ENDLIST`: the rendition is complete.
    pub ended: bool,
    /// A media playlist's segments, in order.
    pub segments: Vec<Listed>,
}

/// A segment a media playlist lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its URI as served.
    pub uri: String,
    /// Its `#EXTINF` duration, ms.
    pub duration_ms: u64,
    /// Where its `#EXTINF` line starts in the served body.
    pub start: usize,
    /// Where its URI line ends in the served body: the playlist cut here
    /// lists it last.
    pub end: usize,
}

/// Why a playlist is refused (422). The `Display` text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PlaylistError {
    /// Not UTF-8 text.
    #[error("playlist is not UTF-8 text")]
    NotUtf8,
    /// The first line is not `#EXTM3U`.
    #[error("playlist does not start with #EXTM3U")]
    NoHeader,
    /// A line that breaks the format.
    #[error("playlist line {line}: {problem}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// Both variant streams and media segments.
    #[error("playlist mixes master tags (#EXT-X-STREAM-INF) and media tags")]
    Mixed,
    /// A media playlist without its required target duration.
    #[error("media playlist has no #EXT-X-TARGETDURATION")]
    NoTargetDuration,
    /// Neither kind of playlist.
    #[error("playlist has neither #EXT-X-TARGETDURATION nor #EXT-X-STREAM-INF")]
    Empty,
    /// The key appears somewhere no rewrite can remove it.
    #[error("playlist contains the stream key outside a /live/ URL")]
    LeaksKey,
}

/// What the previous lines promise the next URI line is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Nothing,
    Segment,
    Variant,
}

/// Checks `raw`, uploaded with `key` to the folder `folder` (`None`: the
/// stream's root), and returns it as it will be served.
pub(crate) fn parse(
    raw: &[u8],
    key: &str,
    folder: Option<&str>,
) -> Result<Playlist, PlaylistError> {
    let text = std::str::from_utf8(raw).map_err(|_| PlaylistError::NotUtf8)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next().map(str::trim_end) != Some("#EXTM3U") {
        return Err(PlaylistError::NoHeader);
    }
    let mut out = String::with_capacity(text.len());
    out.push_str("#EXTM3U\n");
    let (mut master_tags, mut media_tags, mut target, mut ended) = (false, false, false, false);
    let mut expect = Expect::Nothing;
    let mut segments = Vec::new();
    // Offset and duration of the `#EXTINF` awaiting its URI.
    let mut extinf = None;
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let bad = |problem: String| PlaylistError::Line {
            line: number,
            problem,
        };
        if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad("control character".into()));
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if let Some(tag) = trimmed.strip_prefix('#') {
            if expect != Expect::Nothing && tag.starts_with("EXTINF:") {
                return Err(bad("#EXTINF follows #EXTINF without a URI".into()));
            }
            if let Some(duration_ms) = check_tag(trimmed, &mut expect, &mut ended).map_err(bad)? {
                extinf = Some((out.len(), duration_ms));
            }
            master_tags |= tag.starts_with("EXT-X-STREAM-INF:");
            media_tags |= tag.starts_with("EXTINF:") || tag.starts_with("EXT-X-TARGETDURATION:");
            target |= tag.starts_with("EXT-X-TARGETDURATION:");
            out.push_str(&rewrite_attribute(trimmed, key, folder));
        } else {
            if expect == Expect::Nothing {
                return Err(bad(format!(
                    "URI `{}` without #EXTINF or #EXT-X-STREAM-INF before it",
                    trimmed.chars().take(64).collect::<String>()
                )));
            }
            let uri = rewrite_uri(trimmed, key, folder);
            out.push_str(&uri);
            if let Some((start, duration_ms)) = extinf.take().filter(|_| expect == Expect::Segment)
            {
                segments.push(Listed {
                    uri,
                    duration_ms,
                    start,
                    end: out.len() + 1,
                });
            }
            expect = Expect::Nothing;
        }
        out.push('\n');
    }
    if expect != Expect::Nothing {
        return Err(PlaylistError::Line {
            line: text.split('\n').count(),
            problem: "playlist ends before the URI its last tag announces".into(),
        });
    }
    match (master_tags, media_tags) {
        (true, true) => return Err(PlaylistError::Mixed),
        (false, true) if !target => return Err(PlaylistError::NoTargetDuration),
        (false, false) => return Err(PlaylistError::Empty),
        _ => {}
    }
    // Trailing blank lines of the upload collapse into one final newline.
    while out.ends_with("\n\n") {
        out.pop();
    }
    if out.contains(key) {
        return Err(PlaylistError::LeaksKey);
    }
    Ok(Playlist {
        body: Bytes::from(out),
        master: master_tags,
        ended: ended && !master_tags,
        segments,
    })
}

/// Checks the values players parse; `expect` and `ended` follow the tags.
/// Returns an `#EXTINF`'s duration, ms.
fn check_tag(tag: &str, expect: &mut Expect, ended: &mut bool) -> Result<Option<u64>, String> {
    if let Some(rest) = tag.strip_prefix("#EXTINF:") {
        let duration = rest.split(',').next().unwrap_or_default().trim();
        let seconds = match duration.parse::<f64>() {
            Ok(d) if d.is_finite() && d >= 0.0 => d,
            _ => return Err(format!("#EXTINF duration `{duration}` is not a number")),
        };
        *expect = Expect::Segment;
        // Saturates for absurd durations, which no health event accepts.
        return Ok(Some((seconds * 1000.0).round() as u64));
    } else if let Some(rest) = tag.strip_prefix("#EXT-X-STREAM-INF:") {
        let bandwidth =
            attribute(rest, "BANDWIDTH").ok_or("#EXT-X-STREAM-INF has no BANDWIDTH attribute")?;
        if bandwidth.parse::<u64>().is_err() {
            return Err(format!("BANDWIDTH `{bandwidth}` is not an integer"));
        }
        *expect = Expect::Variant;
    } else if tag == "#EXT-X-ENDLIST" {
        *ended = true;
    } else if let Some((name, value)) = ["#EXT-X-TARGETDURATION:", "#EXT-X-MEDIA-SEQUENCE:"]
        .iter()
        .find_map(|name| tag.strip_prefix(name).map(|v| (name, v)))
        && value.trim().parse::<u64>().is_err()
    {
        let name = name.trim_end_matches(':');
        return Err(format!("{name} `{value}` is not an integer"));
    } else if tag.starts_with("#EXT-X-MAP:") && attribute(tag, "URI").is_none() {
        return Err("#EXT-X-MAP has no URI attribute".into());
    }
    Ok(None)
}

/// The value of `NAME=value` or `NAME="value"` in an attribute list.
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().last();
        let after = &rest[at + name.len()..];
        if matches!(before, None | Some(',' | ':')) && after.starts_with('=') {
            let value = &after[1..];
            return Some(match value.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => value.split(',').next().unwrap_or_default(),
            });
        }
        rest = after;
    }
    None
}

/// A tag with its `URI="..."` made relative when it points into the publish path.
fn rewrite_attribute(tag: &str, key: &str, folder: Option<&str>) -> String {
    if !URI_TAGS.iter().any(|t| tag.starts_with(t)) {
        return tag.to_owned();
    }
    let Some(start) = tag.find("URI=\"").map(|i| i + 5) else {
        return tag.to_owned();
    };
    let Some(len) = tag[start..].find('"') else {
        return tag.to_owned();
    };
    let uri = &tag[start..start + len];
    format!(
        "{}{}{}",
        &tag[..start],
        rewrite_uri(uri, key, folder),
        &tag[start + len..]
    )
}

/// `uri` relative to the playlist's folder when it points into this
/// stream's publish path, otherwise unchanged.
fn rewrite_uri(uri: &str, key: &str, folder: Option<&str>) -> String {
    let marker = format!("/live/{key}/");
    let Some(at) = uri.find(&marker) else {
        return uri.to_owned();
    };
    let target = &uri[at + marker.len()..];
    match folder {
        None => target.to_owned(),
        Some(folder) => match target
            .strip_prefix(folder)
            .and_then(|t| t.strip_prefix('/'))
        {
            Some(inside) => inside.to_owned(),
            None => format!("../{target}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk_0123456789abcdef";

    fn ok(text: &str, folder: Option<&str>) -> Playlist {
        parse(text.as_bytes(), KEY, folder).unwrap()
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes(), KEY, None).unwrap_err().to_string()
    }

    /// What ffmpeg 5.1 writes for a fMP4 rendition.
    const FMP4: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-MAP:URI=\"init_0.mp4\"\n#EXTINF:1.000000,\nseg00002.m4s\n#EXTINF:1.000000,\nseg00003.m4s\n";

    /// What ffmpeg 5.1 writes for a master playlist (blank lines included).
    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=400400,RESOLUTION=320x180,CODECS=\"avc1.64000d,mp4a.40.2\"\n180p/index.m3u8\n\n#EXT-X-STREAM-INF:BANDWIDTH=180400,RESOLUTION=160x90,CODECS=\"avc1.64000b,mp4a.40.2\"\n90p/index.m3u8\n\n";

    #[test]
    fn ffmpeg_playlists_pass_unchanged() {
        let media = ok(FMP4, Some("180p"));
        assert_eq!(media.body, FMP4.as_bytes());
        assert!(!media.master && !media.ended);
        let ended = ok(&format!("{FMP4}#EXT-X-ENDLIST\n"), Some("180p"));
        assert!(ended.ended);
        let master = ok(MASTER, None);
        assert!(master.master && !master.ended);
        assert_eq!(master.body, MASTER.trim_end_matches('\n').to_owned() + "\n");
    }

    #[test]
    fn media_playlists_list_their_segments_and_where_they_end() {
        let media = ok(FMP4, Some("180p"));
        let listed: Vec<_> = media
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.duration_ms, &FMP4[s.start..s.end]))
            .collect();
        assert_eq!(
            listed,
            [
                ("seg00002.m4s", 1000, "#EXTINF:1.000000,\nseg00002.m4s\n"),
                ("seg00003.m4s", 1000, "#EXTINF:1.000000,\nseg00003.m4s\n"),
            ]
        );
        assert!(ok(MASTER, None).segments.is_empty());
        // Offsets are in the served body: after the rewrite, without CRs.
        let raw = format!(
            "#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n#EXTINF:1.5,\r\nhttp://o/live/{KEY}/a.ts\r\n#EXTINF:0.0334,\r\nb.ts\r\n#EXT-X-ENDLIST\r\n"
        );
        let served = ok(&raw, None);
        let body = std::str::from_utf8(&served.body).unwrap();
        let ends: Vec<_> = served
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.duration_ms, &body[..s.end]))
            .collect();
        assert_eq!(
            ends,
            [
                (
                    "a.ts",
                    1500,
                    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.5,\na.ts\n"
                ),
                (
                    "b.ts",
                    33,
                    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.5,\na.ts\n#EXTINF:0.0334,\nb.ts\n"
                ),
            ]
        );
    }

    #[test]
    fn publish_urls_become_relative() {
        let base = format!("http://127.0.0.1:9/live/{KEY}");
        let ts = format!(
            "#EXTM3U\r\n#EXT-X-TARGETDURATION:1\r\n#EXTINF:1.0,\r\n{base}/index3.ts\r\n#EXT-X-ENDLIST\r\n"
        );
        assert_eq!(
            ok(&ts, None).body,
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nindex3.ts\n#EXT-X-ENDLIST\n"
        );
        let media = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"{base}/720p/init_0.mp4\",BYTERANGE=\"0@0\"\n#EXTINF:1,\n{base}/720p/s1.m4s\n#EXTINF:1,\n/live/{KEY}/audio/s1.aac\n"
        );
        assert_eq!(
            ok(&media, Some("720p")).body,
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init_0.mp4\",BYTERANGE=\"0@0\"\n#EXTINF:1,\ns1.m4s\n#EXTINF:1,\n../audio/s1.aac\n"
        );
        let master = format!(
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"{base}/audio/index.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n{base}/720p/index.m3u8\n"
        );
        let served = ok(&master, None).body;
        assert_eq!(
            served,
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/index.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n720p/index.m3u8\n"
        );
    }

    #[test]
    fn the_key_never_survives() {
        assert_eq!(
            err(&format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:1\n# published with {KEY}\n"
            )),
            "playlist contains the stream key outside a /live/ URL"
        );
        assert_eq!(
            err(&format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns1.ts?k={KEY}\n"
            )),
            "playlist contains the stream key outside a /live/ URL"
        );
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        assert_eq!(err("hello"), "playlist does not start with #EXTM3U");
        assert_eq!(
            parse(b"#EXTM3U\n\xff\n", KEY, None)
                .unwrap_err()
                .to_string(),
            "playlist is not UTF-8 text"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:abc,\ns.ts\n"),
            "playlist line 3: #EXTINF duration `abc` is not a number"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:x\n"),
            "playlist line 2: #EXT-X-TARGETDURATION `x` is not an integer"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:1\ns.ts\n"),
            "playlist line 3: URI `s.ts` without #EXTINF or #EXT-X-STREAM-INF before it"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n#EXTINF:1,\ns.ts\n"),
            "playlist line 4: #EXTINF follows #EXTINF without a URI"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n"),
            "playlist line 4: playlist ends before the URI its last tag announces"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\na.m3u8\n"),
            "playlist line 2: #EXT-X-STREAM-INF has no BANDWIDTH attribute"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:1,\ns.ts\n"),
            "playlist mixes master tags (#EXT-X-STREAM-INF) and media tags"
        );
        assert_eq!(
            err("#EXTM3U\n#EXTINF:1,\ns.ts\n"),
            "media playlist has no #EXT-X-TARGETDURATION"
        );
        assert_eq!(
            err("#EXTM3U\n"),
            "playlist has neither #EXT-X-TARGETDURATION nor #EXT-X-STREAM-INF"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n"),
            "playlist line 3: #EXT-X-MAP has no URI attribute"
        );
        assert_eq!(
            err("#EXTM3U\n#EXT-X-TARGETDURATION:1\x00\n"),
            "playlist line 2: control character"
        );
    }

    #[test]
    fn attributes_are_found_by_whole_name() {
        let list = "AVERAGE-BANDWIDTH=5,BANDWIDTH=7,CODECS=\"a,b\"";
        assert_eq!(attribute(list, "BANDWIDTH"), Some("7"));
        assert_eq!(attribute(list, "CODECS"), Some("a,b"));
        assert_eq!(attribute(list, "URI"), None);
    }
}
