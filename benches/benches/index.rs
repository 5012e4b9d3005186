//! The revision index (lock-free skiplist, one lock per key) against a single-lock
//! baseline (a `BTreeMap` behind one `parking_lot::RwLock`, the shape of etcd's
//! `treeIndex`), on the same data in one run.
//!
//!     cargo bench -p cairn-benches --bench index
//!
//! Data: 50 000 keys of about 20 bytes, each with 4 revisions, built afresh for every
//! configuration from a fixed seed.
//!
//! - `index/range_with_writer/{skiplist,btree_rwlock}/{threads}`: `threads` reader threads
//!   each run range reads of 100 consecutive keys (random start) at the latest published
//!   revision, while one writer thread puts to random keys without pause. Throughput is
//!   range reads per second summed over the readers. The writer's own rate is printed
//!   after each configuration.
//! - `index/range_no_writer/{skiplist,btree_rwlock}/{1,2}`: the same reads without the
//!   writer, as reference points for what the writer costs the readers.
//! - `index/put_during_big_ranges/{skiplist,btree_rwlock}/{readers}`: the writer's put
//!   rate while 1 or 2 readers run range reads of 10 000 keys (a Kubernetes-style list)
//!   without pause: with one lock, each big read holds the writer off for its whole
//!   duration.
//! - `index/put/{skiplist,btree_rwlock}`: single-threaded puts to existing keys.
//! - `index/get/{skiplist,btree_rwlock}`: single-threaded point reads at the latest
//!   revision.
//!
//! Caveat for reading the numbers: on a machine with few cores, readers plus the writer
//! oversubscribe the CPU as soon as `threads + 1` exceeds the core count, so aggregate
//! read throughput cannot grow past that point for either structure; what remains
//! comparable is how much each one loses to the writer and to lock contention.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use cairn_index::{Index, Revision};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parking_lot::RwLock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: usize = 50_000;
const REVS_PER_KEY: usize = 4;
const RANGE_LEN: usize = 100;
const BIG_RANGE: usize = 10_000;
const THREADS: [usize; 4] = [1, 2, 4, 8];

fn key(i: usize) -> Vec<u8> {
    format!("/registry/k/{i:08}").into_bytes()
}

/// What the benchmark needs from either structure.
trait RevIndex: Sync + Send {
    fn put(&self, key: &[u8], rev: Revision);
    /// Revisions of the keys in `[start, end)` existing at `at`; returns how many.
    fn range(&self, start: &[u8], end: &[u8], at: i64) -> usize;
    fn get(&self, key: &[u8], at: i64) -> Option<Revision>;
}

impl RevIndex for Index {
    fn put(&self, key: &[u8], rev: Revision) {
        Index::put(self, key, rev).expect("increasing revisions");
    }

    fn range(&self, start: &[u8], end: &[u8], at: i64) -> usize {
        self.revisions(start, end, at, 0).0.len()
    }

    fn get(&self, key: &[u8], at: i64) -> Option<Revision> {
        Index::get(self, key, at).ok().map(|k| k.modified)
    }
}

/// A key's revisions, each with its tombstone flag.
type History = Vec<(Revision, bool)>;

/// The single-lock baseline: every key's revisions (with a tombstone flag) in one
/// `BTreeMap` behind one reader-writer lock.
#[derive(Default)]
struct Baseline {
    map: RwLock<BTreeMap<Vec<u8>, History>>,
}

impl Baseline {
    fn at(revs: &[(Revision, bool)], at: i64) -> Option<Revision> {
        let n = revs.partition_point(|(r, _)| r.main <= at);
        match n.checked_sub(1).map(|i| revs[i]) {
            Some((r, false)) => Some(r),
            _ => None,
        }
    }
}

impl RevIndex for Baseline {
    fn put(&self, key: &[u8], rev: Revision) {
        let mut map = self.map.write();
        match map.get_mut(key) {
            Some(revs) => revs.push((rev, false)),
            None => {
                map.insert(key.to_vec(), vec![(rev, false)]);
            }
        }
    }

    fn range(&self, start: &[u8], end: &[u8], at: i64) -> usize {
        let map = self.map.read();
        let mut out = Vec::new();
        for (_, revs) in map.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end))) {
            if let Some(r) = Self::at(revs, at) {
                out.push(r);
            }
        }
        black_box(&out);
        out.len()
    }

    fn get(&self, key: &[u8], at: i64) -> Option<Revision> {
        self.map.read().get(key).and_then(|revs| Self::at(revs, at))
    }
}

/// A structure loaded with the shared data, and its latest published revision.
struct Loaded<T> {
    index: T,
    keys: Vec<Vec<u8>>,
    current: AtomicI64,
}

fn load<T: RevIndex>(index: T) -> Loaded<T> {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let mut rng = StdRng::seed_from_u64(0x1DE8);
    let mut rev = 0;
    for _ in 0..REVS_PER_KEY {
        for _ in 0..KEYS {
            rev += 1;
            index.put(&keys[rng.gen_range(0..KEYS)], Revision::new(rev, 0));
        }
    }
    // Make sure every key exists.
    for k in &keys {
        rev += 1;
        index.put(k, Revision::new(rev, 0));
    }
    Loaded {
        index,
        keys,
        current: AtomicI64::new(rev),
    }
}

/// Runs `iters` range reads split over `threads` readers, while one writer puts if
/// `writes` is given (it receives the writer's count); returns the wall time of the reads.
fn ranges<T: RevIndex>(
    data: &Loaded<T>,
    threads: usize,
    iters: u64,
    writes: Option<&AtomicU64>,
) -> Duration {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    thread::scope(|s| {
        // The writer: one put after another, publishing each revision once applied.
        s.spawn(|| {
            let Some(writes) = writes else { return };
            let mut rng = StdRng::seed_from_u64(0x3817);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let rev = data.current.load(Ordering::Relaxed) + 1;
                data.index
                    .put(&data.keys[rng.gen_range(0..KEYS)], Revision::new(rev, 0));
                data.current.store(rev, Ordering::Release);
                n += 1;
            }
            writes.fetch_add(n, Ordering::Relaxed);
        });
        let per_thread = iters.div_ceil(threads as u64);
        let readers: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t as u64);
                    start.wait();
                    let mut found = 0;
                    for _ in 0..per_thread {
                        let i = rng.gen_range(0..KEYS - RANGE_LEN);
                        let at = data.current.load(Ordering::Acquire);
                        found += data
                            .index
                            .range(&data.keys[i], &data.keys[i + RANGE_LEN], at);
                    }
                    black_box(found)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for r in readers {
            assert_eq!(r.join().unwrap(), per_thread as usize * RANGE_LEN);
        }
        let elapsed = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn range_with_writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("index/range_with_writer");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    for threads in THREADS {
        bench_one(&mut g, "skiplist", threads, true, load(Index::new()));
        bench_one(
            &mut g,
            "btree_rwlock",
            threads,
            true,
            load(Baseline::default()),
        );
    }
    g.finish();
    // Reference points: the same reads without the writer.
    let mut g = c.benchmark_group("index/range_no_writer");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        bench_one(&mut g, "skiplist", threads, false, load(Index::new()));
        bench_one(
            &mut g,
            "btree_rwlock",
            threads,
            false,
            load(Baseline::default()),
        );
    }
    g.finish();
}

fn bench_one<T: RevIndex>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    threads: usize,
    writer: bool,
    data: Loaded<T>,
) {
    let writes = AtomicU64::new(0);
    let mut busy = Duration::ZERO;
    g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
        b.iter_custom(|iters| {
            let d = ranges(&data, threads, iters, writer.then_some(&writes));
            busy += d;
            d
        })
    });
    if writer {
        let rate = writes.load(Ordering::Relaxed) as f64 / busy.as_secs_f64().max(1e-9);
        eprintln!("    writer during {name}/{threads}: {rate:.0} puts/s");
    }
}

/// Times `iters` puts by the calling thread while `readers` threads run big range reads
/// (`BIG_RANGE` keys each, like a Kubernetes list) without pause.
/// `reads` receives the number of big reads completed meanwhile.
fn puts_during_big_ranges<T: RevIndex>(
    data: &Loaded<T>,
    readers: usize,
    iters: u64,
    reads: &AtomicU64,
) -> Duration {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(readers + 1);
    thread::scope(|s| {
        for t in 0..readers {
            let (stop, start) = (&stop, &start);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                start.wait();
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.gen_range(0..KEYS - BIG_RANGE);
                    let at = data.current.load(Ordering::Acquire);
                    let n = data
                        .index
                        .range(&data.keys[i], &data.keys[i + BIG_RANGE], at);
                    assert_eq!(n, BIG_RANGE);
                    done += 1;
                }
                reads.fetch_add(done, Ordering::Relaxed);
            });
        }
        let mut rng = StdRng::seed_from_u64(0x3817);
        start.wait();
        let t0 = Instant::now();
        for _ in 0..iters {
            let rev = data.current.load(Ordering::Relaxed) + 1;
            data.index
                .put(&data.keys[rng.gen_range(0..KEYS)], Revision::new(rev, 0));
            data.current.store(rev, Ordering::Release);
        }
        let elapsed = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn put_during_big_ranges(c: &mut Criterion) {
    let mut g = c.benchmark_group("index/put_during_big_ranges");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    for readers in [1, 2] {
        big_one(&mut g, "skiplist", readers, load(Index::new()));
        big_one(&mut g, "btree_rwlock", readers, load(Baseline::default()));
    }
    g.finish();
}

fn big_one<T: RevIndex>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    readers: usize,
    data: Loaded<T>,
) {
    let reads = AtomicU64::new(0);
    let mut busy = Duration::ZERO;
    g.bench_with_input(BenchmarkId::new(name, readers), &readers, |b, &r| {
        b.iter_custom(|iters| {
            let d = puts_during_big_ranges(&data, r, iters, &reads);
            busy += d;
            d
        })
    });
    let rate = reads.load(Ordering::Relaxed) as f64 / busy.as_secs_f64().max(1e-9);
    eprintln!("    big reads during {name}/{readers}: {rate:.0} reads/s (all readers)");
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("index");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    fn put<T: RevIndex>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &str,
        data: Loaded<T>,
    ) {
        let mut rng = StdRng::seed_from_u64(5);
        g.bench_function(BenchmarkId::new("put", name), |b| {
            b.iter(|| {
                let rev = data.current.load(Ordering::Relaxed) + 1;
                data.index
                    .put(&data.keys[rng.gen_range(0..KEYS)], Revision::new(rev, 0));
                data.current.store(rev, Ordering::Relaxed);
            })
        });
        g.bench_function(BenchmarkId::new("get", name), |b| {
            b.iter(|| {
                let at = data.current.load(Ordering::Relaxed);
                black_box(data.index.get(&data.keys[rng.gen_range(0..KEYS)], at))
            })
        });
    }
    put(&mut g, "skiplist", load(Index::new()));
    put(&mut g, "btree_rwlock", load(Baseline::default()));
    g.finish();
}

criterion_group!(
    benches,
    range_with_writer,
    put_during_big_ranges,
    single_thread
);
criterion_main!(benches);
