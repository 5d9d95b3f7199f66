//! Durable checkpoints on local disk: window state, de-duplication state and
//! source offsets, written together so a restart resumes exactly where the
//! state ends.
//!
//! A checkpoint is a directory `ckpt-<id>` holding `meta.json`,
//! `panes.arrow`, `ids.arrow` and, for jobs with a session window,
//! `sessions.arrow`. It is written as `ckpt-<id>.tmp`, every
//! file and the directory are fsynced, and only then renamed into place, so
//! a crash at any point leaves the previous checkpoint intact.

use std::fs::{self, File};
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

/// The checkpoint directory of one pipeline (one consumer group).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

impl CheckpointStore {
    /// The store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ids(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut ids: Vec<u64> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix(PREFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The newest complete checkpoint, if any, checked against `windows`.
    pub fn latest(&self, windows: &[String]) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some(id) = self.ids()?.pop() else {
            return Ok(None);
        };
        let dir = self.dir.join(format!("{PREFIX}{id}"));
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
        Ok(self.ids()?.last().map_or(1, |id| id + 1))
    }

    /// Writes `checkpoint` durably, then removes all but the newest
    /// [`KEEP_OLDER`] + 1 checkpoints.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let id = checkpoint.meta.id;
        let tmp = self.dir.join(format!("{PREFIX}{id}.tmp"));
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
        let done = self.dir.join(format!("{PREFIX}{id}"));
        fs::rename(&tmp, &done).map_err(io(&done))?;
        sync_dir(&self.dir)?;
        let ids = self.ids()?;
        for old in ids.iter().take(ids.len().saturating_sub(KEEP_OLDER + 1)) {
            let path = self.dir.join(format!("{PREFIX}{old}"));
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        Ok(())
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

    #[test]
    fn saves_atomically_and_reads_back_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("group")).unwrap();
        assert!(store.latest(&[]).unwrap().is_none());
        let windows = vec!["tumble(interval '10 seconds')".to_owned()];
        let ids = RecordBatch::try_new(
            id_schema(),
            vec![
                Arc::new(UInt64Array::from(vec![1])),
                Arc::new(UInt64Array::from(vec![2])),
                Arc::new(Int64Array::from(vec![10_000])),
            ],
        )
        .unwrap();
        for id in 1..=3 {
            assert_eq!(store.next_id().unwrap(), id);
            let checkpoint = Checkpoint {
                meta: Meta {
                    id,
                    windows: windows.clone(),
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
                ids: ids.clone(),
                sessions: (id == 3).then(|| ids.clone()),
            };
            store.save(&checkpoint).unwrap();
        }
        // A crash mid-write leaves a .tmp directory, which is ignored.
        fs::create_dir(store.dir().join("ckpt-4.tmp")).unwrap();
        let latest = store.latest(&windows).unwrap().unwrap();
        assert_eq!(latest.meta.offsets[0].next, 30);
        assert_eq!(latest.ids, ids);
        assert_eq!(latest.sessions, Some(ids));
        // Only the newest two are kept.
        let mut names: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["ckpt-2", "ckpt-3", "ckpt-4.tmp"]);
        assert!(matches!(
            store.latest(&["hop(...)".to_owned()]),
            Err(CheckpointError::Incompatible { .. })
        ));
    }
}
