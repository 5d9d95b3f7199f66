//! CMCD (CTA-5004) from a playback request: the `CMCD` query argument or the
//! `CMCD-Object`, `CMCD-Request`, `CMCD-Session` and `CMCD-Status` headers.
//!
//! Both forms are Structured Field dictionaries (RFC 8941): comma-separated
//! `key=value` members, strings quoted with `\"` and `\\` escapes, tokens
//! bare (`ot=av`), booleans as the bare key (`su`) or `?0`/`?1`, and in CMCD
//! v2 inner lists such as `br=(3000;v 128;a)`. A request whose CMCD does not
//! parse, or has a known key with a value of the wrong type, keeps no CMCD
//! at all: the caller counts it and serves the request as usual.

use axum::http::HeaderMap;
use livepulse_contract::playback::Cmcd;
use thiserror::Error;

/// The headers of the header form, in the order they are read.
const HEADERS: [&str; 4] = ["cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status"];
/// Longest CMCD text read from the query or from one header, bytes.
const MAX_INPUT_BYTES: usize = 4096;
/// Longest `sid` (the specification's limit), characters.
const MAX_SESSION_ID: usize = 64;
/// Longest `cid` and `cdn` (the specification's limit), characters.
const MAX_ID: usize = 128;
/// Longest other string (`nor`, `nrr`, an `ec` entry), characters.
const MAX_STRING: usize = 256;

/// Why a request's CMCD was ignored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed CMCD at byte {at}: {problem}")]
pub(crate) struct CmcdError {
    /// Byte offset in the text that failed (0 for a type error).
    pub at: usize,
    /// What is wrong.
    pub problem: String,
}

/// The request's CMCD: `Ok(None)` when it carries none (or an empty
/// dictionary). The query form wins when both are present.
pub(crate) fn from_request(
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<Cmcd>, CmcdError> {
    let mut cmcd = Cmcd::default();
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "CMCD")
            .map(|(_, value)| value)
    });
    if let Some(text) = from_query {
        parse_into(&text, &mut cmcd)?;
    } else {
        for name in HEADERS {
            for value in headers.get_all(name) {
                let text = value.to_str().map_err(|_| CmcdError {
                    at: 0,
                    problem: format!("header {name} is not ASCII"),
                })?;
                parse_into(text, &mut cmcd)?;
            }
        }
    }
    Ok((cmcd != Cmcd::default()).then_some(cmcd))
}

/// Parses one CMCD dictionary into `cmcd`, keeping known keys.
fn parse_into(text: &str, cmcd: &mut Cmcd) -> Result<(), CmcdError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(CmcdError {
            at: MAX_INPUT_BYTES,
            problem: format!("longer than {MAX_INPUT_BYTES} bytes"),
        });
    }
    let mut parser = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    parser.dictionary(|key, value| {
        apply(cmcd, key, value).map_err(|problem| CmcdError { at: 0, problem })
    })
}

/// An item's value (RFC 8941 bare item).
#[derive(Debug, Clone, PartialEq)]
enum Bare {
    Integer(i64),
    Decimal(f64),
    String(String),
    Token(String),
    Boolean(bool),
    Bytes,
}

/// A member's value: an item or an inner list (parameters are dropped).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Item(Bare),
    List(Vec<Bare>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, problem: impl Into<String>) -> Result<T, CmcdError> {
        Err(CmcdError {
            at: self.pos,
            problem: problem.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip(&mut self, spaces: &[u8]) {
        while self.peek().is_some_and(|b| spaces.contains(&b)) {
            self.pos += 1;
        }
    }

    fn dictionary(
        &mut self,
        mut member: impl FnMut(&str, Value) -> Result<(), CmcdError>,
    ) -> Result<(), CmcdError> {
        self.skip(b" ");
        if self.peek().is_none() {
            return Ok(());
        }
        loop {
            let key = self.key()?;
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                if self.peek() == Some(b'(') {
                    self.inner_list()?
                } else {
                    let item = self.bare()?;
                    self.parameters()?;
                    Value::Item(item)
                }
            } else {
                self.parameters()?;
                Value::Item(Bare::Boolean(true))
            };
            member(&key, value)?;
            self.skip(b" \t");
            match self.peek() {
                None => return Ok(()),
                Some(b',') => self.pos += 1,
                Some(_) => return self.fail("expected `,` after a member"),
            }
            self.skip(b" \t");
            if self.peek().is_none() {
                return self.fail("trailing `,`");
            }
        }
    }

    fn key(&mut self) -> Result<String, CmcdError> {
        let start = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_lowercase() || b == b'*' => self.pos += 1,
            _ => return self.fail("expected a key (lowercase letter or `*`)"),
        }
        while self.peek().is_some_and(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        }) {
            self.pos += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn parameters(&mut self) -> Result<(), CmcdError> {
        while self.peek() == Some(b';') {
            self.pos += 1;
            self.skip(b" ");
            self.key()?;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                self.bare()?;
            }
        }
        Ok(())
    }

    fn inner_list(&mut self) -> Result<Value, CmcdError> {
        self.pos += 1; // `(`
        let mut items = Vec::new();
        loop {
            self.skip(b" ");
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    self.parameters()?;
                    return Ok(Value::List(items));
                }
                None => return self.fail("unterminated inner list"),
                Some(_) => {
                    items.push(self.bare()?);
                    self.parameters()?;
                    match self.peek() {
                        Some(b' ' | b')') => {}
                        None => return self.fail("unterminated inner list"),
                        Some(_) => return self.fail("expected ` ` or `)` in an inner list"),
                    }
                }
            }
        }
    }

    fn bare(&mut self) -> Result<Bare, CmcdError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'?') => {
                let value = match self.s.get(self.pos + 1) {
                    Some(b'1') => true,
                    Some(b'0') => false,
                    _ => return self.fail("a boolean is `?0` or `?1`"),
                };
                self.pos += 2;
                Ok(Bare::Boolean(value))
            }
            Some(b':') => {
                self.pos += 1;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                {
                    self.pos += 1;
                }
                if self.peek() != Some(b':') {
                    return self.fail("unterminated byte sequence");
                }
                self.pos += 1;
                Ok(Bare::Bytes)
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => Ok(self.token()),
            _ => self.fail("expected a value"),
        }
    }

    fn string(&mut self) -> Result<Bare, CmcdError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Bare::String(out));
                }
                Some(b'\\') => match self.s.get(self.pos + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        out.push(char::from(c));
                        self.pos += 2;
                    }
                    _ => {
                        return self.fail("only `\\\"` and `\\\\` escapes are allowed in a string");
                    }
                },
                Some(c @ 0x20..=0x7e) => {
                    out.push(char::from(c));
                    self.pos += 1;
                }
                Some(_) => return self.fail("strings are printable ASCII"),
            }
        }
    }

    fn number(&mut self) -> Result<Bare, CmcdError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let int_digits = self.pos - digits_start;
        if self.peek() != Some(b'.') {
            if int_digits == 0 || int_digits > 15 {
                return self.fail("an integer has 1 to 15 digits");
            }
            let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
            return text
                .parse()
                .map(Bare::Integer)
                .or_else(|_| self.fail("bad integer"));
        }
        self.pos += 1;
        let frac_start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let frac_digits = self.pos - frac_start;
        if int_digits == 0 || int_digits > 12 || frac_digits == 0 || frac_digits > 3 {
            return self.fail("a decimal has 1 to 12 digits, `.`, and 1 to 3 digits");
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
        text.parse()
            .map(Bare::Decimal)
            .or_else(|_| self.fail("bad decimal"))
    }

    fn token(&mut self) -> Bare {
        let start = self.pos;
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
        {
            self.pos += 1;
        }
        Bare::Token(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }
}

/// How a v2 inner list of integers becomes the contract's one value.
#[derive(Clone, Copy)]
enum Fold {
    Sum,
    Min,
    Max,
}

/// Stores a known key's value in `cmcd`; other keys are ignored.
fn apply(cmcd: &mut Cmcd, key: &str, value: Value) -> Result<(), String> {
    let name = key;
    match key {
        "br" => cmcd.encoded_bitrate_kbps = Some(integers(name, value, Fold::Sum)?),
        "d" => cmcd.object_duration_ms = Some(integer(name, value)?),
        "ot" => cmcd.object_type = Some(token(name, value)?),
        "tb" => cmcd.top_bitrate_kbps = Some(integers(name, value, Fold::Sum)?),
        "bl" => cmcd.buffer_length_ms = Some(integers(name, value, Fold::Min)?),
        "dl" => cmcd.deadline_ms = Some(integer(name, value)?),
        "mtp" => cmcd.measured_throughput_kbps = Some(integers(name, value, Fold::Max)?),
        "nor" => cmcd.next_object_request = Some(first_string(name, value)?),
        "nrr" => cmcd.next_range_request = Some(string(name, value, MAX_STRING)?),
        "su" => cmcd.startup = Some(boolean(name, value)?),
        "cid" => cmcd.content_id = Some(string(name, value, MAX_ID)?),
        "pr" => cmcd.playback_rate = Some(decimal(name, value)?),
        "sf" => cmcd.streaming_format = Some(token(name, value)?),
        "sid" => cmcd.session_id = Some(string(name, value, MAX_SESSION_ID)?),
        "st" => cmcd.stream_type = Some(token(name, value)?),
        "v" => cmcd.version = Some(integer(name, value)?),
        "bs" => cmcd.buffer_starvation = Some(boolean(name, value)?),
        "rtp" => cmcd.requested_max_throughput_kbps = Some(integer(name, value)?),
        "ltc" => cmcd.live_latency_ms = Some(integer(name, value)?),
        "pt" => cmcd.playhead_time_ms = Some(integer(name, value)?),
        "sn" => cmcd.sequence_number = Some(integer(name, value)?),
        "sta" => cmcd.player_state = Some(token(name, value)?),
        "dfa" => cmcd.dropped_frames = Some(integer(name, value)?),
        "ec" => cmcd.error_codes = Some(strings(name, value)?),
        "msd" => cmcd.media_start_delay_ms = Some(integer(name, value)?),
        "bsa" => cmcd.buffer_starvations = Some(integers(name, value, Fold::Sum)?),
        "bsd" => cmcd.buffer_starvation_ms = Some(integers(name, value, Fold::Sum)?),
        "cdn" => cmcd.cdn = Some(string(name, value, MAX_ID)?),
        _ => {}
    }
    Ok(())
}

fn non_negative(key: &str, bare: &Bare) -> Result<u64, String> {
    match bare {
        Bare::Integer(n) if *n >= 0 => Ok(n.unsigned_abs()),
        _ => Err(format!("`{key}` must be a non-negative integer")),
    }
}

fn integer(key: &str, value: Value) -> Result<u64, String> {
    match value {
        Value::Item(bare) => non_negative(key, &bare),
        Value::List(_) => Err(format!("`{key}` must be a non-negative integer")),
    }
}

fn integers(key: &str, value: Value, fold: Fold) -> Result<u64, String> {
    let items = match value {
        Value::Item(bare) => return non_negative(key, &bare),
        Value::List(items) if !items.is_empty() => items,
        Value::List(_) => return Err(format!("`{key}` is an empty list")),
    };
    let mut values = Vec::with_capacity(items.len());
    for item in &items {
        values.push(non_negative(key, item)?);
    }
    let folded = match fold {
        Fold::Sum => values.iter().fold(0u64, |a, v| a.saturating_add(*v)),
        Fold::Min => values.iter().copied().min().unwrap_or_default(),
        Fold::Max => values.iter().copied().max().unwrap_or_default(),
    };
    Ok(folded)
}

fn decimal(key: &str, value: Value) -> Result<f64, String> {
    match value {
        Value::Item(Bare::Decimal(d)) if d >= 0.0 => Ok(d),
        Value::Item(Bare::Integer(n)) if n >= 0 => Ok(n as f64),
        _ => Err(format!("`{key}` must be a non-negative number")),
    }
}

fn boolean(key: &str, value: Value) -> Result<bool, String> {
    match value {
        Value::Item(Bare::Boolean(b)) => Ok(b),
        _ => Err(format!("`{key}` must be a boolean")),
    }
}

fn token(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::Item(Bare::Token(t)) if t.len() <= MAX_STRING => Ok(t),
        _ => Err(format!("`{key}` must be a token")),
    }
}

fn string(key: &str, value: Value, max_chars: usize) -> Result<String, String> {
    match value {
        Value::Item(bare) => checked_string(key, bare, max_chars),
        Value::List(_) => Err(format!("`{key}` must be a string")),
    }
}

fn checked_string(key: &str, bare: Bare, max_chars: usize) -> Result<String, String> {
    match bare {
        Bare::String(s) if s.len() <= max_chars => Ok(s),
        Bare::String(_) => Err(format!("`{key}` is longer than {max_chars} characters")),
        _ => Err(format!("`{key}` must be a string")),
    }
}

fn first_string(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::Item(bare) => checked_string(key, bare, MAX_STRING),
        Value::List(items) => {
            let first = items
                .into_iter()
                .next()
                .ok_or_else(|| format!("`{key}` is an empty list"))?;
            checked_string(key, first, MAX_STRING)
        }
    }
}

fn strings(key: &str, value: Value) -> Result<Vec<String>, String> {
    let items = match value {
        Value::Item(bare) => vec![bare],
        Value::List(items) => items,
    };
    items
        .into_iter()
        .map(|bare| checked_string(key, bare, MAX_STRING))
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn parse(text: &str) -> Result<Cmcd, String> {
        let mut cmcd = Cmcd::default();
        parse_into(text, &mut cmcd).map_err(|e| e.to_string())?;
        Ok(cmcd)
    }

    #[test]
    fn every_v1_key_as_hls_js_sends_it() {
        let text = r#"bl=1000,br=986,bs,cid="live-1",d=1000,dl=900,mtp=5700,nor="seg00004.m4s",nrr="12323-48763",ot=av,pr=1.25,rtp=4900,sf=h,sid="sess-123",st=l,su,tb=986,v=1"#;
        assert_eq!(
            parse(text).unwrap(),
            Cmcd {
                encoded_bitrate_kbps: Some(986),
                object_duration_ms: Some(1000),
                object_type: Some("av".into()),
                top_bitrate_kbps: Some(986),
                buffer_length_ms: Some(1000),
                deadline_ms: Some(900),
                measured_throughput_kbps: Some(5700),
                next_object_request: Some("seg00004.m4s".into()),
                next_range_request: Some("12323-48763".into()),
                startup: Some(true),
                content_id: Some("live-1".into()),
                playback_rate: Some(1.25),
                streaming_format: Some("h".into()),
                session_id: Some("sess-123".into()),
                stream_type: Some("l".into()),
                version: Some(1),
                buffer_starvation: Some(true),
                requested_max_throughput_kbps: Some(4900),
                ..Cmcd::default()
            }
        );
    }

    #[test]
    fn v2_keys_and_inner_lists() {
        let text = r#"v=2,ltc=2300,pt=61000,sn=7,sta=r,dfa=12,ec=("E1" "net:timeout"),msd=850,bsa=(2;v 1;a),bsd=(400 250),cdn="edge-a",br=(3000;v 128;a),bl=(1500;v 900;a),mtp=(4000 6000),tb=(5000;v 128;a),nor=("s5.m4s" "s6.m4s";r="0-99")"#;
        assert_eq!(
            parse(text).unwrap(),
            Cmcd {
                version: Some(2),
                live_latency_ms: Some(2300),
                playhead_time_ms: Some(61000),
                sequence_number: Some(7),
                player_state: Some("r".into()),
                dropped_frames: Some(12),
                error_codes: Some(vec!["E1".into(), "net:timeout".into()]),
                media_start_delay_ms: Some(850),
                buffer_starvations: Some(3),
                buffer_starvation_ms: Some(650),
                cdn: Some("edge-a".into()),
                encoded_bitrate_kbps: Some(3128),
                buffer_length_ms: Some(900),
                measured_throughput_kbps: Some(6000),
                top_bitrate_kbps: Some(5128),
                next_object_request: Some("s5.m4s".into()),
                ..Cmcd::default()
            }
        );
    }

    #[test]
    fn quoting_booleans_and_spacing() {
        let cmcd = parse(r#"sid="a \"quoted\" \\ id",  su=?0, bs=?1,ot=m ,pr=0.5"#).unwrap();
        assert_eq!(cmcd.session_id.as_deref(), Some(r#"a "quoted" \ id"#));
        assert_eq!(cmcd.startup, Some(false));
        assert_eq!(cmcd.buffer_starvation, Some(true));
        assert_eq!(cmcd.object_type.as_deref(), Some("m"));
        assert_eq!(cmcd.playback_rate, Some(0.5));
        // Unknown and custom keys, parameters and byte sequences are skipped.
        let cmcd = parse(r#"com.example-k=5;p=1,zz=:aGk=:,ot=i,x-flag"#).unwrap();
        assert_eq!(
            cmcd,
            Cmcd {
                object_type: Some("i".into()),
                ..Cmcd::default()
            }
        );
        // The last of a repeated key wins, as in any dictionary.
        assert_eq!(parse("bl=100,bl=200").unwrap().buffer_length_ms, Some(200));
        assert_eq!(parse("").unwrap(), Cmcd::default());
    }

    #[test]
    fn malformed_input_names_the_problem() {
        let err = |text: &str| parse(text).unwrap_err();
        assert_eq!(
            err("bl=12a"),
            "malformed CMCD at byte 5: expected `,` after a member"
        );
        assert_eq!(
            err("bl=abc"),
            "malformed CMCD at byte 0: `bl` must be a non-negative integer"
        );
        assert_eq!(
            err("bl=-100"),
            "malformed CMCD at byte 0: `bl` must be a non-negative integer"
        );
        assert_eq!(
            err("bl=1.5"),
            "malformed CMCD at byte 0: `bl` must be a non-negative integer"
        );
        assert_eq!(
            err(r#"sid="abc"#),
            "malformed CMCD at byte 8: unterminated string"
        );
        assert_eq!(
            err(r#"sid="a\nb""#),
            "malformed CMCD at byte 6: only `\\\"` and `\\\\` escapes are allowed in a string"
        );
        assert_eq!(
            err("ot=\"v\""),
            "malformed CMCD at byte 0: `ot` must be a token"
        );
        assert_eq!(
            err("su=1"),
            "malformed CMCD at byte 0: `su` must be a boolean"
        );
        assert_eq!(
            err("cid=live"),
            "malformed CMCD at byte 0: `cid` must be a string"
        );
        assert_eq!(err("bl=1000,"), "malformed CMCD at byte 8: trailing `,`");
        assert_eq!(
            err("BL=1000"),
            "malformed CMCD at byte 0: expected a key (lowercase letter or `*`)"
        );
        assert_eq!(err("bl="), "malformed CMCD at byte 3: expected a value");
        assert_eq!(
            err("su=?2"),
            "malformed CMCD at byte 3: a boolean is `?0` or `?1`"
        );
        assert_eq!(
            err("br=(1 2"),
            "malformed CMCD at byte 7: unterminated inner list"
        );
        assert_eq!(
            err("bl=1234567890123456"),
            "malformed CMCD at byte 19: an integer has 1 to 15 digits"
        );
        assert_eq!(
            err("pr=1.2345"),
            "malformed CMCD at byte 9: a decimal has 1 to 12 digits, `.`, and 1 to 3 digits"
        );
        assert_eq!(
            err(&format!("sid=\"{}\"", "x".repeat(65))),
            "malformed CMCD at byte 0: `sid` is longer than 64 characters"
        );
        assert_eq!(
            err(&format!("cid=\"{}\"", "x".repeat(5000))),
            "malformed CMCD at byte 4096: longer than 4096 bytes"
        );
    }

    #[test]
    fn query_form_wins_over_headers_and_headers_merge() {
        let mut headers = HeaderMap::new();
        headers.insert("cmcd-object", HeaderValue::from_static("br=986,ot=v"));
        headers.insert("cmcd-request", HeaderValue::from_static("bl=2100, su"));
        headers.insert("cmcd-session", HeaderValue::from_static(r#"sid="s1",st=l"#));
        headers.insert("cmcd-status", HeaderValue::from_static("rtp=4900"));
        let from_headers = from_request(Some("x=1"), &headers).unwrap().unwrap();
        assert_eq!(
            from_headers,
            Cmcd {
                encoded_bitrate_kbps: Some(986),
                object_type: Some("v".into()),
                buffer_length_ms: Some(2100),
                startup: Some(true),
                session_id: Some("s1".into()),
                stream_type: Some("l".into()),
                requested_max_throughput_kbps: Some(4900),
                ..Cmcd::default()
            }
        );
        let query = "a=b&CMCD=bl%3D300%2Csid%3D%22q%22";
        let from_query = from_request(Some(query), &headers).unwrap().unwrap();
        assert_eq!(
            from_query,
            Cmcd {
                buffer_length_ms: Some(300),
                session_id: Some("q".into()),
                ..Cmcd::default()
            }
        );
        assert_eq!(from_request(None, &HeaderMap::new()), Ok(None));
        assert_eq!(from_request(Some("CMCD="), &HeaderMap::new()), Ok(None));
        headers.insert("cmcd-status", HeaderValue::from_static("rtp=x"));
        assert!(from_request(None, &headers).is_err());
    }
}
