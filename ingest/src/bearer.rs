//! Bearer secrets, shared by the collector's write keys and the origin's
//! admin token: reading `Authorization: Bearer <secret>` and comparing it
//! without leaking the secret through timing.

use std::hint::black_box;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equality whose running time depends only on `presented.len()` (the
/// client's own input), not on the secret's content or length.
pub(crate) fn constant_time_eq(presented: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return false;
    }
    let mut diff = 0u8;
    for (i, byte) in presented.iter().enumerate() {
        diff |= byte ^ secret[i % secret.len()];
    }
    black_box(diff) == 0 && presented.len() == secret.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        let secret = b"adm_0123456789abcdef";
        assert!(constant_time_eq(secret, secret));
        assert!(!constant_time_eq(b"adm_0123456789abcde", secret));
        assert!(!constant_time_eq(b"adm_0123456789abcdefX", secret));
        assert!(!constant_time_eq(b"adm_0123456789abcdeX", secret));
        assert!(!constant_time_eq(b"", b""));
    }

    #[test]
    fn reads_the_bearer_token() {
        let token = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            bearer(&headers).map(<[u8]>::to_vec)
        };
        assert_eq!(token("Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(token("bEaReR  abc "), Some(b"abc".to_vec()));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Basic abc"), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
