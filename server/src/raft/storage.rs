//! The raft log: cairn-wal on disk, raft-rs's `MemStorage` in memory. At start the WAL is
//! replayed into the memory log; the backend's consistent index says how far entries were
//! already applied.

use std::path::Path;

use cairn_wal::{Record, Wal};
use raft::eraftpb::{ConfState, EntryType, HardState, Snapshot};
use raft::prelude::Entry;
use raft::storage::MemStorage;

use super::RaftOptions;
use crate::error::{Error, Result};
use crate::mvcc::store::Recovered;

fn wal_err(e: cairn_wal::Error) -> Error {
    Error::Internal(format!("wal: {e}"))
}

pub(super) struct Boot {
    pub(super) wal: Wal,
    pub(super) storage: MemStorage,
    pub(super) applied: u64,
    pub(super) snapshot_index: u64,
}

/// Opens the WAL and rebuilds the raft log.
pub(super) fn open(opts: &RaftOptions, id: u64, rec: &Recovered) -> Result<Boot> {
    std::fs::create_dir_all(&opts.wal_dir)
        .map_err(|e| Error::Internal(format!("create {}: {e}", opts.wal_dir.display())))?;
    std::fs::create_dir_all(&opts.snap_dir)
        .map_err(|e| Error::Internal(format!("create {}: {e}", opts.snap_dir.display())))?;
    // CAIRN_WAL_BACKEND=pwritev|io_uring forces the WAL's disk backend (default: auto).
    let backend = match std::env::var("CAIRN_WAL_BACKEND").as_deref() {
        Ok("pwritev") => cairn_wal::BackendChoice::Pwritev,
        Ok("io_uring") => cairn_wal::BackendChoice::IoUring,
        _ => cairn_wal::BackendChoice::Auto,
    };
    let wal_opts = cairn_wal::Options {
        backend,
        ..Default::default()
    };
    let (wal, replay) = Wal::open(&opts.wal_dir, wal_opts).map_err(wal_err)?;
    tracing::info!(backend = ?wal.backend(), "WAL opened");
    let ci = rec.consistent_index;
    let (mut snap_index, mut snap_term) = replay
        .snapshot
        .as_ref()
        .map(|m| (m.index, m.term))
        .unwrap_or((0, 0));
    let last_wal = replay.entries.last().map(|e| e.index).unwrap_or(snap_index);
    if ci > last_wal {
        // The backend is ahead of the log (e.g. restored from a snapshot file): the backend
        // is the snapshot.
        snap_index = ci;
        snap_term = rec.term.max(snap_term).max(1);
        wal.append_blocking(vec![Record::Snapshot(cairn_wal::SnapshotMarker {
            index: snap_index,
            term: snap_term,
        })])
        .map_err(wal_err)?;
        tracing::info!(
            index = snap_index,
            term = snap_term,
            "raft log starts at the backend's index"
        );
    }
    let cs = ConfState {
        voters: vec![id],
        ..Default::default()
    };
    let storage = MemStorage::new();
    {
        let mut s = storage.wl();
        if snap_index > 0 {
            let mut snap = Snapshot::default();
            let md = snap.mut_metadata();
            md.index = snap_index;
            md.term = snap_term;
            md.set_conf_state(cs.clone());
            s.apply_snapshot(snap)
                .map_err(|e| Error::Internal(format!("raft snapshot: {e}")))?;
        } else {
            s.set_conf_state(cs);
        }
        let entries: Vec<Entry> = replay
            .entries
            .iter()
            .filter(|e| e.index > snap_index)
            .map(from_wal)
            .collect();
        let last = entries.last().map(|e| e.index).unwrap_or(snap_index);
        s.append(&entries)
            .map_err(|e| Error::Internal(format!("raft log: {e}")))?;
        let mut hs = HardState::default();
        if let Some(h) = &replay.hard_state {
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
            "raft log replayed"
        );
    }
    Ok(Boot {
        wal,
        storage,
        applied: ci.max(snap_index),
        snapshot_index: snap_index,
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
    wal.append_blocking(recs).map_err(wal_err)
}

/// Records a raft snapshot at `index` (the backend is committed up to it): a WAL marker,
/// older segments released, and a small metadata file in `member/snap/`.
pub(super) fn snapshot(wal: &Wal, snap_dir: &Path, id: u64, index: u64, term: u64) -> Result<()> {
    wal.append_blocking(vec![Record::Snapshot(cairn_wal::SnapshotMarker {
        index,
        term,
    })])
    .map_err(wal_err)?;
    wal.release_before(index).map_err(wal_err)?;
    let name = format!("{term:016x}-{index:016x}.snap");
    let body = serde_json::json!({ "index": index, "term": term, "voters": [id] }).to_string();
    let tmp = snap_dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, body)
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
