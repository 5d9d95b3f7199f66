//! Write-key authentication (`Authorization: Bearer <key>`).

use axum::http::HeaderMap;

use super::config::WriteKey;
use crate::bearer::{bearer, constant_time_eq};

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer` header: 401.
    Missing,
    /// A key that matches none of the configured ones: 403.
    Unknown,
}

/// The configured keys, checked in constant time.
#[derive(Debug, Clone)]
pub(crate) struct WriteKeys(Vec<WriteKey>);

impl WriteKeys {
    pub(crate) fn new(keys: Vec<WriteKey>) -> Self {
        Self(keys)
    }

    /// The name of the key the request presents.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<&str, AuthError> {
        let presented = bearer(headers).ok_or(AuthError::Missing)?;
        // Compare with every key, without stopping at a match, so the time
        // taken says nothing about which key (or how much of one) matched.
        let mut found = None;
        for wk in &self.0 {
            if constant_time_eq(presented, wk.key.as_bytes()) {
                found = Some(wk.name.as_str());
            }
        }
        found.ok_or(AuthError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header::AUTHORIZATION;

    use super::*;

    fn keys() -> WriteKeys {
        WriteKeys::new(vec![
            WriteKey {
                name: "web".into(),
                key: "web-key-0123456789".into(),
            },
            WriteKey {
                name: "ios".into(),
                key: "ios-key-0123456789".into(),
            },
        ])
    }

    fn auth(value: Option<&str>) -> Result<String, AuthError> {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(AUTHORIZATION, v.parse().unwrap());
        }
        keys().authenticate(&headers).map(str::to_owned)
    }

    #[test]
    fn finds_the_key_name() {
        assert_eq!(auth(Some("Bearer ios-key-0123456789")), Ok("ios".into()));
        assert_eq!(auth(Some("bearer web-key-0123456789")), Ok("web".into()));
    }

    #[test]
    fn tells_missing_from_unknown() {
        assert_eq!(auth(None), Err(AuthError::Missing));
        assert_eq!(auth(Some("Basic d2ViOmtleQ==")), Err(AuthError::Missing));
        assert_eq!(auth(Some("Bearer ")), Err(AuthError::Missing));
        assert_eq!(
            auth(Some("Bearer web-key-012345678")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            auth(Some("Bearer web-key-01234567890")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            auth(Some("Bearer web-key-0123456788")),
            Err(AuthError::Unknown)
        );
    }
}
