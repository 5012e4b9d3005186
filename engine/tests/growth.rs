//! No reader stall: a read transaction held open (on another thread) while commits grow
//! the file and force new mappings several times. Every commit completes, and the reader
//! keeps seeing exactly its snapshot. Also: `write_to` snapshots and `compact_into`.

use std::collections::BTreeMap;
use std::sync::mpsc;

use cairn_engine::{Db, Options, ReadTx};

fn opts() -> Options {
    Options {
        no_sync: true,
        page_size: Some(4096),
        ..Options::default()
    }
}

fn contents(tx: &ReadTx, bucket: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    let Some(b) = tx.bucket(bucket) else { return m };
    let mut c = b.cursor();
    let mut item = c.first();
    while let Some((k, v)) = item {
        m.insert(k.to_vec(), v.to_vec());
        item = c.next();
    }
    m
}

fn rev_key(main: u64, sub: u64) -> Vec<u8> {
    let mut k = main.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    k
}

#[test]
fn long_reader_while_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), opts()).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut b = tx.create_bucket(b"key").unwrap();
    for i in 0..100u64 {
        b.put(&rev_key(i, 0), format!("early-{i}").as_bytes())
            .unwrap();
    }
    tx.commit().unwrap();

    let reader = db.begin_read().unwrap();
    let expected = contents(&reader, b"key");
    let start = db.stats();

    // The reader lives on another thread, reading repeatedly while the writer runs.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let exp = expected.clone();
    let t = std::thread::spawn(move || {
        let mut rounds = 0;
        loop {
            assert_eq!(contents(&reader, b"key"), exp);
            rounds += 1;
            if done_rx.try_recv().is_ok() {
                break;
            }
        }
        assert_eq!(contents(&reader, b"key"), exp);
        rounds
    });

    let mut map_sizes = vec![start.mmap_size];
    let value = vec![0x5a; 3000];
    for c in 0..40u64 {
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.bucket_mut(b"key").unwrap();
        for i in 0..200u64 {
            b.put(&rev_key(1000 + c * 200 + i, 0), &value).unwrap();
        }
        // Rewrite the early keys too, so pages the reader needs are freed (and must stay
        // pending while it lives).
        for i in 0..100u64 {
            b.put(&rev_key(i, 0), format!("late-{c}-{i}").as_bytes())
                .unwrap();
        }
        tx.commit().unwrap();
        let s = db.stats();
        if map_sizes.last() != Some(&s.mmap_size) {
            map_sizes.push(s.mmap_size);
        }
    }
    let end = db.stats();
    assert!(end.pending_pages > 0 || end.free_pages == 0, "{end:?}");
    done_tx.send(()).unwrap();
    let rounds = t.join().unwrap();
    assert!(rounds >= 1);
    assert!(
        map_sizes.len() >= 4,
        "file remapped only {} times: {map_sizes:?}",
        map_sizes.len() - 1
    );
    assert!(end.file_size >= 8 * start.file_size, "{start:?} -> {end:?}");
    assert!(db.check().is_empty());

    // With the reader gone, its pages are released at the next write.
    let tx = db.begin_write().unwrap();
    drop(tx);
    let s = db.stats();
    assert_eq!(s.pending_pages, 0, "{s:?}");
    assert_eq!(s.open_readers, 0);
}

#[test]
fn write_to_produces_a_consistent_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), opts()).unwrap();
    for c in 0..5u64 {
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.create_bucket_if_not_exists(b"key").unwrap();
        for i in 0..500u64 {
            b.put(&rev_key(c * 500 + i, 0), &vec![c as u8; (i % 300) as usize])
                .unwrap();
        }
        tx.create_bucket_if_not_exists(b"meta")
            .unwrap()
            .put(b"consistent_index", &c.to_be_bytes())
            .unwrap();
        tx.commit().unwrap();
    }
    let snap = db.begin_read().unwrap();
    // Writes after the snapshot must not leak into it.
    let mut tx = db.begin_write().unwrap();
    tx.bucket_mut(b"key")
        .unwrap()
        .put(&rev_key(99_999, 0), b"later")
        .unwrap();
    tx.delete_bucket(b"meta").unwrap();
    tx.commit().unwrap();

    let mut buf = Vec::new();
    let n = snap.write_to(&mut buf).unwrap();
    assert_eq!(n, snap.size());
    assert_eq!(buf.len() as u64, n);
    let p = dir.path().join("snap.db");
    std::fs::write(&p, &buf).unwrap();
    let copy = Db::open(&p, opts()).unwrap();
    assert!(copy.check().is_empty(), "{:?}", copy.check());
    let r = copy.begin_read().unwrap();
    assert_eq!(r.txid(), snap.txid());
    assert_eq!(contents(&r, b"key"), contents(&snap, b"key"));
    assert_eq!(contents(&r, b"meta"), contents(&snap, b"meta"));
    assert_eq!(contents(&r, b"key").len(), 2500);
}

#[test]
fn compact_into_defragments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), opts()).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut b = tx.create_bucket(b"key").unwrap();
    for i in 0..5000u64 {
        b.put(&rev_key(i, 0), &[1u8; 200]).unwrap();
    }
    b.set_sequence(42);
    tx.create_bucket(b"empty").unwrap();
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut b = tx.bucket_mut(b"key").unwrap();
    for i in (0..5000u64).filter(|i| i % 10 != 0) {
        b.delete(&rev_key(i, 0)).unwrap();
    }
    tx.commit().unwrap();
    let out = dir.path().join("compact.db");
    db.compact_into(&out).unwrap();
    let small = Db::open(&out, opts()).unwrap();
    assert!(small.check().is_empty());
    let (a, b) = (db.begin_read().unwrap(), small.begin_read().unwrap());
    assert_eq!(contents(&a, b"key"), contents(&b, b"key"));
    assert_eq!(
        b.bucket_names().collect::<Vec<_>>(),
        vec![&b"empty"[..], &b"key"[..]]
    );
    assert_eq!(b.bucket(b"key").unwrap().sequence(), 42);
    assert!(
        small.stats().high_water * 3 < db.stats().high_water,
        "{:?} vs {:?}",
        small.stats(),
        db.stats()
    );
}
