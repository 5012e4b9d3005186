//! Backend batching: the staged backend batch is committed with the applied index every
//! 100 ms or 10 000 changes (or now, before maintenance and snapshots).

use super::*;

pub(super) use crate::schema::applied_meta as meta;

impl Loop {
    pub(super) fn run_task(&mut self, t: LoopTask) -> Result<()> {
        self.maybe_commit(true)?;
        match t {
            LoopTask::Commit => Ok(()),
            LoopTask::Defragment => {
                let started = Instant::now();
                let before = self.state.store.backend.size();
                // The pinned snapshot view would keep the old file alive.
                self.prepared_source = None;
                self.snap_cell.lock().prepared = None;
                self.state.store.backend.defragment()?;
                tracing::info!(
                    before,
                    after = self.state.store.backend.size(),
                    took = ?started.elapsed(),
                    "defragmented backend"
                );
                Ok(())
            }
        }
    }

    /// Commits the backend batch when it is due (in the background), or now and durably
    /// when `force`.
    pub(super) fn maybe_commit(&mut self, force: bool) -> Result<()> {
        let be = &self.state.store.backend;
        let pending = be.pending();
        let dirty = pending > 0 || self.committed_ci != self.applied_index;
        if dirty
            && (force || pending >= BATCH_LIMIT || self.last_commit.elapsed() >= BATCH_INTERVAL)
        {
            be.commit_async(meta(self.applied_index, self.applied_term))?;
            self.committed_ci = self.applied_index;
            self.last_commit = Instant::now();
        }
        if force {
            be.wait_committed()?;
        }
        Ok(())
    }
}
