//! Request body decoding: bounded reading, gzip, JSON array or NDJSON.

use std::io::Read;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use serde_json::value::RawValue;
use thiserror::Error;

/// Why a request body cannot be turned into events. The `Display` text is
/// what the client sees.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// 413: the body as sent is too large.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// `max_body_bytes`.
        limit: usize,
    },
    /// 413: the body inflates beyond the limit.
    #[error("decompressed request body exceeds the limit of {limit} bytes")]
    DecodedTooLarge {
        /// `max_decoded_bytes`.
        limit: usize,
    },
    /// 413: more events than allowed in one request.
    #[error("batch has {count} events, above the limit of {limit} events per request")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// `max_batch_events`.
        limit: usize,
    },
    /// 415: a `Content-Encoding` other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}; send gzip or identity")]
    UnsupportedEncoding(String),
    /// 400: `Content-Encoding: gzip` but the body is not gzip.
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// 400: an `application/json` body that is not a JSON array.
    #[error("body is not a JSON array of events: {0}")]
    NotAnArray(String),
    /// 400: the body could not be read to its end.
    #[error("cannot read the request body: {0}")]
    Read(String),
}

/// How the events are framed in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// One JSON array of event objects.
    Array,
    /// One event object per line; blank lines are skipped.
    Ndjson,
}

/// Body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// As is.
    Identity,
    /// gzip (concatenated members allowed).
    Gzip,
}

/// The `Content-Encoding` of a request.
pub(crate) fn encoding(headers: &HeaderMap) -> Result<Encoding, DecodeError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let value = value.to_str().unwrap_or_default().trim();
    if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else {
        Err(DecodeError::UnsupportedEncoding(
            value.chars().take(64).collect(),
        ))
    }
}

/// The framing a request declares in `Content-Type`, if it declares one we know.
pub(crate) fn declared_framing(headers: &HeaderMap) -> Option<Framing> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let mime = value.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Some(Framing::Array)
    } else if mime.eq_ignore_ascii_case("application/x-ndjson")
        || mime.eq_ignore_ascii_case("application/ndjson")
    {
        Some(Framing::Ndjson)
    } else {
        None
    }
}

/// Reads the whole body, refusing more than `limit` bytes without buffering them.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, DecodeError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(DecodeError::BodyTooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DecodeError::Read(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(DecodeError::BodyTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Undoes the content encoding, producing at most `limit` bytes: a gzip bomb
/// is cut off after `limit + 1` bytes, never inflated in full.
pub(crate) fn decompress(
    raw: Bytes,
    encoding: Encoding,
    limit: usize,
) -> Result<Bytes, DecodeError> {
    match encoding {
        // Config validation keeps `max_decoded_bytes >= max_body_bytes`.
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
            MultiGzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::BadGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(DecodeError::DecodedTooLarge { limit });
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Splits a decoded body into its event elements (not yet parsed as events,
/// so one bad element cannot fail the others).
pub(crate) fn elements(
    body: &[u8],
    declared: Option<Framing>,
    max_events: usize,
) -> Result<Vec<&[u8]>, DecodeError> {
    let framing = declared.unwrap_or_else(|| sniff(body));
    let elements: Vec<&[u8]> = match framing {
        Framing::Array => serde_json::from_slice::<Vec<&RawValue>>(body)
            .map_err(|e| DecodeError::NotAnArray(e.to_string()))?
            .into_iter()
            .map(|raw| raw.get().as_bytes())
            .collect(),
        Framing::Ndjson => body
            .split(|b| *b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .collect(),
    };
    if elements.len() > max_events {
        return Err(DecodeError::TooManyEvents {
            count: elements.len(),
            limit: max_events,
        });
    }
    Ok(elements)
}

/// An array when the first non-space byte opens one, NDJSON otherwise.
fn sniff(body: &[u8]) -> Framing {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Framing::Array,
        _ => Framing::Ndjson,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn splits_arrays_and_lines() {
        let array = br#" [ {"a":1}, 42 ,"x"] "#;
        assert_eq!(
            elements(array, None, 10).unwrap(),
            vec![&br#"{"a":1}"#[..], b"42", br#""x""#]
        );
        let lines = b"{\"a\":1}\r\n\n  {oops\n{\"b\":2}\n";
        assert_eq!(
            elements(lines, Some(Framing::Ndjson), 10).unwrap(),
            vec![&br#"{"a":1}"#[..], b"{oops", br#"{"b":2}"#]
        );
        assert_eq!(elements(b"", None, 10).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn declared_json_must_be_an_array() {
        let err = elements(br#"{"a":1}"#, Some(Framing::Array), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "body is not a JSON array of events: invalid type: map, expected a sequence at line 1 column 0"
        );
        assert_eq!(
            elements(b"[1,2,3]", None, 2),
            Err(DecodeError::TooManyEvents { count: 3, limit: 2 })
        );
    }

    #[test]
    fn caps_inflation() {
        let data = vec![b' '; 10_000];
        assert_eq!(
            decompress(gzip(&data), Encoding::Gzip, 10_000)
                .unwrap()
                .len(),
            10_000
        );
        assert_eq!(
            decompress(gzip(&data), Encoding::Gzip, 9_999),
            Err(DecodeError::DecodedTooLarge { limit: 9_999 })
        );
        let err = decompress(Bytes::from_static(b"plain"), Encoding::Gzip, 100).unwrap_err();
        assert!(matches!(err, DecodeError::BadGzip(_)), "{err}");
    }
}
