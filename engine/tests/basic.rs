//! Basic behaviour: buckets, put/get/delete, cursors, reopen, check.

use cairn_engine::{Db, Error, Options};

fn open(dir: &tempfile::TempDir) -> Db {
    Db::open(
        dir.path().join("db"),
        Options {
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn put_get_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(&dir);
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.create_bucket(b"key").unwrap();
        for i in 0..2000u32 {
            b.put(&i.to_be_bytes(), format!("value-{i}").as_bytes())
                .unwrap();
        }
        assert_eq!(b.get(&7u32.to_be_bytes()), Some(&b"value-7"[..]));
        tx.commit().unwrap();
        assert_eq!(db.check(), vec![]);
        let rtx = db.begin_read().unwrap();
        let b = rtx.bucket(b"key").unwrap();
        assert_eq!(b.get(&1999u32.to_be_bytes()), Some(&b"value-1999"[..]));
        assert_eq!(b.get(&2000u32.to_be_bytes()), None);
    }
    let db = open(&dir);
    assert_eq!(db.check(), vec![]);
    let rtx = db.begin_read().unwrap();
    let b = rtx.bucket(b"key").unwrap();
    let mut c = b.cursor();
    let mut n = 0u32;
    let mut item = c.first();
    while let Some((k, v)) = item {
        assert_eq!(k, n.to_be_bytes());
        assert_eq!(v, format!("value-{n}").as_bytes());
        n += 1;
        item = c.next();
    }
    assert_eq!(n, 2000);
    let mut item = c.last();
    while let Some((k, _)) = item {
        n -= 1;
        assert_eq!(k, n.to_be_bytes());
        item = c.prev();
    }
    assert_eq!(n, 0);
    assert_eq!(
        c.seek(&500u32.to_be_bytes()).unwrap().0,
        500u32.to_be_bytes()
    );
}

#[test]
fn delete_everything_merges_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut tx = db.begin_write().unwrap();
    let mut b = tx.create_bucket(b"b").unwrap();
    for i in 0..5000u32 {
        b.put(&i.to_be_bytes(), &[1u8; 50]).unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(db.check(), vec![]);
    for round in 0..5u32 {
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.bucket_mut(b"b").unwrap();
        for i in (0..5000u32).filter(|i| i % 5 == round) {
            assert!(b.delete(&i.to_be_bytes()).unwrap());
        }
        tx.commit().unwrap();
        assert_eq!(db.check(), vec![]);
    }
    let rtx = db.begin_read().unwrap();
    assert!(rtx.bucket(b"b").unwrap().cursor().first().is_none());
    let s = db.stats();
    assert!(s.in_use_bytes <= 6 * 4096, "{s:?}");
    drop(rtx);
    let mut tx = db.begin_write().unwrap();
    assert!(matches!(tx.bucket_mut(b"nope"), Err(Error::BucketNotFound)));
    tx.delete_bucket(b"b").unwrap();
    tx.commit().unwrap();
    assert_eq!(db.check(), vec![]);
}

#[test]
fn big_transaction_random_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let n = 20_000u32;
    let mut tx = db.begin_write().unwrap();
    let mut b = tx.create_bucket(b"key").unwrap();
    for j in 0..n {
        let i = ((u64::from(j) * 7919) % u64::from(n)) as u32; // a permutation of 0..n
        b.put(&i.to_be_bytes(), &i.to_le_bytes()).unwrap();
    }
    // Inside the transaction, a full scan is ordered and complete.
    let mut c = b.cursor();
    let mut expect = 0u32;
    let mut item = c.first();
    while let Some((k, v)) = item {
        assert_eq!(k, expect.to_be_bytes());
        assert_eq!(v, expect.to_le_bytes());
        expect += 1;
        item = c.next();
    }
    assert_eq!(expect, n);
    tx.commit().unwrap();
    assert_eq!(db.check(), vec![]);
    let r = db.begin_read().unwrap();
    let b = r.bucket(b"key").unwrap();
    for i in (0..n).step_by(97) {
        assert_eq!(b.get(&i.to_be_bytes()), Some(&i.to_le_bytes()[..]));
    }
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync::<Db>();
    send_static::<cairn_engine::ReadTx>();
    fn send<T: Send>() {}
    send::<cairn_engine::WriteTx<'static>>();

    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut tx = db.begin_write().unwrap();
    tx.create_bucket(b"key").unwrap().put(b"a", b"1").unwrap();
    tx.commit().unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let r = db.begin_read().unwrap();
                    let v = r.bucket(b"key").unwrap().get(b"a").unwrap().to_vec();
                    assert!(v == b"1" || v == b"2", "{v:?}");
                }
            })
        })
        .collect();
    for i in 0..20 {
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.bucket_mut(b"key").unwrap();
        b.put(b"a", if i % 2 == 0 { b"2" } else { b"1" }).unwrap();
        b.put(&[i as u8 + 1; 3], &[0; 700]).unwrap();
        tx.commit().unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(db.check(), vec![]);
    // A write transaction can move to another thread; a second writer waits for it.
    let tx = db.begin_write().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut tx2 = db.begin_write().unwrap();
            let seen = tx2
                .bucket_mut(b"key")
                .unwrap()
                .get(b"moved")
                .map(|v| v.to_vec());
            tx2.rollback();
            seen
        });
        s.spawn(move || {
            let mut tx = tx;
            tx.bucket_mut(b"key")
                .unwrap()
                .put(b"moved", b"yes")
                .unwrap();
            tx.commit().unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(waiter.join().unwrap().as_deref(), Some(&b"yes"[..]));
    });
    assert_eq!(db.check(), vec![]);
}

#[test]
fn freelist_not_persisted_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let no_fl = Options {
        no_sync: true,
        no_freelist_sync: true,
        ..Options::default()
    };
    let with_fl = Options {
        no_sync: true,
        ..Options::default()
    };
    // Start with a persisted freelist, then switch it off, then on again.
    for (round, o) in [&with_fl, &no_fl, &no_fl, &with_fl, &no_fl]
        .into_iter()
        .enumerate()
    {
        let db = Db::open(&path, o.clone()).unwrap();
        assert_eq!(db.check(), vec![], "round {round} after open");
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.create_bucket_if_not_exists(b"key").unwrap();
        for i in 0..3000u32 {
            if (i + round as u32) % 3 == 0 {
                b.delete(&i.to_be_bytes()).unwrap();
            } else {
                b.put(&i.to_be_bytes(), &[round as u8; 40]).unwrap();
            }
        }
        tx.commit().unwrap();
        assert_eq!(db.check(), vec![], "round {round} after commit");
        let before = db.stats();
        drop(db);
        let db = Db::open(&path, o.clone()).unwrap();
        let after = db.stats();
        // After a restart every pending page is free.
        assert_eq!(
            after.free_pages,
            before.free_pages + before.pending_pages,
            "round {round}"
        );
        assert_eq!(after.high_water, before.high_water);
        let r = db.begin_read().unwrap();
        let b = r.bucket(b"key").unwrap();
        for i in 0..3000u32 {
            let want = (i + round as u32) % 3 != 0;
            assert_eq!(
                b.get(&i.to_be_bytes()).is_some(),
                want,
                "round {round} key {i}"
            );
        }
    }
}
