//! A follower far behind the compacted raft log catches up through a snapshot (issue 7).
//!
//! - `follower_kill9_catches_up_by_snapshot`: kill -9 a follower, write many keys with a small
//!   `--snapshot-count`, restart it: a snapshot is streamed to it (seen by the peer proxy),
//!   HashKV agrees, and a watcher opened on it from a revision before the kill sees every
//!   event once, in order.
//! - `isolated_follower_keeps_its_watcher_through_snapshot`: the same with the follower cut off
//!   by the proxy instead of killed, so a watcher connected to it before the partition must
//!   survive the snapshot install and still see every event.
//!
//! Key count: 5 000 by default, 50 000 with `CAIRN_HEAVY=1` (the figure), or
//! `CAIRN_SNAPSHOT_KEYS`. `CAIRN_CLUSTER_IMPL=etcd` runs it against etcd 3.5.1 (which keeps
//! 5 000 entries after each snapshot, so the default there is 12 000 keys).

mod support;

use etcd_client::{Client, EventType, WatchOptions};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::{heavy, Cluster, ClusterOpts};
use support::Impl;

fn under_test() -> Impl {
    match std::env::var("CAIRN_CLUSTER_IMPL").as_deref() {
        Ok("etcd") | Ok("etcd351") => Impl::Etcd351,
        _ => Impl::Cairn,
    }
}

fn key_count() -> usize {
    if let Some(n) = std::env::var("CAIRN_SNAPSHOT_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if heavy() {
        50_000
    } else if under_test() == Impl::Etcd351 {
        // etcd 3.5.1 keeps 5 000 entries after each snapshot for slow followers.
        12_000
    } else {
        5_000
    }
}

fn opts() -> ClusterOpts {
    ClusterOpts {
        snapshot_count: Some(1000),
        ..ClusterOpts::default()
    }
}

/// Writes `n` keys `s/000000..` with 16 concurrent writers through `endpoint`; any failure
/// fails the test (no fault is active on the members written to). Returns the revision of
/// the last write.
async fn write_keys(endpoint: String, n: usize) -> i64 {
    let t0 = Instant::now();
    let writers = 16;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let ep = endpoint.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect([ep], None).await.expect("connect");
            let mut max_rev = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return max_rev;
                }
                let r = c
                    .put(format!("s/{i:06}"), format!("value-{i}"), None)
                    .await
                    .unwrap_or_else(|e| panic!("put s/{i:06}: {e}"));
                max_rev = max_rev.max(r.header().unwrap().revision());
            }
        }));
    }
    let mut rev = 0;
    for t in tasks {
        rev = rev.max(t.await.expect("writer"));
    }
    let el = t0.elapsed();
    eprintln!(
        "wrote {n} keys in {el:?} ({:.0} puts/s, 16 clients)",
        n as f64 / el.as_secs_f64()
    );
    rev
}

/// Collects `n` events from `stream` and checks they are puts of distinct `s/` keys at
/// strictly consecutive revisions starting at `from`.
async fn expect_events(
    stream: &mut etcd_client::WatchStream,
    from: i64,
    n: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let mut revs = Vec::with_capacity(n);
    let mut keys = HashSet::with_capacity(n);
    while revs.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "watcher got {} of {n} events before the deadline",
                    revs.len()
                )
            })
            .expect("watch stream error")
            .expect("watch stream closed");
        assert!(!msg.canceled(), "watch canceled: {:?}", msg.cancel_reason());
        for ev in msg.events() {
            assert_eq!(ev.event_type(), EventType::Put);
            let kv = ev.kv().expect("kv");
            let k = String::from_utf8_lossy(kv.key()).into_owned();
            assert!(keys.insert(k.clone()), "duplicate event for {k}");
            revs.push(kv.mod_revision());
        }
    }
    assert_eq!(revs.len(), n, "more events than writes");
    for (i, r) in revs.iter().enumerate() {
        assert_eq!(
            *r,
            from + i as i64,
            "event {i}: gap or reorder (revisions {:?}..)",
            &revs[i.saturating_sub(3)..(i + 3).min(revs.len())]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_kill9_catches_up_by_snapshot() {
    let which = under_test();
    let n = key_count();
    let t_test = Instant::now();
    let mut c = Cluster::start(which, 3, opts()).await;
    let leader = c.wait_leader(None, Duration::from_secs(30)).await;
    let f = (leader + 1) % 3;
    let mut lc = c.client(leader).await;
    lc.put("before", "kill", None).await.expect("put");
    let rev0 = lc
        .get("before", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let before = c.status(f).await.expect("follower status");
    eprintln!(
        "follower {} at applied index {} before the kill",
        c.nodes[f].name, before.applied_index
    );
    c.kill9(f);

    let last_rev = write_keys(c.nodes[leader].endpoint(), n).await;
    assert_eq!(last_rev, rev0 + n as i64);
    let snaps_before = c.partition.snapshot_streams();

    let t_restart = Instant::now();
    c.restart(f).await;
    let (_, rev) = c.wait_converged(Duration::from_secs(120)).await;
    assert_eq!(rev, last_rev);
    let after = c.status(f).await.expect("status");
    let snaps = c.partition.snapshot_streams() - snaps_before;
    eprintln!(
        "follower caught up in {:?}: applied index {} -> {}, {snaps} snapshot stream(s) through the proxy",
        t_restart.elapsed(),
        before.applied_index,
        after.applied_index
    );
    assert!(
        snaps >= 1,
        "the restarted follower did not receive a snapshot\n{}",
        c.dump()
    );

    // A watcher on the restarted follower from a revision before the kill sees every event.
    let mut fc = c.client(f).await;
    let mut stream = fc
        .watch(
            "s/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev0 + 1),
            ),
        )
        .await
        .expect("watch");
    expect_events(&mut stream, rev0 + 1, n, Duration::from_secs(60)).await;
    eprintln!(
        "{} snapshot catch-up test ({n} keys) took {:?}",
        which.label(),
        t_test.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_follower_keeps_its_watcher_through_snapshot() {
    let which = under_test();
    let n = key_count();
    let t_test = Instant::now();
    let mut c = Cluster::start(which, 3, opts()).await;
    let leader = c.wait_leader(None, Duration::from_secs(30)).await;
    let f = (leader + 1) % 3;
    let mut lc = c.client(leader).await;
    let rev0 = lc
        .put("before", "isolation", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();

    // The follower must have applied `before` so the watcher starts from a known point.
    let mut fc = c.client(f).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.status(f).await.map(|s| s.revision).unwrap_or(0) < rev0 {
        assert!(
            Instant::now() < deadline,
            "follower never applied revision {rev0}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stream = fc
        .watch(
            "s/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev0 + 1),
            ),
        )
        .await
        .expect("watch");

    c.partition.isolate(c.nodes[f].id);
    let snaps_before = c.partition.snapshot_streams();
    let last_rev = write_keys(c.nodes[leader].endpoint(), n).await;
    assert_eq!(last_rev, rev0 + n as i64);

    let t_heal = Instant::now();
    c.partition.heal();
    let (_, rev) = c.wait_converged(Duration::from_secs(120)).await;
    assert_eq!(rev, last_rev);
    let snaps = c.partition.snapshot_streams() - snaps_before;
    eprintln!(
        "follower caught up {:?} after healing, {snaps} snapshot stream(s)",
        t_heal.elapsed()
    );
    assert!(
        snaps >= 1,
        "the isolated follower did not receive a snapshot\n{}",
        c.dump()
    );
    expect_events(&mut stream, rev0 + 1, n, Duration::from_secs(60)).await;
    eprintln!(
        "{} isolated-follower snapshot test ({n} keys) took {:?}",
        which.label(),
        t_test.elapsed()
    );
}
