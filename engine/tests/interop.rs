//! Interop with implementations that are not ours: the real bbolt (Go, Debian's bbolt 1.3.6,
//! driven through `engine/tests/bboltcheck`) and etcd 3.5.1's `etcdutl`.
//!
//! - Files written by real etcd (3.5.1 and 3.4.23) and by bbolt itself (committed under
//!   `tests/data/`, made by `tests/data/make-fixtures.sh`) open in the engine, and every
//!   bucket and key reads back exactly as bbolt reads it (`*.dump`).
//! - Files written by the engine pass bbolt's `tx.Check()`, read back in bbolt exactly as
//!   written, and `etcdutl snapshot status` reports the right revision, key count and hash.
//!
//! The tools are found as described in `scripts/testdeps.md` (installed by
//! `scripts/install-test-deps.sh`); a missing tool fails the test, it never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_engine::{Db, Options};

// ---------------------------------------------------------------------------------------
// Locating the reference tools

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ has a parent")
        .to_path_buf()
}

fn tool(path: PathBuf, var: &str) -> PathBuf {
    if path.is_file() {
        return path;
    }
    let hint = if std::env::var_os("CI").is_some() {
        "CI must install it: scripts/test.sh runs scripts/install-test-deps.sh first"
    } else {
        "run scripts/install-test-deps.sh (see scripts/testdeps.md)"
    };
    panic!(
        "reference tool {} not found (override with {var}); {hint}",
        path.display()
    );
}

fn bboltcheck() -> PathBuf {
    let p = std::env::var_os("CAIRN_BBOLTCHECK")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/testdeps/bin/bboltcheck"));
    tool(p, "CAIRN_BBOLTCHECK")
}

fn etcdutl_351() -> PathBuf {
    let dir = std::env::var_os("CAIRN_ETCD_351_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/testdeps/etcd-3.5.1"));
    tool(dir.join("etcdutl"), "CAIRN_ETCD_351_DIR")
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// bbolt's view of a file: `bboltcheck dump` parsed

/// Top-level bucket name -> its keys and values (keys of nested buckets are listed
/// separately in `nested`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Dump {
    buckets: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// (parent path, nested bucket name) for every nested bucket.
    nested: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn parse_path(p: &str) -> Vec<Vec<u8>> {
    p.split('/').map(unhex).collect()
}

fn parse_dump(text: &str) -> Dump {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("bboltcheck-dump v1"), "dump header");
    let mut d = Dump::default();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["bucket", path] => {
                let mut path = parse_path(path);
                if path.len() == 1 {
                    d.buckets.entry(path.remove(0)).or_default();
                } else {
                    let name = path.pop().unwrap();
                    d.nested.push((path, name));
                }
            }
            ["key", path, k, v] => {
                let path = parse_path(path);
                if path.len() == 1 {
                    d.buckets
                        .get_mut(&path[0])
                        .expect("bucket line before its keys")
                        .insert(unhex(k), unhex(v));
                }
            }
            _ => panic!("bad dump line {line:?}"),
        }
    }
    d
}

/// Runs bbolt's consistency check and dump on `path`; panics with bbolt's errors.
fn bbolt_dump(path: &Path) -> Dump {
    let (ok, out, err) = run(Command::new(bboltcheck()).arg("dump").arg(path));
    assert!(ok, "bbolt rejects {}:\n{err}", path.display());
    parse_dump(&out)
}

/// `bboltcheck stats`: "bucketstats <hex> keys=.. depth=.. branch=.. leaf=.. overflow=.. inline=.."
type Counters = BTreeMap<String, u64>;

/// (top-level figures: pagesize, txid, size; per-bucket counters)
fn bbolt_stats(path: &Path) -> (Counters, BTreeMap<Vec<u8>, Counters>) {
    let (ok, out, err) = run(Command::new(bboltcheck()).arg("stats").arg(path));
    assert!(ok, "bboltcheck stats failed: {err}");
    let mut top = BTreeMap::new();
    let mut buckets = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "bucketstats" {
            let m = f[2..]
                .iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.parse().unwrap())
                })
                .collect();
            buckets.insert(unhex(f[1]), m);
        } else {
            top.insert(f[0].to_string(), f[1].parse().unwrap());
        }
    }
    (top, buckets)
}

// ---------------------------------------------------------------------------------------
// etcd's data shapes, written by hand

/// etcd's revision key: 8-byte big-endian main, '_', 8-byte big-endian sub (+ 't' for a
/// tombstone).
fn rev_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// A tiny protobuf writer for mvccpb.KeyValue (key=1, create_revision=2, mod_revision=3,
/// version=4, value=5, lease=6). Zero-valued scalars and empty bytes are omitted, as
/// proto3 does.
struct KeyValue<'a> {
    key: &'a [u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: &'a [u8],
    lease: i64,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl KeyValue<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(self.key.len() + self.value.len() + 40);
        let bytes = |o: &mut Vec<u8>, field: u64, b: &[u8]| {
            if !b.is_empty() {
                varint(o, field << 3 | 2);
                varint(o, b.len() as u64);
                o.extend_from_slice(b);
            }
        };
        let int = |o: &mut Vec<u8>, field: u64, v: i64| {
            if v != 0 {
                varint(o, field << 3);
                varint(o, v as u64);
            }
        };
        bytes(&mut o, 1, self.key);
        int(&mut o, 2, self.create_revision);
        int(&mut o, 3, self.mod_revision);
        int(&mut o, 4, self.version);
        bytes(&mut o, 5, self.value);
        int(&mut o, 6, self.lease);
        o
    }
}

/// CRC-32C (Castagnoli), as etcdutl's snapshot hash uses.
fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What `etcdutl snapshot status` must report for a file holding exactly `model`:
/// CRC-32C over every bucket name and every key and value in order, the main revision of
/// the last key in bucket `key`, and the number of keys in all buckets.
fn expected_status(model: &BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>) -> (u32, i64, usize) {
    let (mut h, mut rev, mut total) = (0u32, 0i64, 0usize);
    for (name, kvs) in model {
        h = crc32c(h, name);
        for (k, v) in kvs {
            h = crc32c(h, k);
            h = crc32c(h, v);
            total += 1;
        }
        if name.as_slice() == b"key" {
            if let Some(k) = kvs.keys().next_back() {
                rev = i64::from_be_bytes(k[..8].try_into().unwrap());
            }
        }
    }
    (h, rev, total)
}

/// `etcdutl snapshot status FILE -w json` → (hash, revision, totalKey, totalSize).
fn etcdutl_status(path: &Path) -> (u32, i64, usize, u64) {
    let (ok, out, err) = run(Command::new(etcdutl_351())
        .args(["snapshot", "status", "-w", "json"])
        .arg(path));
    assert!(ok, "etcdutl snapshot status failed:\n{out}\n{err}");
    let field = |name: &str| -> u64 {
        let pat = format!("\"{name}\":");
        let at = out
            .find(&pat)
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            + pat.len();
        out[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("bad {name} in {out}"))
    };
    (
        field("hash") as u32,
        field("revision") as i64,
        field("totalKey") as usize,
        field("totalSize"),
    )
}

#[test]
fn crc32c_known_vector() {
    // The standard check value of CRC-32C.
    assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
    // Incremental use equals one pass.
    assert_eq!(crc32c(crc32c(0, b"1234"), b"56789"), 0xE306_9283);
}

#[test]
fn keyvalue_encoding_matches_etcd_fixture() {
    // etcd 3.5.1 stored `put key/01 value-01` at revision 2 as this protobuf (see
    // tests/data/etcd-3.5.1.dump): our writer must produce the same bytes.
    let kv = KeyValue {
        key: b"key/01",
        create_revision: 2,
        mod_revision: 2,
        version: 1,
        value: b"value-01",
        lease: 0,
    };
    let dump = parse_dump(&std::fs::read_to_string(data("etcd-3.5.1.dump")).unwrap());
    assert_eq!(
        dump.buckets[&b"key".to_vec()][&rev_key(2, 0, false)],
        kv.encode()
    );
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Copy a committed fixture into a temporary directory (tests never touch the original).
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::copy(data(name), &p).unwrap();
    (dir, p)
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

/// Everything the engine reads from `db`, by top-level bucket, skipping the entries that
/// hold nested buckets (`nested` lists them; the engine must return them from its
/// cursor, with `get` answering `None`).
fn engine_contents(db: &Db, nested: &[(Vec<Vec<u8>>, Vec<u8>)]) -> Model {
    let tx = db.begin_read().unwrap();
    let names: Vec<Vec<u8>> = tx.bucket_names().map(<[u8]>::to_vec).collect();
    let mut model = Model::new();
    for name in names {
        let b = tx
            .bucket(&name)
            .unwrap_or_else(|| panic!("bucket_names lists {name:?} but bucket() misses it"));
        let is_nested = |k: &[u8]| {
            nested
                .iter()
                .any(|(p, n)| p.len() == 1 && p[0] == name && n.as_slice() == k)
        };
        let mut kvs = BTreeMap::new();
        let mut nested_seen = 0;
        let mut c = b.cursor();
        let mut e = c.first();
        while let Some((k, v)) = e {
            if is_nested(k) {
                nested_seen += 1;
                assert_eq!(b.get(k), None, "get() of a nested bucket entry");
            } else {
                assert_eq!(b.get(k), Some(v), "get() disagrees with the cursor");
                assert!(kvs.insert(k.to_vec(), v.to_vec()).is_none(), "key twice");
            }
            e = c.next();
        }
        let expected_nested = nested
            .iter()
            .filter(|(p, _)| p.len() == 1 && p[0] == name)
            .count();
        assert_eq!(nested_seen, expected_nested, "nested buckets in {name:?}");
        // Backwards gives the same entries in reverse.
        let mut back = Vec::new();
        let mut e = c.last();
        while let Some((k, v)) = e {
            if !is_nested(k) {
                back.push((k.to_vec(), v.to_vec()));
            }
            e = c.prev();
        }
        back.reverse();
        assert_eq!(
            back,
            kvs.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>(),
            "reverse iteration of {name:?}"
        );
        // Seek lands on every key, and just past it on the next one.
        let keys: Vec<&Vec<u8>> = kvs.keys().collect();
        for (i, k) in keys.iter().enumerate() {
            let mut c = b.cursor();
            assert_eq!(c.seek(k).map(|(k, _)| k.to_vec()), Some((*k).clone()));
            let mut past = (*k).clone();
            past.push(0);
            let mut got = c.seek(&past).map(|(k, _)| k.to_vec());
            while got.as_deref().is_some_and(is_nested) {
                got = c.next().map(|(k, _)| k.to_vec());
            }
            assert_eq!(got.as_ref(), keys.get(i + 1).copied(), "seek past {k:?}");
        }
        model.insert(name, kvs);
    }
    assert!(tx.bucket(b"no such bucket").is_none());
    model
}

/// A fixture reads back in the engine exactly as the real bbolt reads it.
fn assert_reads_like_bbolt(name: &str) {
    let (_dir, path) = fixture_copy(name);
    let committed =
        parse_dump(&std::fs::read_to_string(data(&name.replace(".db", ".dump"))).unwrap());
    // The committed expectation is still what bbolt reads from the file.
    assert_eq!(
        bbolt_dump(&path),
        committed,
        "fixture and its .dump disagree"
    );
    assert!(committed.buckets.values().map(BTreeMap::len).sum::<usize>() > 0);

    let db = Db::open(&path, read_only()).unwrap();
    assert_eq!(db.check(), vec![], "engine check() of {name}");
    assert_eq!(engine_contents(&db, &committed.nested), committed.buckets);
    drop(db);

    // Opened for writing (the freelist rebuilt or loaded), it still reads the same.
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(db.check(), vec![]);
    assert_eq!(engine_contents(&db, &committed.nested), committed.buckets);
}

#[test]
fn etcd_351_file_reads_like_bbolt() {
    assert_reads_like_bbolt("etcd-3.5.1.db");
}

#[test]
fn etcd_3423_file_reads_like_bbolt() {
    assert_reads_like_bbolt("etcd-3.4.23.db");
}

#[test]
fn bbolt_written_file_reads_like_bbolt() {
    // Persisted freelist, inline, nested and empty buckets, overflow values.
    assert_reads_like_bbolt("bbolt-1.3.6.db");
}

// ---------------------------------------------------------------------------------------
// Files written by the engine, judged by bbolt and etcdutl

/// Writes etcd-shaped data through the engine and keeps the model of what must be there.
struct EtcdWriter {
    model: Model,
    /// user key -> (create revision, version) of its live incarnation
    live: BTreeMap<Vec<u8>, (i64, i64)>,
    rev: i64,
}

impl EtcdWriter {
    fn new() -> EtcdWriter {
        EtcdWriter {
            model: Model::new(),
            live: BTreeMap::new(),
            rev: 0,
        }
    }

    /// Seed the model from what a file already holds.
    fn from_dump(d: &Dump) -> EtcdWriter {
        let last = d.buckets[&b"key".to_vec()]
            .keys()
            .next_back()
            .map(|k| i64::from_be_bytes(k[..8].try_into().unwrap()))
            .unwrap_or(0);
        EtcdWriter {
            model: d.buckets.clone(),
            live: BTreeMap::new(),
            rev: last,
        }
    }

    fn put(&mut self, tx: &mut cairn_engine::WriteTx<'_>, key: &[u8], value: &[u8], lease: i64) {
        self.rev += 1;
        let (create, version) = match self.live.get(key) {
            Some(&(c, v)) => (c, v + 1),
            None => (self.rev, 1),
        };
        self.live.insert(key.to_vec(), (create, version));
        let kv = KeyValue {
            key,
            create_revision: create,
            mod_revision: self.rev,
            version,
            value,
            lease,
        }
        .encode();
        let rk = rev_key(self.rev, 0, false);
        tx.bucket_mut(b"key").unwrap().put(&rk, &kv).unwrap();
        self.model
            .entry(b"key".to_vec())
            .or_default()
            .insert(rk, kv);
    }

    fn delete(&mut self, tx: &mut cairn_engine::WriteTx<'_>, key: &[u8]) {
        self.rev += 1;
        self.live.remove(key);
        let kv = KeyValue {
            key,
            create_revision: 0,
            mod_revision: self.rev,
            version: 0,
            value: b"",
            lease: 0,
        }
        .encode();
        let rk = rev_key(self.rev, 0, true);
        tx.bucket_mut(b"key").unwrap().put(&rk, &kv).unwrap();
        self.model
            .entry(b"key".to_vec())
            .or_default()
            .insert(rk, kv);
    }

    /// Physically remove the revision keys of revisions below `rev` (like compaction).
    fn compact_below(&mut self, tx: &mut cairn_engine::WriteTx<'_>, rev: i64) {
        let key = self.model.get_mut(&b"key"[..]).unwrap();
        let doomed: Vec<Vec<u8>> = key
            .keys()
            .filter(|k| i64::from_be_bytes(k[..8].try_into().unwrap()) < rev)
            .cloned()
            .collect();
        let mut b = tx.bucket_mut(b"key").unwrap();
        for k in doomed {
            assert!(b.delete(&k).unwrap(), "revision key {k:?} was present");
            key.remove(&k);
        }
    }

    fn meta(&mut self, tx: &mut cairn_engine::WriteTx<'_>, consistent_index: u64) {
        let mut m = tx.create_bucket_if_not_exists(b"meta").unwrap();
        let entries = [
            (b"consistent_index".to_vec(), consistent_index.to_be_bytes()),
            (b"term".to_vec(), 2u64.to_be_bytes()),
        ];
        let mm = self.model.entry(b"meta".to_vec()).or_default();
        for (k, v) in entries {
            m.put(&k, &v).unwrap();
            mm.insert(k, v.to_vec());
        }
    }
}

fn value_for(i: usize) -> Vec<u8> {
    let len = match i % 97 {
        0 => 6_000,                 // two overflow pages
        50 if i % 3 == 0 => 40_000, // many overflow pages
        _ => 20 + i % 90,
    };
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Many commits of etcd-shaped writes: thousands of revisions (branch pages, depth > 2),
/// values needing overflow pages, overwrites, tombstones, compaction deletes, a bucket
/// created and deleted again.
fn write_etcd_history(db: &Db, w: &mut EtcdWriter, commits: usize, per_commit: usize) {
    let mut i = 0usize;
    for c in 0..commits {
        let mut tx = db.begin_write().unwrap();
        tx.create_bucket_if_not_exists(b"key").unwrap();
        w.model.entry(b"key".to_vec()).or_default();
        for _ in 0..per_commit {
            i += 1;
            let user_key = format!("/registry/pods/ns-{}/pod-{:05}", i % 7, i % 1_500);
            if i % 11 == 0 && w.live.contains_key(user_key.as_bytes()) {
                w.delete(&mut tx, user_key.as_bytes());
            } else {
                let lease = if i % 13 == 0 {
                    0x7587_8a1b_0000 + i as i64
                } else {
                    0
                };
                w.put(&mut tx, user_key.as_bytes(), &value_for(i), lease);
            }
        }
        w.meta(&mut tx, (c + 1) as u64 * 10);
        if c == 1 {
            let mut t = tx.create_bucket(b"scratch").unwrap();
            let m = w.model.entry(b"scratch".to_vec()).or_default();
            for j in 0..300u32 {
                t.put(&j.to_be_bytes(), &[7u8; 100]).unwrap();
                m.insert(j.to_be_bytes().to_vec(), vec![7u8; 100]);
            }
        }
        if c == 3 {
            tx.delete_bucket(b"scratch").unwrap();
            w.model.remove(&b"scratch"[..]);
            // Compaction-like: drop the first quarter of the history.
            let below = w.rev / 4;
            w.compact_below(&mut tx, below);
        }
        tx.commit().unwrap();
    }
}

/// bbolt reads exactly `model` from `path`, its check is clean, and etcdutl 3.5.1 agrees
/// on revision, key count, hash and size.
fn assert_bbolt_and_etcdutl_agree(path: &Path, model: &Model) {
    let dump = bbolt_dump(path);
    assert!(dump.nested.is_empty());
    if dump.buckets != *model {
        for (name, kvs) in model {
            let got = dump.buckets.get(name);
            assert_eq!(
                got.map(BTreeMap::len),
                Some(kvs.len()),
                "bucket {:?} key count",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(
            dump.buckets.keys().collect::<Vec<_>>(),
            model.keys().collect::<Vec<_>>()
        );
        panic!("bbolt reads different values than were written");
    }
    let (hash, rev, total) = expected_status(model);
    let (s_hash, s_rev, s_total, s_size) = etcdutl_status(path);
    let (top, _) = bbolt_stats(path);
    assert_eq!(s_rev, rev, "etcdutl revision");
    assert_eq!(s_total, total, "etcdutl totalKey");
    assert_eq!(s_hash, hash, "etcdutl hash");
    assert_eq!(s_size, top["size"], "etcdutl totalSize");
}

#[test]
fn engine_file_passes_bbolt_check_and_etcdutl() {
    for no_freelist_sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let opts = Options {
            no_freelist_sync,
            ..Options::default()
        };
        let db = Db::open(&path, opts.clone()).unwrap();
        let mut w = EtcdWriter::new();
        write_etcd_history(&db, &mut w, 6, 1_500);
        assert_eq!(db.check(), vec![]);
        drop(db);

        assert_bbolt_and_etcdutl_agree(&path, &w.model);
        // The shapes this test is meant to cover really are in the file.
        let (_, buckets) = bbolt_stats(&path);
        let key = &buckets[&b"key".to_vec()];
        assert!(
            key["branch"] >= 2 && key["depth"] >= 3,
            "key bucket {key:?}"
        );
        assert!(key["overflow"] > 0, "key bucket {key:?}");

        // Reopened by the engine, then written again: still what bbolt expects.
        let db = Db::open(&path, opts).unwrap();
        write_etcd_history(&db, &mut w, 2, 300);
        drop(db);
        assert_bbolt_and_etcdutl_agree(&path, &w.model);
    }
}

#[test]
fn engine_snapshot_and_compacted_files_pass_bbolt_and_etcdutl() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let mut w = EtcdWriter::new();
    write_etcd_history(&db, &mut w, 4, 800);
    let snap_model = w.model.clone();
    let rtx = db.begin_read().unwrap();
    // Writes after the snapshot began (growing the file) must not show in it.
    write_etcd_history(&db, &mut w, 3, 800);

    let snap = dir.path().join("snapshot.db");
    let mut f = std::fs::File::create(&snap).unwrap();
    let n = rtx.write_to(&mut f).unwrap();
    drop(f);
    assert_eq!(n, rtx.size());
    assert_eq!(std::fs::metadata(&snap).unwrap().len(), n);
    drop(rtx);
    assert_bbolt_and_etcdutl_agree(&snap, &snap_model);

    let compacted = dir.path().join("compacted.db");
    db.compact_into(&compacted).unwrap();
    drop(db);
    assert_bbolt_and_etcdutl_agree(&compacted, &w.model);
    assert!(
        std::fs::metadata(&compacted).unwrap().len()
            <= std::fs::metadata(dir.path().join("db")).unwrap().len()
    );
}

#[test]
fn engine_extends_an_etcd_written_file_and_bbolt_agrees() {
    for fixture in ["etcd-3.5.1.db", "etcd-3.4.23.db"] {
        let (_dir, path) = fixture_copy(fixture);
        let before = bbolt_dump(&path);
        let mut w = EtcdWriter::from_dump(&before);
        // As etcd runs bbolt: no persisted freelist, rebuilt by scanning at open.
        let opts = Options {
            no_freelist_sync: true,
            ..Options::default()
        };
        let db = Db::open(&path, opts).unwrap();
        write_etcd_history(&db, &mut w, 5, 400);
        assert_eq!(db.check(), vec![]);
        drop(db);
        assert_bbolt_and_etcdutl_agree(&path, &w.model);
        // etcd's other buckets came through untouched.
        for (name, kvs) in &before.buckets {
            if name.as_slice() != b"key" && name.as_slice() != b"meta" {
                assert_eq!(w.model.get(name), Some(kvs));
            }
        }
    }
}

#[test]
fn the_reference_checks_can_fail() {
    // Guard against a harness that passes whatever the file holds: damage an
    // engine-written file and bbolt must notice.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, Options::default()).unwrap();
    let ps = db.page_size();
    let mut w = EtcdWriter::new();
    write_etcd_history(&db, &mut w, 2, 500);
    drop(db);

    // 1. A changed value byte: check passes, but the dump differs from the model.
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"/registry/pods/ns-3/pod-00010";
    let at = bytes
        .windows(needle.len())
        .rposition(|x| x == needle)
        .expect("key text in the file");
    bytes[at + needle.len() - 1] ^= 0x01;
    let changed = dir.path().join("changed.db");
    std::fs::write(&changed, &bytes).unwrap();
    assert_ne!(bbolt_dump(&changed).buckets, w.model);

    // 2. Leaf page headers claiming a page id past the end: bbolt's check fails.
    let mut bytes = std::fs::read(&path).unwrap();
    for p in 2..bytes.len() / ps {
        let h = &mut bytes[p * ps..];
        if u16::from_le_bytes([h[8], h[9]]) == 0x02 {
            h[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        }
    }
    let broken = dir.path().join("broken.db");
    std::fs::write(&broken, &bytes).unwrap();
    let (ok, _, err) = run(Command::new(bboltcheck()).arg("check").arg(&broken));
    assert!(!ok, "bbolt accepted a file with broken leaf pages");
    assert!(!err.is_empty());
}

// ---------------------------------------------------------------------------------------
// Real etcd serves a file the engine wrote

fn etcd_351(bin: &str) -> PathBuf {
    let dir = std::env::var_os("CAIRN_ETCD_351_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/testdeps/etcd-3.5.1"));
    tool(dir.join(bin), "CAIRN_ETCD_351_DIR")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps the child on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn etcd_351_serves_a_file_the_engine_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-cairn.db");
    // etcd-shaped history without leases (etcd would look for lease records).
    let db = Db::open(&file, Options::default()).unwrap();
    let mut w = EtcdWriter::new();
    // user key -> (mod revision, value) of its live incarnation
    let mut latest: BTreeMap<Vec<u8>, (i64, Vec<u8>)> = BTreeMap::new();
    for c in 0..4 {
        let mut tx = db.begin_write().unwrap();
        tx.create_bucket_if_not_exists(b"key").unwrap();
        for i in 0..250usize {
            let n = c * 250 + i;
            let key = format!("/app/{:03}", n % 180).into_bytes();
            if n % 9 == 4 && w.live.contains_key(&key) {
                w.delete(&mut tx, &key);
                latest.remove(&key);
            } else {
                w.put(&mut tx, &key, &value_for(n), 0);
                latest.insert(key, (w.rev, value_for(n)));
            }
        }
        w.meta(&mut tx, 100 + c as u64);
        tx.commit().unwrap();
    }
    drop(db);

    let data_dir = dir.path().join("etcd-data");
    let (client, peer) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let client_url = format!("http://127.0.0.1:{client}");
    let (ok, out, err) = run(Command::new(etcdutl_351())
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg("--skip-hash-check")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--name", "m1", "--initial-advertise-peer-urls", &peer_url])
        .arg(format!("--initial-cluster=m1={peer_url}")));
    assert!(ok, "etcdutl snapshot restore failed:\n{out}\n{err}");

    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let _etcd = Child(
        Command::new(etcd_351("etcd"))
            .arg("--name=m1")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=m1={peer_url}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd 3.5.1"),
    );
    let ctl = |args: &[&str]| {
        run(Command::new(etcd_351("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={client_url}"))
            .arg("--command-timeout=5s")
            .args(args))
    };
    // Bounded wait for the member to serve (not a timing assertion: it just has to come up).
    let mut healthy = false;
    for _ in 0..150 {
        if ctl(&["endpoint", "health"]).0 {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let etcd_log = || std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
    assert!(
        healthy,
        "etcd did not come up on the restored file:\n{}",
        etcd_log()
    );

    let (ok, out, err) = ctl(&["get", "", "--prefix", "-w", "json"]);
    assert!(ok, "etcdctl get failed: {err}");
    // The current revision is the engine file's last revision.
    assert!(
        out.contains(&format!("\"revision\":{},", w.rev)),
        "header revision {} expected in {out}",
        w.rev
    );
    // Every live key, with its create/mod revision, version and value, as written.
    let mut expected = 0;
    for (key, &(create, version)) in &w.live {
        let (modrev, value) = &latest[key];
        let frag = format!(
            "{{\"key\":\"{}\",\"create_revision\":{create},\"mod_revision\":{modrev},\"version\":{version},\"value\":\"{}\"}}",
            base64(key),
            base64(value)
        );
        assert!(out.contains(&frag), "etcd lacks {frag}");
        expected += 1;
    }
    assert!(
        out.contains(&format!("\"count\":{expected}")),
        "count {expected} expected in {out}"
    );
}
