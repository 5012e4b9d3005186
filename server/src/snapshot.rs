//! Installing a backend received from the raft leader ([`install`]), and streaming ours
//! to a peer ([`source`]).
//!
//! - [`install`] runs on the raft loop thread (no apply meanwhile) while gRPC readers keep
//!   running: [`Store::replace`](crate::mvcc::Store::replace) checks the received file and
//!   rebuilds its index aside, renames it over `member/snap/db` (directory fsynced) and
//!   swaps file, index and revisions at once, so a reader sees the old state or the new
//!   one, never a mix. Then the watch hub jumps to the new revision (watchers catch up
//!   from the new history, or are canceled as compacted, as etcd does on restore), alarms
//!   and leases are reloaded from the new file, and an interrupted compaction recorded in
//!   it is finished.
//! - [`source`] pins one engine read transaction: the committed state, which is exactly
//!   the applied index when the caller committed the staged batch first. Writing it
//!   produces a complete bbolt file (the same bytes as the Maintenance Snapshot stream).

use std::io;
use std::path::Path;

use cairn_engine::ReadTx;

use crate::error::Result;
use crate::mvcc::store::Recovered;
use crate::schema::{META, META_CONSISTENT_INDEX};
use crate::state::State;
use crate::transport::SnapshotSource;

/// Replaces the member's whole state with the backend file `db_file` (consumed: it is
/// renamed into place). Raft loop thread only. Returns what the new file records (its
/// consistent index and term); an interrupted compaction it records has been finished,
/// so `pending_compaction` is always `None`. The caller reloads membership itself.
///
/// An unreadable or corrupt file is an error and the old state keeps serving. An error
/// after the file was moved into place (directory fsync, reloading) is fatal: the member
/// must stop.
/// Checks a backend file received from a peer before raft sees its snapshot message (once
/// raft restored a snapshot, a file that cannot be installed would stop the member): it
/// opens read-only as a bbolt file, passes the engine's consistency check, and has etcd's
/// `meta` bucket with a consistent index.
pub(crate) fn verify(db_file: &Path) -> std::result::Result<(), String> {
    let opts = cairn_engine::Options {
        read_only: true,
        ..Default::default()
    };
    let db =
        cairn_engine::Db::open(db_file, opts).map_err(|e| format!("not a backend file: {e}"))?;
    let problems = db.check();
    if let Some(p) = problems.first() {
        return Err(format!(
            "corrupt backend ({} problems, first: {p:?})",
            problems.len()
        ));
    }
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    let meta = tx.bucket(META).ok_or("no meta bucket")?;
    meta.get(META_CONSISTENT_INDEX)
        .filter(|v| v.len() == 8)
        .ok_or("no consistent index")?;
    Ok(())
}

pub(crate) fn install(state: &State, db_file: &Path) -> Result<Recovered> {
    let mut rec = state.store.replace(db_file)?;
    state.watch.restore(state.store.rev());
    state.reload()?;
    state.finish_compaction(&rec)?;
    rec.pending_compaction = None;
    tracing::info!(
        revision = state.store.rev(),
        compact_revision = state.store.compact_rev(),
        consistent_index = rec.consistent_index,
        "installed backend snapshot"
    );
    Ok(rec)
}

/// A pinned, consistent view of the committed backend for streaming to a peer. The
/// caller commits the staged batch first (raft loop) so the view is the applied state.
pub(crate) fn source(state: &State) -> Result<Box<dyn SnapshotSource>> {
    Ok(Box::new(Pinned(state.store.backend.read_tx()?)))
}

/// A backend snapshot held open by an engine read transaction.
struct Pinned(ReadTx);

impl SnapshotSource for Pinned {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn write_to(&self, mut w: &mut dyn io::Write) -> io::Result<u64> {
        self.0.write_to(&mut w)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;

    use prost::Message;

    use super::*;
    use crate::mvcc::Store;
    use crate::pb::etcdserverpb::{AlarmMember, AlarmType};
    use crate::schema::ALARM;
    use crate::state::test_support::{all, commit, delete, export, put, state as core};
    use crate::state::State as Core;

    /// A second member's store with a history unlike the first one's: returns it and
    /// the file holding its committed backend.
    fn other_history(dir: &Path) -> (Store, std::path::PathBuf) {
        let (b, _) = Store::open(&dir.join("other/db")).expect("open other");
        for i in 0..20 {
            put(&b, &format!("b{}", i % 7), &format!("v{i}"));
        }
        delete(&b, "b3");
        put(&b, "shared", "from-b");
        commit(&b, 77);
        let file = dir.join("incoming.snap.db");
        export(&b, &file);
        (b, file)
    }

    fn first_history(c: &Core) {
        put(&c.store, "a1", "x");
        put(&c.store, "shared", "from-a");
        put(&c.store, "a2", "y");
        commit(&c.store, 5);
    }

    #[test]
    fn verify_accepts_backends_only() {
        let dir = tempfile::tempdir().unwrap();
        let (_b, file) = other_history(dir.path());
        verify(&file).expect("a real backend passes");
        let bad = dir.path().join("garbage.snap.db");
        std::fs::write(&bad, vec![0xa5u8; 64 << 10]).unwrap();
        assert!(verify(&bad).is_err());
        let empty = dir.path().join("empty.snap.db");
        std::fs::write(&empty, b"").unwrap();
        assert!(verify(&empty).is_err());
        assert!(verify(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn install_serves_the_received_state() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        first_history(&c);
        let (b, file) = other_history(dir.path());
        assert_ne!(all(&c.store).0.kvs, all(&b).0.kvs);

        let rec = install(&c, &file).expect("install");
        assert_eq!(rec.consistent_index, 77);
        assert_eq!(rec.term, 3);
        assert_eq!(rec.pending_compaction, None);
        assert!(!file.exists(), "the received file was moved into place");
        assert_eq!(all(&c.store), all(&b));
        assert_eq!(c.store.rev(), b.rev());
        assert_eq!(c.store.compact_rev(), b.compact_rev());
        assert_eq!(c.store.hash().unwrap(), b.hash().unwrap());
        assert_eq!(c.store.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
        assert_eq!(c.store.hash_kv(10).unwrap(), b.hash_kv(10).unwrap());
        // Old revisions are the new history's.
        let at = |s: &Store, rev| s.get_kv_at(b"b1", rev).unwrap();
        assert_eq!(at(&c.store, 9), at(&b, 9));
        assert_eq!(c.store.get_kv_at(b"a1", 1).unwrap(), None);
        assert_eq!(c.watch.rev(), b.rev());

        // Writes continue on the new state.
        let rev = put(&c.store, "after", "1");
        assert_eq!(rev, b.rev() + 1);
        commit(&c.store, 78);
        let kv = c.store.get_kv_at(b"shared", rev).unwrap().unwrap();
        assert_eq!(kv.value.as_ref(), b"from-b");
        assert_eq!(kv.version, 1);

        // The new file is the member's file: a restart finds it.
        let expect = all(&c.store);
        drop(c);
        let (reopened, rec) = Store::open(&dir.path().join("member/snap/db")).unwrap();
        assert_eq!(rec.consistent_index, 78);
        assert_eq!(all(&reopened), expect);
    }

    #[test]
    fn install_discards_the_staged_batch() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        first_history(&c);
        put(&c.store, "staged", "never committed");
        let (b, file) = other_history(dir.path());
        install(&c, &file).expect("install");
        assert_eq!(all(&c.store), all(&b));
        commit(&c.store, 80);
        drop(c);
        let (reopened, _) = Store::open(&dir.path().join("member/snap/db")).unwrap();
        assert_eq!(all(&reopened), all(&b));
    }

    #[test]
    fn install_reloads_alarms_and_leases() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        first_history(&c);
        // The old state has lease 7 with "a1" attached.
        let old_lease = crate::lease::LeaseRecord {
            id: 7,
            ttl: 60,
            remaining_ttl: 0,
        };
        c.store.backend.put(
            crate::schema::LEASE,
            crate::lease::bucket_key(7),
            Bytes::from(old_lease.encode_to_vec()),
        );
        let mut t = c.store.write();
        t.put(Bytes::from_static(b"a1"), Bytes::from_static(b"x"), 7)
            .unwrap();
        t.end();
        commit(&c.store, 6);
        c.lessor.restore(&c.store).unwrap();
        assert!(c.lessor.exists(7));
        c.alarms.activate(AlarmMember {
            member_id: 1,
            alarm: AlarmType::Nospace as i32,
        });
        let (b, _) = Store::open(&dir.path().join("other/db")).unwrap();
        let alarm = AlarmMember {
            member_id: 9,
            alarm: AlarmType::Corrupt as i32,
        };
        b.backend
            .put(ALARM, Bytes::from(alarm.encode_to_vec()), Bytes::new());
        let lease = crate::lease::LeaseRecord {
            id: 42,
            ttl: 60,
            remaining_ttl: 0,
        };
        b.backend.put(
            crate::schema::LEASE,
            crate::lease::bucket_key(42),
            Bytes::from(lease.encode_to_vec()),
        );
        let mut t = b.write();
        t.put(Bytes::from_static(b"leased"), Bytes::from_static(b"v"), 42)
            .unwrap();
        t.end();
        commit(&b, 9);
        let file = dir.path().join("incoming.snap.db");
        export(&b, &file);

        install(&c, &file).expect("install");
        assert_eq!(c.alarms.list(), vec![alarm]);
        assert!(c.lessor.exists(42));
        assert!(!c.lessor.exists(7), "a lease of the old state survived");
        let ttl = c.lessor.time_to_live(42, true).expect("lease 42");
        assert_eq!(ttl.keys, vec![Bytes::from_static(b"leased")]);
        // Writes on the new state keep attachments current.
        put(&c.store, "leased", "detached");
        let ttl = c.lessor.time_to_live(42, true).expect("lease 42");
        assert!(ttl.keys.is_empty());
    }

    #[test]
    fn install_finishes_a_recorded_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        first_history(&c);
        let (b, _) = Store::open(&dir.path().join("other/db")).unwrap();
        for i in 0..10 {
            put(&b, "k", &format!("v{i}"));
        }
        // Compaction scheduled (and the index compacted) but the deletes never committed.
        b.backend.put(
            crate::schema::META,
            Bytes::from_static(crate::schema::META_SCHEDULED_COMPACT),
            Bytes::from(crate::mvcc::revkey::encode(
                cairn_index::Revision::new(6, 0),
                false,
            )),
        );
        commit(&b, 12);
        let file = dir.path().join("incoming.snap.db");
        export(&b, &file);

        let rec = install(&c, &file).expect("install");
        assert_eq!(rec.pending_compaction, None);
        assert_eq!(c.store.compact_rev(), 6);
        assert_eq!(c.store.get_kv_at(b"k", 4).unwrap(), None);
        assert_eq!(
            c.store.get_kv_at(b"k", 8).unwrap().unwrap().value.as_ref(),
            b"v6"
        );
        // The old revisions are gone from the file too.
        let old = crate::mvcc::revkey::encode(cairn_index::Revision::new(3, 0), false);
        assert_eq!(
            c.store
                .backend
                .get_committed(crate::schema::KEY, &old)
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_bad_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        first_history(&c);
        let before = all(&c.store);
        let hash = c.store.hash().unwrap();
        let (_b, good) = other_history(dir.path());
        let good_bytes = std::fs::read(&good).unwrap();

        let mut bad: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            (
                "garbage",
                (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
            ("truncated", good_bytes[..good_bytes.len() / 2].to_vec()),
        ];
        // A valid file with its data pages overwritten.
        let mut smashed = good_bytes.clone();
        let ps = 4096.min(smashed.len() / 4);
        for b in &mut smashed[2 * ps..] {
            *b = 0xA5;
        }
        bad.push(("smashed pages", smashed));
        for (what, bytes) in bad {
            let f = dir
                .path()
                .join(format!("{}.snap.db", what.replace(' ', "-")));
            std::fs::write(&f, &bytes).unwrap();
            let res = install(&c, &f);
            assert!(res.is_err(), "{what}: installed");
            assert_eq!(all(&c.store), before, "{what}");
            assert_eq!(c.store.hash().unwrap(), hash, "{what}");
        }
        assert!(install(&c, &dir.path().join("missing.snap.db")).is_err());
        assert_eq!(all(&c.store), before);

        // Still a working member: writes, then a good install.
        let rev = put(&c.store, "still", "here");
        assert_eq!(rev, before.1 + 1);
        commit(&c.store, 6);
        install(&c, &good).expect("install after failures");
        assert_eq!(c.store.hash().unwrap(), _b.hash().unwrap());
    }

    #[test]
    fn readers_see_the_old_or_the_new_state() {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(core(dir.path()));
        for i in 0..50 {
            put(&c.store, &format!("r{i:02}"), "old");
        }
        commit(&c.store, 5);
        let (b, _) = Store::open(&dir.path().join("other/db")).unwrap();
        put(&b, "zz", "padding");
        for i in 0..60 {
            put(&b, &format!("r{i:02}"), "new");
        }
        commit(&b, 90);
        let old = all(&c.store);
        let new = all(&b);
        assert_ne!(old, new);
        // Old → new → old → ... : every install flips the state.
        let files: Vec<_> = (0..6)
            .map(|i| {
                let f = dir.path().join(format!("in{i}.snap.db"));
                export(if i % 2 == 0 { &b } else { &c.store }, &f);
                f
            })
            .collect();

        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let seen = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
                let (c, stop, old, new, s) = (
                    c.clone(),
                    stop.clone(),
                    old.clone(),
                    new.clone(),
                    seen.clone(),
                );
                let h = std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let got = all(&c.store);
                        let which = if got == old {
                            0
                        } else if got == new {
                            1
                        } else {
                            panic!("mixed answer at revision {}", got.1);
                        };
                        let (_, compact, rev) = c.store.hash_kv(0).expect("hash_kv");
                        assert!(rev == old.1 || rev == new.1, "hash_kv at {rev}");
                        assert_eq!(compact, -1);
                        s[which].fetch_add(1, Ordering::Release);
                    }
                });
                (h, seen)
            })
            .collect();
        // Waits for each reader's next answer from `state` (or for a reader that failed).
        let wait = |state: usize| {
            for (h, seen) in &readers {
                let from = seen[state].load(Ordering::Acquire);
                while seen[state].load(Ordering::Acquire) == from && !h.is_finished() {
                    std::thread::yield_now();
                }
            }
        };
        wait(0);
        for (i, f) in files.iter().enumerate() {
            install(&c, f).expect("install");
            // Every reader answers from the state just installed before the next flip.
            wait(if i % 2 == 0 { 1 } else { 0 });
        }
        stop.store(true, Ordering::Release);
        for (h, seen) in readers {
            h.join().expect("reader");
            assert!(seen[0].load(Ordering::Acquire) > 0 && seen[1].load(Ordering::Acquire) > 0);
        }
        assert_eq!(all(&c.store), old);
    }

    #[test]
    fn source_is_the_committed_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        first_history(&c);
        let at_source = all(&c.store);
        let src = source(&c).expect("source");
        // Writes after the source was taken are not in it.
        put(&c.store, "later", "z");
        commit(&c.store, 6);

        let mut out = Vec::new();
        let n = src.write_to(&mut out).expect("write");
        assert_eq!(n, out.len() as u64);
        assert_eq!(src.size(), n);

        // Same data pages as the file had when the source was taken; readable by the engine.
        let f = dir.path().join("copy.db");
        std::fs::write(&f, &out).unwrap();
        let db = cairn_engine::Db::open(&f, cairn_engine::Options::default()).unwrap();
        assert!(db.check().is_empty());
        drop(db);
        let (copy, rec) = Store::open(&f).unwrap();
        assert_eq!(rec.consistent_index, 5);
        assert_eq!(all(&copy), at_source);

        // With nothing changing, the source writes the committed file: page for page.
        let src2 = source(&c).expect("source");
        let mut out2 = Vec::new();
        src2.write_to(&mut out2).unwrap();
        let file = std::fs::read(dir.path().join("member/snap/db")).unwrap();
        let ps = c.store.backend.db().page_size();
        assert!(out2.len() <= file.len());
        assert_eq!(out2[2 * ps..], file[2 * ps..out2.len()]);
        let mut maint = Vec::new();
        c.store
            .backend
            .read_tx()
            .unwrap()
            .write_to(&mut maint)
            .unwrap();
        assert_eq!(out2, maint);
        let (copy2, _) = {
            let f2 = dir.path().join("copy2.db");
            std::fs::write(&f2, &out2).unwrap();
            Store::open(&f2).unwrap()
        };
        assert_eq!(copy2.hash().unwrap(), c.store.hash().unwrap());
        assert_eq!(all(&copy2), all(&c.store));
    }
}
