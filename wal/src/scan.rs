//! Open-time recovery: reads every segment, checks the record chain, tells a torn tail
//! (cut off and repaired) from corruption (reported), and applies raft's overwrite rules
//! to produce the `Replay`.
//!
//! The rule that separates the two: batches are written strictly one after another, the
//! next write starting only after the previous fdatasync returned. Every record carries its
//! sequence number and its position in its write batch, so a valid record found after a
//! break whose batch *starts after* the broken record proves the broken record's batch was
//! durable: that is corruption. Anything else after a break (zeros, garbage, records of the
//! same unfinished batch) is a torn tail.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use crate::error::Error;
use crate::frame::{parse_at, Chain, Parsed, RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES};
use crate::limits::SEGMENT_BYTES_MAX;
use crate::record::{Entry, HardState, Record, SnapshotMarker};
use crate::segment::{list_segments, SegmentFile, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::sys;

/// What `Wal::open` found in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// The newest hard state, if any was ever written.
    pub hard_state: Option<HardState>,
    /// The newest snapshot marker, if any.
    pub snapshot: Option<SnapshotMarker>,
    /// Entries after the snapshot marker, contiguous and in index order, with every
    /// overwrite (an entry at or below the last index replacing the suffix) applied.
    pub entries: Vec<Entry>,
    /// Set when open cut off a torn tail (records whose write never completed).
    pub torn_tail: Option<TornTail>,
}

/// Where a torn tail was cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// File name of the last segment.
    pub segment: String,
    /// Offset of the first byte that was not part of a complete record.
    pub offset: u64,
    /// Why the record there did not check out.
    pub reason: String,
}

/// A live segment and the highest entry index written into it (for release).
#[derive(Debug, Clone)]
pub(crate) struct SegmentState {
    pub(crate) file: SegmentFile,
    pub(crate) max_entry_index: Option<u64>,
}

/// Everything the writer needs to continue the log.
pub(crate) struct Recovered {
    pub(crate) replay: Replay,
    pub(crate) segments: Vec<SegmentState>,
    /// The last segment, open for writing, and where the next record goes in it.
    pub(crate) tail_file: File,
    pub(crate) tail_offset: u64,
    pub(crate) tail_capacity: u64,
    pub(crate) chain: Chain,
    /// Index of the last entry written (before the snapshot filter), for segment names.
    pub(crate) last_index: u64,
}

/// Reads the log in `directory`; `None` when it has no segment yet. Cuts off a torn tail.
pub(crate) fn recover(directory: &Path) -> Result<Option<Recovered>, Error> {
    let mut builder = ReplayBuilder::default();
    let Some(log) = scan_log(directory, &mut builder)? else {
        return Ok(None);
    };
    let tail = log
        .segments
        .last()
        .expect("log has a last segment")
        .file
        .clone();
    let tail_file = open_tail(
        &tail,
        log.tail_offset,
        log.tail_capacity,
        log.torn.is_some(),
    )?;
    let last_index = builder.last_written_index;
    let mut replay = builder.finish(&log.segments)?;
    replay.torn_tail = log.torn.map(|reason| TornTail {
        segment: tail.name.clone(),
        offset: log.tail_offset,
        reason,
    });
    Ok(Some(Recovered {
        replay,
        segments: log.segments,
        tail_file,
        tail_offset: log.tail_offset,
        tail_capacity: log.tail_capacity,
        chain: log.chain,
        last_index,
    }))
}

/// Reads every record of the log in `directory`, in log order and raw: no raft rules,
/// no repair of a torn tail (reading stops before it), no lock. For tools and tests;
/// corruption is reported exactly as `Wal::open` reports it.
pub fn read_records(directory: impl AsRef<Path>) -> Result<Vec<Record>, Error> {
    let mut builder = ReplayBuilder {
        raw: Some(Vec::new()),
        ..ReplayBuilder::default()
    };
    scan_log(directory.as_ref(), &mut builder)?;
    Ok(builder.raw.unwrap_or_default())
}

struct ScannedLog {
    segments: Vec<SegmentState>,
    chain: Chain,
    tail_offset: u64,
    tail_capacity: u64,
    /// Why the last segment's tail was torn, if it was.
    torn: Option<String>,
}

/// Checks every segment in order and feeds its records to `builder`.
fn scan_log(directory: &Path, builder: &mut ReplayBuilder) -> Result<Option<ScannedLog>, Error> {
    let files = list_segments(directory)?;
    let Some(last_position) = files.len().checked_sub(1) else {
        return Ok(None);
    };
    let mut segments: Vec<SegmentState> = Vec::with_capacity(files.len());
    let mut chain: Option<(Chain, String, u64)> = None;
    let mut log = None;
    for (position, file) in files.into_iter().enumerate() {
        if let Some(previous) = segments.last() {
            if previous.file.sequence + 1 != file.sequence {
                let reason = "the segment before this one is missing";
                return Err(Error::corrupt(&file.name, 0, reason));
            }
        }
        let bytes = read_segment(&file)?;
        let header = check_header(&file, &bytes, chain.as_ref())?;
        let scanned = scan_records(&file, &bytes, header.chain, position, builder)?;
        let is_last = position == last_position;
        let torn = check_end(&file, &bytes, &scanned, is_last)?;
        if is_last {
            log = Some(ScannedLog {
                segments: Vec::new(),
                chain: scanned.chain,
                tail_offset: scanned.end as u64,
                tail_capacity: header.capacity.max(bytes.len() as u64),
                torn,
            });
        }
        chain = Some((scanned.chain, file.name.clone(), scanned.end as u64));
        segments.push(SegmentState {
            file,
            max_entry_index: scanned.max_entry_index,
        });
    }
    let mut log = log.expect("log has a last segment");
    log.segments = segments;
    Ok(Some(log))
}

/// Decides what follows the last valid record of a segment: `Ok(None)` for a clean end,
/// `Ok(Some(reason))` for a torn tail (only allowed in the last segment), else corruption.
fn check_end(
    file: &SegmentFile,
    bytes: &[u8],
    scanned: &Scanned,
    is_last: bool,
) -> Result<Option<String>, Error> {
    match classify_break(bytes, scanned.end, scanned.chain.next_sequence) {
        BreakKind::CleanEnd => Ok(None),
        BreakKind::Torn if is_last => Ok(Some(scanned.reason.to_string())),
        BreakKind::Torn => {
            let reason = format!(
                "damaged data after the last valid record of a non-final segment ({})",
                scanned.reason
            );
            Err(Error::corrupt(&file.name, scanned.end as u64, reason))
        }
        BreakKind::Corrupt { found_at, sequence } => {
            let reason = format!(
                "{}, yet a valid record of a later write (sequence {sequence}) follows at offset {found_at}",
                scanned.reason
            );
            Err(Error::corrupt(&file.name, scanned.end as u64, reason))
        }
    }
}

fn read_segment(file: &SegmentFile) -> Result<Vec<u8>, Error> {
    let context = || format!("reading {}", file.path.display());
    let length = fs::metadata(&file.path)
        .map_err(|e| Error::io(context(), e))?
        .len();
    if length > SEGMENT_BYTES_MAX {
        return Err(Error::corrupt(
            &file.name,
            0,
            "file is larger than any segment can be",
        ));
    }
    fs::read(&file.path).map_err(|e| Error::io(context(), e))
}

/// Checks the header against the file name and, for every segment but the first, against
/// where the previous segment's chain ended.
fn check_header(
    file: &SegmentFile,
    bytes: &[u8],
    previous: Option<&(Chain, String, u64)>,
) -> Result<SegmentHeader, Error> {
    let header =
        SegmentHeader::decode(bytes).map_err(|reason| Error::corrupt(&file.name, 0, reason))?;
    if header.sequence != file.sequence || header.first_index != file.first_index {
        return Err(Error::corrupt(
            &file.name,
            0,
            "segment header does not match the file name",
        ));
    }
    if let Some((chain, previous_name, previous_end)) = previous {
        if header.chain != *chain {
            let reason = format!(
                "log ends here, but the next segment {} continues from record {} (this one \
                 stops before record {}): records are missing",
                file.name, header.chain.next_sequence, chain.next_sequence
            );
            return Err(Error::corrupt(previous_name, *previous_end, reason));
        }
    }
    Ok(header)
}

struct Scanned {
    chain: Chain,
    /// Offset of the first byte after the last valid, chained record.
    end: usize,
    reason: &'static str,
    max_entry_index: Option<u64>,
}

/// Feeds every valid, chained record of one segment to `builder`; stops at the first
/// record that does not check out.
fn scan_records(
    file: &SegmentFile,
    bytes: &[u8],
    mut chain: Chain,
    position: usize,
    builder: &mut ReplayBuilder,
) -> Result<Scanned, Error> {
    let mut at = SEGMENT_HEADER_BYTES;
    let mut max_entry_index: Option<u64> = None;
    let reason = loop {
        let parsed = match parse_at(bytes, at) {
            Ok(parsed) => parsed,
            Err(reason) => break reason,
        };
        if parsed.sequence != chain.next_sequence || parsed.previous_crc != chain.previous_crc {
            break "record does not continue the chain of the record before it";
        }
        let Some(record) = Record::decode_payload(parsed.kind, parsed.payload) else {
            return Err(Error::corrupt(
                &file.name,
                at as u64,
                "record payload is malformed",
            ));
        };
        if let Record::Entry(entry) = &record {
            max_entry_index = Some(max_entry_index.map_or(entry.index, |m| m.max(entry.index)));
        }
        builder.push(record, (position, at as u64));
        chain = Chain {
            next_sequence: parsed.sequence + 1,
            previous_crc: parsed.crc,
        };
        at = parsed.end;
    };
    Ok(Scanned {
        chain,
        end: at,
        reason,
        max_entry_index,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum BreakKind {
    /// Only zeros (or nothing) follow: the normal end of a segment.
    CleanEnd,
    /// Something follows that proves no later batch was written: a torn write.
    Torn,
    /// A valid record from a later write batch follows: the break is damage.
    Corrupt { found_at: usize, sequence: u64 },
}

/// Decides what the bytes from `at` on mean, `expected` being the sequence number the
/// record at `at` should have had.
fn classify_break(bytes: &[u8], at: usize, expected: u64) -> BreakKind {
    let rest = bytes.get(at..).unwrap_or(&[]);
    if rest.iter().all(|byte| *byte == 0) {
        return BreakKind::CleanEnd;
    }
    // A sequence number further ahead than records could fit is garbage, not a record.
    let plausible_max = expected.saturating_add((bytes.len() / RECORD_HEADER_BYTES) as u64);
    let mut probe = at;
    while probe + RECORD_HEADER_BYTES <= bytes.len() {
        if let Ok(parsed) = parse_at(bytes, probe) {
            if proves_later_batch(&parsed, expected, plausible_max) {
                return BreakKind::Corrupt {
                    found_at: probe,
                    sequence: parsed.sequence,
                };
            }
        }
        probe += RECORD_ALIGN_BYTES;
    }
    BreakKind::Torn
}

fn proves_later_batch(parsed: &Parsed<'_>, expected: u64, plausible_max: u64) -> bool {
    parsed.sequence >= expected
        && parsed.sequence <= plausible_max
        && parsed.batch_first_sequence() > expected
}

/// Opens the last segment for writing; after a torn tail, cuts the file at `offset` and
/// preallocates it again (so the discarded bytes read as zeros), durably, before any new
/// record can be written after them.
fn open_tail(segment: &SegmentFile, offset: u64, capacity: u64, torn: bool) -> Result<File, Error> {
    let context = || format!("opening {} for appending", segment.path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment.path)
        .map_err(|e| Error::io(context(), e))?;
    if torn {
        let context = || format!("cutting the torn tail of {}", segment.path.display());
        file.set_len(offset).map_err(|e| Error::io(context(), e))?;
        sys::preallocate(&file, capacity).map_err(|e| Error::io(context(), e))?;
        file.sync_all().map_err(|e| Error::io(context(), e))?;
    }
    Ok(file)
}

/// Applies raft's rules to the records in log order.
#[derive(Default)]
struct ReplayBuilder {
    hard_state: Option<HardState>,
    snapshot: Option<SnapshotMarker>,
    entries: Vec<Entry>,
    /// Where each of `entries` was read (segment position, offset), for error messages.
    locations: Vec<(usize, u64)>,
    /// An entry that skipped indexes after earlier entries, dropping them.
    gap: Option<(usize, u64, u64, u64)>,
    last_written_index: u64,
    /// Every record as read, when the caller wants the raw log.
    raw: Option<Vec<Record>>,
}

impl ReplayBuilder {
    fn push(&mut self, record: Record, location: (usize, u64)) {
        if let Some(raw) = &mut self.raw {
            raw.push(record.clone());
        }
        match record {
            Record::HardState(state) => self.hard_state = Some(state),
            Record::Snapshot(marker) => {
                self.snapshot = Some(marker);
                self.last_written_index = self.last_written_index.max(marker.index);
                let drop = self
                    .entries
                    .partition_point(|entry| entry.index <= marker.index);
                self.entries.drain(..drop);
                self.locations.drain(..drop);
            }
            Record::Entry(entry) => {
                self.last_written_index = entry.index;
                if let Some(last) = self.entries.last() {
                    if entry.index <= last.index {
                        let keep = self
                            .entries
                            .partition_point(|kept| kept.index < entry.index);
                        self.entries.truncate(keep);
                        self.locations.truncate(keep);
                    } else if entry.index > last.index + 1 {
                        let expected = last.index + 1;
                        self.gap = Some((location.0, location.1, expected, entry.index));
                        self.entries.clear();
                        self.locations.clear();
                    }
                }
                self.entries.push(entry);
                self.locations.push(location);
            }
        }
    }

    fn finish(mut self, segments: &[SegmentState]) -> Result<Replay, Error> {
        let name = |position: usize| segments[position].file.name.as_str();
        if let Some(marker) = self.snapshot {
            let drop = self
                .entries
                .partition_point(|entry| entry.index <= marker.index);
            self.entries.drain(..drop);
            self.locations.drain(..drop);
            if let (Some(first), Some(&(position, offset))) =
                (self.entries.first(), self.locations.first())
            {
                if first.index != marker.index + 1 {
                    let reason = format!(
                        "entries resume at index {} after the snapshot at {}: entries are missing",
                        first.index, marker.index
                    );
                    return Err(Error::corrupt(name(position), offset, reason));
                }
            }
        } else if let Some((position, offset, expected, found)) = self.gap {
            let reason = format!(
                "entry index {found} follows {}: entries are missing",
                expected - 1
            );
            return Err(Error::corrupt(name(position), offset, reason));
        }
        Ok(Replay {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries: self.entries,
            torn_tail: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Record {
        Record::Entry(Entry {
            index,
            term,
            kind: 0,
            data: Bytes::new(),
        })
    }

    fn indexes_terms(replay: &Replay) -> Vec<(u64, u64)> {
        replay.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    fn build(records: Vec<Record>) -> Result<Replay, Error> {
        let mut builder = ReplayBuilder::default();
        for (i, record) in records.into_iter().enumerate() {
            builder.push(record, (0, i as u64));
        }
        let segment = SegmentState {
            file: SegmentFile {
                name: "s".into(),
                path: "s".into(),
                sequence: 0,
                first_index: 0,
            },
            max_entry_index: None,
        };
        builder.finish(&[segment])
    }

    #[test]
    fn overwrite_replaces_the_suffix() {
        let replay = build(vec![
            entry(1, 1),
            entry(2, 1),
            entry(3, 1),
            entry(2, 2),
            entry(3, 2),
        ])
        .unwrap();
        assert_eq!(indexes_terms(&replay), vec![(1, 1), (2, 2), (3, 2)]);
    }

    #[test]
    fn snapshot_marker_drops_covered_entries() {
        let marker = Record::Snapshot(SnapshotMarker { index: 2, term: 1 });
        let replay = build(vec![
            entry(1, 1),
            entry(2, 1),
            entry(3, 1),
            marker,
            entry(4, 1),
        ])
        .unwrap();
        assert_eq!(indexes_terms(&replay), vec![(3, 1), (4, 1)]);
        assert_eq!(replay.snapshot, Some(SnapshotMarker { index: 2, term: 1 }));
    }

    #[test]
    fn gap_without_covering_snapshot_is_an_error() {
        assert!(build(vec![entry(1, 1), entry(3, 1)]).is_err());
        let marker = Record::Snapshot(SnapshotMarker { index: 5, term: 1 });
        assert!(build(vec![marker.clone(), entry(8, 1)]).is_err());
        let covered = build(vec![
            entry(1, 1),
            entry(4, 1),
            entry(5, 1),
            entry(6, 1),
            marker,
        ])
        .unwrap();
        assert_eq!(indexes_terms(&covered), vec![(6, 1)]);
    }

    #[test]
    fn break_classification() {
        assert_eq!(classify_break(&[0u8; 100], 64, 5), BreakKind::CleanEnd);
        let mut garbage = vec![0u8; 200];
        garbage[80] = 0x55;
        assert_eq!(classify_break(&garbage, 64, 5), BreakKind::Torn);
    }
}
