//! Bad input and bad files: each yields a typed error, never a panic or a silent success.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use cairn_engine::{Db, Error, Options, MAX_KEY_SIZE};

fn opts() -> Options {
    Options {
        no_sync: true,
        page_size: Some(4096),
        ..Options::default()
    }
}

/// A database with two commits: "gen" = "1" after the first, "gen" = "2" after the second.
fn two_commits(path: &Path) {
    let db = Db::open(path, opts()).unwrap();
    for gen in [b"1", b"2"] {
        let mut tx = db.begin_write().unwrap();
        let mut b = tx.create_bucket_if_not_exists(b"key").unwrap();
        b.put(b"gen", gen).unwrap();
        for i in 0..300u32 {
            b.put(&i.to_be_bytes(), &[gen[0]; 100]).unwrap();
        }
        tx.commit().unwrap();
    }
}

fn gen_of(db: &Db) -> Vec<u8> {
    let tx = db.begin_read().unwrap();
    tx.bucket(b"key").unwrap().get(b"gen").unwrap().to_vec()
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = vec![0; len];
    f.read_exact(&mut b).unwrap();
    b
}

fn meta_txid(path: &Path, page: u64) -> u64 {
    let b = read_at(path, page * 4096 + 16 + 48, 8);
    u64::from_le_bytes(b.try_into().unwrap())
}

#[test]
fn key_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), opts()).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut b = tx.create_bucket(b"b").unwrap();
    assert!(matches!(b.put(b"", b"v"), Err(Error::KeyEmpty)));
    let big = vec![b'k'; MAX_KEY_SIZE + 1];
    assert!(matches!(b.put(&big, b"v"), Err(Error::KeyTooLarge)));
    let max = vec![b'k'; MAX_KEY_SIZE];
    b.put(&max, b"max").unwrap();
    b.put(b"small", &vec![7u8; 100_000]).unwrap();
    tx.commit().unwrap();
    assert!(db.check().is_empty());
    let r = db.begin_read().unwrap();
    assert_eq!(r.bucket(b"b").unwrap().get(&max), Some(&b"max"[..]));
    assert_eq!(
        r.bucket(b"b").unwrap().get(b"small").unwrap().len(),
        100_000
    );
    drop(r);
    let mut tx = db.begin_write().unwrap();
    assert!(matches!(
        tx.create_bucket(b""),
        Err(Error::BucketNameRequired)
    ));
    assert!(matches!(tx.create_bucket(b"b"), Err(Error::BucketExists)));
    assert!(matches!(
        tx.bucket_mut(b"missing"),
        Err(Error::BucketNotFound)
    ));
    assert!(matches!(
        tx.delete_bucket(b"missing"),
        Err(Error::BucketNotFound)
    ));
}

#[test]
fn read_only_database_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    two_commits(&path);
    let db = Db::open(
        &path,
        Options {
            read_only: true,
            ..opts()
        },
    )
    .unwrap();
    assert!(matches!(db.begin_write(), Err(Error::DatabaseReadOnly)));
    assert_eq!(gen_of(&db), b"2");
    // A second read-only handle shares the lock; a writer is refused while they live.
    let db2 = Db::open(
        &path,
        Options {
            read_only: true,
            ..opts()
        },
    )
    .unwrap();
    assert!(matches!(Db::open(&path, opts()), Err(Error::Locked)));
    drop((db, db2));
    let db = Db::open(&path, opts()).unwrap();
    assert!(matches!(Db::open(&path, opts()), Err(Error::Locked)));
    // A holder that lets go while `open` waits (within `lock_timeout`) is waited for.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(db);
    });
    let patient = Options {
        lock_timeout: std::time::Duration::from_secs(30),
        ..opts()
    };
    let db = Db::open(&path, patient).unwrap();
    releaser.join().unwrap();
    let impatient = Options {
        lock_timeout: std::time::Duration::ZERO,
        ..opts()
    };
    assert!(matches!(Db::open(&path, impatient), Err(Error::Locked)));
    drop(db);
    // Read-only open of a missing file is an I/O error, not a new file.
    let missing = dir.path().join("missing");
    assert!(matches!(
        Db::open(
            &missing,
            Options {
                read_only: true,
                ..opts()
            }
        ),
        Err(Error::Io(_))
    ));
    assert!(!missing.exists());
}

#[test]
fn not_a_bbolt_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("tiny", vec![1u8; 100]),
        (
            "text",
            b"hello world, definitely not a database\n".repeat(500),
        ),
        ("zeros", vec![0u8; 64 * 1024]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &content).unwrap();
        match Db::open(&p, opts()) {
            Err(Error::Invalid) => {}
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
    let p = dir.path().join("empty");
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(
        Db::open(
            &p,
            Options {
                read_only: true,
                ..opts()
            }
        ),
        Err(Error::Invalid)
    ));
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    two_commits(&path);
    for len in [4096 * 2 + 100, 4096 * 5] {
        let p = dir.path().join(format!("t{len}"));
        std::fs::copy(&path, &p).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len)
            .unwrap();
        match Db::open(&p, opts()) {
            Err(Error::Truncated { file_len, needed }) => {
                assert_eq!(file_len, len);
                assert!(needed > len);
            }
            other => panic!("len {len}: expected Truncated, got {other:?}"),
        }
    }
    let p = dir.path().join("t1000");
    std::fs::copy(&path, &p).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(1000)
        .unwrap();
    assert!(matches!(Db::open(&p, opts()), Err(Error::Invalid)));
}

#[test]
fn one_corrupt_meta_falls_back_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    two_commits(&path);
    let newest = if meta_txid(&path, 0) > meta_txid(&path, 1) {
        0
    } else {
        1
    };
    let older = 1 - newest;

    // Corrupt the newest meta (a torn meta write): open falls back to the previous commit.
    let p = dir.path().join("newest-bad");
    std::fs::copy(&path, &p).unwrap();
    patch(&p, newest * 4096 + 16 + 56, &[0xAA; 8]); // checksum field
    let db = Db::open(&p, opts()).unwrap();
    assert_eq!(gen_of(&db), b"1");
    assert!(db.check().is_empty(), "{:?}", db.check());
    // It stays writable; the next commit overwrites the bad slot.
    let mut tx = db.begin_write().unwrap();
    tx.bucket_mut(b"key").unwrap().put(b"gen", b"3").unwrap();
    tx.commit().unwrap();
    drop(db);
    let db = Db::open(&p, opts()).unwrap();
    assert_eq!(gen_of(&db), b"3");
    assert!(db.check().is_empty());
    drop(db);

    // Corrupt the older meta: the newest is used.
    let p = dir.path().join("older-bad");
    std::fs::copy(&path, &p).unwrap();
    patch(&p, older * 4096 + 16 + 8, &[0x55; 4]); // page size field: checksum mismatch
    let db = Db::open(&p, opts()).unwrap();
    assert_eq!(gen_of(&db), b"2");
}

#[test]
fn both_metas_corrupt_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    two_commits(&path);
    let p = dir.path().join("both-bad");
    std::fs::copy(&path, &p).unwrap();
    patch(&p, 16 + 56, &[0xAA; 8]);
    patch(&p, 4096 + 16 + 56, &[0xAA; 8]);
    assert!(matches!(Db::open(&p, opts()), Err(Error::Checksum)));

    // Wrong magic in both: not a bbolt file.
    let p = dir.path().join("magic");
    std::fs::copy(&path, &p).unwrap();
    patch(&p, 16, &[0, 0, 0, 0]);
    patch(&p, 4096 + 16, &[0, 0, 0, 0]);
    assert!(matches!(Db::open(&p, opts()), Err(Error::Invalid)));

    // Another format version (with a valid checksum): VersionMismatch.
    let p = dir.path().join("version");
    std::fs::copy(&path, &p).unwrap();
    for page in 0..2u64 {
        let mut meta = read_at(&p, page * 4096 + 16, 64);
        meta[4..8].copy_from_slice(&3u32.to_le_bytes());
        let sum = fnv64a(&meta[..56]);
        meta[56..64].copy_from_slice(&sum.to_le_bytes());
        patch(&p, page * 4096 + 16, &meta);
    }
    assert!(matches!(Db::open(&p, opts()), Err(Error::VersionMismatch)));
}

fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[test]
fn incompatible_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), opts()).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.create_bucket(b"b").unwrap().put(b"k", b"v").unwrap();
    tx.commit().unwrap();
    let tx = db.begin_read().unwrap();
    assert!(tx.bucket(b"nope").is_none());
    assert_eq!(tx.bucket(b"b").unwrap().get(b"k"), Some(&b"v"[..]));
}
