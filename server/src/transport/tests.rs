//! Transports talking to each other over loopback.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use raft::eraftpb::{Entry, Message, MessageType, Snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::snapshot::{received_path, RESULT_CORRUPT};
use super::wire::{self, Kind, Preamble};
use super::*;

/// Bound on waiting for an event; a failure bound, not a timing assertion.
const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug)]
enum Ev {
    Msg(Message),
    Snap(Message, PathBuf),
    Unreachable(u64),
    PeerClosed(u64),
    SnapStatus(u64, bool),
    Removed,
}

struct TestHandler {
    tx: mpsc::UnboundedSender<Ev>,
    members: Vec<u8>,
    removed: Mutex<HashSet<u64>>,
    /// Ids that are not members (every other id is).
    strangers: Mutex<HashSet<u64>>,
}

/// Snapshots at this index are refused by the test handler.
const REJECTED_INDEX: u64 = 666;

/// The peer URL of the member the test handlers consider added and waiting to join.
const JOINER_URL: &str = "http://127.0.0.1:9";

impl Handler for TestHandler {
    fn on_message(&self, m: Message) {
        let _ = self.tx.send(Ev::Msg(m));
    }
    fn on_snapshot(&self, m: Message, db: PathBuf) -> Result<(), String> {
        if m.get_snapshot().get_metadata().index == REJECTED_INDEX {
            return Err("rejected by the handler".into());
        }
        let _ = self.tx.send(Ev::Snap(m, db));
        Ok(())
    }
    fn on_unreachable(&self, id: u64) {
        let _ = self.tx.send(Ev::Unreachable(id));
    }
    fn on_peer_closed(&self, id: u64) {
        let _ = self.tx.send(Ev::PeerClosed(id));
    }
    fn on_snapshot_status(&self, to: u64, ok: bool) {
        let _ = self.tx.send(Ev::SnapStatus(to, ok));
    }
    fn members(&self, peer_urls: &[String]) -> Option<Vec<u8>> {
        peer_urls
            .iter()
            .any(|u| u == JOINER_URL)
            .then(|| self.members.clone())
    }
    fn is_removed(&self, id: u64) -> bool {
        self.removed.lock().contains(&id)
    }
    fn is_member(&self, id: u64) -> bool {
        !self.removed.lock().contains(&id) && !self.strangers.lock().contains(&id)
    }
    fn peer_urls(&self, _id: u64) -> Vec<String> {
        // Every test member lives on loopback.
        vec!["http://127.0.0.1:1".into()]
    }
    fn on_removed(&self) {
        let _ = self.tx.send(Ev::Removed);
    }
}

/// A started transport with its events.
struct Node {
    t: Transport,
    rx: mpsc::UnboundedReceiver<Ev>,
    url: String,
    handler: Arc<TestHandler>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(id: u64, cluster: u64) -> Node {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Node::start_on(id, cluster, l).await
    }

    async fn start_on(id: u64, cluster: u64, l: TcpListener) -> Node {
        let url = format!("http://{}", l.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let handler = Arc::new(TestHandler {
            tx,
            members: format!("members of {id}").into_bytes(),
            removed: Mutex::new(HashSet::new()),
            strangers: Mutex::new(HashSet::new()),
        });
        let dir = tempfile::tempdir().unwrap();
        let cfg = TransportConfig {
            local_id: id,
            cluster_id: cluster,
            snap_dir: dir.path().join("snap"),
            tls: None,
        };
        let t = Transport::start(cfg, vec![l], handler.clone());
        Node {
            t,
            rx,
            url,
            handler,
            _dir: dir,
        }
    }

    fn snap_dir(&self) -> PathBuf {
        self.t.inner.snap_dir.clone()
    }

    /// The next event matching `f` (others are skipped).
    async fn wait_for<T>(&mut self, mut f: impl FnMut(Ev) -> Option<T>) -> T {
        let fut = async {
            loop {
                let ev = self.rx.recv().await.expect("handler gone");
                if let Some(t) = f(ev) {
                    return t;
                }
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .expect("event did not arrive")
    }

    async fn next_msg(&mut self) -> Message {
        self.wait_for(|e| match e {
            Ev::Msg(m) => Some(m),
            _ => None,
        })
        .await
    }
}

fn msg(from: u64, to: u64, seq: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = from;
    m.to = to;
    m.index = seq;
    m.term = 3;
    m.mut_entries().push(Entry {
        index: seq,
        data: Bytes::from(format!("entry {seq} from {from}")),
        ..Default::default()
    });
    m
}

fn snap_msg(from: u64, to: u64, index: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = from;
    m.to = to;
    let mut s = Snapshot::default();
    s.mut_metadata().index = index;
    s.mut_metadata().term = 2;
    s.data = Bytes::from_static(b"snapshot metadata");
    m.set_snapshot(s);
    m
}

/// A port nothing listens on.
async fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// Opens a raw connection with `pre` and returns the handshake reply.
async fn raw_handshake(url: &str, pre: Preamble) -> (TcpStream, u8, String) {
    let mut s = TcpStream::connect(wire::peer_addr(url).unwrap().0)
        .await
        .unwrap();
    s.write_all(&pre.encode()).await.unwrap();
    let (status, reason) = wire::read_reply(&mut s).await.unwrap();
    (s, status, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_exchange_messages_in_order() {
    const N: u64 = 500;
    let mut nodes = vec![
        Node::start(1, 7).await,
        Node::start(2, 7).await,
        Node::start(3, 7).await,
    ];
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    for (i, n) in nodes.iter().enumerate() {
        for (j, url) in urls.iter().enumerate() {
            if i != j {
                n.t.add_peer(j as u64 + 1, vec![url.clone()]);
            }
        }
    }
    // Interleave sends from every member to every other, in several calls.
    for seq in 0..N {
        for (i, n) in nodes.iter().enumerate() {
            let from = i as u64 + 1;
            let msgs = (1..=3)
                .filter(|&to| to != from)
                .map(|to| msg(from, to, seq))
                .collect();
            n.t.send(msgs);
        }
        if seq % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The first messages may go while the streams are still connecting and be dropped
    // (raft resends); once a stream is up, everything arrives in order without gaps.
    for (i, n) in nodes.iter_mut().enumerate() {
        let me = i as u64 + 1;
        let mut last: std::collections::HashMap<u64, u64> = Default::default();
        while last.len() < 2 || last.values().any(|&s| s != N - 1) {
            let m = n.next_msg().await;
            assert_eq!(m.to, me);
            assert_ne!(m.from, me);
            assert_eq!(
                m.get_entries()[0].data,
                Bytes::from(format!("entry {} from {}", m.index, m.from))
            );
            if let Some(prev) = last.insert(m.from, m.index) {
                assert_eq!(m.index, prev + 1, "gap or reorder from {}", m.from);
            }
        }
    }
    for n in &nodes {
        for id in 1..=3u64 {
            if id != n.t.inner.local_id() {
                assert!(n.t.active_since(id).is_some());
            }
        }
    }
    for n in &nodes {
        n.t.stop().await;
    }
}

/// Sends numbered messages from `a` to member 2 until `b` receives one; returns it.
async fn send_until_received(a: &Node, b: &mut Node, seq: &mut u64) -> Message {
    let fut = async {
        loop {
            *seq += 1;
            a.t.send(vec![msg(1, 2, *seq)]);
            tokio::select! {
                ev = b.rx.recv() => {
                    if let Some(Ev::Msg(m)) = ev {
                        return m;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("no message got through")
}

#[tokio::test]
async fn reconnects_to_a_restarted_receiver() {
    let a = Node::start(1, 7).await;
    let mut b = Node::start(2, 7).await;
    a.t.add_peer(2, vec![b.url.clone()]);
    let mut seq = 0;
    let first = send_until_received(&a, &mut b, &mut seq).await;
    assert_eq!(first.from, 1);

    // Restart the receiver on the same port. The sender learns that the peer closed the
    // stream (its process went away), not merely that it is unreachable.
    let addr = wire::peer_addr(&b.url).unwrap().0;
    b.t.stop().await;
    drop(b);
    let mut a = a;
    a.wait_for(|ev| matches!(ev, Ev::PeerClosed(2)).then_some(()))
        .await;
    let l = TcpListener::bind(&addr).await.unwrap();
    let mut b2 = Node::start_on(2, 7, l).await;
    let m = send_until_received(&a, &mut b2, &mut seq).await;
    assert!(m.index > first.index);

    // Once reconnected, a burst arrives whole and in order.
    let start = seq + 1;
    a.t.send((start..start + 200).map(|s| msg(1, 2, s)).collect());
    let mut expect = start;
    while expect < start + 200 {
        let m = b2.next_msg().await;
        if m.index < start {
            continue; // stragglers of the probing loop
        }
        assert_eq!(m.index, expect);
        expect += 1;
    }
    a.t.stop().await;
    b2.t.stop().await;
}

#[tokio::test]
async fn wrong_cluster_id_is_refused() {
    let mut a = Node::start(1, 7).await;
    let mut b = Node::start(2, 8).await;
    a.t.add_peer(2, vec![b.url.clone()]);
    a.t.send(vec![msg(1, 2, 1)]);
    a.wait_for(|e| matches!(e, Ev::Unreachable(2)).then_some(()))
        .await;
    a.t.send(vec![msg(1, 2, 2)]);
    a.wait_for(|e| matches!(e, Ev::Unreachable(2)).then_some(()))
        .await;
    assert!(a.t.active_since(2).is_none());
    // B refuses at the handshake, before reading any frame: nothing was delivered.
    assert!(b.rx.try_recv().is_err());

    // A snapshot is refused the same way, and reported as failed.
    a.t.send_snapshot(snap_msg(1, 2, 5), Box::new(VecSource(vec![0; 10])));
    let ok = a
        .wait_for(|e| match e {
            Ev::SnapStatus(2, ok) => Some(ok),
            _ => None,
        })
        .await;
    assert!(!ok);
    assert!(b.rx.try_recv().is_err());

    let pre = Preamble {
        kind: Kind::Raft,
        from: 1,
        to: 2,
        cluster: 7,
    };
    let (_, status, reason) = raw_handshake(&b.url, pre).await;
    assert_eq!(status, wire::STATUS_CLUSTER_MISMATCH);
    assert!(reason.contains("cluster ID mismatch"), "{reason}");
    // The wrong member, and a bad magic.
    let (_, status, _) = raw_handshake(
        &b.url,
        Preamble {
            to: 3,
            cluster: 8,
            ..pre
        },
    )
    .await;
    assert_eq!(status, wire::STATUS_WRONG_MEMBER);
    let mut s = TcpStream::connect(wire::peer_addr(&b.url).unwrap().0)
        .await
        .unwrap();
    let mut bad = pre.encode();
    bad[..8].copy_from_slice(b"ETCDPEER");
    s.write_all(&bad).await.unwrap();
    let (status, _) = wire::read_reply(&mut s).await.unwrap();
    assert_eq!(status, wire::STATUS_BAD_PREAMBLE);
    // The connection is closed after a refusal.
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).await.unwrap(), 0);
    a.t.stop().await;
    b.t.stop().await;
}

#[tokio::test]
async fn removed_sender_is_told_so() {
    let mut a = Node::start(1, 7).await;
    let mut b = Node::start(2, 7).await;
    b.handler.removed.lock().insert(1);
    a.t.add_peer(2, vec![b.url.clone()]);
    a.t.send(vec![msg(1, 2, 1)]);
    a.wait_for(|e| matches!(e, Ev::Removed).then_some(())).await;
    assert!(b.rx.try_recv().is_err());
    let pre = Preamble {
        kind: Kind::Raft,
        from: 1,
        to: 2,
        cluster: 7,
    };
    let (mut s, status, reason) = raw_handshake(&b.url, pre).await;
    assert_eq!(status, wire::STATUS_REMOVED);
    assert_eq!(
        reason,
        "the member has been permanently removed from the cluster"
    );
    // The refusal names the refusing member and its cluster.
    assert_eq!(wire::read_removed_by(&mut s).await.unwrap(), (2, 7));
    a.t.stop().await;
    b.t.stop().await;
}

/// Serves one fake peer: answers every connection with `reply` after its preamble.
async fn fake_peer(reply: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut pre = [0u8; wire::PREAMBLE_LEN];
            if s.read_exact(&mut pre).await.is_ok() {
                let _ = s.write_all(&reply).await;
            }
        }
    });
    (url, task)
}

#[tokio::test]
async fn removed_answer_from_outside_the_cluster_is_not_believed() {
    let mut a = Node::start(1, 7).await;
    // Another cluster's member, a member of ours that is not the one dialed, an old-style
    // answer naming no one: none of them stops A.
    for (member, cluster) in [(2, 8), (3, 7), (0, 0)] {
        let reply = if member == 0 {
            wire::encode_reply(wire::STATUS_REMOVED, wire::REASON_REMOVED)
        } else {
            wire::encode_removed_reply(member, cluster)
        };
        let (url, task) = fake_peer(reply).await;
        a.t.add_peer(2, vec![url]);
        a.t.send(vec![msg(1, 2, 1)]);
        a.wait_for(|e| match e {
            Ev::Unreachable(2) => Some(()),
            Ev::Removed => panic!("believed a removal by {member:x} of cluster {cluster:x}"),
            _ => None,
        })
        .await;
        a.t.remove_peer(2);
        task.abort();
    }
    // The member dialed, in our cluster: believed.
    let (url, task) = fake_peer(wire::encode_removed_reply(2, 7)).await;
    a.t.add_peer(2, vec![url]);
    a.t.send(vec![msg(1, 2, 1)]);
    a.wait_for(|e| matches!(e, Ev::Removed).then_some(())).await;
    task.abort();
    a.t.stop().await;
}

#[tokio::test]
async fn only_members_may_stream_to_us() {
    let mut b = Node::start(2, 7).await;
    b.handler.strangers.lock().insert(5);
    let pre = Preamble {
        kind: Kind::Raft,
        from: 5,
        to: 2,
        cluster: 7,
    };
    // A stranger, and a connection claiming to come from the receiver itself.
    for from in [5, 2] {
        for kind in [Kind::Raft, Kind::Snapshot] {
            let (_, status, reason) = raw_handshake(&b.url, Preamble { from, kind, ..pre }).await;
            assert_eq!(status, wire::STATUS_NOT_MEMBER, "{reason}");
        }
    }
    // A member's stream: messages from someone else or to someone else are dropped.
    let (mut s, status, _) = raw_handshake(&b.url, Preamble { from: 1, ..pre }).await;
    assert_eq!(status, wire::STATUS_OK);
    let mut buf = Vec::new();
    for m in [msg(3, 2, 1), msg(1, 3, 2), msg(1, 2, 3)] {
        wire::encode_message(&m, &mut buf).unwrap();
    }
    s.write_all(&buf).await.unwrap();
    let got = b.next_msg().await;
    assert_eq!((got.from, got.to, got.index), (1, 2, 3));
    assert!(b.rx.try_recv().is_err());
    // The member leaves the cluster while connected: its stream is closed.
    b.handler.strangers.lock().insert(1);
    buf.clear();
    wire::encode_message(&msg(1, 2, 4), &mut buf).unwrap();
    s.write_all(&buf).await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("stream not closed");
    assert_eq!(n.unwrap_or(0), 0);
    assert!(b.rx.try_recv().is_err());
    b.t.stop().await;
}

#[tokio::test]
async fn a_snapshot_must_come_from_its_connections_member() {
    let mut b = Node::start(2, 7).await;
    // The connection is opened as member 1, the message claims member 3.
    let send = |m: Message| {
        let url = b.url.clone();
        tokio::task::spawn_blocking(move || raw_snapshot_as(&url, 1, m, b"backend"))
    };
    let res = send(snap_msg(3, 2, 9)).await.unwrap();
    assert_eq!(res, Some(RESULT_CORRUPT));
    assert!(!received_path(&b.snap_dir(), 2, 9).exists());
    assert!(b.rx.try_recv().is_err());
    // A file the handler rejects is answered 1 and removed.
    let res = send(snap_msg(1, 2, REJECTED_INDEX)).await.unwrap();
    assert_eq!(res, Some(RESULT_CORRUPT));
    assert!(!received_path(&b.snap_dir(), 2, REJECTED_INDEX).exists());
    let res = send(snap_msg(1, 2, 9)).await.unwrap();
    assert_eq!(res, Some(0));
    let (m, _) = b
        .wait_for(|e| match e {
            Ev::Snap(m, p) => Some((m, p)),
            _ => None,
        })
        .await;
    assert_eq!(m.from, 1);
    b.t.stop().await;
}

/// Sends a whole, well-formed snapshot transfer on a connection opened as `from`.
fn raw_snapshot_as(url: &str, from: u64, m: Message, body: &[u8]) -> Option<u8> {
    let mut s = std::net::TcpStream::connect(wire::peer_addr(url).unwrap().0).unwrap();
    let pre = Preamble {
        kind: Kind::Snapshot,
        from,
        to: 2,
        cluster: 7,
    };
    s.write_all(&pre.encode()).unwrap();
    let mut head = [0u8; 3];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], wire::STATUS_OK);
    let mut out = Vec::new();
    wire::encode_message(&m, &mut out).unwrap();
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    s.write_all(&out).unwrap();
    let mut r = [0u8; 1];
    s.read_exact(&mut r).ok().map(|_| r[0])
}

#[tokio::test]
async fn a_dead_peer_never_blocks_send() {
    let mut a = Node::start(1, 7).await;
    a.t.add_peer(2, vec![dead_url().await]);
    for round in 0..10u64 {
        a.t.send((0..1000).map(|i| msg(1, 2, round * 1000 + i)).collect());
    }
    a.wait_for(|e| matches!(e, Ev::Unreachable(2)).then_some(()))
        .await;
    assert!(a.t.active_since(2).is_none());
    // An https peer without peer TLS configured: unreachable, not a panic or a hang.
    a.t.add_peer(3, vec!["https://127.0.0.1:1".to_string()]);
    a.t.send(vec![msg(1, 3, 1)]);
    a.wait_for(|e| matches!(e, Ev::Unreachable(3)).then_some(()))
        .await;
    // Messages to a member nobody registered are dropped quietly.
    a.t.send(vec![msg(1, 9, 1)]);
    a.t.stop().await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_never_blocks_send() {
    let mut a = Node::start(1, 7).await;
    // Accepts the stream, answers OK, then never reads.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (hold_tx, mut hold_rx) = mpsc::unbounded_channel();
    let stuck = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut pre = [0u8; wire::PREAMBLE_LEN];
            s.read_exact(&mut pre).await.unwrap();
            s.write_all(&wire::encode_reply(0, "")).await.unwrap();
            let _ = hold_tx.send(s);
        }
    });
    a.t.add_peer(2, vec![url]);
    let big = Bytes::from(vec![7u8; 16 << 10]);
    for round in 0..20u64 {
        let msgs = (0..1000)
            .map(|i| {
                let mut m = msg(1, 2, round * 1000 + i);
                m.context = big.clone();
                m
            })
            .collect();
        a.t.send(msgs);
    }
    // 20 000 messages of 16 KiB cannot all sit in the queue and the socket buffers.
    a.wait_for(|e| matches!(e, Ev::Unreachable(2)).then_some(()))
        .await;
    let _held = hold_rx.recv().await;
    stuck.abort();
    a.t.stop().await;
}

/// A backend file held in memory; written in uneven pieces.
struct VecSource(Vec<u8>);

impl SnapshotSource for VecSource {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn write_to(&self, w: &mut dyn Write) -> std::io::Result<u64> {
        for piece in self.0.chunks(300_007) {
            w.write_all(piece)?;
        }
        Ok(self.0.len() as u64)
    }
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_arrives_byte_identical() {
    let mut a = Node::start(1, 7).await;
    let mut b = Node::start(2, 7).await;
    a.t.add_peer(2, vec![b.url.clone()]);
    let data = pseudo_random(3 * CHUNK_FOR_TESTS + 12_345);
    let m = snap_msg(1, 2, 4242);
    a.t.send_snapshot(m.clone(), Box::new(VecSource(data.clone())));
    let (got, path) = b
        .wait_for(|e| match e {
            Ev::Snap(m, p) => Some((m, p)),
            _ => None,
        })
        .await;
    assert_eq!(got, m);
    assert_eq!(path, received_path(&b.snap_dir(), 2, 4242));
    assert!(std::fs::read(&path).unwrap() == data, "file differs");
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    assert!(!PathBuf::from(tmp).exists());
    let ok = a
        .wait_for(|e| match e {
            Ev::SnapStatus(2, ok) => Some(ok),
            _ => None,
        })
        .await;
    assert!(ok);
    // Raft messages flow independently of snapshots.
    a.t.send(vec![msg(1, 2, 1)]);
    assert_eq!(b.next_msg().await.index, 1);

    // A snapshot for a peer without URLs fails cleanly.
    a.t.send_snapshot(snap_msg(1, 5, 1), Box::new(VecSource(vec![1, 2, 3])));
    let ok = a
        .wait_for(|e| match e {
            Ev::SnapStatus(5, ok) => Some(ok),
            _ => None,
        })
        .await;
    assert!(!ok);
    a.t.stop().await;
    b.t.stop().await;
}

const CHUNK_FOR_TESTS: usize = super::snapshot::CHUNK;

/// Writes a whole hand-made snapshot transfer and returns the result byte.
fn raw_snapshot(addr: &str, body: &[u8], total: u64, crc: u32) -> Option<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let pre = Preamble {
        kind: Kind::Snapshot,
        from: 1,
        to: 2,
        cluster: 7,
    };
    s.write_all(&pre.encode()).unwrap();
    let mut reply = [0u8; 3];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0, 0, 0]);
    let mut out = Vec::new();
    wire::encode_message(&snap_msg(1, 2, 99), &mut out).unwrap();
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    for chunk in body.chunks(1000) {
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    s.write_all(&out).unwrap();
    let mut result = [0u8; 1];
    match s.read_exact(&mut result) {
        Ok(()) => Some(result[0]),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_snapshot_is_rejected() {
    let mut b = Node::start(2, 7).await;
    let addr = wire::peer_addr(&b.url).unwrap().0;
    let body = pseudo_random(5000);
    let good_crc = crc32c::crc32c(&body);
    let (a2, a3, a4) = (addr.clone(), addr.clone(), addr.clone());
    let (body2, body3, body4) = (body.clone(), body.clone(), body.clone());
    // A flipped bit, a wrong length, then (to prove the check is not blind) the real thing.
    let bad_crc =
        tokio::task::spawn_blocking(move || raw_snapshot(&a2, &body2, 5000, good_crc ^ 1));
    assert_eq!(bad_crc.await.unwrap(), Some(RESULT_CORRUPT));
    let bad_len = tokio::task::spawn_blocking(move || raw_snapshot(&a3, &body3, 4999, good_crc));
    assert_eq!(bad_len.await.unwrap(), Some(RESULT_CORRUPT));
    // The receiver answers only after deciding: nothing was delivered or left behind.
    assert!(b.rx.try_recv().is_err());
    let path = received_path(&b.snap_dir(), 2, 99);
    assert!(!path.exists());
    let names: Vec<_> = std::fs::read_dir(b.snap_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");

    let good = tokio::task::spawn_blocking(move || raw_snapshot(&a4, &body4, 5000, good_crc));
    assert_eq!(good.await.unwrap(), Some(0));
    let (_, p) = b
        .wait_for(|e| match e {
            Ev::Snap(m, p) => Some((m, p)),
            _ => None,
        })
        .await;
    assert_eq!(std::fs::read(p).unwrap(), body);
    b.t.stop().await;
}

#[tokio::test]
async fn members_query_answers_handler_bytes() {
    let b = Node::start(2, 7).await;
    let me = vec![JOINER_URL.to_string()];
    let urls = vec![dead_url().await, b.url.clone()];
    let got = fetch_members(&urls, &me, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got, b"members of 2");
    // Asked from URLs of no member waiting to join: refused with status 5.
    let err = fetch_members(
        &urls,
        &["http://127.0.0.1:10".to_string()],
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(err.contains("status 5"), "{err}");
    assert!(err.contains("waiting to join"), "{err}");
    let err = fetch_members(&[dead_url().await], &me, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("could not fetch"), "{err}");
    let err = fetch_members(
        &["https://127.0.0.1:1".to_string()],
        &me,
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    b.t.stop().await;
}

#[tokio::test]
async fn urls_can_change() {
    let a = Node::start(1, 7).await;
    let mut b = Node::start(2, 7).await;
    a.t.add_peer(2, vec![dead_url().await]);
    a.t.add_peer(2, vec![b.url.clone()]);
    let mut seq = 0;
    let m = send_until_received(&a, &mut b, &mut seq).await;
    assert_eq!(m.to, 2);
    a.t.remove_peer(2);
    assert!(a.t.active_since(2).is_none());
    a.t.stop().await;
    b.t.stop().await;
}

/// Counts raft messages; wakes the test at the target.
struct CountingHandler {
    count: std::sync::atomic::AtomicU64,
    target: u64,
    done: tokio::sync::Notify,
}

impl Handler for CountingHandler {
    fn on_message(&self, _m: Message) {
        let n = self
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n == self.target {
            self.done.notify_one();
        }
    }
    fn on_snapshot(&self, _m: Message, _db: PathBuf) -> Result<(), String> {
        Ok(())
    }
    fn on_unreachable(&self, _id: u64) {}
    fn on_peer_closed(&self, _id: u64) {}
    fn on_snapshot_status(&self, _to: u64, _ok: bool) {}
    fn members(&self, _peer_urls: &[String]) -> Option<Vec<u8>> {
        None
    }
    fn is_member(&self, _id: u64) -> bool {
        true
    }
    fn peer_urls(&self, _id: u64) -> Vec<String> {
        vec!["http://127.0.0.1:1".into()]
    }
    fn is_removed(&self, _id: u64) -> bool {
        false
    }
    fn on_removed(&self) {}
}

/// User + system CPU time of this process, from /proc (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Messages per second (and CPU per message, both ends together) through one connection:
/// `cargo test -p cairn-server --lib --release transport::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    const N: u64 = 2_000_000;
    const BATCH: u64 = 256;
    let a = Node::start(1, 7).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = Arc::new(CountingHandler {
        count: Default::default(),
        target: N + 1,
        done: tokio::sync::Notify::new(),
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = TransportConfig {
        local_id: 2,
        cluster_id: 7,
        snap_dir: dir.path().to_path_buf(),
        tls: None,
    };
    let b = Transport::start(cfg, vec![l], h.clone());
    a.t.add_peer(2, vec![url]);
    // One message first, so the stream is up before the clock starts.
    a.t.send(vec![msg(1, 2, 0)]);
    while a.t.active_since(2).is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut template = msg(1, 2, 0);
    template.mut_entries()[0].data = Bytes::from(vec![b'x'; 100]);
    let t = a.t.clone();
    let (wall, cpu) = (std::time::Instant::now(), cpu_time());
    // From a plain thread, as the raft loop does, in batches as a loop round would.
    let sender = std::thread::spawn(move || {
        let mut next = 1;
        while next <= N {
            let batch: Vec<_> = (next..next + BATCH)
                .map(|s| {
                    let mut m = template.clone();
                    m.index = s;
                    m
                })
                .collect();
            next += BATCH;
            t.send(batch);
            // Stay below the queue bound (raft paces a real loop).
            while t.inner.peers.read()[&2].tx.capacity() < 2 * BATCH as usize {
                std::thread::yield_now();
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(300), h.done.notified())
        .await
        .expect("messages lost");
    sender.join().unwrap();
    let secs = wall.elapsed().as_secs_f64();
    let cpu = cpu_time().zip(cpu).map(|(b, a)| (b - a).as_secs_f64());
    println!(
        "{N} raft messages (1 entry of 100 bytes) in {secs:.2}s: {:.0} msgs/s; CPU {}",
        N as f64 / secs,
        cpu.map(|c| format!("{:.2} us/msg (sender + receiver)", c * 1e6 / N as f64))
            .unwrap_or_default()
    );
    a.t.stop().await;
    b.stop().await;
}
