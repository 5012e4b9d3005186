//! The peer port trusts no one (issue 13): a raw TCP client speaks Cairn's peer protocol
//! (`CAIRNP01`, framing re-implemented here from `server/src/transport/mod.rs`) to the
//! members of a running 3-member cluster, claims various identities and sends forged raft
//! messages — a heartbeat committing far beyond the log, appends from a non-member or with
//! inconsistent indexes, a snapshot message without its file, a proposal that does not
//! decode, local-only message types — and answers a member's connection with "you were
//! removed" from a foreign cluster. Every member stays up and the cluster keeps serving
//! writes through each member. Also: the data directory's permissions (0700/0600, etcd's
//! warning for an existing wider directory).
//!
//! Nothing here asserts timing; waits are failure bounds.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::MemberAddOptions;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot};
use support::cluster::{Cluster, ClusterOpts};
use support::Impl;

const KIND_RAFT: u8 = 1;
const KIND_MEMBERS: u8 = 3;
const STATUS_OK: u8 = 0;
const STATUS_REMOVED: u8 = 3;
const STATUS_NOT_MEMBER: u8 = 5;

fn preamble(kind: u8, from: u64, to: u64, cluster: u64) -> Vec<u8> {
    let mut b = b"CAIRNP01".to_vec();
    b.push(kind);
    b.extend_from_slice(&from.to_be_bytes());
    b.extend_from_slice(&to.to_be_bytes());
    b.extend_from_slice(&cluster.to_be_bytes());
    b
}

fn read_reply(s: &mut TcpStream) -> (u8, String) {
    let mut head = [0u8; 3];
    s.read_exact(&mut head).expect("handshake reply");
    let mut reason = vec![0u8; u16::from_be_bytes([head[1], head[2]]) as usize];
    s.read_exact(&mut reason).expect("handshake reason");
    (head[0], String::from_utf8_lossy(&reason).into_owned())
}

/// Opens a raft stream to `port` claiming to be `from`; returns the reply status.
fn open_stream(port: u16, from: u64, to: u64, cluster: u64) -> (TcpStream, u8, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the peer port");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&preamble(KIND_RAFT, from, to, cluster))
        .unwrap();
    let (status, reason) = read_reply(&mut s);
    (s, status, reason)
}

fn send(s: &mut TcpStream, msgs: &[Message]) {
    let mut b = Vec::new();
    for m in msgs {
        let body = m.write_to_bytes().expect("encode");
        b.extend_from_slice(&(body.len() as u32).to_be_bytes());
        b.extend_from_slice(&body);
    }
    s.write_all(&b).expect("send frames");
}

fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Waits until member `i`'s log has `needle` at least `n` times.
fn wait_log(c: &Cluster, i: usize, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c.nodes[i].log().matches(needle).count();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {} logged {needle:?} {got} times, wanted {n}; log tail:\n{}",
            c.nodes[i].name,
            c.nodes[i].log_tail(60)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every member is running and accepts a write through its own client; the last write is
/// read back (linearizably) from every member.
async fn all_serve(c: &mut Cluster, round: &str) {
    for i in 0..c.nodes.len() {
        assert!(
            c.nodes[i].running(),
            "member {} stopped ({round}); log tail:\n{}",
            c.nodes[i].name,
            c.nodes[i].log_tail(60)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..c.nodes.len() {
        let key = format!("k-{round}-{i}");
        loop {
            let mut cl = c.client(i).await;
            match cl.put(key.as_str(), "v", None).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "member {} does not serve writes ({round}): {e}; log tail:\n{}",
                        c.nodes[i].name,
                        c.nodes[i].log_tail(60)
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let last = format!("k-{round}-{}", c.nodes.len() - 1);
    for i in 0..c.nodes.len() {
        let mut cl = c.client(i).await;
        let r = cl.get(last.as_str(), None).await.expect("linearizable get");
        assert_eq!(r.kvs().len(), 1, "member {} misses {last}", c.nodes[i].name);
    }
}

const DROPPED: &str = "dropping a raft message from a peer";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_peer_traffic_stops_no_member() {
    let opts = ClusterOpts {
        proxied: false,
        ..ClusterOpts::default()
    };
    let mut c = Cluster::start(Impl::Cairn, 3, opts).await;
    let l = c.wait_leader(None, Duration::from_secs(30)).await;
    let f = (0..3).find(|&i| i != l).unwrap();
    let (lid, fid) = (c.nodes[l].id, c.nodes[f].id);
    let status = c.client(f).await.status().await.expect("status");
    let cluster = status.header().expect("header").cluster_id();
    all_serve(&mut c, "before").await;
    let st = c.status(f).await.expect("follower status");
    let (term, last) = (st.term, st.raft_index);
    let fport = c.nodes[f].peer_port;

    // 1. Identities: a stranger, a foreign cluster, the member itself, another addressee.
    for (from, to, cl, want) in [
        (0xdead_beef, fid, cluster, STATUS_NOT_MEMBER),
        (fid, fid, cluster, STATUS_NOT_MEMBER),
        (lid, fid, cluster ^ 1, 1),
        (lid, lid, cluster, 2),
    ] {
        let (_, got, reason) = open_stream(fport, from, to, cl);
        assert_eq!(
            got, want,
            "from {from:x} to {to:x} cluster {cl:x}: {reason}"
        );
    }

    // A member's id claimed from an address that is not its peer URLs' host (127.0.0.2;
    // every member lives on 127.0.0.1): without a verified certificate, refused.
    {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap())
            .expect("bind 127.0.0.2 (loopback range)");
        let conn = sock
            .connect(([127, 0, 0, 1], fport).into())
            .await
            .expect("connect from 127.0.0.2");
        let mut s = conn.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&preamble(KIND_RAFT, lid, fid, cluster))
            .unwrap();
        let (got, reason) = read_reply(&mut s);
        assert_eq!(got, STATUS_NOT_MEMBER, "{reason}");
        assert!(reason.contains("127.0.0.2"), "{reason}");
    }

    // 2. As the leader (a member, from its host, without TLS the claim is believed):
    // crafted messages.
    let (mut s, got, reason) = open_stream(fport, lid, fid, cluster);
    assert_eq!(got, STATUS_OK, "{reason}");
    let mut hb = msg(MessageType::MsgHeartbeat, lid, fid, term);
    hb.commit = last + 1_000_000;
    // An append whose entries skip indexes and whose commit runs past them.
    let mut app = msg(MessageType::MsgAppend, lid, fid, term);
    app.index = last;
    app.log_term = term;
    app.commit = last + 50;
    app.set_entries(
        vec![
            Entry {
                index: last + 5,
                term,
                ..Default::default()
            },
            Entry {
                index: last + 2,
                term,
                ..Default::default()
            },
        ]
        .into(),
    );
    // A snapshot far ahead, on the raft stream (no backend file comes with it).
    let mut snap = msg(MessageType::MsgSnapshot, lid, fid, term);
    let mut sn = Snapshot::default();
    sn.set_data(b"cairn-backend-v1".to_vec().into());
    sn.mut_metadata().index = last + 1_000;
    sn.mut_metadata().term = term;
    let mut cs = ConfState::default();
    cs.set_voters((0..3).map(|i| c.nodes[i].id).collect());
    sn.mut_metadata().set_conf_state(cs);
    snap.set_snapshot(sn);
    // A proposal that does not decode (it would be committed and stop every member).
    let mut prop = msg(MessageType::MsgPropose, lid, fid, 0);
    prop.set_entries(
        vec![Entry {
            data: b"\xff\xfe not a request".to_vec().into(),
            ..Default::default()
        }]
        .into(),
    );
    let hup = msg(MessageType::MsgHup, lid, fid, term);
    let empty_read = msg(MessageType::MsgReadIndex, lid, fid, 0);
    let forged = [hb, app, snap, prop, hup, empty_read];
    send(&mut s, &forged);
    // MsgHup is refused by raft-rs itself (StepLocalMsg); the other five by the guard.
    wait_log(&c, f, DROPPED, 5);
    // A message from a non-member on a member's stream: dropped by the transport.
    let mut stranger = msg(MessageType::MsgHeartbeat, 0xdead_beef, fid, term);
    stranger.commit = u64::MAX;
    send(&mut s, &[stranger]);
    wait_log(&c, f, "differs from its stream's", 1);
    drop(s);

    // The same at the leader, as the follower: an append response past the leader's log
    // and an empty read index.
    let lport = c.nodes[l].peer_port;
    let (mut s, got, reason) = open_stream(lport, fid, lid, cluster);
    assert_eq!(got, STATUS_OK, "{reason}");
    let lst = c.status(l).await.expect("leader status");
    let mut resp = msg(MessageType::MsgAppendResponse, fid, lid, lst.term);
    resp.index = lst.raft_index + 1_000_000;
    let mut rej = msg(MessageType::MsgAppendResponse, fid, lid, lst.term);
    rej.reject = true;
    rej.index = lst.raft_index;
    rej.reject_hint = u64::MAX;
    let empty_read = msg(MessageType::MsgReadIndex, fid, lid, 0);
    let mut empty_prop = msg(MessageType::MsgPropose, fid, lid, 0);
    empty_prop.clear_entries();
    send(&mut s, &[resp, rej, empty_read, empty_prop]);
    wait_log(&c, l, DROPPED, 4);
    drop(s);
    all_serve(&mut c, "forged-messages").await;

    // 3. A members query from URLs of no member waiting to join: refused.
    let mut q = TcpStream::connect(("127.0.0.1", fport)).unwrap();
    q.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let urls = br#"["http://127.0.0.1:1"]"#;
    let mut b = preamble(KIND_MEMBERS, 0, 0, 0);
    b.extend_from_slice(&(urls.len() as u32).to_be_bytes());
    b.extend_from_slice(urls);
    q.write_all(&b).unwrap();
    let (got, reason) = read_reply(&mut q);
    assert_eq!(got, STATUS_NOT_MEMBER, "{reason}");

    // 4. "You were removed" from outside the cluster: a learner is added at a fake peer
    // URL, and every member dialing it is told it was removed — by another cluster's member,
    // or by a member of ours that is not the one dialed.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_url = format!("http://{}", fake.local_addr().unwrap());
    let seen: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
    let seen2 = seen.clone();
    let real_cluster = cluster;
    std::thread::spawn(move || {
        for conn in fake.incoming() {
            let Ok(mut s) = conn else { return };
            let mut pre = [0u8; 33];
            if s.read_exact(&mut pre).is_err() {
                continue;
            }
            let from = u64::from_be_bytes(pre[9..17].try_into().unwrap());
            let n = {
                let mut g = seen2.lock().unwrap();
                let e = g.entry(from).or_default();
                *e += 1;
                *e
            };
            let (member, cl) = if n % 2 == 1 {
                (0x1234, real_cluster ^ 0xffff)
            } else {
                (from, real_cluster)
            };
            let reason = b"the member has been permanently removed from the cluster";
            let mut r = vec![STATUS_REMOVED];
            r.extend_from_slice(&(reason.len() as u16).to_be_bytes());
            r.extend_from_slice(reason);
            r.extend_from_slice(&member.to_be_bytes());
            r.extend_from_slice(&cl.to_be_bytes());
            let _ = s.write_all(&r);
        }
    });
    let mut cl = c.client(l).await;
    let added = cl
        .member_add(
            [fake_url.clone()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect("member add");
    let learner = added.member().expect("added member").id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let g = seen.lock().unwrap();
            (0..3).all(|i| g.get(&c.nodes[i].id).copied().unwrap_or(0) >= 2)
        };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every member dialed the fake learner twice: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..3 {
        wait_log(&c, i, "answer from outside this cluster", 1);
    }
    all_serve(&mut c, "removed-answers").await;
    let mut cl = c.client(l).await;
    cl.member_remove(learner)
        .await
        .expect("remove the fake learner");
    all_serve(&mut c, "after").await;
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn data_dir_is_private_and_a_wider_one_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let fresh = t.path().join("fresh");
    let mut m = support::Member::start(Impl::Cairn, "fresh", &fresh, &[]);
    // Write something so the WAL and the backend have content.
    let out = support::etcdctl(support::Ctl::V351, &m.endpoint(), &["put", "k", "v"], b"");
    assert_eq!(
        out.code,
        Some(0),
        "put through the member failed: {}",
        out.stderr
    );
    m.stop();
    assert_eq!(mode(&fresh), 0o700);
    let mut files = 0;
    let mut stack = vec![fresh.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                files += 1;
            }
        }
    }
    assert!(
        files >= 2,
        "expected the WAL and the backend under {}",
        fresh.display()
    );

    let wide = t.path().join("wide");
    std::fs::create_dir(&wide).unwrap();
    std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut m = support::Member::start(Impl::Cairn, "wide", &wide, &[]);
    m.stop();
    let log = std::fs::read_to_string(wide.with_extension("log")).unwrap();
    let want = format!(
        "directory \\\"{}\\\" exist, but the permission is \\\"drwxr-xr-x\\\". The recommended \
         permission is \\\"-rwx------\\\" to prevent possible unprivileged access to the data",
        wide.display()
    );
    let line = log
        .lines()
        .find(|l| l.contains("check file permission"))
        .unwrap_or_else(|| panic!("no permission warning in:\n{log}"));
    assert!(
        line.contains(&want) || line.contains(&want.replace("\\\"", "\"")),
        "{line}"
    );
    // etcd 3.5 only warns: the directory keeps its permissions, the member served.
    assert_eq!(mode(&wide), 0o755);
    assert!(wide.join("member/wal").is_dir());
}
