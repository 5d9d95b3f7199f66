//! A task: the state of one partition number, i.e. partition `p` of every
//! topic of a job (they hold the same streams, see
//! [`livepulse_contract::topics`]), with its checkpoints. Tasks are what
//! instances of a consumer group hand each other on a rebalance.

use tokio::task::JoinHandle;

use super::PipelineError;
use super::checkpoint::{CheckpointError, CheckpointStore, SourceOffset};
use super::processor::{Lateness, Processor};
use crate::jobs::Job;

/// A checkpoint written to disk: its id and the offsets it resumes at.
struct Saved {
    id: u64,
    positions: Vec<SourceOffset>,
}

/// One partition number's processor and checkpoints.
pub(crate) struct Task<J: Job> {
    pub(crate) processor: Processor<J>,
    store: CheckpointStore,
    /// The newest checkpoint this instance wrote or restored for the task.
    latest: Option<u64>,
    /// The newest checkpoint snapshotted or restored (0 before any): the
    /// journal epoch of the sessions shown since.
    epoch: u64,
    /// Between a revocation and the next assignment: its partitions may be
    /// another member's, so it is neither emitted nor checkpointed.
    pub(crate) revoked: bool,
    /// The checkpoint being written, off the loop.
    saving: Option<JoinHandle<Result<Saved, CheckpointError>>>,
}

impl<J: Job> Task<J> {
    /// The task restored from the newest checkpoint in `store` (by any
    /// instance), or empty, and the sessions journaled as shown since; with
    /// the offsets its state resumes at.
    pub(crate) async fn restore(
        job: J,
        lateness: Lateness,
        store: CheckpointStore,
    ) -> Result<(Self, Vec<SourceOffset>), PipelineError> {
        let mut processor = Processor::new(job, lateness).await?;
        let (latest, resume) = match store.latest(&processor.window_names())? {
            Some(checkpoint) => {
                let (id, resume) = (checkpoint.meta.id, checkpoint.meta.offsets.clone());
                processor.restore(checkpoint).await?;
                (Some(id), resume)
            }
            None => (None, Vec::new()),
        };
        let epoch = latest.unwrap_or(0);
        for entry in store.shown_since(epoch)? {
            processor.restore_shown(&entry)?;
        }
        let task = Self {
            processor,
            store,
            latest,
            epoch,
            revoked: false,
            saving: None,
        };
        Ok((task, resume))
    }

    /// The checkpoint the task's state comes from or was last saved as.
    pub(crate) fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// Whether another instance checkpointed the task after this one last
    /// did: its state in memory is then older than the one on disk.
    pub(crate) fn superseded(&self) -> Result<bool, CheckpointError> {
        Ok(self.store.latest_id()? > self.latest)
    }

    /// Durably journals the sessions an emission shows (its `shown`, see
    /// [`super::processor::Emission`]) off the loop; await it before
    /// writing the emission's rows.
    pub(crate) fn journal_shown(&self, entry: Vec<u8>) -> JoinHandle<Result<(), CheckpointError>> {
        let (store, epoch) = (self.store.clone(), self.epoch);
        tokio::task::spawn_blocking(move || store.journal_shown(epoch, &entry))
    }

    /// Whether a checkpoint is being written and has finished.
    pub(crate) fn save_finished(&self) -> bool {
        self.saving.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Waits for the checkpoint being written; returns its offsets, to be
    /// committed.
    pub(crate) async fn written(&mut self) -> Result<Option<Vec<SourceOffset>>, PipelineError> {
        let Some(saving) = self.saving.take() else {
            return Ok(None);
        };
        let saved = joined(saving).await?;
        self.latest = Some(saved.id);
        Ok(Some(saved.positions))
    }

    /// Snapshots the state with `positions` (where its partitions resume)
    /// and writes it on a blocking thread, so windows keep closing
    /// meanwhile. Call [`Self::written`] first, and right after the
    /// processor's ingest, so nothing read is left out.
    pub(crate) async fn start_checkpoint(
        &mut self,
        positions: Vec<SourceOffset>,
    ) -> Result<(), PipelineError> {
        let id = self.store.next_id()?;
        self.epoch = id;
        let checkpoint = self
            .processor
            .checkpoint(id, self.store.partition(), positions.clone())
            .await?;
        let store = self.store.clone();
        self.saving = Some(tokio::task::spawn_blocking(move || {
            store.save(&checkpoint).map(|()| Saved { id, positions })
        }));
        Ok(())
    }
}

/// What a blocking job returned; its panic, if it panicked.
pub(crate) async fn joined<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
