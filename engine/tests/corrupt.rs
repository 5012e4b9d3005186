//! Random corruption of a valid file (bit flips and byte overwrites anywhere, headers
//! included): opening either fails with a typed error or succeeds; when it succeeds,
//! `check()`, gets and full cursor scans in both directions must not panic. (Values
//! themselves carry no checksum in the bbolt format, so a flipped value byte cannot be
//! detected; structural damage is reported by `check()`.)

use cairn_engine::{Db, Options};
use rand::{Rng, SeedableRng};

fn opts() -> Options {
    Options {
        no_sync: true,
        page_size: Some(4096),
        ..Options::default()
    }
}

fn build(path: &std::path::Path) {
    let db = Db::open(path, opts()).unwrap();
    for round in 0..4u32 {
        let mut tx = db.begin_write().unwrap();
        for name in [&b"key"[..], b"meta", b"lease"] {
            let mut b = tx.create_bucket_if_not_exists(name).unwrap();
            for i in 0..300u32 {
                let len = if i % 97 == 0 { 6000 } else { (i % 50) as usize };
                if (i + round) % 5 == 0 {
                    b.delete(&i.to_be_bytes()).unwrap();
                } else {
                    b.put(&i.to_be_bytes(), &vec![round as u8; len]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
}

/// Read everything a server would: every bucket, forwards and backwards, plus gets.
fn read_everything(db: &Db) -> usize {
    let tx = db.begin_read().unwrap();
    let names: Vec<Vec<u8>> = tx.bucket_names().take(1000).map(|n| n.to_vec()).collect();
    let mut n = 0;
    for name in names {
        let Some(b) = tx.bucket(&name) else { continue };
        let mut c = b.cursor();
        let mut item = c.first();
        let mut steps = 0;
        while let Some((k, _)) = item {
            let _ = b.get(k);
            n += 1;
            steps += 1;
            if steps > 100_000 {
                break;
            }
            item = c.next();
        }
        let mut item = c.last();
        let mut steps = 0;
        while item.is_some() && steps < 100_000 {
            steps += 1;
            item = c.prev();
        }
        let _ = c.seek(&150u32.to_be_bytes());
    }
    n
}

#[test]
fn corrupted_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    build(&good);
    let bytes = std::fs::read(&good).unwrap();
    let pages = bytes.len() / 4096;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xBAD);
    let iterations: usize = std::env::var("CAIRN_CORRUPT_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let (mut opened, mut refused) = (0, 0);
    for it in 0..iterations {
        let mut img = bytes.clone();
        for _ in 0..rng.gen_range(1..8) {
            // Bias towards page headers and element arrays, where structure lives.
            let page = rng.gen_range(0..pages);
            let off = if rng.gen_bool(0.7) {
                rng.gen_range(0..96)
            } else {
                rng.gen_range(0..4096)
            };
            let pos = page * 4096 + off;
            if rng.gen_bool(0.5) {
                img[pos] ^= 1 << rng.gen_range(0..8);
            } else {
                img[pos] = rng.gen();
            }
        }
        let p = dir.path().join("bad.db");
        std::fs::write(&p, &img).unwrap();
        match Db::open(&p, opts()) {
            Err(_) => refused += 1,
            Ok(db) => {
                opened += 1;
                let _ = db.check();
                let _ = read_everything(&db);
                // Writing on top of a damaged file may fail, but must not panic.
                if let Ok(mut tx) = db.begin_write() {
                    let mut ok = true;
                    for name in [&b"key"[..], b"meta", b"new"] {
                        match tx.create_bucket_if_not_exists(name) {
                            Ok(mut b) => {
                                for i in (0..300u32).step_by(7) {
                                    ok &= b.put(&i.to_be_bytes(), b"rewritten").is_ok();
                                    ok &= b.delete(&(i + 3).to_be_bytes()).is_ok();
                                }
                            }
                            Err(_) => ok = false,
                        }
                    }
                    let _ = tx.delete_bucket(b"lease");
                    if ok && tx.commit().is_ok() {
                        let _ = db.check();
                        let _ = read_everything(&db);
                    }
                }
                if std::env::var_os("CAIRN_CORRUPT_TRACE").is_some() {
                    eprintln!("iteration {it}");
                }
            }
        }
    }
    assert!(opened > 0, "no corrupted file opened ({refused} refused)");
}

#[test]
fn branch_pointing_at_itself_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycle.db");
    {
        let db = Db::open(&path, opts()).unwrap();
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.create_bucket(b"key").unwrap();
        for i in 0..3000u32 {
            b.put(&i.to_be_bytes(), &[1u8; 30]).unwrap();
        }
        tx.commit().unwrap();
    }
    let mut img = std::fs::read(&path).unwrap();
    let db_pages = Db::open(&path, opts()).unwrap().stats().high_water as usize;
    // The bucket's root is the only branch page; point its first child at itself.
    let branch = (2..db_pages)
        .find(|&p| u16::from_le_bytes([img[p * 4096 + 8], img[p * 4096 + 9]]) == 0x01)
        .expect("a branch page");
    let me = (branch as u64).to_le_bytes();
    img[branch * 4096 + 16 + 8..branch * 4096 + 16 + 16].copy_from_slice(&me);
    std::fs::write(&path, &img).unwrap();

    let db = Db::open(&path, opts()).unwrap();
    assert!(!db.check().is_empty(), "the cycle must be reported");
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"key").unwrap();
    let mut c = b.cursor();
    let mut n = 0;
    let mut item = c.first();
    while item.is_some() {
        n += 1;
        assert!(n <= 3000, "scan does not terminate");
        item = c.next();
    }
    assert!(n < 3000, "keys under the lost child cannot be seen");
}
