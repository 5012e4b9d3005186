//! The index and the reference model receive the same random operation sequences
//! (puts, deletes through ranges, stray tombstones, compactions); every answer must match,
//! including reads below the compaction revision (where etcd's index returns whatever the
//! compacted history still holds; rejecting those reads is the store's job).
//!
//! `CAIRN_INDEX_MODEL_SEEDS` raises the number of random sequences (default 48).

mod common;

use cairn_index::{Error, Index, Revision};
use common::{prefix_end, Model, ModelError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALPHABET: [u8; 4] = [0x00, b'a', b'b', 0xff];

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(1..=2);
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

/// A random `(start, end)` in one of etcd's shapes.
fn random_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let start = random_key(rng);
    let end = match rng.gen_range(0..5) {
        0 => Vec::new(),
        1 => vec![0],
        2 => prefix_end(&start),
        _ => random_key(rng),
    };
    // Sometimes everything: key "\0" with end "\0".
    if rng.gen_ratio(1, 10) {
        return (vec![0], vec![0]);
    }
    (start, end)
}

struct Run {
    rng: StdRng,
    index: Index,
    model: Model,
    current: i64,
    compacted: i64,
    seed: u64,
}

impl Run {
    fn new(seed: u64) -> Self {
        Run {
            rng: StdRng::seed_from_u64(seed),
            index: Index::new(),
            model: Model::new(),
            current: 0,
            compacted: 0,
            seed,
        }
    }

    /// One write request: a few puts and deletes sharing a main revision.
    fn write(&mut self) {
        let main = self.current + 1;
        let mut sub = 0;
        for _ in 0..self.rng.gen_range(1..=3) {
            match self.rng.gen_range(0..10) {
                0..=5 => {
                    let key = random_key(&mut self.rng);
                    let rev = Revision::new(main, sub);
                    self.index.put(&key, rev).unwrap();
                    self.model.put(&key, rev);
                    sub += 1;
                }
                6..=8 => {
                    // Delete a range the way the store does: find the live keys first.
                    let (start, end) = random_range(&mut self.rng);
                    let (keys, revs) = self.index.range(&start, &end, self.current);
                    let (mkeys, mrevs) = self.model.range(&start, &end, self.current);
                    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
                    assert_eq!((&keys, &revs), (&mkeys, &mrevs), "seed {}", self.seed);
                    for key in keys {
                        let rev = Revision::new(main, sub);
                        let a = self.index.tombstone(&key, rev);
                        let b = self.model.tombstone(&key, rev);
                        // A key put earlier in this request may already be deleted by it.
                        assert_eq!(a.is_ok(), b.is_ok(), "seed {} key {key:?}", self.seed);
                        sub += 1;
                    }
                }
                _ => {
                    // A tombstone on an arbitrary key: fails unless the key is live.
                    let key = random_key(&mut self.rng);
                    let rev = Revision::new(main, sub);
                    let a = self.index.tombstone(&key, rev);
                    let b = self.model.tombstone(&key, rev);
                    match b {
                        Ok(()) => {
                            assert_eq!(a, Ok(()), "seed {}", self.seed);
                            sub += 1;
                        }
                        Err(ModelError::NotFound) => {
                            assert_eq!(a, Err(Error::RevisionNotFound), "seed {}", self.seed)
                        }
                    }
                }
            }
        }
        if sub > 0 {
            self.current = main;
        }
    }

    fn read_rev(&mut self) -> i64 {
        // Mostly readable revisions, sometimes below the compaction point or in the future.
        self.rng.gen_range(0..=self.current + 1)
    }

    fn check_reads(&mut self) {
        let seed = self.seed;
        for _ in 0..4 {
            let key = random_key(&mut self.rng);
            let at = self.read_rev();
            let got = self.index.get(&key, at).ok();
            assert_eq!(
                got,
                self.model.get(&key, at),
                "seed {seed} get {key:?}@{at}"
            );

            let (start, end) = random_range(&mut self.rng);
            let at = self.read_rev();
            let (keys, revs) = self.index.range(&start, &end, at);
            let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
            assert_eq!(
                (keys, revs),
                self.model.range(&start, &end, at),
                "seed {seed} range {start:?}..{end:?}@{at}"
            );
            let limit = self.rng.gen_range(0..4);
            assert_eq!(
                self.index.revisions(&start, &end, at, limit),
                self.model.revisions(&start, &end, at, limit),
                "seed {seed} revisions {start:?}..{end:?}@{at} limit {limit}"
            );
            assert_eq!(
                self.index.count_revisions(&start, &end, at),
                self.model.count(&start, &end, at),
                "seed {seed} count {start:?}..{end:?}@{at}"
            );
            let since = self.read_rev();
            assert_eq!(
                self.index.range_since(&start, &end, since),
                self.model.range_since(&start, &end, since),
                "seed {seed} since {start:?}..{end:?}@{since}"
            );
        }
    }

    fn compact(&mut self) {
        if self.compacted >= self.current {
            return;
        }
        let at = self.rng.gen_range(self.compacted + 1..=self.current);
        let seed = self.seed;
        assert_eq!(
            self.index.keep(at),
            self.model.keep(at),
            "seed {seed} keep {at}"
        );
        assert_eq!(
            self.index.compact(at),
            self.model.compact(at),
            "seed {seed} compact {at}"
        );
        self.compacted = at;
        assert_eq!(
            self.index.dump(),
            self.model.dump(),
            "seed {seed} after compact {at}"
        );
    }
}

#[test]
fn index_matches_model_on_random_sequences() {
    let seeds: u64 = std::env::var("CAIRN_INDEX_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let mut compactions = 0;
    let mut removed_keys = 0;
    for seed in 0..seeds {
        let mut run = Run::new(seed);
        for step in 0..300 {
            run.write();
            run.check_reads();
            if run.rng.gen_ratio(1, 12) {
                let before = run.index.len();
                run.compact();
                compactions += 1;
                removed_keys += before.saturating_sub(run.index.len());
            }
            if step % 50 == 49 {
                assert_eq!(
                    run.index.dump(),
                    run.model.dump(),
                    "seed {seed} step {step}"
                );
            }
        }
        assert_eq!(run.index.dump(), run.model.dump(), "seed {seed} final");
    }
    // The sequences must actually exercise compaction, including key removal.
    assert!(
        compactions > seeds as usize * 10,
        "{compactions} compactions"
    );
    assert!(removed_keys > 0, "no compaction removed a key");
}
