//! Stream keys: which secret publishes which stream, from the config, the
//! admin API and the keys file. Keys never leave this module except to
//! their creator (the admin API's answer to `POST`) and the keys file;
//! logs and listings name the stream.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tracing::warn;
use uuid::Uuid;

use super::config::{Secret, StreamKey};
use super::keys_file::{self, KeysDoc, KeysFileError};

/// The stream a key publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// As viewers address it.
    pub stream_id: Arc<str>,
    /// Its owner.
    pub creator_id: Arc<str>,
}

/// The registry of live keys.
#[derive(Debug)]
pub(crate) struct StreamKeys {
    inner: RwLock<Keys>,
    /// Where changes are kept, when they are.
    file: Option<PathBuf>,
    /// Held while a change is written, so the file always holds the latest.
    changing: Mutex<()>,
}

#[derive(Debug, Default, Clone)]
struct Keys {
    // A lookup through std's randomly keyed SipHash: how long a miss takes
    // says nothing about how much of a guessed key was right.
    by_key: HashMap<String, Identity>,
    key_of: HashMap<Arc<str>, String>,
    /// The keys from the config.
    configured: HashSet<String>,
    /// Configured keys revoked with the admin API.
    revoked: BTreeSet<String>,
}

impl Keys {
    fn insert(&mut self, key: String, stream_id: &str, creator_id: &str) {
        let identity = Identity {
            stream_id: stream_id.into(),
            creator_id: creator_id.into(),
        };
        self.key_of.insert(identity.stream_id.clone(), key.clone());
        self.by_key.insert(key, identity);
    }

    /// What the keys file holds of this state.
    fn doc(&self) -> KeysDoc {
        let mut created: Vec<StreamKey> = self
            .by_key
            .iter()
            .filter(|(key, _)| !self.configured.contains(*key))
            .map(|(key, identity)| StreamKey {
                key: Secret(key.clone()),
                stream_id: identity.stream_id.to_string(),
                creator_id: identity.creator_id.to_string(),
            })
            .collect();
        created.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        KeysDoc {
            created,
            revoked: self.revoked.iter().map(|key| Secret(key.clone())).collect(),
            ..KeysDoc::new()
        }
    }
}

impl StreamKeys {
    /// The registry of the configured keys (validated: unique keys and
    /// ids) merged with `file`'s: configured keys it revoked stay revoked;
    /// a created key whose stream has a configured key, or that is one,
    /// gives way to the config (and leaves the file at the next change).
    pub(crate) fn new(streams: &[StreamKey], file: Option<PathBuf>) -> Result<Self, KeysFileError> {
        let doc = match &file {
            Some(path) => keys_file::load(path)?,
            None => KeysDoc::new(),
        };
        let mut keys = Keys::default();
        let revoked: HashSet<&str> = doc.revoked.iter().map(Secret::expose).collect();
        for stream in streams {
            let key = stream.key.expose();
            keys.configured.insert(key.to_owned());
            if revoked.contains(key) {
                keys.revoked.insert(key.to_owned());
            } else {
                keys.insert(key.to_owned(), &stream.stream_id, &stream.creator_id);
            }
        }
        for created in &doc.created {
            let key = created.key.expose();
            if keys.configured.contains(key) || keys.key_of.contains_key(&*created.stream_id) {
                warn!(stream_id = %created.stream_id,
                    "a stream key from the keys file gives way to the configured one");
                continue;
            }
            keys.insert(key.to_owned(), &created.stream_id, &created.creator_id);
        }
        Ok(Self {
            inner: RwLock::new(keys),
            file,
            changing: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `change` to a copy of the keys, writes it to the keys file,
    /// then makes it live: nothing changes unless the file did. Blocks on
    /// the file's fsyncs.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Keys) -> Option<T>,
    ) -> Result<Option<T>, KeysFileError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = self.read().clone();
        let Some(done) = change(&mut next) else {
            return Ok(None);
        };
        if let Some(path) = &self.file {
            keys_file::save(path, &next.doc())?;
        }
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(Some(done))
    }

    /// The stream `key` publishes, unless it is unknown or revoked.
    pub(crate) fn resolve(&self, key: &str) -> Option<Identity> {
        self.read().by_key.get(key).cloned()
    }

    /// Every stream with a key, by stream id.
    pub(crate) fn list(&self) -> Vec<Identity> {
        let mut all: Vec<Identity> = self.read().by_key.values().cloned().collect();
        all.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        all
    }

    /// A fresh random key for `stream_id`, or `None` when the stream has
    /// one; kept in the keys file before it is returned.
    pub(crate) fn create(
        &self,
        stream_id: &str,
        creator_id: &str,
    ) -> Result<Option<String>, KeysFileError> {
        // 122 random bits from the OS generator.
        let key = format!("sk_{}", Uuid::new_v4().simple());
        self.change(|keys| {
            if keys.key_of.contains_key(stream_id) {
                return None;
            }
            keys.insert(key.clone(), stream_id, creator_id);
            Some(key)
        })
    }

    /// Removes the key of `stream_id`, in the keys file too; `None` when
    /// it has none.
    pub(crate) fn revoke(&self, stream_id: &str) -> Result<Option<Identity>, KeysFileError> {
        self.change(|keys| {
            let key = keys.key_of.remove(stream_id)?;
            if keys.configured.contains(&key) {
                keys.revoked.insert(key.clone());
            }
            keys.by_key.remove(&key)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const CONFIGURED: &str = "sk_0123456789abcdef";

    fn configured() -> Vec<StreamKey> {
        vec![StreamKey {
            key: CONFIGURED.into(),
            stream_id: "b".into(),
            creator_id: "c1".into(),
        }]
    }

    #[test]
    fn configured_created_and_revoked_keys() {
        let keys = StreamKeys::new(&configured(), None).unwrap();
        let b = keys.resolve(CONFIGURED).unwrap();
        assert_eq!((&*b.stream_id, &*b.creator_id), ("b", "c1"));
        assert_eq!(keys.resolve("sk_0123456789abcdeX"), None);

        let fresh = keys.create("a", "c2").unwrap().unwrap();
        assert!(fresh.starts_with("sk_") && fresh.len() == 35, "{fresh}");
        assert_eq!(&*keys.resolve(&fresh).unwrap().stream_id, "a");
        assert_eq!(keys.create("a", "c3").unwrap(), None, "one key per stream");
        let listed: Vec<_> = keys
            .list()
            .iter()
            .map(|i| i.stream_id.to_string())
            .collect();
        assert_eq!(listed, ["a", "b"]);

        assert_eq!(keys.revoke("b").unwrap(), Some(b));
        assert_eq!(keys.resolve(CONFIGURED), None);
        assert_eq!(keys.revoke("b").unwrap(), None);
        assert_ne!(keys.create("b", "c1").unwrap().unwrap(), CONFIGURED);
    }

    #[test]
    fn changes_survive_a_restart_and_the_config_wins_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let keys = StreamKeys::new(&configured(), Some(path.clone())).unwrap();
        let created = keys.create("a", "c2").unwrap().unwrap();
        keys.revoke("b").unwrap();
        let replacement = keys.create("b", "c1").unwrap().unwrap();
        drop(keys);

        let again = StreamKeys::new(&configured(), Some(path.clone())).unwrap();
        assert_eq!(&*again.resolve(&created).unwrap().stream_id, "a");
        assert_eq!(again.resolve(CONFIGURED), None, "stays revoked");
        assert_eq!(&*again.resolve(&replacement).unwrap().stream_id, "b");

        // The operator gives `a` a key in the config: it wins.
        let mut streams = configured();
        streams.push(StreamKey {
            key: "sk_configured_for_a".into(),
            stream_id: "a".into(),
            creator_id: "c2".into(),
        });
        let merged = StreamKeys::new(&streams, Some(path.clone())).unwrap();
        assert_eq!(merged.resolve(&created), None);
        assert_eq!(
            &*merged.resolve("sk_configured_for_a").unwrap().stream_id,
            "a"
        );
        // Revoking the created key of `b` keeps it out of the file.
        merged.revoke("b").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&replacement) && !text.contains(&created),
            "{text}"
        );
        assert!(
            text.contains(CONFIGURED),
            "a revoked configured key is kept: {text}"
        );
    }

    #[test]
    fn a_change_that_cannot_be_kept_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("keys.json");
        fs::create_dir(dir.path().join("sub")).unwrap();
        let keys = StreamKeys::new(&configured(), Some(path)).unwrap();
        fs::remove_dir(dir.path().join("sub")).unwrap();
        let err = keys.create("a", "c2").unwrap_err().to_string();
        assert!(err.starts_with("cannot write the keys file"), "{err}");
        assert_eq!(keys.list().len(), 1);
        assert!(keys.revoke("b").is_err());
        assert!(keys.resolve(CONFIGURED).is_some());
    }
}
