//! Crash safety: a fault-injecting [`Storage`] tracks which bytes are durable (synced) and
//! which are only volatile, and "crashes" at a chosen write or sync: that operation and all
//! later ones fail. The crash image is the durable bytes plus a random selection of the
//! unsynced writes, each applied fully, partially (a prefix of 512-byte sectors) or not at
//! all. The image is written to a fresh file and reopened with the real `Db`, which must
//! show exactly the last committed state (or the in-flight commit, if its meta page write
//! had been issued) and pass `check()`.
//!
//! Every write and sync point of a multi-commit workload is tried. `CAIRN_CRASH_SEEDS`
//! raises the number of random images per point (default 2).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn_engine::{Db, Options, Storage};
use rand::{Rng, SeedableRng};

enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

struct State {
    durable: Vec<u8>,
    volatile: Vec<Op>,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
}

struct FaultStorage {
    file: File,
    st: Arc<Mutex<State>>,
}

fn crashed() -> io::Error {
    io::Error::other("injected crash")
}

impl FaultStorage {
    /// Wrap the real file at `path`; its current contents count as durable.
    fn new(path: &Path, crash_at: Option<u64>) -> (FaultStorage, Arc<Mutex<State>>) {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let durable = std::fs::read(path).unwrap();
        let st = Arc::new(Mutex::new(State {
            durable,
            volatile: Vec::new(),
            ops: 0,
            crash_at,
            crashed: false,
        }));
        (
            FaultStorage {
                file,
                st: st.clone(),
            },
            st,
        )
    }

    /// Count an operation; returns Err if this is (or follows) the crash point.
    fn tick(&self) -> io::Result<()> {
        let mut st = self.st.lock().unwrap();
        if st.crashed {
            return Err(crashed());
        }
        st.ops += 1;
        if Some(st.ops) == st.crash_at {
            st.crashed = true;
            return Err(crashed());
        }
        Ok(())
    }
}

fn apply(img: &mut Vec<u8>, op: &Op, limit: Option<usize>) {
    match op {
        Op::Write(off, data) => {
            let data = &data[..limit.unwrap_or(data.len()).min(data.len())];
            let end = *off as usize + data.len();
            if img.len() < end {
                img.resize(end, 0);
            }
            img[*off as usize..end].copy_from_slice(data);
        }
        Op::SetLen(n) => img.resize(*n as usize, 0),
    }
}

impl Storage for FaultStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.tick()?;
        self.file.write_all_at(buf, offset)?;
        self.st
            .lock()
            .unwrap()
            .volatile
            .push(Op::Write(offset, buf.to_vec()));
        Ok(())
    }
    fn write_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        // One I/O operation (one crash point); a crash image may still tear it anywhere.
        self.write_at(&bufs.concat(), offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.tick()?;
        let mut st = self.st.lock().unwrap();
        let ops = std::mem::take(&mut st.volatile);
        for op in &ops {
            apply(&mut st.durable, op, None);
        }
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.tick()?;
        self.file.set_len(len)?;
        self.st.lock().unwrap().volatile.push(Op::SetLen(len));
        Ok(())
    }
    fn file(&self) -> &File {
        &self.file
    }
}

/// The image a power cut could leave: durable bytes plus some of the unsynced writes.
fn crash_image(st: &State, rng: &mut impl Rng) -> Vec<u8> {
    let mut img = st.durable.clone();
    for op in &st.volatile {
        match rng.gen_range(0..3) {
            0 => {}
            1 => apply(&mut img, op, None),
            _ => {
                let len = match op {
                    Op::Write(_, d) => d.len(),
                    Op::SetLen(_) => 0,
                };
                let sectors = len.div_ceil(512);
                let keep = if sectors == 0 {
                    0
                } else {
                    rng.gen_range(0..sectors) * 512
                };
                apply(&mut img, op, Some(keep));
            }
        }
    }
    img
}

type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

fn read_all(db: &Db) -> Model {
    let tx = db.begin_read().unwrap();
    let mut m = Model::new();
    for name in tx.bucket_names() {
        let b = tx.bucket(name).unwrap();
        let mut kv = BTreeMap::new();
        let mut c = b.cursor();
        let mut item = c.first();
        while let Some((k, v)) = item {
            kv.insert(k.to_vec(), v.to_vec());
            item = c.next();
        }
        m.insert(name.to_vec(), kv);
    }
    m
}

/// A deterministic workload; returns the model after each successful commit, and the
/// model of the commit in flight when the crash hit (if any).
fn workload(db: &Db, seed: u64, commits: usize) -> (Vec<Model>, Option<Model>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = read_all(db);
    let mut done = vec![model.clone()];
    for c in 0..commits {
        let mut next = model.clone();
        let mut tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(_) => return (done, None),
        };
        let names: [&[u8]; 3] = [b"key", b"meta", b"lease"];
        if c % 9 == 8 {
            let name = names[rng.gen_range(1..3)];
            if next.remove(name).is_some() {
                tx.delete_bucket(name).unwrap();
            }
        }
        for _ in 0..rng.gen_range(1..60) {
            let name = names[rng.gen_range(0..3)];
            let mut b = tx.create_bucket_if_not_exists(name).unwrap();
            let bm = next.entry(name.to_vec()).or_default();
            let key = format!("k{:05}", rng.gen_range(0..400)).into_bytes();
            if rng.gen_bool(0.3) {
                b.delete(&key).unwrap();
                bm.remove(&key);
            } else {
                let len = match rng.gen_range(0..20) {
                    0 => rng.gen_range(4000..12000),
                    1..=3 => rng.gen_range(200..1000),
                    _ => rng.gen_range(0..64),
                };
                let val: Vec<u8> = (0..len).map(|i| (i as u8) ^ (c as u8)).collect();
                b.put(&key, &val).unwrap();
                bm.insert(key, val);
            }
        }
        match tx.commit() {
            Ok(()) => {
                model = next;
                done.push(model.clone());
            }
            Err(_) => return (done, Some(next)),
        }
    }
    (done, None)
}

fn opts() -> Options {
    Options {
        page_size: Some(4096),
        ..Options::default()
    }
}

#[test]
fn crash_at_every_write_and_sync() {
    crash_at_every_point(opts(), 24);
}

/// The same with the freelist not persisted (etcd's configuration): recovery rebuilds it.
#[test]
fn crash_at_every_write_and_sync_without_freelist() {
    crash_at_every_point(
        Options {
            no_freelist_sync: true,
            ..opts()
        },
        12,
    );
}

fn crash_at_every_point(opts: Options, commits: usize) {
    let opts = || opts.clone();
    let seeds: u64 = std::env::var("CAIRN_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.db");
    drop(Db::open(&base, opts()).unwrap());

    // Dry run: count the I/O operations of the whole workload.
    let total_ops = {
        let p = dir.path().join("dry.db");
        std::fs::copy(&base, &p).unwrap();
        let (fs, st) = FaultStorage::new(&p, None);
        let db = Db::open_with_storage(&p, Box::new(fs), opts()).unwrap();
        let (done, inflight) = workload(&db, 7, commits);
        assert_eq!(done.len(), commits + 1);
        assert!(inflight.is_none());
        assert!(db.check().is_empty());
        let n = st.lock().unwrap().ops;
        n
    };
    assert!(
        total_ops >= 4 * commits as u64,
        "only {total_ops} I/O operations"
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut outcomes = [0usize; 2];
    for crash_at in 1..=total_ops {
        let p = dir.path().join("run.db");
        std::fs::copy(&base, &p).unwrap();
        let (fs, st) = FaultStorage::new(&p, Some(crash_at));
        let db = Db::open_with_storage(&p, Box::new(fs), opts()).unwrap();
        let (done, inflight) = workload(&db, 7, commits);
        assert!(inflight.is_some(), "crash point {crash_at} not reached");
        // After the crash the database refuses writes.
        assert!(matches!(
            db.begin_write(),
            Err(cairn_engine::Error::Poisoned(_))
        ));
        drop(db);
        let last = done.last().unwrap();
        for _ in 0..seeds {
            let img = crash_image(&st.lock().unwrap(), &mut rng);
            let ip = dir.path().join("image.db");
            std::fs::write(&ip, &img).unwrap();
            let db = Db::open(
                &ip,
                Options {
                    no_sync: true,
                    ..opts()
                },
            )
            .unwrap_or_else(|e| panic!("crash point {crash_at}: reopen failed: {e}"));
            let errs = db.check();
            assert!(errs.is_empty(), "crash point {crash_at}: check: {errs:?}");
            let got = read_all(&db);
            if &got == last {
                outcomes[0] += 1;
            } else if Some(&got) == inflight.as_ref() {
                outcomes[1] += 1;
            } else {
                panic!(
                    "crash point {crash_at}: state is neither the last commit ({} commits) nor the \
                     in-flight one",
                    done.len() - 1
                );
            }
            // The recovered database accepts writes and stays consistent.
            let mut tx = db.begin_write().unwrap();
            tx.create_bucket_if_not_exists(b"key")
                .unwrap()
                .put(b"after", b"crash")
                .unwrap();
            tx.commit().unwrap();
            assert!(db.check().is_empty());
        }
    }
    // Both outcomes must actually occur, or the test is not exercising the meta write.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "outcomes {outcomes:?}");
}
