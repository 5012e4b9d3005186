//! The partition proxy used by the cluster tests, on its own: a plain TCP echo server stands
//! in for a member's peer listener. Checks that pairs are learned from Cairn's preamble and
//! from etcd's rafthttp headers, that block/isolate cut live connections and refuse new ones,
//! and that heal restores traffic.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use support::proxy::{Partition, PeerProxy, MAGIC};

/// An echo server on 127.0.0.1; returns its address.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn preamble(from: u64, to: u64) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.push(1);
    p.extend_from_slice(&from.to_be_bytes());
    p.extend_from_slice(&to.to_be_bytes());
    p.extend_from_slice(&7u64.to_be_bytes());
    assert_eq!(p.len(), 33);
    p
}

fn connect(proxy: &PeerProxy, first: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(first).unwrap();
    s
}

/// Reads exactly `n` bytes, or None if the connection closed or failed first.
fn read_n(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).ok().map(|_| buf)
}

/// Whether a round trip of `msg` through the connection still works.
fn round_trip(s: &mut TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    read_n(s, msg.len()).as_deref() == Some(msg)
}

#[test]
fn cairn_preamble_pairs_block_isolate_heal() {
    let target = echo_server();
    let part = Partition::new();
    let proxy = PeerProxy::start(target, part.clone());

    // The preamble is forwarded unchanged (the echo returns it), then bytes flow both ways.
    let mut a = connect(&proxy, &preamble(1, 2));
    assert_eq!(read_n(&mut a, 33), Some(preamble(1, 2)));
    assert!(round_trip(&mut a, b"hello"));
    let mut b = connect(&proxy, &preamble(3, 2));
    assert_eq!(read_n(&mut b, 33), Some(preamble(3, 2)));

    // Blocking the reverse direction does not touch 1 -> 2.
    part.block(2, 1);
    assert!(round_trip(&mut a, b"still"));
    // Blocking 1 -> 2 cuts the live connection, and only that one.
    part.block(1, 2);
    assert!(!round_trip(&mut a, b"cut"));
    assert!(round_trip(&mut b, b"other pair"));
    // A new 1 -> 2 connection is closed after its preamble.
    let mut c = connect(&proxy, &preamble(1, 2));
    assert_eq!(read_n(&mut c, 33), None);

    // Isolating 3 cuts 3 -> 2.
    part.isolate(3);
    assert!(!round_trip(&mut b, b"isolated"));
    let (refused, cut) = part.counters();
    assert!(refused >= 1 && cut >= 2, "refused {refused}, cut {cut}");

    part.heal();
    let mut d = connect(&proxy, &preamble(1, 2));
    assert_eq!(read_n(&mut d, 33), Some(preamble(1, 2)));
    assert!(round_trip(&mut d, b"healed"));
    let mut e = connect(&proxy, &preamble(3, 2));
    assert_eq!(read_n(&mut e, 33), Some(preamble(3, 2)));
}

#[test]
fn http_peers_learned_from_rafthttp_headers() {
    let target = echo_server();
    let part = Partition::new();
    let proxy = PeerProxy::start(target, part.clone());
    proxy.set_target_id(0xb);
    let req = b"GET /raft/stream/message/a HTTP/1.1\r\nHost: x\r\nX-Server-From: a\r\nX-Raft-To: b\r\n\r\n";

    let mut s = connect(&proxy, req);
    assert_eq!(read_n(&mut s, req.len()).as_deref(), Some(&req[..]));
    // An HTTP stream carries data against its dial direction: blocking b -> a cuts it too.
    part.block(0xb, 0xa);
    assert!(!round_trip(&mut s, b"x"));
    part.heal();

    // A plain request without ids is forwarded unless its target is isolated.
    let plain = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut p = connect(&proxy, plain);
    assert_eq!(read_n(&mut p, plain.len()).as_deref(), Some(&plain[..]));
    part.isolate(0xb);
    assert!(!round_trip(&mut p, b"y"));
    let mut q = connect(&proxy, plain);
    assert_eq!(read_n(&mut q, plain.len()), None);

    // etcd's snapshot transfer is counted.
    part.heal();
    let snap = b"POST /raft/snapshot HTTP/1.1\r\nHost: x\r\nX-Server-From: a\r\n\r\n";
    let mut r = connect(&proxy, snap);
    assert_eq!(read_n(&mut r, snap.len()).as_deref(), Some(&snap[..]));
    assert_eq!(part.snapshot_streams(), 1);
}

#[test]
fn unknown_bytes_are_a_plain_pipe() {
    let target = echo_server();
    let part = Partition::new();
    let proxy = PeerProxy::start(target, part.clone());
    let mut s = connect(&proxy, b"\x00\x01binary stuff");
    assert_eq!(
        read_n(&mut s, 14).as_deref(),
        Some(&b"\x00\x01binary stuff"[..])
    );
    part.isolate(42);
    assert!(round_trip(&mut s, b"unaffected"));
}
