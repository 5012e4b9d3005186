//! Snapshot interop, both ways, with real etcd 3.5.1 tools:
//! - `etcdctl snapshot save` from Cairn → `etcdutl snapshot restore` → real etcd serves every
//!   key with the same create/mod revisions, versions, values and leases, the same current
//!   revision and the same compaction point (and `cairnutl` restores the same file into Cairn);
//! - `etcdctl snapshot save` from etcd → `cairnutl snapshot restore` → Cairn serves the same.
//!
//! Both restored members also accept new writes at the next revision.

mod support;

use std::path::Path;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use support::{
    cairnutl_bin, clean_command, etcdctl, etcdutl_bin, free_port, run, Ctl, Impl, Member,
};

/// A live key: key, value, create revision, mod revision, version, lease.
type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);
/// A historical read: revision, then key, value and mod revision of each key.
type Historical = (i64, Vec<(Vec<u8>, Vec<u8>, i64)>);

/// What a reader sees of a store: every live key with its metadata, the current revision,
/// and a few historical reads.
#[derive(Debug, PartialEq, Eq)]
struct View {
    revision: i64,
    kvs: Vec<Kv>,
    history: Vec<Historical>,
    below_compaction: String,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(m: &Member) -> Client {
    Client::connect([m.endpoint()], None)
        .await
        .expect("connect")
}

/// A deterministic workload: creates, overwrites, deletes, a txn, binary and large values,
/// then a physical compaction. Returns the compaction revision.
async fn workload(c: &mut Client) -> i64 {
    for i in 0..20 {
        c.put(format!("k{i:02}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    for i in 0..10 {
        c.put(format!("k{i:02}"), format!("v{i}-2"), None)
            .await
            .expect("overwrite");
    }
    for i in 0..5 {
        c.put(format!("k{i:02}"), format!("v{i}-3"), None)
            .await
            .expect("overwrite");
    }
    c.delete("k19", None).await.expect("delete");
    c.delete(
        "k18",
        Some(etcd_client::DeleteOptions::new().with_prev_key()),
    )
    .await
    .expect("delete");
    let binary: Vec<u8> = (0..=255u8).collect();
    c.put(vec![0xffu8, 0x00, 0x7f], binary, None)
        .await
        .expect("binary put");
    c.put("big", vec![b'x'; 100_000], None)
        .await
        .expect("big put");
    let txn = Txn::new()
        .when(vec![Compare::version("k00", CompareOp::Equal, 3)])
        .and_then(vec![
            TxnOp::put("t1", "one", None),
            TxnOp::put("t2", "two", Some(PutOptions::new())),
            TxnOp::delete("k17", None),
        ]);
    assert!(c.txn(txn).await.expect("txn").succeeded());
    let compact_at = c
        .get("k00", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
        - 3;
    c.compact(
        compact_at,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .expect("compact");
    c.put("after-compaction", "yes", None).await.expect("put");
    compact_at
}

async fn view(c: &mut Client, compact_at: i64) -> View {
    let all = c
        .get(vec![0u8], Some(GetOptions::new().with_from_key()))
        .await
        .expect("range all");
    let revision = all.header().expect("header").revision();
    let kvs = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                kv.value().to_vec(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect();
    let mut history = Vec::new();
    for rev in [compact_at, compact_at + 1, revision - 1] {
        let r = c
            .get(
                vec![0u8],
                Some(GetOptions::new().with_from_key().with_revision(rev)),
            )
            .await
            .expect("historical range");
        history.push((
            rev,
            r.kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
                .collect(),
        ));
    }
    let below = c
        .get("k00", Some(GetOptions::new().with_revision(compact_at - 1)))
        .await
        .expect_err("read below the compaction point");
    let below_compaction = match below {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => panic!("expected a gRPC status, got {other:?}"),
    };
    View {
        revision,
        kvs,
        history,
        below_compaction,
    }
}

/// After a restore, the member takes writes at the next revision.
async fn write_after_restore(c: &mut Client, before: i64) {
    let r = c
        .put("new-after-restore", "1", None)
        .await
        .expect("put after restore");
    assert_eq!(r.header().expect("header").revision(), before + 1);
}

fn save_snapshot(m: &Member, file: &Path) {
    let o = etcdctl(
        Ctl::V351,
        &m.endpoint(),
        &["snapshot", "save", &file.display().to_string()],
        b"",
    );
    assert!(o.success(), "snapshot save from {}: {o:?}", m.which.label());
    let len = std::fs::metadata(file).expect("snapshot file").len();
    assert_eq!(len % 512, 32, "the snapshot carries a SHA-256 trailer");
}

fn restore_args(name: &str, data_dir: &Path, peer: &str) -> Vec<String> {
    vec![
        format!("--data-dir={}", data_dir.display()),
        format!("--name={name}"),
        format!("--initial-cluster={name}={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
    ]
}

/// Starts `which` as member "source" in `dir`, runs the workload and saves a snapshot to
/// `snap`; returns the compaction revision and what the source served.
fn snapshot_of(rt: &tokio::runtime::Runtime, which: Impl, dir: &Path, snap: &Path) -> (i64, View) {
    let source = Member::start(which, "source", dir, &[]);
    let (compact_at, before) = rt.block_on(async {
        let mut c = connect(&source).await;
        let at = workload(&mut c).await;
        (at, view(&mut c, at).await)
    });
    save_snapshot(&source, snap);
    (compact_at, before)
}

/// Restores `snap` with `tool` into `data` as member `name`, starts `which` on it, and
/// returns the member with its peer URL.
fn restore_and_start(
    tool: &Path,
    snap: &Path,
    which: Impl,
    name: &str,
    data: &Path,
) -> (Member, String) {
    let (client_port, peer_port) = (free_port(), free_port());
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = clean_command(tool);
    cmd.arg("snapshot")
        .arg("restore")
        .arg(snap)
        .args(restore_args(name, data, &peer));
    let o = run(cmd, b"", std::time::Duration::from_secs(60));
    assert!(
        o.success(),
        "{} snapshot restore of {}: {o:?}",
        tool.display(),
        snap.display()
    );
    (
        Member::start_on(which, name, data, client_port, peer_port, &[]),
        peer,
    )
}

/// What a restored member serves at `compact_at`, after checking that it takes writes at the
/// next revision.
fn view_after_restore(rt: &tokio::runtime::Runtime, m: &Member, compact_at: i64) -> View {
    rt.block_on(async {
        let mut c = connect(m).await;
        let v = view(&mut c, compact_at).await;
        write_after_restore(&mut c, v.revision).await;
        v
    })
}

#[test]
fn cairn_snapshot_restores_into_etcd_and_cairn() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let snap = tmp.path().join("cairn.snap");
    let (compact_at, before) = snapshot_of(&rt, Impl::Cairn, &tmp.path().join("cairn"), &snap);

    let data = tmp.path().join("restored-etcd");
    let (etcd, _) = restore_and_start(&etcdutl_bin(), &snap, Impl::Etcd351, "restored", &data);
    assert_eq!(
        view_after_restore(&rt, &etcd, compact_at),
        before,
        "etcd restored from Cairn's snapshot serves different data"
    );

    // The same file restores into Cairn with cairnutl.
    let data = tmp.path().join("restored-cairn");
    let (cairn, _) = restore_and_start(&cairnutl_bin(), &snap, Impl::Cairn, "again", &data);
    assert_eq!(
        view_after_restore(&rt, &cairn, compact_at),
        before,
        "Cairn restored from its own snapshot serves different data"
    );
}

#[test]
fn etcd_snapshot_restores_into_cairn() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let snap = tmp.path().join("etcd.snap");
    let (compact_at, before) = snapshot_of(&rt, Impl::Etcd351, &tmp.path().join("etcd"), &snap);

    let data = tmp.path().join("restored-cairn");
    let (cairn, peer) = restore_and_start(&cairnutl_bin(), &snap, Impl::Cairn, "restored", &data);
    assert_eq!(
        view_after_restore(&rt, &cairn, compact_at),
        before,
        "Cairn restored from etcd's snapshot serves different data"
    );
    rt.block_on(async {
        let mut c = connect(&cairn).await;
        let members = c.member_list().await.expect("member list");
        assert_eq!(members.members().len(), 1);
        assert_eq!(members.members()[0].name(), "restored");
        assert_eq!(
            members.members()[0].peer_urls(),
            std::slice::from_ref(&peer)
        );
    });

    // cairnutl snapshot status reads the restored file exactly as etcdutl does (stopped
    // member: the file is locked while a member runs).
    drop(cairn);
    let db = data.join("member/snap/db");
    let status_of = |tool: &Path, format: &str| {
        let mut st = clean_command(tool);
        st.args(["snapshot", "status", "-w", format]).arg(&db);
        let o = run(st, b"", std::time::Duration::from_secs(30));
        assert!(o.success(), "{} snapshot status: {o:?}", tool.display());
        o.stdout
    };
    for format in ["json", "simple", "table", "fields"] {
        let ours = status_of(&cairnutl_bin(), format);
        assert_eq!(ours, status_of(&etcdutl_bin(), format), "-w {format}");
        assert!(!ours.trim().is_empty());
    }
}

#[test]
fn cairnutl_checks_the_hash_trailer() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let etcd = Member::start(Impl::Etcd351, "source", &tmp.path().join("etcd"), &[]);
    rt.block_on(async {
        let mut c = connect(&etcd).await;
        c.put("a", "b", None).await.unwrap();
    });
    let snap = tmp.path().join("s.snap");
    save_snapshot(&etcd, &snap);
    drop(etcd);
    let restore = |file: &Path, dir: &str, extra: &[&str]| {
        let mut cmd = clean_command(&cairnutl_bin());
        cmd.args(["snapshot", "restore"])
            .arg(file)
            .arg(format!("--data-dir={}", tmp.path().join(dir).display()));
        cmd.args(extra);
        run(cmd, b"", std::time::Duration::from_secs(30))
    };
    // A flipped byte in the body fails the check.
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[5000] ^= 0x55;
    let bad = tmp.path().join("bad.snap");
    std::fs::write(&bad, &bytes).unwrap();
    let o = restore(&bad, "d1", &[]);
    assert!(!o.success());
    assert!(o.stderr.contains("expected sha256"), "{o:?}");
    assert!(!tmp.path().join("d1/member/snap/db").exists());
    // Without a trailer: refused unless --skip-hash-check (a copied db file).
    let body = &std::fs::read(&snap).unwrap()[..bytes.len() - 32];
    let plain = tmp.path().join("plain.db");
    std::fs::write(&plain, body).unwrap();
    let o = restore(&plain, "d2", &[]);
    assert!(
        o.stderr
            .contains("snapshot missing hash but --skip-hash-check=false"),
        "{o:?}"
    );
    let o = restore(&plain, "d3", &["--skip-hash-check"]);
    assert!(o.success(), "{o:?}");
    // A non-empty data directory is refused.
    let o = restore(&snap, "d3", &[]);
    assert!(o.stderr.contains("not empty"), "{o:?}");
    // The good file restores.
    let o = restore(&snap, "d4", &[]);
    assert!(o.success(), "{o:?}");
    // Unsupported etcdutl flags are named.
    let o = restore(&snap, "d5", &["--bump-revision=10"]);
    assert!(
        o.stderr.contains("--bump-revision is not supported yet"),
        "{o:?}"
    );
}

#[test]
fn cairnutl_status_matches_etcdutl_on_reference_files() {
    // Files written by real etcd 3.5.1 / 3.4.23 and by bbolt itself (nested buckets), kept
    // by the engine crate's interop tests.
    let dir = support::workspace_root().join("engine/tests/data");
    for name in ["etcd-3.5.1.db", "etcd-3.4.23.db", "bbolt-1.3.6.db"] {
        let file = dir.join(name);
        assert!(file.is_file(), "fixture {} missing", file.display());
        for format in ["simple", "json", "table", "fields"] {
            let status = |tool: &Path| {
                let mut c = clean_command(tool);
                c.args(["snapshot", "status", "-w", format]).arg(&file);
                let o = run(c, b"", std::time::Duration::from_secs(30));
                assert!(o.success(), "{} on {name}: {o:?}", tool.display());
                o.stdout
            };
            assert_eq!(
                status(&cairnutl_bin()),
                status(&etcdutl_bin()),
                "{name} -w {format}"
            );
        }
    }
}

/// Every live key (key, value, mod revision, version) and the current revision.
async fn dump(c: &mut Client) -> (i64, Vec<(Vec<u8>, Vec<u8>, i64, i64)>) {
    let all = c
        .get(vec![0u8], Some(GetOptions::new().with_from_key()))
        .await
        .expect("range all");
    let kvs = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                kv.value().to_vec(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect();
    (all.header().expect("header").revision(), kvs)
}

#[test]
fn offline_defrag_keeps_the_data_and_etcdutl_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let data = tmp.path().join("data");
    let mut cairn = Member::start(Impl::Cairn, "defrag", &data, &[]);
    let before = rt.block_on(async {
        let mut c = connect(&cairn).await;
        workload(&mut c).await;
        // Garbage to reclaim: big values, then deleted and compacted away.
        for i in 0..40 {
            c.put(format!("junk{i:02}"), vec![b'j'; 8192], None)
                .await
                .unwrap();
        }
        // Hash commits the backend (as etcd's does), so the junk is in the file before it is
        // deleted: otherwise puts, deletes and compaction can all fall into one backend batch
        // and leave nothing to reclaim.
        c.hash().await.unwrap();
        c.delete(
            "junk",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
        let rev = c
            .get("k00", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
        dump(&mut c).await
    });
    cairn.stop();
    let db = data.join("member/snap/db");
    let size_before = std::fs::metadata(&db).unwrap().len();

    let mut cmd = clean_command(&cairnutl_bin());
    cmd.arg("defrag")
        .arg(format!("--data-dir={}", data.display()));
    let o = run(cmd, b"", std::time::Duration::from_secs(60));
    assert!(o.success(), "cairnutl defrag: {o:?}");
    assert_eq!(
        o.stdout,
        format!("finished defragmenting directory: {}\n", data.display())
    );
    let size_after = std::fs::metadata(&db).unwrap().len();
    assert!(
        size_after < size_before,
        "defrag did not shrink the file: {size_before} -> {size_after}"
    );
    // etcd's own tool reads (and defragments) the result too.
    let mut cmd = clean_command(&etcdutl_bin());
    cmd.arg("defrag")
        .arg(format!("--data-dir={}", data.display()));
    let o = run(cmd, b"", std::time::Duration::from_secs(60));
    assert!(
        o.success(),
        "etcdutl defrag of a cairnutl-defragmented file: {o:?}"
    );

    cairn.restart();
    let after = rt.block_on(async { dump(&mut connect(&cairn).await).await });
    assert_eq!(after, before, "data changed across offline defragmentation");
}
