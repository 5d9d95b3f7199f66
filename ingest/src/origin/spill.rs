//! The spill directory: where segments go that the memory bound would
//! evict while a playlist still lists them. Files have random names, are
//! readable by the origin's user only, and are removed when the last
//! reference to them goes (the segment left the store and no viewer is
//! still reading it). Leftovers of an earlier run are removed at start.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::gauge;
use tracing::warn;
use uuid::Uuid;

use super::metrics::SPILL_BYTES;

/// The extension of spilled segments: only these are cleaned up.
const EXTENSION: &str = "seg";

/// Bytes on disk against the bound.
#[derive(Debug)]
struct Usage {
    max: usize,
    used: AtomicUsize,
}

impl Usage {
    fn release(&self, len: usize) {
        let left = self.used.fetch_sub(len, Ordering::AcqRel) - len;
        gauge!(SPILL_BYTES).set(left as f64);
    }
}

/// A bounded directory of spilled segments.
#[derive(Debug)]
pub(crate) struct Spill {
    dir: PathBuf,
    usage: Arc<Usage>,
}

impl Spill {
    /// Opens `dir` (created `0700` when missing) holding at most
    /// `max_bytes`, removing what an earlier run left.
    pub(crate) fn open(dir: &Path, max_bytes: usize) -> io::Result<Self> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == EXTENSION) {
                fs::remove_file(&path)?;
            }
        }
        gauge!(SPILL_BYTES).set(0.0);
        Ok(Self {
            dir: dir.to_owned(),
            usage: Arc::new(Usage {
                max: max_bytes,
                used: AtomicUsize::new(0),
            }),
        })
    }

    /// Claims room for `len` bytes; `false` when the bound has none.
    pub(crate) fn reserve(&self, len: usize) -> bool {
        let usage = &self.usage;
        let claimed = usage
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(len).filter(|total| *total <= usage.max)
            });
        match claimed {
            Ok(before) => {
                gauge!(SPILL_BYTES).set((before + len) as f64);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back room claimed but not used.
    pub(crate) fn unreserve(&self, len: usize) {
        self.usage.release(len);
    }

    /// Writes `bytes`, whose room [`Spill::reserve`] claimed, to a new
    /// file; on failure the room is given back.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<SpillFile> {
        let path = self
            .dir
            .join(format!("{}.{EXTENSION}", Uuid::new_v4().simple()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(bytes));
        let file = SpillFile {
            path,
            len: bytes.len(),
            usage: self.usage.clone(),
        };
        // Dropping it removes what was written and gives the room back.
        written.map(|()| file)
    }
}

/// A spilled segment; its file is removed when this is dropped.
#[derive(Debug)]
pub(crate) struct SpillFile {
    path: PathBuf,
    len: usize,
    usage: Arc<Usage>,
}

impl SpillFile {
    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                warn!(path = %self.path.display(), error = %err, "cannot remove a spilled segment")
            }
        }
        self.usage.release(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn bounded_private_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spill_dir = dir.path().join("spill");
        fs::create_dir(&spill_dir).unwrap();
        fs::write(spill_dir.join("old.seg"), b"left by an earlier run").unwrap();
        fs::write(spill_dir.join("keep.txt"), b"not ours").unwrap();
        let spill = Spill::open(&spill_dir, 10).unwrap();
        assert_eq!(files(&spill_dir), 1, "leftover segments are removed");
        let mode = fs::metadata(&spill_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        assert!(spill.reserve(6));
        assert!(!spill.reserve(5), "beyond the bound");
        let file = spill.write(b"abcdef").unwrap();
        assert_eq!(fs::read(file.path()).unwrap(), b"abcdef");
        let mode = fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(spill.reserve(4));
        let second = spill.write(b"ghij").unwrap();
        assert_eq!(files(&spill_dir), 3);
        let path = file.path().to_owned();
        drop(file);
        assert!(!path.exists());
        assert!(spill.reserve(6), "the room came back");
        drop(second);
        assert_eq!(files(&spill_dir), 1);
    }

    #[test]
    fn a_failed_write_gives_the_room_back() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), 10).unwrap();
        assert!(spill.reserve(10));
        fs::remove_dir(dir.path()).unwrap();
        assert!(spill.write(b"0123456789").is_err());
        assert!(spill.reserve(10));
    }
}
