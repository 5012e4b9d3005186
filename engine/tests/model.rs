//! Model-based test: random transactions of puts, deletes (single and ranges, so pages
//! empty and merge), bucket creation/deletion, commits, rollbacks and reopens, checked
//! against a `BTreeMap` model. After every transaction: the write transaction's own view,
//! then `check()`, the committed contents, and an older reader's snapshot.
//!
//! 64 cases by default; `PROPTEST_CASES` raises it.

use std::collections::BTreeMap;

use cairn_engine::{Db, Options, ReadTx};
use proptest::prelude::*;

type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

const BUCKETS: [&[u8]; 3] = [b"key", b"meta", b"b3"];

#[derive(Clone, Debug)]
enum Op {
    Put {
        b: usize,
        k: u16,
        size: usize,
    },
    Delete {
        b: usize,
        k: u16,
    },
    DeleteRange {
        b: usize,
        lo: u16,
        n: u16,
    },
    CreateBucket(usize),
    DeleteBucket(usize),
    Seek {
        b: usize,
        k: u16,
    },
    /// Many puts in one transaction, in a scattered order (exercises in-memory splits).
    Bulk {
        b: usize,
        start: u16,
        n: u16,
        size: usize,
    },
}

#[derive(Clone, Copy, Debug)]
enum End {
    Commit,
    Rollback,
    CommitReopen,
}

fn key(k: u16) -> Vec<u8> {
    // Variable-length keys with a shared prefix, so branch keys vary in size.
    let mut v = format!("{k:05}").into_bytes();
    v.extend(std::iter::repeat_n(b'x', (k % 5) as usize * 3));
    v
}

fn value(k: u16, size: usize, salt: u32) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u32 ^ u32::from(k) ^ salt) as u8)
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    let b = 0..BUCKETS.len();
    let size = prop_oneof![8 => 0usize..40, 3 => 100usize..700, 1 => 3000usize..14000];
    prop_oneof![
        24 => (b.clone(), 0u16..600, size).prop_map(|(b, k, size)| Op::Put { b, k, size }),
        8 => (b.clone(), 0u16..600).prop_map(|(b, k)| Op::Delete { b, k }),
        2 => (b.clone(), 0u16..600, 1u16..300).prop_map(|(b, lo, n)| Op::DeleteRange { b, lo, n }),
        2 => b.clone().prop_map(Op::CreateBucket),
        2 => (1..BUCKETS.len()).prop_map(Op::DeleteBucket),
        4 => (b.clone(), 0u16..650).prop_map(|(b, k)| Op::Seek { b, k }),
        1 => (b, 0u16..600, 300u16..900, 0usize..120).prop_map(|(b, start, n, size)| Op::Bulk { b, start, n, size }),
    ]
}

fn txs() -> impl Strategy<Value = Vec<(Vec<Op>, End)>> {
    let end =
        prop_oneof![6 => Just(End::Commit), 1 => Just(End::Rollback), 1 => Just(End::CommitReopen)];
    prop::collection::vec((prop::collection::vec(op(), 1..80), end), 1..12)
}

fn dump_read(tx: &ReadTx) -> Model {
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
        // Backwards must agree.
        let mut back = Vec::new();
        let mut item = c.last();
        while let Some((k, _)) = item {
            back.push(k.to_vec());
            item = c.prev();
        }
        back.reverse();
        assert_eq!(
            back,
            kv.keys().cloned().collect::<Vec<_>>(),
            "reverse scan differs"
        );
        for (k, v) in &kv {
            assert_eq!(b.get(k), Some(&v[..]));
        }
        m.insert(name.to_vec(), kv);
    }
    m
}

fn opts() -> Options {
    Options {
        no_sync: true,
        page_size: Some(4096),
        ..Options::default()
    }
}

fn run(txs: Vec<(Vec<Op>, End)>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = Db::open(&path, opts()).unwrap();
    let mut committed = Model::new();
    let mut salt = 0u32;
    for (ops, end) in txs {
        let old_reader = db.begin_read().unwrap();
        let mut model = committed.clone();
        {
            let mut tx = db.begin_write().unwrap();
            for op in ops {
                salt += 1;
                match op {
                    Op::Put { b, k, size } => {
                        let name = BUCKETS[b];
                        let v = value(k, size, salt);
                        tx.create_bucket_if_not_exists(name)
                            .unwrap()
                            .put(&key(k), &v)
                            .unwrap();
                        model.entry(name.to_vec()).or_default().insert(key(k), v);
                    }
                    Op::Delete { b, k } => {
                        let name = BUCKETS[b];
                        if let Some(m) = model.get_mut(name) {
                            let present = m.remove(&key(k)).is_some();
                            let got = tx.bucket_mut(name).unwrap().delete(&key(k)).unwrap();
                            prop_assert_eq!(got, present);
                        } else {
                            prop_assert!(tx.bucket_mut(name).is_err());
                        }
                    }
                    Op::DeleteRange { b, lo, n } => {
                        let name = BUCKETS[b];
                        if let Some(m) = model.get_mut(name) {
                            let mut bm = tx.bucket_mut(name).unwrap();
                            for k in lo..lo.saturating_add(n) {
                                let present = m.remove(&key(k)).is_some();
                                prop_assert_eq!(bm.delete(&key(k)).unwrap(), present);
                            }
                        }
                    }
                    Op::CreateBucket(b) => {
                        let name = BUCKETS[b];
                        let r = tx.create_bucket(name);
                        prop_assert_eq!(r.is_ok(), !model.contains_key(name));
                        model.entry(name.to_vec()).or_default();
                    }
                    Op::DeleteBucket(b) => {
                        let name = BUCKETS[b];
                        let r = tx.delete_bucket(name);
                        prop_assert_eq!(r.is_ok(), model.remove(name).is_some());
                    }
                    Op::Bulk { b, start, n, size } => {
                        let name = BUCKETS[b];
                        let mut bm = tx.create_bucket_if_not_exists(name).unwrap();
                        let m = model.entry(name.to_vec()).or_default();
                        for j in 0..n {
                            // A permutation of start..start+n, far from sequential.
                            let k = start.wrapping_add(j.wrapping_mul(7919) % n);
                            let v = value(k, size, salt);
                            bm.put(&key(k), &v).unwrap();
                            m.insert(key(k), v);
                        }
                    }
                    Op::Seek { b, k } => {
                        let name = BUCKETS[b];
                        if let Some(m) = model.get(name) {
                            let bm = tx.bucket_mut(name).unwrap();
                            let mut c = bm.cursor();
                            let want = m.range(key(k)..).next();
                            let got = c.seek(&key(k));
                            prop_assert_eq!(
                                got.map(|(a, b)| (a.to_vec(), b.to_vec())),
                                want.map(|(a, b)| (a.clone(), b.clone()))
                            );
                            let want_prev = m.range(..key(k)).next_back().map(|(a, _)| a.clone());
                            if got.is_some() {
                                prop_assert_eq!(c.prev().map(|(a, _)| a.to_vec()), want_prev);
                            }
                        }
                    }
                }
            }
            // The writer sees its own changes, through cursors and gets.
            prop_assert_eq!(tx.bucket_names(), model.keys().cloned().collect::<Vec<_>>());
            for (name, m) in &model {
                let b = tx.bucket(name).unwrap();
                let mut c = b.cursor();
                let mut got = BTreeMap::new();
                let mut item = c.first();
                while let Some((k, v)) = item {
                    got.insert(k.to_vec(), v.to_vec());
                    item = c.next();
                }
                prop_assert_eq!(&got, m);
            }
            match end {
                End::Rollback => tx.rollback(),
                End::Commit | End::CommitReopen => {
                    tx.commit().unwrap();
                    committed = model;
                }
            }
        }
        let errs = db.check();
        prop_assert!(errs.is_empty(), "check after commit: {:?}", errs);
        // The old reader still sees its snapshot.
        let old = dump_read(&old_reader);
        drop(old_reader);
        let rtx = db.begin_read().unwrap();
        let now = dump_read(&rtx);
        drop(rtx);
        prop_assert_eq!(&now, &committed);
        let _ = old;
        if let End::CommitReopen = end {
            drop(db);
            db = Db::open(&path, opts()).unwrap();
            let errs = db.check();
            prop_assert!(errs.is_empty(), "check after reopen: {:?}", errs);
            let rtx = db.begin_read().unwrap();
            prop_assert_eq!(&dump_read(&rtx), &committed);
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_btreemap(txs in txs()) {
        run(txs)?;
    }
}

/// Old readers keep their snapshot across commits (checked against the model of their
/// time), including when the freed pages would otherwise be reused.
#[test]
fn readers_keep_snapshots_across_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), opts()).unwrap();
    let mut models = Vec::new();
    let mut readers = Vec::new();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for round in 0..30u32 {
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.create_bucket_if_not_exists(b"key").unwrap();
        for i in 0..50u16 {
            let k = key((i * 7 + round as u16 * 13) % 400);
            let v = value(i, (round as usize * 37 + i as usize) % 900, round);
            if (i + round as u16) % 4 == 0 {
                b.delete(&k).unwrap();
                model.remove(&k);
            } else {
                b.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        tx.commit().unwrap();
        if round % 3 == 0 {
            readers.push(db.begin_read().unwrap());
            models.push(model.clone());
        }
        if round % 7 == 6 && !readers.is_empty() {
            readers.remove(0);
            models.remove(0);
        }
        assert!(db.check().is_empty());
        for (r, m) in readers.iter().zip(&models) {
            let got = dump_read(r);
            assert_eq!(got.get(&b"key"[..]).unwrap(), m);
        }
    }
}
