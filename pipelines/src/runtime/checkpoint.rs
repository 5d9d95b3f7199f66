//! Durable checkpoints on local disk: window state, de-duplication state and
//! source offsets, written together so a restart resumes exactly where the
//! state ends.
//!
//! State is kept per partition number (a *task*: partition `p` of every
//! topic of the job, see [`livepulse_contract::topics`]), so a partition's
//! state can move to another instance of the group: `<root>/partition-<p>/`
//! holds that task's checkpoints, and instances sharing the root directory
//! (a shared volume across machines) hand tasks over through it.
//!
//! A checkpoint is a directory `ckpt-<id>-<owner>` holding `meta.json`,
//! `panes.arrow`, `ids.arrow` and, for jobs with a session window,
//! `sessions.arrow`; `owner` is the writing instance's token, so two
//! instances briefly owning one task during a rebalance never write the
//! same path. It is written as `<name>.tmp`, every file and the directory
//! are fsynced, and only then renamed into place, so a crash at any point
//! leaves the previous checkpoint intact. The newest id wins; every
//! checkpoint holds state and offsets of one instant, so any of them is a
//! correct place to resume from.
//!
//! Beside them, `shown-<epoch>-<owner>.log` journals the sessions emitted
//! since checkpoint `epoch` was snapshotted (see
//! [`super::session::SessionState::restore_shown`]). A restore from
//! checkpoint `n` reads the journals of epochs `n` and later; publishing
//! checkpoint `n` removes those of earlier epochs.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::crashpoint;
use super::state::Progress;

const META: &str = "meta.json";
const PANES: &str = "panes.arrow";
const IDS: &str = "ids.arrow";
const SESSIONS: &str = "sessions.arrow";
const PREFIX: &str = "ckpt-";
const TMP: &str = ".tmp";
const TASK_PREFIX: &str = "partition-";
const JOURNAL_PREFIX: &str = "shown-";
const JOURNAL_SUFFIX: &str = ".log";
/// Checkpoints kept besides the newest, for inspection after an incident.
const KEEP_OLDER: usize = 1;

/// Why a checkpoint could not be written or read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A state file is not valid Arrow IPC.
    #[error("checkpoint {path}: {source}")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The error.
        source: ArrowError,
    },
    /// `meta.json` is unreadable.
    #[error("checkpoint {path}: {source}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// The directory holds checkpoints of the layout before per-partition
    /// state, which this version does not read.
    #[error(
        "{path} holds checkpoints of an earlier layout (one per instance, not per partition); move them away to start over"
    )]
    OldLayout {
        /// The directory.
        path: PathBuf,
    },
    /// The checkpoint was written for other windows; restoring it would
    /// mix incompatible states.
    #[error(
        "checkpoint {path} was written for windows {found:?}, the job now has {expected:?}; move the directory away to start over"
    )]
    Incompatible {
        /// The checkpoint directory.
        path: PathBuf,
        /// Windows in the checkpoint.
        found: Vec<String>,
        /// Windows of the job.
        expected: Vec<String>,
    },
}

/// Where a source partition resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to read: everything before it is in the state.
    pub next: i64,
}

/// Everything but the Arrow state of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Increasing checkpoint number.
    pub id: u64,
    /// The partition number whose state this is.
    pub partition: i32,
    /// The job's windows, to refuse a checkpoint of another window layout.
    pub windows: Vec<String>,
    /// Emission progress of the window state.
    pub progress: Progress,
    /// The watermark when the checkpoint was taken.
    pub watermark: Option<i64>,
    /// Per source partition, where reading resumes.
    pub offsets: Vec<SourceOffset>,
}

/// A checkpoint: metadata plus pane states and tracked event ids.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Metadata.
    pub meta: Meta,
    /// Schema of the pane states (the job's accumulator states), which
    /// may be saved with no pane at all.
    pub pane_schema: SchemaRef,
    /// Pane states.
    pub panes: Vec<RecordBatch>,
    /// Tracked event ids.
    pub ids: RecordBatch,
    /// Open and recently emitted sessions, for jobs with a session window.
    pub sessions: Option<RecordBatch>,
}

/// The checkpoint directory of one pipeline (one consumer group), holding
/// one [`CheckpointStore`] per partition number.
#[derive(Debug, Clone)]
pub struct CheckpointRoot {
    dir: PathBuf,
    owner: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

impl CheckpointRoot {
    /// The root in `dir`, created if missing, for the instance `owner`
    /// (a token unique to this process).
    pub fn open(dir: impl Into<PathBuf>, owner: &str) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let old = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(PREFIX));
        if old {
            return Err(CheckpointError::OldLayout { path: dir });
        }
        Ok(Self {
            dir,
            owner: owner.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store of partition number `partition`, created if missing.
    pub fn task(&self, partition: i32) -> Result<CheckpointStore, CheckpointError> {
        let dir = self.dir.join(format!("{TASK_PREFIX}{partition}"));
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(CheckpointStore {
            dir,
            partition,
            owner: self.owner.clone(),
        })
    }
}

/// The checkpoints of one partition number.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    partition: i32,
    owner: String,
}

impl CheckpointStore {
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names in the directory that `number` reads an id from, as (id,
    /// name), lowest first.
    fn numbered(
        &self,
        number: fn(&str) -> Option<&str>,
    ) -> Result<Vec<(u64, String)>, CheckpointError> {
        let mut found: Vec<(u64, String)> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let (id, _owner) = number(&name)?.split_once('-')?;
                Some((id.parse().ok()?, name))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Complete checkpoints as (id, directory name), oldest first.
    fn entries(&self) -> Result<Vec<(u64, String)>, CheckpointError> {
        self.numbered(|name| {
            name.strip_prefix(PREFIX)
                .filter(|rest| !rest.ends_with(TMP))
        })
    }

    /// Journals as (epoch, file name), by whichever instance.
    fn journals(&self) -> Result<Vec<(u64, String)>, CheckpointError> {
        self.numbered(|name| {
            name.strip_prefix(JOURNAL_PREFIX)?
                .strip_suffix(JOURNAL_SUFFIX)
        })
    }

    /// Appends `entry` to this instance's journal of epoch `epoch` (the
    /// newest checkpoint snapshotted or restored, 0 before any) and makes
    /// it durable. Call it before writing the rows the entry describes.
    pub fn journal_shown(&self, epoch: u64, entry: &[u8]) -> Result<(), CheckpointError> {
        let path = self.dir.join(format!(
            "{JOURNAL_PREFIX}{epoch}-{}{JOURNAL_SUFFIX}",
            self.owner
        ));
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = u32::try_from(entry.len()).unwrap_or(u32::MAX);
        let mut frame = Vec::with_capacity(4 + entry.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(entry);
        file.write_all(&frame).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Every journal entry of epoch `since` or later, oldest epoch first. A
    /// torn last entry is left out: the crash came before its rows were
    /// written.
    pub fn shown_since(&self, since: u64) -> Result<Vec<Vec<u8>>, CheckpointError> {
        let mut entries = Vec::new();
        for (_, name) in self.journals()?.into_iter().filter(|(e, _)| *e >= since) {
            let path = self.dir.join(name);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                // Removed by an instance that published a newer checkpoint.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            let mut rest = bytes.as_slice();
            while let Some(len) = rest.get(..4) {
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                let Some(entry) = rest.get(4..4 + len) else {
                    break;
                };
                entries.push(entry.to_vec());
                rest = &rest[4 + len..];
            }
        }
        Ok(entries)
    }

    /// The id of the newest complete checkpoint, by whichever instance.
    pub fn latest_id(&self) -> Result<Option<u64>, CheckpointError> {
        Ok(self.entries()?.last().map(|(id, _)| *id))
    }

    /// The newest complete checkpoint, if any, checked against `windows`.
    pub fn latest(&self, windows: &[String]) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some((_, name)) = self.entries()?.pop() else {
            return Ok(None);
        };
        let dir = self.dir.join(name);
        let meta_path = dir.join(META);
        let meta: Meta = serde_json::from_reader(BufReader::new(
            File::open(&meta_path).map_err(io(&meta_path))?,
        ))
        .map_err(|source| CheckpointError::Meta {
            path: meta_path.clone(),
            source,
        })?;
        if meta.windows != windows {
            return Err(CheckpointError::Incompatible {
                path: dir,
                found: meta.windows,
                expected: windows.to_vec(),
            });
        }
        let (pane_schema, panes) = read_batches(&dir.join(PANES))?;
        let ids_path = dir.join(IDS);
        let (id_schema, ids) = read_batches(&ids_path)?;
        let ids = concat_batches(&id_schema, &ids).map_err(|source| CheckpointError::Arrow {
            path: ids_path,
            source,
        })?;
        let sessions_path = dir.join(SESSIONS);
        let sessions = if sessions_path.exists() {
            let (schema, batches) = read_batches(&sessions_path)?;
            Some(
                concat_batches(&schema, &batches).map_err(|source| CheckpointError::Arrow {
                    path: sessions_path,
                    source,
                })?,
            )
        } else {
            None
        };
        Ok(Some(Checkpoint {
            meta,
            pane_schema,
            panes,
            ids,
            sessions,
        }))
    }

    /// The id the next checkpoint gets.
    pub fn next_id(&self) -> Result<u64, CheckpointError> {
        Ok(self.latest_id()?.map_or(1, |id| id + 1))
    }

    /// The partition number of this store.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Writes `checkpoint` durably, then removes all but the newest
    /// [`KEEP_OLDER`] + 1 checkpoints.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let id = checkpoint.meta.id;
        let name = format!("{PREFIX}{id}-{}", self.owner);
        let tmp = self.dir.join(format!("{name}{TMP}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir(&tmp).map_err(io(&tmp))?;
        let meta_path = tmp.join(META);
        let mut meta = BufWriter::new(File::create(&meta_path).map_err(io(&meta_path))?);
        serde_json::to_writer_pretty(&mut meta, &checkpoint.meta).map_err(|source| {
            CheckpointError::Meta {
                path: meta_path.clone(),
                source,
            }
        })?;
        let meta = meta
            .into_inner()
            .map_err(|e| io(&meta_path)(e.into_error()))?;
        meta.sync_all().map_err(io(&meta_path))?;
        write_batches(&tmp.join(PANES), &checkpoint.pane_schema, &checkpoint.panes)?;
        let ids = &checkpoint.ids;
        write_batches(&tmp.join(IDS), &ids.schema(), std::slice::from_ref(ids))?;
        if let Some(sessions) = &checkpoint.sessions {
            write_batches(
                &tmp.join(SESSIONS),
                &sessions.schema(),
                std::slice::from_ref(sessions),
            )?;
        }
        sync_dir(&tmp)?;
        crashpoint::reached("checkpoint");
        let done = self.dir.join(&name);
        fs::rename(&tmp, &done).map_err(io(&done))?;
        sync_dir(&self.dir)?;
        let entries = self.entries()?;
        for (_, old) in entries
            .iter()
            .take(entries.len().saturating_sub(KEEP_OLDER + 1))
        {
            let path = self.dir.join(old);
            removed(&path, fs::remove_dir_all(&path))?;
        }
        // What they journal, checkpoint `id` holds.
        for (_, old) in self.journals()?.iter().filter(|(epoch, _)| *epoch < id) {
            let path = self.dir.join(old);
            removed(&path, fs::remove_file(&path))?;
        }
        Ok(())
    }
}

/// The outcome of removing `path`: another instance may have removed it
/// first.
fn removed(path: &Path, removal: std::io::Result<()>) -> Result<(), CheckpointError> {
    match removal {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn write_batches(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), CheckpointError> {
    let arrow = |source| CheckpointError::Arrow {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(io(path))?;
    let mut writer = FileWriter::try_new(BufWriter::new(file), schema).map_err(arrow)?;
    for batch in batches {
        writer.write(batch).map_err(arrow)?;
    }
    let mut out = writer.into_inner().map_err(arrow)?;
    out.flush().map_err(io(path))?;
    out.get_ref().sync_all().map_err(io(path))
}

fn read_batches(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), CheckpointError> {
    let file = File::open(path).map_err(io(path))?;
    FileReader::try_new(BufReader::new(file), None)
        .and_then(|reader| {
            let schema = reader.schema();
            Ok((schema, reader.collect::<Result<Vec<_>, _>>()?))
        })
        .map_err(|source| CheckpointError::Arrow {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, UInt64Array};

    use super::*;
    use crate::runtime::state::id_schema;

    fn ids() -> RecordBatch {
        RecordBatch::try_new(
            id_schema(),
            vec![
                Arc::new(UInt64Array::from(vec![1])),
                Arc::new(UInt64Array::from(vec![2])),
                Arc::new(Int64Array::from(vec![10_000])),
            ],
        )
        .unwrap()
    }

    /// Checkpoint `id` of partition 3, resuming at offset `10 * id`.
    fn checkpoint(id: u64, windows: &[String], sessions: Option<RecordBatch>) -> Checkpoint {
        Checkpoint {
            meta: Meta {
                id,
                partition: 3,
                windows: windows.to_vec(),
                progress: Progress::default(),
                watermark: Some(id as i64),
                offsets: vec![SourceOffset {
                    topic: "t".into(),
                    partition: 0,
                    next: id as i64 * 10,
                }],
            },
            pane_schema: id_schema(),
            panes: vec![],
            ids: ids(),
            sessions,
        }
    }

    fn names(store: &CheckpointStore) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn saves_atomically_and_reads_back_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let root = CheckpointRoot::open(dir.path().join("group"), "a1").unwrap();
        let store = root.task(3).unwrap();
        assert_eq!(store.partition(), 3);
        assert!(store.latest(&[]).unwrap().is_none());
        let windows = vec!["tumble(interval '10 seconds')".to_owned()];
        let ids = ids();
        for id in 1..=3 {
            assert_eq!(store.next_id().unwrap(), id);
            let sessions = (id == 3).then(|| ids.clone());
            store.save(&checkpoint(id, &windows, sessions)).unwrap();
        }
        // A crash mid-write leaves a .tmp directory, which is ignored.
        fs::create_dir(store.dir().join("ckpt-4-a1.tmp")).unwrap();
        let latest = store.latest(&windows).unwrap().unwrap();
        assert_eq!(latest.meta.offsets[0].next, 30);
        assert_eq!(latest.ids, ids);
        assert_eq!(latest.sessions, Some(ids));
        // Only the newest two are kept.
        assert_eq!(
            names(&store),
            vec!["ckpt-2-a1", "ckpt-3-a1", "ckpt-4-a1.tmp"]
        );
        assert!(matches!(
            store.latest(&["hop(...)".to_owned()]),
            Err(CheckpointError::Incompatible { .. })
        ));
        // Another instance taking the task over continues the numbering,
        // and its checkpoint is the newest.
        let other = CheckpointRoot::open(dir.path().join("group"), "b2")
            .unwrap()
            .task(3)
            .unwrap();
        assert_eq!(other.next_id().unwrap(), 4);
        let mut taken_over = latest.clone();
        taken_over.meta.id = 4;
        other.save(&taken_over).unwrap();
        assert_eq!(store.latest_id().unwrap(), Some(4));
        assert_eq!(
            names(&store),
            vec!["ckpt-3-a1", "ckpt-4-a1.tmp", "ckpt-4-b2"]
        );
        // Checkpoints of the layout before per-partition state are refused.
        let old = dir.path().join("old");
        fs::create_dir_all(old.join("ckpt-7")).unwrap();
        assert!(matches!(
            CheckpointRoot::open(&old, "a1"),
            Err(CheckpointError::OldLayout { .. })
        ));
    }

    #[test]
    fn journals_shown_sessions_by_epoch_until_a_checkpoint_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = CheckpointRoot::open(dir.path(), "a1").unwrap();
        let store = root.task(3).unwrap();
        assert!(store.shown_since(0).unwrap().is_empty());
        store.journal_shown(0, b"before any checkpoint").unwrap();
        store.journal_shown(1, b"after 1").unwrap();
        store.journal_shown(1, b"").unwrap();
        // Another instance that restored checkpoint 1 journals beside it.
        let other = CheckpointRoot::open(dir.path(), "b2").unwrap();
        other.task(3).unwrap().journal_shown(1, b"by b2").unwrap();
        // A crash mid-append leaves a torn last entry, which is left out.
        let mut torn = OpenOptions::new()
            .append(true)
            .open(store.dir().join("shown-1-a1.log"))
            .unwrap();
        torn.write_all(&[9, 0, 0, 0, b'x']).unwrap();
        let all: Vec<&[u8]> = vec![b"before any checkpoint", b"after 1", b"", b"by b2"];
        assert_eq!(store.shown_since(0).unwrap(), all);
        assert_eq!(store.shown_since(1).unwrap(), all[1..]);
        assert!(store.shown_since(2).unwrap().is_empty());
        // Publishing checkpoint 1 removes what it holds: epoch 0.
        store.save(&checkpoint(1, &[], None)).unwrap();
        assert_eq!(
            names(&store),
            vec!["ckpt-1-a1", "shown-1-a1.log", "shown-1-b2.log"]
        );
        store.save(&checkpoint(2, &[], None)).unwrap();
        assert_eq!(names(&store), vec!["ckpt-1-a1", "ckpt-2-a1"]);
    }
}
