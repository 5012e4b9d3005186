//! Multi-threaded stress: writers on overlapping and on disjoint keys, range readers and a
//! compactor share one index. Afterwards the writes are replayed serially in revision
//! order (compactions inserted at their revision) into a fresh index and into the
//! reference model: every write's outcome, every compaction's kept set and the final state
//! must match, and every read taken during the run must match the serial answer at its
//! revision.
//!
//! Ordering like the store's: each writer takes a revision and applies its change while
//! holding a lock striped by key, so changes to one key arrive in revision order while
//! writers on different keys run in parallel. A revision is readable (and compactable)
//! once every revision up to it has been applied.
//!
//! `CAIRN_INDEX_STRESS_OPS` sets the writes per writer (default 4000).

mod common;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread;

use bytes::Bytes;
use cairn_index::{Error, Index, KeyAt, Revision};
use common::Model;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WRITERS: usize = 4;
const READERS: usize = 2;
const STRIPES: usize = 16;
const IDLE: i64 = i64::MAX;

#[derive(Clone, Debug)]
struct Write {
    rev: i64,
    key: Vec<u8>,
    tombstone: bool,
    ok: bool,
}

struct Read {
    at: i64,
    range: (&'static [u8], &'static [u8]),
    keys: Vec<Bytes>,
    revs: Vec<Revision>,
    count: usize,
    /// A point read of a shared key at the same revision.
    point: (Vec<u8>, Option<KeyAt>),
}

struct Shared {
    index: Index,
    next_rev: AtomicI64,
    /// Per writer: a lower bound of the revision it is applying, or IDLE.
    in_flight: Vec<AtomicI64>,
    stripes: Vec<Mutex<()>>,
    compacted: AtomicI64,
    done: AtomicBool,
}

impl Shared {
    /// Every revision at or below this one has been applied.
    fn applied(&self) -> i64 {
        let next = self.next_rev.load(SeqCst);
        let oldest = self
            .in_flight
            .iter()
            .map(|s| s.load(SeqCst))
            .min()
            .unwrap_or(IDLE);
        next.min(oldest) - 1
    }
}

fn stripe(key: &[u8]) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish() as usize % STRIPES
}

fn writer(shared: &Shared, id: usize, ops: usize) -> Vec<Write> {
    let mut rng = StdRng::seed_from_u64(id as u64);
    let mut log = Vec::with_capacity(ops);
    for n in 0..ops {
        if n % 16 == 15 {
            // Give readers and the compactor a chance on a small machine.
            thread::yield_now();
        }
        // Writers 0 and 1 share a small key set; the others each have their own keys.
        let key = if id < 2 {
            format!("shared/{:02}", rng.gen_range(0..24)).into_bytes()
        } else {
            format!("own{id}/{:02}", rng.gen_range(0..48)).into_bytes()
        };
        let tombstone = rng.gen_ratio(35, 100);
        let _order = shared.stripes[stripe(&key)].lock().unwrap();
        shared.in_flight[id].store(shared.next_rev.load(SeqCst), SeqCst);
        let rev = shared.next_rev.fetch_add(1, SeqCst);
        let r = Revision::new(rev, 0);
        let ok = if tombstone {
            match shared.index.tombstone(&key, r) {
                Ok(()) => true,
                Err(Error::RevisionNotFound) => false,
                Err(e) => panic!("tombstone {key:?}@{rev}: {e}"),
            }
        } else {
            shared.index.put(&key, r).unwrap();
            true
        };
        shared.in_flight[id].store(IDLE, SeqCst);
        log.push(Write {
            rev,
            key,
            tombstone,
            ok,
        });
    }
    log
}

fn reader(shared: &Shared, id: usize) -> Vec<Read> {
    let mut rng = StdRng::seed_from_u64(100 + id as u64);
    let mut reads = Vec::new();
    while !shared.done.load(SeqCst) {
        let low = shared.compacted.load(SeqCst);
        let high = shared.applied();
        if high < low.max(1) {
            thread::yield_now();
            continue;
        }
        let at = rng.gen_range(low.max(1)..=high);
        let (start, end): (&'static [u8], &'static [u8]) = match rng.gen_range(0..3) {
            0 => (b"\0", b"\0"),
            1 => (b"shared/", b"shared0"),
            _ => (b"own2/", b"\0"),
        };
        let (keys, revs) = shared.index.range(start, end, at);
        let count = shared.index.count_revisions(b"\0", b"\0", at);
        let point_key = format!("shared/{:02}", rng.gen_range(0..24)).into_bytes();
        let point = shared.index.get(&point_key, at).ok();
        // A compaction above `at` that started meanwhile voids the read (the store would
        // have refused it).
        if shared.compacted.load(SeqCst) <= at && reads.len() < 3000 {
            reads.push(Read {
                at,
                range: (start, end),
                keys,
                revs,
                count,
                point: (point_key, point),
            });
        }
    }
    reads
}

fn compactor(shared: &Shared) -> Vec<(i64, HashSet<Revision>)> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut done = Vec::new();
    let mut last = 0;
    while !shared.done.load(SeqCst) {
        let applied = shared.applied();
        if applied > last {
            // Small steps, so compactions land between many writes.
            let at = rng.gen_range(last + 1..=applied.min(last + 200));
            // Publish first, then compact, as the store does.
            shared.compacted.store(at, SeqCst);
            done.push((at, shared.index.compact(at)));
            last = at;
        } else {
            thread::yield_now();
        }
    }
    done
}

#[test]
fn concurrent_run_equals_serial_replay() {
    let ops: usize = std::env::var("CAIRN_INDEX_STRESS_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let shared = Shared {
        index: Index::new(),
        next_rev: AtomicI64::new(1),
        in_flight: (0..WRITERS).map(|_| AtomicI64::new(IDLE)).collect(),
        stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        compacted: AtomicI64::new(0),
        done: AtomicBool::new(false),
    };
    let (writes, reads, compactions) = thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                s.spawn({
                    let shared = &shared;
                    move || writer(shared, id, ops)
                })
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|id| {
                let shared = &shared;
                s.spawn(move || reader(shared, id))
            })
            .collect();
        let comp = s.spawn(|| compactor(&shared));
        let mut writes: Vec<Write> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        shared.done.store(true, SeqCst);
        let reads: Vec<Read> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        let compactions = comp.join().unwrap();
        writes.sort_by_key(|w| w.rev);
        (writes, reads, compactions)
    });
    assert_eq!(writes.len(), WRITERS * ops);
    assert!(!compactions.is_empty(), "the compactor never ran");
    assert!(!reads.is_empty(), "no read was recorded");

    // Serial replay: a compacted index, an uncompacted one (for reads), and the model.
    let serial = Index::new();
    let full = Index::new();
    let model = Model::new();
    let mut pending = compactions.iter().peekable();
    for w in &writes {
        let r = Revision::new(w.rev, 0);
        let ok = if w.tombstone {
            let a = serial.tombstone(&w.key, r).is_ok();
            assert_eq!(full.tombstone(&w.key, r).is_ok(), a);
            assert_eq!(model.tombstone(&w.key, r).is_ok(), a);
            a
        } else {
            serial.put(&w.key, r).unwrap();
            full.put(&w.key, r).unwrap();
            model.put(&w.key, r);
            true
        };
        assert_eq!(ok, w.ok, "outcome of {w:?} differs from the serial replay");
        while let Some((at, keep)) = pending.next_if(|(at, _)| *at == w.rev) {
            assert_eq!(&serial.compact(*at), keep, "kept set of compaction at {at}");
            assert_eq!(
                &model.compact(*at),
                keep,
                "model kept set of compaction at {at}"
            );
        }
    }
    assert!(pending.next().is_none(), "a compaction above every write");

    let final_state = shared.index.dump();
    assert_eq!(
        final_state,
        serial.dump(),
        "final state differs from the serial replay"
    );
    assert_eq!(
        final_state,
        model.dump(),
        "final state differs from the model"
    );
    assert_eq!(shared.index.len(), serial.len());

    for r in &reads {
        let (start, end) = r.range;
        let (keys, revs) = full.range(start, end, r.at);
        assert_eq!(
            (&r.keys, &r.revs),
            (&keys, &revs),
            "range {start:?}..{end:?} at {}",
            r.at
        );
        assert_eq!(
            r.count,
            full.count_revisions(b"\0", b"\0", r.at),
            "count at {}",
            r.at
        );
        let (key, got) = &r.point;
        assert_eq!(got, &full.get(key, r.at).ok(), "get {key:?} at {}", r.at);
    }
    let deletes = writes.iter().filter(|w| w.tombstone && w.ok).count();
    assert!(deletes > 0, "no successful delete");
    eprintln!(
        "{} writes ({deletes} deletes), {} compactions, {} checked reads, {} keys left",
        writes.len(),
        compactions.len(),
        reads.len(),
        final_state.len()
    );
}
