//! What the log stores: raft hard state, entries and snapshot markers, and their payloads.

use bytes::Bytes;

/// Raft's persistent vote state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term` (0 = none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// One raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Raft index (1-based).
    pub index: u64,
    /// Term the entry was proposed in.
    pub term: u64,
    /// Raft entry type (normal, conf change, ...), opaque to the log.
    pub kind: u8,
    /// The entry's payload.
    pub data: Bytes,
}

/// Marks that a snapshot up to `index` exists: entries at or before it are no longer needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotMarker {
    /// Last index covered by the snapshot.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Raft hard state; the newest one wins on replay.
    HardState(HardState),
    /// A raft entry; one at an index at or below the last replaces the suffix from there.
    Entry(Entry),
    /// A snapshot marker; replay yields only entries after the newest one.
    Snapshot(SnapshotMarker),
}

/// On-disk record type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    HardState = 1,
    Entry = 2,
    Snapshot = 3,
}

pub(crate) const HARD_STATE_PAYLOAD_BYTES: usize = 24;
pub(crate) const SNAPSHOT_PAYLOAD_BYTES: usize = 16;
/// Index, term and entry kind precede an entry's data.
pub(crate) const ENTRY_PREFIX_BYTES: usize = 17;

impl Kind {
    pub(crate) fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::HardState),
            2 => Some(Kind::Entry),
            3 => Some(Kind::Snapshot),
            _ => None,
        }
    }
}

impl Record {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Record::HardState(_) => Kind::HardState,
            Record::Entry(_) => Kind::Entry,
            Record::Snapshot(_) => Kind::Snapshot,
        }
    }

    /// Size of the payload `encode_payload` writes.
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Record::HardState(_) => HARD_STATE_PAYLOAD_BYTES,
            Record::Entry(entry) => ENTRY_PREFIX_BYTES + entry.data.len(),
            Record::Snapshot(_) => SNAPSHOT_PAYLOAD_BYTES,
        }
    }

    /// Appends the payload, little-endian, to `buffer`.
    pub(crate) fn encode_payload(&self, buffer: &mut Vec<u8>) {
        match self {
            Record::HardState(state) => {
                buffer.extend_from_slice(&state.term.to_le_bytes());
                buffer.extend_from_slice(&state.vote.to_le_bytes());
                buffer.extend_from_slice(&state.commit.to_le_bytes());
            }
            Record::Entry(entry) => {
                buffer.extend_from_slice(&entry.index.to_le_bytes());
                buffer.extend_from_slice(&entry.term.to_le_bytes());
                buffer.push(entry.kind);
                buffer.extend_from_slice(&entry.data);
            }
            Record::Snapshot(marker) => {
                buffer.extend_from_slice(&marker.index.to_le_bytes());
                buffer.extend_from_slice(&marker.term.to_le_bytes());
            }
        }
    }

    /// Decodes a payload whose CRC already checked out. `None` means the payload does not
    /// have the shape its kind requires.
    pub(crate) fn decode_payload(kind: Kind, payload: &[u8]) -> Option<Record> {
        match kind {
            Kind::HardState => {
                if payload.len() != HARD_STATE_PAYLOAD_BYTES {
                    return None;
                }
                Some(Record::HardState(HardState {
                    term: read_u64(payload, 0)?,
                    vote: read_u64(payload, 8)?,
                    commit: read_u64(payload, 16)?,
                }))
            }
            Kind::Entry => {
                let kind = *payload.get(16)?;
                let data = payload.get(ENTRY_PREFIX_BYTES..)?;
                Some(Record::Entry(Entry {
                    index: read_u64(payload, 0)?,
                    term: read_u64(payload, 8)?,
                    kind,
                    data: Bytes::copy_from_slice(data),
                }))
            }
            Kind::Snapshot => {
                if payload.len() != SNAPSHOT_PAYLOAD_BYTES {
                    return None;
                }
                Some(Record::Snapshot(SnapshotMarker {
                    index: read_u64(payload, 0)?,
                    term: read_u64(payload, 8)?,
                }))
            }
        }
    }
}

/// Reads a little-endian `u64` at `at`, or `None` past the end.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(field))
}

/// Reads a little-endian `u32` at `at`, or `None` past the end.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(field))
}
