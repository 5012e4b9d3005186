//! Raft snapshots: installing the leader's backend file, compacting the raft log every
//! `--snapshot-count` entries, and preparing a pinned backend view for a follower that
//! fell behind the log.

use super::*;

/// One pinned backend view shared by every follower the snapshot goes to (sends to several
/// followers take turns reading it).
pub(super) type SharedSource = Arc<parking_lot::Mutex<Box<dyn SnapshotSource>>>;

pub(super) struct SourceRef(pub(super) SharedSource, pub(super) u64);

impl SnapshotSource for SourceRef {
    fn size(&self) -> u64 {
        self.1
    }
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<u64> {
        self.0.lock().write_to(w)
    }
}

impl Loop {
    /// Replaces this member's state with the leader's backend file.
    pub(super) fn install_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let md = snap.get_metadata();
        let (index, term) = (md.index, md.term);
        let Some(path) = self.snapshot_files.remove(&index) else {
            return Err(Error::Internal(format!(
                "raft snapshot at index {index} arrived without its backend file"
            )));
        };
        tracing::info!(index, term, "installing snapshot from the leader");
        // Anything staged is older than the snapshot.
        let rec = crate::snapshot::install(&self.state, &path)?;
        if rec.consistent_index != index {
            tracing::warn!(
                file_index = rec.consistent_index,
                index,
                "snapshot file's consistent index differs from the raft snapshot"
            );
        }
        let conf = md.get_conf_state().clone();
        self.node
            .mut_store()
            .mem
            .wl()
            .apply_snapshot(snap.clone())
            .map_err(|e| Error::Internal(format!("raft snapshot: {e}")))?;
        storage::snapshot(&self.wal, &self.opts.snap_dir, index, term, &conf)?;
        self.applied_index = index;
        self.applied_term = term;
        self.committed_ci = index;
        self.last_snapshot = index;
        self.conf = conf;
        let m = Membership::load(&self.state.store.backend)?;
        self.set_membership(m);
        for (_, old) in self.snapshot_files.drain() {
            let _ = std::fs::remove_file(old);
        }
        tracing::info!(index, "snapshot installed");
        Ok(())
    }

    pub(super) fn maybe_snapshot(&mut self) -> Result<()> {
        if self.applied_index <= self.last_snapshot + self.opts.snapshot_count {
            return Ok(());
        }
        self.maybe_commit(true)?;
        let (index, term) = (self.applied_index, self.applied_term);
        storage::snapshot(&self.wal, &self.opts.snap_dir, index, term, &self.conf)?;
        // Keep some entries so a follower slightly behind catches up from the log (etcd
        // keeps 5000 by default).
        let keep = (self.opts.snapshot_count / 10).clamp(1, 5000);
        let compact_to = index.saturating_sub(keep).max(1);
        let first = self.node.raft.raft_log.first_index();
        if compact_to > first {
            self.node
                .mut_store()
                .mem
                .wl()
                .compact(compact_to)
                .map_err(|e| Error::Internal(format!("raft log compact: {e}")))?;
        }
        self.last_snapshot = index;
        tracing::info!(
            index,
            term,
            compacted_to = compact_to,
            "raft snapshot: log compacted"
        );
        Ok(())
    }

    /// Prepares the snapshot raft asked for: the backend committed at the applied index
    /// and a pinned view of it.
    pub(super) fn maybe_prepare_snapshot(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.snap_cell.lock().wanted) {
            return Ok(());
        }
        if let Some((i, _, _)) = &self.prepared_source {
            if *i == self.applied_index {
                return Ok(());
            }
        }
        self.maybe_commit(true)?;
        let src = crate::snapshot::source(&self.state)?;
        let mut snap = Snapshot::default();
        snap.set_data(SNAPSHOT_DATA.to_vec().into());
        let md = snap.mut_metadata();
        md.index = self.applied_index;
        md.term = self.applied_term;
        md.set_conf_state(self.conf.clone());
        tracing::info!(
            index = self.applied_index,
            bytes = src.size(),
            "prepared a snapshot for a follower behind the log"
        );
        let size = src.size();
        self.prepared_source = Some((
            self.applied_index,
            Arc::new(parking_lot::Mutex::new(src)),
            size,
        ));
        self.snap_cell.lock().prepared = Some(snap);
        Ok(())
    }
}
