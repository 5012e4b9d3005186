//! The raft log: cairn-wal on disk, raft-rs's `MemStorage` in memory. At start the WAL is
//! replayed into the memory log; the backend's consistent index says how far entries were
//! already applied, and the backend's `confState` is raft's configuration at that index.
//!
//! [`RaftStore`] is what raft-rs reads through: the memory log, plus the snapshot a lagging
//! follower is sent. A snapshot is the backend file at the applied index; the loop
//! prepares it on demand (raft asks, gets "temporarily unavailable", the loop commits the
//! backend, pins a read view of it, and raft's next attempt gets the metadata).

use std::path::Path;
use std::sync::Arc;

use cairn_wal::{Record, Wal};
use parking_lot::Mutex;
use raft::eraftpb::{ConfState, EntryType, HardState, Snapshot};
use raft::prelude::Entry;
use raft::storage::{MemStorage, RaftState, Storage};
use raft::{GetEntriesContext, StorageError};

use crate::error::{Error, Result};
use crate::recover::RaftLog;

fn wal_err(e: cairn_wal::Error) -> Error {
    Error::from(e)
}

/// The snapshot offered to followers, and whether raft asked for one.
#[derive(Default)]
pub(super) struct SnapCell {
    pub(super) prepared: Option<Snapshot>,
    pub(super) wanted: bool,
}

/// raft-rs's view of the log.
#[derive(Clone)]
pub(super) struct RaftStore {
    pub(super) mem: MemStorage,
    pub(super) snap: Arc<Mutex<SnapCell>>,
}

impl Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let mut c = self.snap.lock();
        if let Some(s) = &c.prepared {
            if s.get_metadata().index >= request_index {
                return Ok(s.clone());
            }
        }
        c.wanted = true;
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

pub(super) struct Boot {
    pub(super) wal: Wal,
    pub(super) storage: RaftStore,
    pub(super) applied: u64,
    pub(super) snapshot_index: u64,
    pub(super) conf: ConfState,
}

/// Rebuilds raft-rs's memory log from the replayed WAL (see `crate::recover::raft_log`).
pub(super) fn open(log: RaftLog) -> Result<Boot> {
    let RaftLog {
        wal,
        snapshot_index: snap_index,
        snapshot_term: snap_term,
        entries,
        hard_state,
        applied: ci,
        conf,
        ..
    } = log;
    let mem = MemStorage::new();
    {
        let mut s = mem.wl();
        if snap_index > 0 {
            let mut snap = Snapshot::default();
            let md = snap.mut_metadata();
            md.index = snap_index;
            md.term = snap_term;
            md.set_conf_state(conf.clone());
            s.apply_snapshot(snap)
                .map_err(|e| Error::Internal(format!("raft snapshot: {e}")))?;
        }
        // raft's configuration is the one at the applied index; entries after it are
        // applied again (conf changes among them too).
        s.set_conf_state(conf.clone());
        let entries: Vec<Entry> = entries.iter().map(from_wal).collect();
        let last = entries.last().map(|e| e.index).unwrap_or(snap_index);
        s.append(&entries)
            .map_err(|e| Error::Internal(format!("raft log: {e}")))?;
        let mut hs = HardState::default();
        if let Some(h) = &hard_state {
            hs.term = h.term;
            hs.vote = h.vote;
            hs.commit = h.commit;
        }
        hs.term = hs.term.max(snap_term);
        hs.commit = hs.commit.max(ci).max(snap_index).min(last);
        s.set_hardstate(hs);
        tracing::info!(
            snapshot = snap_index,
            last_index = last,
            applied = ci,
            voters = ?conf.voters,
            learners = ?conf.learners,
            "raft log replayed"
        );
    }
    Ok(Boot {
        wal,
        storage: RaftStore {
            mem,
            snap: Arc::new(Mutex::new(SnapCell::default())),
        },
        applied: ci.max(snap_index),
        snapshot_index: snap_index,
        conf,
    })
}

fn from_wal(e: &cairn_wal::Entry) -> Entry {
    let mut out = Entry {
        index: e.index,
        term: e.term,
        ..Default::default()
    };
    out.set_entry_type(match e.kind {
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        _ => EntryType::EntryNormal,
    });
    out.data = e.data.clone();
    out
}

fn to_wal(e: &Entry) -> cairn_wal::Entry {
    cairn_wal::Entry {
        index: e.index,
        term: e.term,
        kind: e.get_entry_type() as u8,
        data: e.data.clone(),
    }
}

/// Persists a Ready's entries and hard state in one WAL group commit.
pub(super) fn persist(wal: &Wal, entries: &[Entry], hs: Option<&HardState>) -> Result<()> {
    let mut recs = Vec::with_capacity(entries.len() + 1);
    for e in entries {
        recs.push(Record::Entry(to_wal(e)));
    }
    if let Some(h) = hs {
        recs.push(Record::HardState(cairn_wal::HardState {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        }));
    }
    let start = std::time::Instant::now();
    let r = wal.append_blocking(recs).map_err(wal_err);
    // The append returns once the batch is written and fdatasync'ed.
    crate::metrics::METRICS
        .wal_fsync
        .observe(start.elapsed().as_secs_f64());
    r
}

/// Records a raft snapshot at `index` (the backend is committed up to it): a WAL marker,
/// older segments released, and a small metadata file in `member/snap/`.
pub(super) fn snapshot(
    wal: &Wal,
    snap_dir: &Path,
    index: u64,
    term: u64,
    conf: &ConfState,
) -> Result<()> {
    wal.append_blocking(vec![Record::Snapshot(cairn_wal::SnapshotMarker {
        index,
        term,
    })])
    .map_err(wal_err)?;
    wal.release_before(index).map_err(wal_err)?;
    let name = format!("{term:016x}-{index:016x}.snap");
    let body = serde_json::json!({
        "index": index,
        "term": term,
        "voters": conf.voters,
        "learners": conf.learners,
    })
    .to_string();
    let tmp = snap_dir.join(format!("{name}.tmp"));
    crate::fileutil::private_file()
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, body.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, snap_dir.join(&name)))
        .map_err(|e| Error::Internal(format!("snap metadata: {e}")))?;
    if let Ok(rd) = std::fs::read_dir(snap_dir) {
        for f in rd.flatten() {
            let n = f.file_name().to_string_lossy().to_string();
            if n.ends_with(".snap") && n != name {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    Ok(())
}
