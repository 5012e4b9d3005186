//! The engine against redb and LMDB (heed), on the same data in one run, plus the span
//! freelist against the linear-scan (array) freelist at several fragmentation levels.
//!
//!     cargo bench -p cairn-benches --bench engine
//!
//! Data: etcd-style revision keys (8-byte big-endian main, '_', 8-byte big-endian sub:
//! 17 bytes) with 256-byte values, generated once from a fixed seed and shared by every
//! store. Every store commits durably (fsync) to a real file in a temporary directory.
//! Each workload is one criterion group holding the three engines measured back to back
//! (cairn, redb, lmdb), so their ratios suffer least from a machine whose load drifts.
//!
//! - `put_seq`, `put_rand`: a fresh store, 10 000 keys in batches of 1 000 per commit, in
//!   ascending or random key order (time for all 10 commits; throughput per key).
//!   `put_seq_nosync`, `put_rand_nosync`: the same without fsync (cairn `no_sync`, redb
//!   `Durability::None`, LMDB `NO_SYNC | NO_META_SYNC`): the engines' CPU cost alone.
//! - `get_rand`: 10 000 random point reads of present keys in one read transaction, from a
//!   store holding 100 000 keys.
//! - `scan`: 100 range scans of 100 consecutive keys from random start keys, same store.
//! - `commit_1`: latency of one write transaction putting a single key, committed (fsync).
//! - `freelist/{span,array}/{free spans}`: allocate a mix of 1- and 4-page runs and free
//!   them again, on a freelist holding that many isolated free pages plus one long span.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const VALUE_SIZE: usize = 256;
const PUT_KEYS: usize = 10_000;
const BATCH: usize = 1_000;
const READ_KEYS: usize = 100_000;
const GETS: usize = 10_000;
const SCANS: usize = 100;
const SCAN_LEN: usize = 100;

fn rev_key(main: u64, sub: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&main.to_be_bytes());
    k[8] = b'_';
    k[9..].copy_from_slice(&sub.to_be_bytes());
    k
}

/// The shared data set.
struct Data {
    /// Ascending revision keys 1..=READ_KEYS.
    seq: Vec<[u8; 17]>,
    /// PUT_KEYS keys with random main revisions (distinct), in random order.
    rand: Vec<[u8; 17]>,
    value: Vec<u8>,
    /// Indices into `seq` for point reads and scan starts.
    probes: Vec<usize>,
}

impl Data {
    fn new() -> Data {
        let mut rng = StdRng::seed_from_u64(0xCA12);
        let seq: Vec<_> = (1..=READ_KEYS as u64).map(|m| rev_key(m, 0)).collect();
        let mut mains: Vec<u64> = (0..PUT_KEYS)
            .map(|i| (rng.gen::<u64>() >> 20) * PUT_KEYS as u64 + i as u64)
            .collect();
        mains.shuffle(&mut rng);
        let rand = mains.into_iter().map(|m| rev_key(m, 0)).collect();
        let value = (0..VALUE_SIZE).map(|_| rng.gen()).collect();
        let probes = (0..GETS)
            .map(|_| rng.gen_range(0..READ_KEYS - SCAN_LEN))
            .collect();
        Data {
            seq,
            rand,
            value,
            probes,
        }
    }
}

/// The operations every store offers to the benchmarks.
trait Store: Sized {
    const NAME: &'static str;
    /// A new store in `dir`; `durable: false` commits without fsync (CPU cost only).
    fn create(dir: &Path, durable: bool) -> Self;
    /// Put `keys` in commits of `batch` keys each.
    fn put_batches(&self, keys: &[[u8; 17]], value: &[u8], batch: usize);
    /// Point reads in one read transaction; returns the total value bytes read.
    fn gets(&self, keys: &[[u8; 17]], probes: &[usize]) -> usize;
    /// `starts.len()` scans of `len` entries each; returns the total bytes read.
    fn scans(&self, keys: &[[u8; 17]], starts: &[usize], len: usize) -> usize;
}

mod cairn {
    use super::*;
    use cairn_engine::{Db, Options};

    pub struct Cairn(Db);

    impl Store for Cairn {
        const NAME: &'static str = "cairn";
        fn create(dir: &Path, durable: bool) -> Self {
            let opts = Options {
                no_sync: !durable,
                ..Options::default()
            };
            let db = Db::open(dir.join("cairn.db"), opts).unwrap();
            let mut tx = db.begin_write().unwrap();
            tx.create_bucket_if_not_exists(b"key").unwrap();
            tx.commit().unwrap();
            Cairn(db)
        }
        fn put_batches(&self, keys: &[[u8; 17]], value: &[u8], batch: usize) {
            for chunk in keys.chunks(batch) {
                let mut tx = self.0.begin_write().unwrap();
                {
                    let mut b = tx.bucket_mut(b"key").unwrap();
                    for k in chunk {
                        b.put(k, value).unwrap();
                    }
                }
                tx.commit().unwrap();
            }
        }
        fn gets(&self, keys: &[[u8; 17]], probes: &[usize]) -> usize {
            let tx = self.0.begin_read().unwrap();
            let b = tx.bucket(b"key").unwrap();
            probes.iter().map(|&i| b.get(&keys[i]).unwrap().len()).sum()
        }
        fn scans(&self, keys: &[[u8; 17]], starts: &[usize], len: usize) -> usize {
            let tx = self.0.begin_read().unwrap();
            let b = tx.bucket(b"key").unwrap();
            let mut total = 0;
            for &s in starts {
                let mut c = b.cursor();
                let mut e = c.seek(&keys[s]);
                for _ in 0..len {
                    let (k, v) = e.unwrap();
                    total += k.len() + v.len();
                    e = c.next();
                }
            }
            total
        }
    }
}

mod redb_store {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, TableDefinition};

    const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("key");

    pub struct Redb(Database, Durability);

    impl Store for Redb {
        const NAME: &'static str = "redb";
        fn create(dir: &Path, durable: bool) -> Self {
            let db = Database::create(dir.join("redb.db")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TABLE).unwrap();
            tx.commit().unwrap();
            let d = if durable {
                Durability::Immediate
            } else {
                Durability::None
            };
            Redb(db, d)
        }
        fn put_batches(&self, keys: &[[u8; 17]], value: &[u8], batch: usize) {
            for chunk in keys.chunks(batch) {
                let mut tx = self.0.begin_write().unwrap();
                tx.set_durability(self.1).unwrap();
                {
                    let mut t = tx.open_table(TABLE).unwrap();
                    for k in chunk {
                        t.insert(&k[..], value).unwrap();
                    }
                }
                tx.commit().unwrap();
            }
        }
        fn gets(&self, keys: &[[u8; 17]], probes: &[usize]) -> usize {
            let tx = self.0.begin_read().unwrap();
            let t = tx.open_table(TABLE).unwrap();
            probes
                .iter()
                .map(|&i| t.get(&keys[i][..]).unwrap().unwrap().value().len())
                .sum()
        }
        fn scans(&self, keys: &[[u8; 17]], starts: &[usize], len: usize) -> usize {
            let tx = self.0.begin_read().unwrap();
            let t = tx.open_table(TABLE).unwrap();
            let mut total = 0;
            for &s in starts {
                for e in t.range(&keys[s][..]..).unwrap().take(len) {
                    let (k, v) = e.unwrap();
                    total += k.value().len() + v.value().len();
                }
            }
            total
        }
    }
}

mod lmdb {
    //! LMDB through heed. Opening an environment is `unsafe` in heed (the caller promises
    //! not to open the same file twice in one process); that one call lives here.
    #![allow(unsafe_code)]
    use super::*;
    use heed::types::Bytes;
    use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions};
    use std::ops::Bound;

    pub struct Lmdb(Env, Database<'static, Bytes, Bytes>);

    impl Store for Lmdb {
        const NAME: &'static str = "lmdb";
        fn create(dir: &Path, durable: bool) -> Self {
            let mut opts = EnvOpenOptions::new();
            opts.map_size(4 << 30).max_dbs(1);
            if !durable {
                // SAFETY: NO_SYNC only risks losing data on a crash, which a benchmark on
                // a temporary directory accepts.
                unsafe { opts.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC) };
            }
            // SAFETY: every benchmark store gets its own fresh temporary directory, so no
            // other Env in this process has this file open.
            let env = unsafe { opts.open(dir).unwrap() };
            let wtxn = env.write_txn().unwrap();
            let db = env
                .create_databases_and_commit(wtxn, |o, w| -> Result<_, heed::Error> {
                    Ok(CommitOrAbort::<_, ()>::Commit(
                        o.create_database::<Bytes, Bytes>(w, None)?,
                    ))
                })
                .unwrap()
                .unwrap_commit();
            Lmdb(env, db)
        }
        fn put_batches(&self, keys: &[[u8; 17]], value: &[u8], batch: usize) {
            let db = self.1;
            for chunk in keys.chunks(batch) {
                let mut tx = self.0.write_txn().unwrap();
                for k in chunk {
                    db.put(&mut tx, k, value).unwrap();
                }
                tx.commit().unwrap();
            }
        }
        fn gets(&self, keys: &[[u8; 17]], probes: &[usize]) -> usize {
            let db = self.1;
            let tx = self.0.read_txn().unwrap();
            probes
                .iter()
                .map(|&i| db.get(&tx, &keys[i]).unwrap().unwrap().len())
                .sum()
        }
        fn scans(&self, keys: &[[u8; 17]], starts: &[usize], len: usize) -> usize {
            let db = self.1;
            let tx = self.0.read_txn().unwrap();
            let mut total = 0;
            for &s in starts {
                let from: &[u8] = &keys[s];
                let range = (Bound::Included(from), Bound::Unbounded);
                for e in db.range(&tx, &range).unwrap().take(len) {
                    let (k, v) = e.unwrap();
                    total += k.len() + v.len();
                }
            }
            total
        }
    }
}

/// Time `iters` runs of `work` on a fresh store each, excluding store creation.
fn fresh<S: Store>(iters: u64, durable: bool, work: impl Fn(&S)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().unwrap();
        let s = S::create(dir.path(), durable);
        let t = Instant::now();
        work(&s);
        total += t.elapsed();
        drop(s);
    }
    total
}

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn put_bench<S: Store>(g: &mut Group<'_>, keys: &[[u8; 17]], value: &[u8], durable: bool) {
    g.bench_function(S::NAME, |b| {
        b.iter_custom(|n| fresh::<S>(n, durable, |s| s.put_batches(keys, value, BATCH)))
    });
}

/// One put group: the three engines on the same keys.
fn put_group(c: &mut Criterion, name: &str, keys: &[[u8; 17]], value: &[u8], durable: bool) {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(keys.len() as u64));
    put_bench::<cairn::Cairn>(&mut g, keys, value, durable);
    put_bench::<redb_store::Redb>(&mut g, keys, value, durable);
    put_bench::<lmdb::Lmdb>(&mut g, keys, value, durable);
    g.finish();
}

/// The three stores, each holding the same READ_KEYS keys, in a fixed order (so every
/// workload group measures all three engines back to back).
fn loaded(dir: &Path, data: &Data) -> Vec<(&'static str, Box<dyn StoreOps>)> {
    fn one<S: Store + 'static>(dir: &Path, data: &Data) -> (&'static str, Box<dyn StoreOps>) {
        let p = dir.join(S::NAME);
        std::fs::create_dir(&p).unwrap();
        let s = S::create(&p, true);
        s.put_batches(&data.seq, &data.value, 10_000);
        (S::NAME, Box::new(s))
    }
    vec![
        one::<cairn::Cairn>(dir, data),
        one::<redb_store::Redb>(dir, data),
        one::<lmdb::Lmdb>(dir, data),
    ]
}

/// The object-safe part of [`Store`], for the stores measured side by side.
trait StoreOps {
    fn put_some(&self, keys: &[[u8; 17]], value: &[u8], batch: usize);
    fn get_some(&self, keys: &[[u8; 17]], probes: &[usize]) -> usize;
    fn scan_some(&self, keys: &[[u8; 17]], starts: &[usize], len: usize) -> usize;
}

impl<S: Store> StoreOps for S {
    fn put_some(&self, keys: &[[u8; 17]], value: &[u8], batch: usize) {
        self.put_batches(keys, value, batch)
    }
    fn get_some(&self, keys: &[[u8; 17]], probes: &[usize]) -> usize {
        self.gets(keys, probes)
    }
    fn scan_some(&self, keys: &[[u8; 17]], starts: &[usize], len: usize) -> usize {
        self.scans(keys, starts, len)
    }
}

fn engines(c: &mut Criterion) {
    let data = Data::new();

    put_group(c, "put_seq", &data.seq[..PUT_KEYS], &data.value, true);
    put_group(c, "put_rand", &data.rand, &data.value, true);
    put_group(
        c,
        "put_seq_nosync",
        &data.seq[..PUT_KEYS],
        &data.value,
        false,
    );
    put_group(c, "put_rand_nosync", &data.rand, &data.value, false);

    let dir = tempfile::tempdir().unwrap();
    let stores = loaded(dir.path(), &data);

    let mut g = c.benchmark_group("get_rand");
    g.throughput(Throughput::Elements(GETS as u64));
    for (name, s) in &stores {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(s.get_some(&data.seq, &data.probes)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements((SCANS * SCAN_LEN) as u64));
    for (name, s) in &stores {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(s.scan_some(&data.seq, &data.probes[..SCANS], SCAN_LEN)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("commit_1");
    g.sampling_mode(SamplingMode::Flat);
    let mut next = READ_KEYS as u64;
    for (name, s) in &stores {
        g.bench_function(*name, |b| {
            b.iter(|| {
                next += 1;
                s.put_some(&[rev_key(next, 0)], &data.value, 1)
            })
        });
    }
    g.finish();
}

/// A freelist holding `isolated` single free pages (every other page) followed by one
/// span of 4 096 free pages.
fn fragmented<F: cairn_engine::freelist::Freelist>(isolated: u64) -> F {
    let mut f = F::default();
    for i in 0..isolated {
        f.free(2 + 2 * i, 1);
    }
    f.free(2 + 2 * isolated + 1, 4096);
    f
}

/// 16 allocations (12 single pages, 4 runs of 4) and frees of the same pages, which
/// leaves the freelist as it was, so one freelist serves every iteration.
fn churn<F: cairn_engine::freelist::Freelist>(f: &mut F) {
    let mut got = [(0u64, 0u64); 16];
    for (i, slot) in got.iter_mut().enumerate() {
        let n = if i % 4 == 3 { 4 } else { 1 };
        *slot = (f.allocate(n).expect("free pages"), n);
    }
    for &(p, n) in got.iter().rev() {
        f.free(p, n);
    }
}

fn freelists(c: &mut Criterion) {
    use cairn_engine::freelist::{ArrayFreelist, SpanFreelist};
    let mut g = c.benchmark_group("freelist");
    for isolated in [0u64, 1_000, 10_000, 100_000] {
        g.bench_with_input(BenchmarkId::new("span", isolated), &isolated, |b, &n| {
            let mut f = fragmented::<SpanFreelist>(n);
            b.iter(|| churn(&mut f))
        });
        g.bench_with_input(BenchmarkId::new("array", isolated), &isolated, |b, &n| {
            let mut f = fragmented::<ArrayFreelist>(n);
            b.iter(|| churn(&mut f))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = engines, freelists
}
criterion_main!(benches);
