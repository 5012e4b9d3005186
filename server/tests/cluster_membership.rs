//! Membership changes under load (issue 7): add a learner, wait until it caught up, promote
//! it (retried while "not in sync", as kubeadm does), remove the old leader, replace a member
//! (remove + add + start), update a member's peer URLs; every member ends with the same
//! member list, HashKV agrees, acknowledged writes are everywhere, history linearizable.
//!
//! `CAIRN_CLUSTER_IMPL=etcd` runs it against etcd 3.5.1. Timings are printed, not asserted.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::{write_load, Cluster, ClusterOpts};
use support::Impl;

fn under_test() -> Impl {
    match std::env::var("CAIRN_CLUSTER_IMPL").as_deref() {
        Ok("etcd") | Ok("etcd351") => Impl::Etcd351,
        _ => Impl::Cairn,
    }
}

/// Waits until every live member returns the same member list in which every member has
/// published its name (members publish their attributes after they start); returns it.
async fn agreed_member_list(
    c: &mut Cluster,
    timeout: Duration,
) -> Vec<(u64, String, Vec<String>, bool)> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut lists = Vec::new();
        for i in c.live() {
            lists.push((c.nodes[i].name.clone(), c.member_list(i).await));
        }
        if let Ok(first) = &lists[0].1 {
            let named = first.iter().all(|m| !m.1.is_empty());
            if named && lists.iter().all(|(_, l)| l.as_ref() == Ok(first)) {
                return first.clone();
            }
        }
        if Instant::now() > deadline {
            panic!("member lists differ: {lists:#?}\n{}", c.dump());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learner_promote_remove_leader_replace_update() {
    let which = under_test();
    let t_test = Instant::now();
    let mut c = Cluster::start(which, 3, ClusterOpts::default()).await;
    let leader = c.wait_leader(None, Duration::from_secs(30)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let rc = c.recording_client(&[0, 1, 2]).await;
        tasks.push(tokio::spawn(write_load(rc, stop.clone(), 4)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. A learner joins under load and catches up.
    let t = Instant::now();
    let learner = c.add_member(true).await;
    let st = c.status(learner).await.expect("learner status");
    assert!(st.is_learner, "Status of the new member must say isLearner");
    let list = c.member_list(leader).await.expect("member list");
    assert!(
        list.iter().any(|m| m.0 == c.nodes[learner].id && m.3),
        "MemberList shows the learner: {list:?}"
    );
    // Learners refuse linearizable client requests (etcd: rpc not supported for learner).
    let mut lc = c.client(learner).await;
    let r = lc.put("learner/put", "x", None).await;
    eprintln!("put on learner: {r:?}");
    assert!(r.is_err(), "a learner accepted a write");
    let attempts = c.promote(learner, Duration::from_secs(60)).await;
    eprintln!(
        "learner {} added and promoted in {:?} ({attempts} promote attempts)",
        c.nodes[learner].name,
        t.elapsed()
    );
    // The promotion reaches the member itself when it applies the entry.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = c.status(learner).await.expect("status");
        if !st.is_learner {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "promoted member still reports isLearner"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 2. Remove the leader (through another member).
    let leader = c.wait_leader(None, Duration::from_secs(30)).await;
    let t = Instant::now();
    let exited = c.remove_member(leader).await;
    assert!(
        exited,
        "the removed leader did not stop by itself (etcd's does)"
    );
    let new_leader = c.wait_leader(None, Duration::from_secs(60)).await;
    eprintln!(
        "removed leader {} (process exited by itself: {exited}); new leader {} after {:?}",
        c.nodes[leader].name,
        c.nodes[new_leader].name,
        t.elapsed()
    );
    assert_ne!(new_leader, leader);

    // 3. Replace a follower: remove it, add a new member, start it.
    let victim = c
        .live()
        .into_iter()
        .find(|&i| i != new_leader && i != learner)
        .expect("a follower");
    let t = Instant::now();
    let exited = c.remove_member(victim).await;
    assert!(
        exited,
        "the removed follower did not stop by itself (etcd's does)"
    );
    let fresh = c.add_member(false).await;
    eprintln!(
        "replaced {} (exited by itself: {exited}) by {} in {:?}",
        c.nodes[victim].name,
        c.nodes[fresh].name,
        t.elapsed()
    );

    // 4. MemberUpdate: move the learner-turned-voter behind a new proxy port.
    let url = c.update_peer_url(learner).await;
    eprintln!("{} peer URL now {url}", c.nodes[learner].name);

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }

    let t = Instant::now();
    let list = agreed_member_list(&mut c, Duration::from_secs(60)).await;
    eprintln!(
        "member lists agreed (all names published) after {:?}",
        t.elapsed()
    );
    let mut want: Vec<u64> = c.live().into_iter().map(|i| c.nodes[i].id).collect();
    want.sort();
    let got: Vec<u64> = list.iter().map(|m| m.0).collect();
    assert_eq!(got, want, "member list {list:?}");
    assert!(list.iter().all(|m| !m.3), "no learner left: {list:?}");
    let upd = list
        .iter()
        .find(|m| m.0 == c.nodes[learner].id)
        .expect("updated member listed");
    assert_eq!(upd.2, vec![url.clone()], "MemberUpdate applied everywhere");
    for m in &list {
        assert!(!m.1.is_empty(), "every started member has a name: {list:?}");
    }
    eprintln!("member list agreed on {} members: {list:?}", list.len());

    let (ok, failed) = c.history.write_counts();
    eprintln!("{ok} writes acknowledged, {failed} failed/ambiguous");
    c.assert_acked_writes_everywhere("w/", Duration::from_secs(60))
        .await;
    c.wait_converged(Duration::from_secs(60)).await;
    c.check_history();
    eprintln!(
        "{} membership test took {:?}",
        which.label(),
        t_test.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_leader_transfers_leadership() {
    let which = under_test();
    let mut c = Cluster::start(which, 3, ClusterOpts::default()).await;
    let leader = c.wait_leader(None, Duration::from_secs(30)).await;
    let target = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let target_id = c.nodes[target].id;

    // MoveLeader must be sent to the leader (etcd: "etcdserver: not leader").
    let mut fc = c.client(other).await;
    let err = fc
        .move_leader(target_id)
        .await
        .expect_err("MoveLeader through a follower");
    eprintln!("MoveLeader through a follower: {err}");
    assert!(err.to_string().contains("not leader"), "{err}");

    let t = Instant::now();
    let mut lc = c.client(leader).await;
    lc.move_leader(target_id).await.expect("MoveLeader");
    let now = c.wait_leader(None, Duration::from_secs(30)).await;
    eprintln!(
        "leadership moved {} -> {} in {:?}",
        c.nodes[leader].name,
        c.nodes[now].name,
        t.elapsed()
    );
    assert_eq!(now, target);
    // The cluster still takes writes.
    let mut rc = c.recording_client(&[other]).await;
    rc.put("after/move", "1")
        .await
        .expect("put after MoveLeader");
    c.wait_converged(Duration::from_secs(30)).await;
}
