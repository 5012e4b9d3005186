//! Torn tails: a log whose last segment was cut short, or whose tail holds zeros or
//! garbage, opens with exactly the complete records before the tear, and appending
//! continues after them.

mod common;

use std::fs;
use std::path::Path;

use cairn_wal::{BackendChoice, Entry, Record};
use common::*;
use rand::{Rng, SeedableRng};

const SEGMENT_BYTES: u64 = 64 * 1024;

/// A one-segment log of `count` entries, one append (one batch) each. Returns the entries,
/// the end offset of each record in the segment, and the segment's name.
fn build_log(dir: &Path, backend: BackendChoice, count: u64) -> (Vec<Entry>, Vec<u64>, String) {
    let (wal, _) = open(dir, backend, SEGMENT_BYTES);
    let mut entries = Vec::new();
    let mut ends = Vec::new();
    for index in 1..=count {
        let e = entry(index, 1, &vec![index as u8; (index as usize * 13) % 90]);
        wal.append_blocking(vec![Record::Entry(e.clone())]).unwrap();
        entries.push(e);
        // Records follow the 64-byte segment header back to back.
        ends.push(64 + wal.stats().bytes);
    }
    wal.close().unwrap();
    let names = segment_names(dir);
    assert_eq!(names.len(), 1);
    // The documented framing: 32-byte header, payload padded to 8 bytes.
    let framed: Vec<u64> = entries
        .iter()
        .map(|e| 32 + (17 + e.data.len() as u64).next_multiple_of(8))
        .collect();
    let mut expected_end = 64;
    for (end, size) in ends.iter().zip(&framed) {
        expected_end += size;
        assert_eq!(*end, expected_end);
    }
    (entries, ends, names[0].clone())
}

/// Writes `image` as the only segment of a fresh log directory.
fn install(image: &[u8], name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(name), image).unwrap();
    dir
}

/// End offsets of the records without their zero padding: zeros written over padding
/// alone leave a record intact.
fn content_ends(entries: &[Entry], ends: &[u64]) -> Vec<u64> {
    let framed = |e: &Entry| 32 + (17 + e.data.len() as u64).next_multiple_of(8);
    entries
        .iter()
        .zip(ends)
        .map(|(e, end)| end - framed(e) + 32 + 17 + e.data.len() as u64)
        .collect()
}

/// How many records end at or before `cut`.
fn complete_before(ends: &[u64], cut: u64) -> usize {
    ends.iter().filter(|end| **end <= cut).count()
}

/// Opens the damaged log and checks the replay is exactly the first `complete` records;
/// with `append_after`, appends the next entry and checks it survives a restart.
fn check_opens_with_prefix(
    dir: &Path,
    entries: &[Entry],
    ends: &[u64],
    complete: usize,
    append_after: bool,
    what: &str,
) {
    let (wal, replay) = open(dir, BackendChoice::Pwritev, SEGMENT_BYTES);
    assert_eq!(replay.entries, entries[..complete], "{what}");
    if let Some(torn) = &replay.torn_tail {
        let end_of_complete = complete.checked_sub(1).map_or(64, |last| ends[last]);
        assert_eq!(torn.offset, end_of_complete, "{what}");
    }
    if !append_after {
        return;
    }
    let next = entry(complete as u64 + 1, 2, b"after the tear");
    wal.append_blocking(vec![Record::Entry(next.clone())])
        .unwrap();
    wal.close().unwrap();
    let (_, replay) = open(dir, BackendChoice::Pwritev, SEGMENT_BYTES);
    let mut expected = entries[..complete].to_vec();
    expected.push(next);
    assert_eq!(replay.entries, expected, "{what}, after appending");
    assert!(replay.torn_tail.is_none());
}

#[test]
fn truncation_at_every_byte_of_the_final_records() {
    let source = tempfile::tempdir().unwrap();
    let (entries, ends, name) = build_log(source.path(), BackendChoice::Pwritev, 30);
    let image = fs::read(source.path().join(&name)).unwrap();
    let first = ends[ends.len() - 4];
    let last = *ends.last().unwrap();
    for cut in first..=last {
        let dir = install(&image[..cut as usize], &name);
        let complete = complete_before(&ends, cut);
        assert!(complete >= 26);
        // Appending after the repair is checked at a sample of the cuts (each costs fsyncs).
        let append_after = cut % 16 == 0 || ends.contains(&cut) || ends.contains(&(cut + 1));
        let what = format!("truncation at {cut}");
        check_opens_with_prefix(dir.path(), &entries, &ends, complete, append_after, &what);
    }
}

#[test]
fn zero_and_garbage_filled_tails() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for backend in backends() {
        let source = tempfile::tempdir().unwrap();
        let (entries, ends, name) = build_log(source.path(), backend, 30);
        let image = fs::read(source.path().join(&name)).unwrap();
        assert_eq!(image.len() as u64, SEGMENT_BYTES, "segment is preallocated");
        let first = ends[ends.len() - 4];
        let last = *ends.last().unwrap();
        let unpadded = content_ends(&entries, &ends);
        for cut in (first..=last).step_by(5) {
            let append_after = cut % 3 == 0;
            let mut zeroed = image.clone();
            zeroed[cut as usize..].fill(0);
            let dir = install(&zeroed, &name);
            let complete = complete_before(&unpadded, cut);
            let what = format!("zeros from {cut}");
            check_opens_with_prefix(dir.path(), &entries, &ends, complete, append_after, &what);

            let mut garbage = image.clone();
            rng.fill(&mut garbage[cut as usize..]);
            let dir = install(&garbage, &name);
            let complete = complete_before(&ends, cut);
            let (wal, replay) = open(dir.path(), BackendChoice::Pwritev, SEGMENT_BYTES);
            assert!(
                replay.torn_tail.is_some(),
                "garbage at {cut} must be reported as a torn tail"
            );
            assert_eq!(replay.entries, entries[..complete], "garbage from {cut}");
            drop((wal, replay));
            let what = format!("garbage from {cut}, reopened");
            check_opens_with_prefix(dir.path(), &entries, &ends, complete, append_after, &what);
        }
    }
}

#[test]
fn torn_write_of_a_whole_batch_leaves_earlier_batches() {
    // A batch of several records whose write tore in the middle: some of its records made it,
    // a later one did not. Every complete record before the tear is kept.
    let source = tempfile::tempdir().unwrap();
    let (wal, _) = open(source.path(), BackendChoice::Pwritev, SEGMENT_BYTES);
    let early: Vec<_> = (1..=5).map(|i| numbered(i, 1)).collect();
    wal.append_blocking(early.iter().cloned().map(Record::Entry).collect())
        .unwrap();
    let before = 64 + wal.stats().bytes;
    let batch: Vec<_> = (6..=12).map(|i| numbered(i, 1)).collect();
    wal.append_blocking(batch.iter().cloned().map(Record::Entry).collect())
        .unwrap();
    let after = 64 + wal.stats().bytes;
    wal.close().unwrap();
    let name = segment_names(source.path()).remove(0);
    let image = fs::read(source.path().join(&name)).unwrap();
    // Lose one 512-byte "sector" in the middle of the batch, keep what follows it.
    let hole = (before + (after - before) / 2) as usize / 512 * 512;
    let mut torn = image.clone();
    torn[hole..hole + 512].fill(0);
    let dir = install(&torn, &name);
    let (_, replay) = open(dir.path(), BackendChoice::Pwritev, SEGMENT_BYTES);
    assert!(replay.torn_tail.is_some());
    assert!(
        replay.entries.len() >= 5 && replay.entries.len() < 12,
        "{}",
        replay.entries.len()
    );
    assert_eq!(
        replay.entries[..],
        [early, batch].concat()[..replay.entries.len()]
    );
}

#[test]
fn torn_tail_in_the_last_of_many_segments() {
    for backend in backends() {
        let source = tempfile::tempdir().unwrap();
        let (wal, _) = open(source.path(), backend, SMALL_SEGMENT_BYTES);
        let all: Vec<_> = (1..=150).map(|i| numbered(i, 1)).collect();
        for e in &all {
            wal.append_blocking(vec![Record::Entry(e.clone())]).unwrap();
        }
        wal.close().unwrap();
        let names = segment_names(source.path());
        assert!(names.len() > 3);
        let last = names.last().unwrap();
        let image = fs::read(source.path().join(last)).unwrap();
        let used = image.iter().rposition(|b| *b != 0).unwrap() + 1;
        for cut in (64..used).step_by(97) {
            let dir = tempfile::tempdir().unwrap();
            for name in &names {
                fs::copy(source.path().join(name), dir.path().join(name)).unwrap();
            }
            fs::write(dir.path().join(last), &image[..cut]).unwrap();
            let (wal, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
            let kept = replay.entries.len();
            assert!(kept < all.len());
            assert_eq!(replay.entries, all[..kept]);
            let next = entry(kept as u64 + 1, 2, b"continues");
            wal.append_blocking(vec![Record::Entry(next.clone())])
                .unwrap();
            wal.close().unwrap();
            let (_, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
            assert_eq!(replay.entries[..kept], all[..kept]);
            assert_eq!(replay.entries[kept], next);
        }
    }
}
