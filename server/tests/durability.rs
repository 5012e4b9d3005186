//! Durability: `cairn` is killed with SIGKILL in the middle of a concurrent write load and
//! restarted on the same data directory.
//!
//! Every writer puts distinct keys (one revision each), so after recovery:
//! 1. every acknowledged put is present, with the value and mod revision it was acknowledged
//!    with;
//! 2. the live keys' mod revisions are exactly 2..=R (R = the current revision): no gap (a
//!    lost write) and no revision used twice; the next put gets R + 1;
//! 3. "clean replay": a fresh Cairn fed the recovered keys in revision order, one put each,
//!    reaches revision R with the same HashKV(R) as the recovered member — the recovered store
//!    holds exactly what its history says, nothing more or less. The same replay into
//!    etcd 3.5.1 must give the same HashKV too (the hash is etcd's algorithm).
//!
//! Load size: `CAIRN_DURABILITY_WRITES` acknowledged writes before the kill (default 600).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use parking_lot::Mutex;
use support::{Impl, Member};

const WRITERS: usize = 8;

type Acked = Arc<Mutex<Vec<(String, String, i64)>>>;

async fn connect(endpoint: &str) -> Client {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

async fn dump(c: &mut Client) -> (i64, BTreeMap<String, (String, i64)>) {
    let r = c
        .get(vec![0u8], Some(GetOptions::new().with_from_key()))
        .await
        .expect("range all");
    let rev = r.header().expect("header").revision();
    let map = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                (
                    String::from_utf8_lossy(kv.value()).into_owned(),
                    kv.mod_revision(),
                ),
            )
        })
        .collect();
    (rev, map)
}

/// Puts the keys in revision order into a fresh member and returns HashKV at the end.
async fn replay(
    which: Impl,
    dir: &std::path::Path,
    history: &[(i64, String, String)],
) -> (i64, u32) {
    let m = Member::start(which, "replay", dir, &[]);
    let mut c = connect(&m.endpoint()).await;
    let mut rev = 1;
    for (want_rev, k, v) in history {
        rev = c
            .put(k.as_str(), v.as_str(), None)
            .await
            .expect("replay put")
            .header()
            .expect("header")
            .revision();
        assert_eq!(
            rev,
            *want_rev,
            "{} replay assigns revisions in order",
            which.label()
        );
    }
    let h = c.hash_kv(rev).await.expect("hash_kv");
    (rev, h.hash())
}

#[test]
fn sigkill_during_writes_loses_nothing_acknowledged() {
    let target: usize = std::env::var("CAIRN_DURABILITY_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut member = Member::start(Impl::Cairn, "durable", &tmp.path().join("data"), &[]);
    let endpoint = member.endpoint();

    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (acked, count, stop, endpoint) =
                (acked.clone(), count.clone(), stop.clone(), endpoint.clone());
            rt.spawn(async move {
                let mut c = connect(&endpoint).await;
                let mut i = 0u64;
                // Bounded: stops on the flag, on the first error (the kill), or at a cap.
                while !stop.load(Ordering::Acquire) && i < 100_000 {
                    let (k, v) = (format!("w{w}/{i:06}"), format!("value-{w}-{i}"));
                    match c.put(k.as_str(), v.as_str(), None).await {
                        Ok(r) => {
                            let rev = r.header().expect("header").revision();
                            acked.lock().push((k, v, rev));
                            count.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(_) => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Kill while the writers are busy.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Acquire) < target {
        assert!(
            std::time::Instant::now() < deadline,
            "load too slow: {} writes",
            count.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    member.kill();
    stop.store(true, Ordering::Release);
    rt.block_on(async {
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
    });
    let acked = acked.lock().clone();
    assert!(acked.len() >= target);

    member.restart();
    let (rev, live, next_rev, hash) = rt.block_on(async {
        let mut c = connect(&member.endpoint()).await;
        let (rev, live) = dump(&mut c).await;
        let hash = c.hash_kv(rev).await.expect("hash_kv").hash();
        let next = c
            .put("after-restart", "x", None)
            .await
            .expect("put after restart");
        (rev, live, next.header().expect("header").revision(), hash)
    });

    // 1. Every acknowledged put is there, as acknowledged.
    for (k, v, r) in &acked {
        match live.get(k) {
            Some((got_v, got_r)) => {
                assert_eq!((got_v, got_r), (v, r), "key {k} changed across the crash");
            }
            None => panic!(
                "acknowledged put {k} (revision {r}) lost; {} keys recovered",
                live.len()
            ),
        }
    }
    // 2. Revisions 2..=rev, each exactly once; no reuse after restart.
    let mut revs: Vec<i64> = live.values().map(|(_, r)| *r).collect();
    revs.sort_unstable();
    let expected: Vec<i64> = (2..=rev).collect();
    assert_eq!(
        revs.len(),
        expected.len(),
        "live keys vs revisions (current revision {rev})"
    );
    assert_eq!(revs, expected, "revisions have gaps or repeats");
    assert_eq!(
        next_rev,
        rev + 1,
        "the first write after restart reuses or skips a revision"
    );

    // 3. Clean replay, into Cairn and into etcd, gives the same HashKV.
    let mut history: Vec<(i64, String, String)> = live
        .iter()
        .map(|(k, (v, r))| (*r, k.clone(), v.clone()))
        .collect();
    history.sort();
    let (cairn_rev, cairn_hash) = rt.block_on(replay(
        Impl::Cairn,
        &tmp.path().join("replay-cairn"),
        &history,
    ));
    assert_eq!(cairn_rev, rev);
    assert_eq!(
        cairn_hash, hash,
        "HashKV of the recovered member differs from a clean replay"
    );
    let (etcd_rev, etcd_hash) = rt.block_on(replay(
        Impl::Etcd351,
        &tmp.path().join("replay-etcd"),
        &history,
    ));
    assert_eq!(etcd_rev, rev);
    assert_eq!(
        etcd_hash, hash,
        "HashKV differs from etcd 3.5.1 fed the same history"
    );
}
