//! Static bootstrap with etcd's flags: the same `--initial-cluster`, names, URLs and token
//! give Cairn exactly etcd 3.5.1's member ids and cluster id, and members started with
//! different `--initial-cluster-token`s refuse each other (no leader, a refusal logged,
//! no client service).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::Client;
use support::{etcd_bin, free_port, http_get, is_healthy, Flags, Impl, Proc};

struct Layout {
    client: Vec<u16>,
    peer: Vec<u16>,
}

impl Layout {
    fn new(n: usize) -> Layout {
        Layout {
            client: (0..n).map(|_| free_port()).collect(),
            peer: (0..n).map(|_| free_port()).collect(),
        }
    }

    fn initial_cluster(&self) -> String {
        self.peer
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Starts member `i` of a new cluster laid out as `l`, with `token` (killed on drop).
fn spawn(which: Impl, l: &Layout, i: usize, token: &str, dir: &Path) -> Proc {
    let client = format!("http://127.0.0.1:{}", l.client[i]);
    let peer = format!("http://127.0.0.1:{}", l.peer[i]);
    let mut p = Proc::new(
        etcd_bin(which),
        dir.join(format!("{}-m{i}.log", which.label())),
    );
    if which == Impl::Cairn {
        p.env("RUST_LOG", "info");
    }
    let flags = Flags {
        name: format!("m{i}"),
        data_dir: dir.join(format!("{}-m{i}", which.label())),
        client_url: client,
        listen_peer_url: peer.clone(),
        advertise_peer_url: peer,
        initial_cluster: l.initial_cluster(),
        initial_cluster_state: Some("new".to_string()),
        initial_cluster_token: Some(token.to_string()),
        extra: vec![
            "--heartbeat-interval=50".to_string(),
            "--election-timeout=500".to_string(),
        ],
    };
    p.spawn(&flags.args()).expect("spawn member");
    p
}

/// Waits until `/health` on every member says healthy (a leader is known).
fn wait_healthy(l: &Layout) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in &l.client {
        loop {
            if is_healthy(&format!("127.0.0.1:{p}")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member on {p} never became healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// (cluster id, sorted (name, member id, peer URLs)) as member 0 reports them, once every
/// member has published its name.
async fn identity(l: &Layout) -> (u64, Vec<(String, u64, Vec<String>)>) {
    let mut c = Client::connect([format!("http://127.0.0.1:{}", l.client[0])], None)
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.member_list().await.expect("member list");
        let mut ms: Vec<(String, u64, Vec<String>)> = r
            .members()
            .iter()
            .map(|m| (m.name().to_string(), m.id(), m.peer_urls().to_vec()))
            .collect();
        ms.sort();
        let cluster = r.header().expect("header").cluster_id();
        if ms.iter().all(|(n, _, _)| !n.is_empty()) || Instant::now() > deadline {
            return (cluster, ms);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_cluster_ids_match_etcd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let l = Layout::new(3);
    let token = "cairn-bootstrap-test";
    let mut seen = Vec::new();
    for which in [Impl::Etcd351, Impl::Cairn] {
        let procs: Vec<Proc> = (0..3)
            .map(|i| spawn(which, &l, i, token, dir.path()))
            .collect();
        wait_healthy(&l);
        seen.push((which.label(), identity(&l).await));
        drop(procs);
    }
    eprintln!("identities: {seen:x?}");
    let (_, etcd) = &seen[0];
    let (_, cairn) = &seen[1];
    assert_eq!(etcd.1.len(), 3, "etcd members: {etcd:?}");
    assert_eq!(
        cairn, etcd,
        "cairn's (cluster id, members) must equal etcd's for the same flags"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_different_tokens_refuse_each_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let l = Layout::new(2);
    let _procs = [
        spawn(Impl::Cairn, &l, 0, "token-a", dir.path()),
        spawn(Impl::Cairn, &l, 1, "token-b", dir.path()),
    ];
    // Each member refuses the other's connections; wait until both logged a refusal.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..2 {
        let log = dir.path().join(format!("cairn-m{i}.log"));
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("refusing a peer connection") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "m{i} never refused its peer; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Neither side can have a leader (a quorum of two needs both), so neither publishes
    // itself and, like etcd, neither serves clients: /health never answers healthy.
    for p in &l.client {
        let r = http_get(&format!("127.0.0.1:{p}"), "/health");
        assert!(
            !matches!(&r, Ok((200, _))),
            "member on {p} claims to be healthy: {r:?}"
        );
    }
}
