//! Randomized operations (appends, raft overwrites, hard states, snapshot markers,
//! releases, restarts) on small segments, checked against a simple in-memory model of
//! raft's log after every restart.

mod common;

use cairn_wal::{BackendChoice, Entry, HardState, Record, SnapshotMarker};
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    snapshot: Option<SnapshotMarker>,
    term: u64,
}

impl Model {
    fn next_index(&self) -> u64 {
        match (self.entries.last(), self.snapshot) {
            (Some(last), _) => last.index + 1,
            (None, Some(marker)) => marker.index + 1,
            (None, None) => 1,
        }
    }

    /// Entries from `from` on, replacing any suffix, as raft's log does.
    fn write_from(&mut self, from: u64, count: u64) -> Vec<Record> {
        self.entries.retain(|e| e.index < from);
        (from..from + count)
            .map(|index| {
                let e = numbered(index, self.term);
                self.entries.push(e.clone());
                Record::Entry(e)
            })
            .collect()
    }
}

fn step(
    rng: &mut StdRng,
    model: &mut Model,
    backend: BackendChoice,
    dir: &std::path::Path,
    wal: &mut cairn_wal::Wal,
) {
    match rng.gen_range(0..100) {
        0..=49 => {
            let from = model.next_index();
            let records = model.write_from(from, rng.gen_range(1..6));
            wal.append_blocking(records).unwrap();
        }
        50..=59 if model.entries.len() > 1 => {
            // A new leader overwrites part of the unsnapshotted suffix.
            model.term += 1;
            let first = model.entries[0].index;
            let last = model.entries.last().unwrap().index;
            let from = rng.gen_range(first + 1..=last);
            let records = model.write_from(from, rng.gen_range(1..4));
            wal.append_blocking(records).unwrap();
        }
        60..=74 => {
            let state = HardState {
                term: model.term,
                vote: rng.gen_range(0..4),
                commit: model.next_index() - 1,
            };
            model.hard_state = Some(state);
            wal.append_blocking(vec![Record::HardState(state)]).unwrap();
        }
        75..=84 if !model.entries.is_empty() => {
            let at = rng.gen_range(0..model.entries.len());
            let marker = SnapshotMarker {
                index: model.entries[at].index,
                term: model.entries[at].term,
            };
            model.entries.retain(|e| e.index > marker.index);
            model.snapshot = Some(marker);
            wal.append_blocking(vec![Record::Snapshot(marker)]).unwrap();
        }
        85..=92 => {
            if let Some(marker) = model.snapshot {
                wal.release_before(marker.index + 1).unwrap();
            }
        }
        93..=99 => {
            wal.close().unwrap();
            let (reopened, replay) = open(dir, backend, SMALL_SEGMENT_BYTES);
            assert_eq!(replay.entries, model.entries);
            assert_eq!(replay.hard_state, model.hard_state);
            assert_eq!(replay.snapshot, model.snapshot);
            *wal = reopened;
        }
        _ => {}
    }
}

#[test]
fn random_operations_match_the_model() {
    for backend in backends() {
        for seed in 0..3u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
            let mut model = Model {
                term: 1,
                ..Model::default()
            };
            for _ in 0..250 {
                step(&mut rng, &mut model, backend, dir.path(), &mut wal);
            }
            let released = wal.stats().segments_released;
            wal.close().unwrap();
            let (_, replay) = open(dir.path(), backend, SMALL_SEGMENT_BYTES);
            assert_eq!(replay.entries, model.entries, "seed {seed}");
            assert_eq!(replay.hard_state, model.hard_state);
            assert_eq!(replay.snapshot, model.snapshot);
            eprintln!(
                "{backend:?} seed {seed}: {} segments left, {released} released since last open",
                segment_names(dir.path()).len()
            );
        }
    }
}
