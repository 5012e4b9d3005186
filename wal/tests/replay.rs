//! Replay returns exactly what was appended and acknowledged, across segment rollovers and
//! restarts, on every backend; raft's overwrite and snapshot rules apply on replay.

mod common;

use cairn_wal::{BackendChoice, HardState, Record, SnapshotMarker, Wal};
use common::*;

#[test]
fn round_trip_across_rollovers_and_restarts() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        let mut hard_state = None;
        let mut next = 1u64;
        for restart in 0..4u64 {
            let (wal, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
            assert_eq!(replay.entries, expected, "{backend:?} restart {restart}");
            assert_eq!(replay.hard_state, hard_state);
            assert!(replay.torn_tail.is_none());
            for batch in 0..25u64 {
                let mut records: Vec<Record> = (0..1 + batch % 4)
                    .map(|_| {
                        let e = numbered(next, restart + 1);
                        next += 1;
                        expected.push(e.clone());
                        Record::Entry(e)
                    })
                    .collect();
                let state = HardState {
                    term: restart + 1,
                    vote: batch % 3,
                    commit: next - 2,
                };
                records.push(Record::HardState(state));
                hard_state = Some(state);
                wal.append_blocking(records).unwrap();
            }
            let stats = wal.stats();
            assert!(
                stats.segments_created >= 1,
                "{backend:?}: no rollover in {stats:?}"
            );
            wal.close().unwrap();
        }
        assert!(segment_names(dir.path()).len() > 4);
        let (_, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        assert_eq!(replay.entries, expected);
    }
}

#[test]
fn async_appends_round_trip() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let expected: Vec<_> = (1..=200).map(|i| numbered(i, 2)).collect();
        let (wal, _) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        runtime.block_on(async {
            for chunk in expected.chunks(7) {
                wal.append(chunk.iter().cloned().map(Record::Entry).collect())
                    .await
                    .unwrap();
            }
            wal.sync().await.unwrap();
        });
        wal.close().unwrap();
        let (_, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        assert_eq!(replay.entries, expected);
    }
}

#[test]
fn overwritten_suffix_is_replaced_on_replay() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        let first: Vec<_> = (1..=60).map(|i| numbered(i, 1)).collect();
        wal.append_blocking(first.iter().cloned().map(Record::Entry).collect())
            .unwrap();
        // A new leader overwrites from index 41 on, with fewer entries.
        let second: Vec<_> = (41..=50).map(|i| numbered(i, 2)).collect();
        wal.append_blocking(second.iter().cloned().map(Record::Entry).collect())
            .unwrap();
        wal.close().unwrap();
        let (wal, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        let mut expected = first[..40].to_vec();
        expected.extend(second.iter().cloned());
        assert_eq!(replay.entries, expected);
        // Overwrite again after the restart, across the segment just reopened.
        wal.append_blocking(vec![Record::Entry(numbered(45, 3))])
            .unwrap();
        wal.close().unwrap();
        let (_, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        expected.truncate(44);
        expected.push(numbered(45, 3));
        assert_eq!(replay.entries, expected);
    }
}

#[test]
fn snapshot_marker_and_release_before() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        let all: Vec<_> = (1..=300).map(|i| numbered(i, 1)).collect();
        for chunk in all.chunks(10) {
            wal.append_blocking(chunk.iter().cloned().map(Record::Entry).collect())
                .unwrap();
        }
        let state = HardState {
            term: 1,
            vote: 2,
            commit: 290,
        };
        wal.append_blocking(vec![Record::HardState(state)]).unwrap();
        // Releasing before a snapshot marker exists is refused.
        let refused = wal.release_before(200).unwrap_err();
        assert!(
            matches!(refused, cairn_wal::Error::ReleaseBeyondSnapshot { .. }),
            "{refused}"
        );
        let marker = SnapshotMarker {
            index: 200,
            term: 1,
        };
        wal.append_blocking(vec![Record::Snapshot(marker)]).unwrap();
        let before = segment_names(dir.path());
        let released = wal.release_before(200).unwrap();
        let after = segment_names(dir.path());
        assert!(released > 0, "segments {before:?}");
        assert_eq!(after.len(), before.len() - released);
        assert_eq!(after[..], before[released..]);
        // More entries and a rollover after the release.
        let more: Vec<_> = (301..=400).map(|i| numbered(i, 2)).collect();
        for chunk in more.chunks(10) {
            wal.append_blocking(chunk.iter().cloned().map(Record::Entry).collect())
                .unwrap();
        }
        wal.close().unwrap();
        let (wal, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        assert_eq!(replay.snapshot, Some(marker));
        assert_eq!(replay.hard_state, Some(state));
        let mut expected = all[200..].to_vec();
        expected.extend(more);
        assert_eq!(replay.entries, expected);
        // Releasing everything up to a newer marker keeps the current segment and the state.
        let marker = SnapshotMarker {
            index: 400,
            term: 2,
        };
        wal.append_blocking(vec![Record::Snapshot(marker)]).unwrap();
        wal.release_before(401).unwrap();
        wal.close().unwrap();
        let (_, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
        assert_eq!(replay.snapshot, Some(marker));
        assert_eq!(replay.hard_state, Some(state));
        assert!(replay.entries.is_empty());
    }
}

#[test]
fn closed_log_refuses_calls_and_releases_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), BackendChoice::Pwritev, SMALL_SEGMENT_BYTES);
    let second = Wal::open(
        dir.path(),
        options(BackendChoice::Pwritev, SMALL_SEGMENT_BYTES),
    );
    assert!(matches!(second, Err(cairn_wal::Error::Locked(_))));
    wal.append_blocking(vec![Record::Entry(numbered(1, 1))])
        .unwrap();
    wal.close().unwrap();
    assert!(matches!(
        wal.append_blocking(vec![]),
        Err(cairn_wal::Error::Closed)
    ));
    assert!(matches!(wal.sync_blocking(), Err(cairn_wal::Error::Closed)));
    assert!(matches!(wal.close(), Err(cairn_wal::Error::Closed)));
    let (_, replay) = open(dir.path(), BackendChoice::Pwritev, SMALL_SEGMENT_BYTES);
    assert_eq!(indexes(&replay), vec![1]);
}

#[test]
fn record_larger_than_a_segment_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), BackendChoice::Pwritev, SMALL_SEGMENT_BYTES);
    let big = entry(1, 1, &vec![0u8; SMALL_SEGMENT_BYTES as usize]);
    let error = wal.append_blocking(vec![Record::Entry(big)]).unwrap_err();
    assert!(
        matches!(error, cairn_wal::Error::RecordTooLarge { .. }),
        "{error}"
    );
    // The log is not poisoned by a rejected append.
    wal.append_blocking(vec![Record::Entry(numbered(1, 1))])
        .unwrap();
    let invalid = Wal::open(dir.path().join("x"), options(BackendChoice::Pwritev, 100));
    assert!(matches!(invalid, Err(cairn_wal::Error::InvalidOptions(_))));
}
