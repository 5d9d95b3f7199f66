//! The keys file (`[origin] keys_file`): the stream keys the admin API
//! created and the configured keys it revoked, so both survive a restart.
//! Written whole on every change, atomically (a temporary file, fsync,
//! rename, fsync of the directory), readable by the origin's user only; a
//! file others may read is refused at start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::config::{Secret, StreamKey, check_creator_id, check_key, check_stream_id};

/// The format version this origin writes and reads.
const VERSION: u32 = 1;

/// What the keys file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeysDoc {
    /// Always [`VERSION`].
    pub version: u32,
    /// Keys created with the admin API and not revoked.
    pub created: Vec<StreamKey>,
    /// Configured keys revoked with the admin API.
    pub revoked: Vec<Secret>,
}

/// Why the keys file cannot be used.
#[derive(Debug, Error)]
pub enum KeysFileError {
    /// Reading failed.
    #[error("cannot read the keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Others may read it: it holds secrets.
    #[error("the keys file {path} is readable by others (mode {mode:o}): chmod 600 it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Its content is not a keys file.
    #[error("the keys file {path} is invalid: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Writing failed; nothing changed.
    #[error("cannot write the keys file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Reads `path`; an absent file is an empty one (the first start).
pub(crate) fn load(path: &Path) -> Result<KeysDoc, KeysFileError> {
    let read_err = |source| KeysFileError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(KeysDoc::new()),
        Err(err) => return Err(read_err(err)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeysFileError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    let text = fs::read(path).map_err(read_err)?;
    let invalid = |problem: String| KeysFileError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let doc: KeysDoc = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    if doc.version != VERSION {
        return Err(invalid(format!(
            "version {} (this origin reads {VERSION})",
            doc.version
        )));
    }
    for (i, entry) in doc.created.iter().enumerate() {
        let entry_err = |problem: String| invalid(format!("created entry {i}: {problem}"));
        check_key(entry.key.expose()).map_err(|p| entry_err(format!("key {p}")))?;
        check_stream_id(&entry.stream_id).map_err(|p| entry_err(format!("stream_id {p}")))?;
        check_creator_id(&entry.creator_id).map_err(|p| entry_err(format!("creator_id {p}")))?;
        let earlier = &doc.created[..i];
        if earlier
            .iter()
            .any(|o| o.key == entry.key || o.stream_id == entry.stream_id)
        {
            return Err(entry_err("key or stream_id is used twice".into()));
        }
    }
    Ok(doc)
}

/// Replaces `path` with `doc`: readers see the old file or the new one,
/// never a part, and the new one survives a crash once this returned.
pub(crate) fn save(path: &Path, doc: &KeysDoc) -> Result<(), KeysFileError> {
    let write_err = |source| KeysFileError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.tmp"));
    let json = serde_json::to_vec_pretty(doc).map_err(|e| write_err(io::Error::other(e)))?;
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        // `mode` only applies to a new file: a leftover may be wider.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map_err(write_err)
}

impl KeysDoc {
    /// An empty document of the current version.
    pub(crate) fn new() -> Self {
        Self {
            version: VERSION,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> KeysDoc {
        KeysDoc {
            created: vec![StreamKey {
                key: "sk_0123456789abcdef".into(),
                stream_id: "late-show".into(),
                creator_id: "c9".into(),
            }],
            revoked: vec!["sk_configured012345".into()],
            ..KeysDoc::new()
        }
    }

    #[test]
    fn round_trips_privately_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        assert_eq!(load(&path).unwrap(), KeysDoc::new(), "absent: empty");
        // A leftover temporary file from a crash, world-readable.
        let leftover = dir.path().join(".keys.json.tmp");
        fs::write(&leftover, b"partial").unwrap();
        fs::set_permissions(&leftover, fs::Permissions::from_mode(0o644)).unwrap();
        save(&path, &doc()).unwrap();
        assert_eq!(load(&path).unwrap(), doc());
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!leftover.exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keys.json"]);
    }

    #[test]
    fn refuses_exposed_or_invalid_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        save(&path, &doc()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let exposed = load(&path).unwrap_err().to_string();
        assert!(
            exposed.ends_with("is readable by others (mode 644): chmod 600 it"),
            "{exposed}"
        );
        let invalid = |text: &str| {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = load(&path).unwrap_err().to_string();
            let prefix = format!("the keys file {} is invalid: ", path.display());
            err.strip_prefix(&prefix).unwrap_or(&err).to_owned()
        };
        assert_eq!(
            invalid("{\"version\":2,\"created\":[],\"revoked\":[]}"),
            "version 2 (this origin reads 1)"
        );
        assert!(
            invalid("not json").contains("at line 1"),
            "{}",
            invalid("not json")
        );
        assert_eq!(
            invalid(
                r#"{"version":1,"created":[{"key":"short","stream_id":"s","creator_id":"c"}],"revoked":[]}"#
            ),
            "created entry 0: key must be 16..=128 characters"
        );
        let twice = r#"{"version":1,"created":[
            {"key":"sk_0123456789abcdef","stream_id":"s","creator_id":"c"},
            {"key":"sk_0123456789abcdeX","stream_id":"s","creator_id":"c"}],"revoked":[]}"#;
        assert_eq!(
            invalid(twice),
            "created entry 1: key or stream_id is used twice"
        );
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("keys.json");
        let err = save(&path, &doc()).unwrap_err().to_string();
        assert!(err.starts_with("cannot write the keys file"), "{err}");
        assert!(!path.exists());
    }
}
