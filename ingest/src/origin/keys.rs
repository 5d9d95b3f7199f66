//! Stream keys: which secret publishes which stream, from the config and
//! the admin API. Keys never leave this module except to their creator (the
//! admin API's answer to `POST`); logs and listings name the stream.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use uuid::Uuid;

use super::config::StreamKey;

/// The stream a key publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// As viewers address it.
    pub stream_id: Arc<str>,
    /// Its owner.
    pub creator_id: Arc<str>,
}

/// The registry of live keys.
#[derive(Debug, Default)]
pub(crate) struct StreamKeys {
    inner: RwLock<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    // A lookup through std's randomly keyed SipHash: how long a miss takes
    // says nothing about how much of a guessed key was right.
    by_key: HashMap<String, Identity>,
    key_of: HashMap<Arc<str>, String>,
}

impl StreamKeys {
    /// The registry holding the configured keys (validated: unique keys and ids).
    pub(crate) fn new(streams: &[StreamKey]) -> Self {
        let keys = Self::default();
        for stream in streams {
            keys.insert(
                stream.key.expose().to_owned(),
                &stream.stream_id,
                &stream.creator_id,
            );
        }
        keys
    }

    fn insert(&self, key: String, stream_id: &str, creator_id: &str) {
        let identity = Identity {
            stream_id: stream_id.into(),
            creator_id: creator_id.into(),
        };
        let mut keys = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        keys.key_of.insert(identity.stream_id.clone(), key.clone());
        keys.by_key.insert(key, identity);
    }

    /// The stream `key` publishes, unless it is unknown or revoked.
    pub(crate) fn resolve(&self, key: &str) -> Option<Identity> {
        let keys = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        keys.by_key.get(key).cloned()
    }

    /// Every stream with a key, by stream id.
    pub(crate) fn list(&self) -> Vec<Identity> {
        let keys = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Identity> = keys.by_key.values().cloned().collect();
        all.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        all
    }

    /// A fresh random key for `stream_id`, or `None` when the stream has one.
    pub(crate) fn create(&self, stream_id: &str, creator_id: &str) -> Option<String> {
        // 122 random bits from the OS generator.
        let key = format!("sk_{}", Uuid::new_v4().simple());
        let mut keys = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if keys.key_of.contains_key(stream_id) {
            return None;
        }
        let identity = Identity {
            stream_id: stream_id.into(),
            creator_id: creator_id.into(),
        };
        keys.key_of.insert(identity.stream_id.clone(), key.clone());
        keys.by_key.insert(key.clone(), identity);
        Some(key)
    }

    /// Removes the key of `stream_id`; `None` when it has none.
    pub(crate) fn revoke(&self, stream_id: &str) -> Option<Identity> {
        let mut keys = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let key = keys.key_of.remove(stream_id)?;
        keys.by_key.remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_created_and_revoked_keys() {
        let keys = StreamKeys::new(&[StreamKey {
            key: "sk_0123456789abcdef".into(),
            stream_id: "b".into(),
            creator_id: "c1".into(),
        }]);
        let b = keys.resolve("sk_0123456789abcdef").unwrap();
        assert_eq!((&*b.stream_id, &*b.creator_id), ("b", "c1"));
        assert_eq!(keys.resolve("sk_0123456789abcdeX"), None);

        let fresh = keys.create("a", "c2").unwrap();
        assert!(fresh.starts_with("sk_") && fresh.len() == 35, "{fresh}");
        assert_eq!(&*keys.resolve(&fresh).unwrap().stream_id, "a");
        assert_eq!(keys.create("a", "c3"), None, "one key per stream");
        let listed: Vec<_> = keys
            .list()
            .iter()
            .map(|i| i.stream_id.to_string())
            .collect();
        assert_eq!(listed, ["a", "b"]);

        assert_eq!(keys.revoke("b"), Some(b));
        assert_eq!(keys.resolve("sk_0123456789abcdef"), None);
        assert_eq!(keys.revoke("b"), None);
        assert_ne!(keys.create("b", "c1").unwrap(), "sk_0123456789abcdef");
    }
}
