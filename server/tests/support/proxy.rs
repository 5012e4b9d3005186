//! A TCP proxy between cluster peers that the test controls (partitions, delay).
//!
//! One [`PeerProxy`] listens in front of each member's real peer listener; the member
//! advertises the proxy's URL, so every peer connection *to* that member passes through it.
//! All proxies of a cluster share one [`Partition`], the switchboard the test flips.
//!
//! Each accepted connection is classified by its first bytes:
//! - Cairn's peer preamble (`b"CAIRNP01"`, kind u8, from/to/cluster u64 BE): the directed
//!   pair is `from → to` (a members query has no ids: `to` is the proxy's target member, if
//!   known, and `from` is unknown);
//! - anything else is forwarded as is ("dumb pipe"). For HTTP (etcd's rafthttp) the first
//!   request head is read to learn the dialer (`X-Server-From`, hex id) and the target
//!   (`X-Raft-To`); because etcd streams flow against the dial direction, such a connection
//!   is cut when EITHER direction between the two members is blocked.
//!
//! A blocked pair's live connections are shut down at once and new ones are closed right
//! after their preamble is read, so a blocked peer sees connection failures, as with a real
//! network partition that resets connections. Unknown ends never match a block, except that a
//! connection to (or from) an isolated member is always refused.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The first 8 bytes of every Cairn peer connection.
pub const MAGIC: &[u8; 8] = b"CAIRNP01";
/// The request line of etcd's snapshot transfer (rafthttp).
const HTTP_SNAPSHOT: &[u8] = b"POST /raft/snapshot";
/// Length of Cairn's peer preamble.
pub const PREAMBLE_LEN: usize = 33;

/// What the proxy learned about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Cairn preamble with its kind (1 raft, 2 snapshot, 3 members query).
    Cairn(u8),
    /// An HTTP request (etcd rafthttp or a plain probe).
    Http,
    /// Neither: forwarded without inspection.
    Opaque,
}

struct Conn {
    serial: u64,
    proxy: u64,
    from: Option<u64>,
    to: Option<u64>,
    flavor: Flavor,
    streams: [TcpStream; 2],
}

#[derive(Default)]
struct State {
    blocked: HashSet<(u64, u64)>,
    isolated: HashSet<u64>,
    delay: Duration,
    conns: Vec<Conn>,
    serial: u64,
    /// Connections refused or cut since creation (for test diagnostics).
    refused: u64,
    cut: u64,
    /// Snapshot streams seen (Cairn kind 2, or etcd's `POST /raft/snapshot`).
    snapshots: u64,
}

/// The shared switchboard of a cluster's proxies. Cheap to clone.
#[derive(Clone, Default)]
pub struct Partition {
    st: Arc<Mutex<State>>,
}

impl Partition {
    pub fn new() -> Partition {
        Partition::default()
    }

    /// Blocks messages from `from` to `to` (one direction).
    pub fn block(&self, from: u64, to: u64) {
        let mut st = self.st.lock().unwrap();
        st.blocked.insert((from, to));
        cut_disallowed(&mut st);
    }

    /// Blocks both directions between `a` and `b`.
    pub fn block_both(&self, a: u64, b: u64) {
        let mut st = self.st.lock().unwrap();
        st.blocked.insert((a, b));
        st.blocked.insert((b, a));
        cut_disallowed(&mut st);
    }

    /// Cuts `id` from everyone, both directions.
    pub fn isolate(&self, id: u64) {
        let mut st = self.st.lock().unwrap();
        st.isolated.insert(id);
        cut_disallowed(&mut st);
    }

    /// Removes every block and isolation (the delay stays).
    pub fn heal(&self) {
        let mut st = self.st.lock().unwrap();
        st.blocked.clear();
        st.isolated.clear();
    }

    /// Delays every forwarded chunk by `d` (zero: no delay).
    pub fn set_delay(&self, d: Duration) {
        self.st.lock().unwrap().delay = d;
    }

    /// Whether a connection `from → to` may pass now.
    pub fn allowed(&self, from: Option<u64>, to: Option<u64>) -> bool {
        allowed(&self.st.lock().unwrap(), from, to, Flavor::Opaque)
    }

    /// Live connections as (from, to, flavor), for diagnostics.
    pub fn connections(&self) -> Vec<(Option<u64>, Option<u64>, Flavor)> {
        let st = self.st.lock().unwrap();
        st.conns.iter().map(|c| (c.from, c.to, c.flavor)).collect()
    }

    /// (connections refused at accept, live connections cut) so far.
    pub fn counters(&self) -> (u64, u64) {
        let st = self.st.lock().unwrap();
        (st.refused, st.cut)
    }

    /// Snapshot streams that passed through the proxies so far (Cairn kind 2 connections, or
    /// etcd's `POST /raft/snapshot` requests).
    pub fn snapshot_streams(&self) -> u64 {
        self.st.lock().unwrap().snapshots
    }

    fn delay(&self) -> Duration {
        self.st.lock().unwrap().delay
    }

    /// Registers a connection, or refuses it (false) if its pair is blocked.
    fn register(&self, c: Conn) -> Option<u64> {
        let mut st = self.st.lock().unwrap();
        if !allowed(&st, c.from, c.to, c.flavor) {
            st.refused += 1;
            return None;
        }
        st.serial += 1;
        let serial = st.serial;
        st.conns.push(Conn { serial, ..c });
        Some(serial)
    }

    fn unregister(&self, serial: u64) {
        let mut st = self.st.lock().unwrap();
        st.conns.retain(|c| c.serial != serial);
    }

    fn close_proxy(&self, proxy: u64) {
        let mut st = self.st.lock().unwrap();
        st.conns.retain(|c| {
            if c.proxy == proxy {
                for s in &c.streams {
                    let _ = s.shutdown(Shutdown::Both);
                }
                false
            } else {
                true
            }
        });
    }
}

fn pair_blocked(st: &State, from: u64, to: u64) -> bool {
    st.blocked.contains(&(from, to))
}

fn allowed(st: &State, from: Option<u64>, to: Option<u64>, flavor: Flavor) -> bool {
    for id in [from, to].into_iter().flatten() {
        if st.isolated.contains(&id) {
            return false;
        }
    }
    match (from, to) {
        (Some(f), Some(t)) => {
            if pair_blocked(st, f, t) {
                return false;
            }
            // HTTP streams carry data against the dial direction.
            !(flavor == Flavor::Http && pair_blocked(st, t, f))
        }
        _ => true,
    }
}

fn cut_disallowed(st: &mut State) {
    let mut cut = 0;
    let conns = std::mem::take(&mut st.conns);
    let mut keep = Vec::with_capacity(conns.len());
    for c in conns {
        if allowed(st, c.from, c.to, c.flavor) {
            keep.push(c);
        } else {
            for s in &c.streams {
                let _ = s.shutdown(Shutdown::Both);
            }
            cut += 1;
        }
    }
    st.conns = keep;
    st.cut += cut;
}

static PROXY_SERIAL: AtomicU64 = AtomicU64::new(1);

/// One proxy listener in front of one member's peer port. Stops (and cuts its connections)
/// on drop.
pub struct PeerProxy {
    serial: u64,
    port: u16,
    target: SocketAddr,
    target_id: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    partition: Partition,
    thread: Option<JoinHandle<()>>,
}

impl PeerProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `target` (the member's real peer
    /// listener).
    pub fn start(target: SocketAddr, partition: Partition) -> PeerProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        Self::start_on(l, target, partition)
    }

    /// Like [`PeerProxy::start`] on an already bound listener.
    pub fn start_on(l: TcpListener, target: SocketAddr, partition: Partition) -> PeerProxy {
        let port = l.local_addr().expect("proxy addr").port();
        l.set_nonblocking(true).expect("nonblocking listener");
        let serial = PROXY_SERIAL.fetch_add(1, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let target_id = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let partition = partition.clone();
            let target_id = target_id.clone();
            std::thread::Builder::new()
                .name(format!("proxy-{port}"))
                .spawn(move || accept_loop(l, target, serial, target_id, stop, partition))
                .expect("spawn proxy")
        };
        PeerProxy {
            serial,
            port,
            target,
            target_id,
            stop,
            partition,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The member id behind this proxy (used when a connection does not name its target).
    pub fn set_target_id(&self, id: u64) {
        self.target_id.store(id, Ordering::Relaxed);
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.partition.close_proxy(self.serial);
    }
}

fn accept_loop(
    l: TcpListener,
    target: SocketAddr,
    serial: u64,
    target_id: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    partition: Partition,
) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                let partition = partition.clone();
                let tid = target_id.load(Ordering::Relaxed);
                let stop = stop.clone();
                let _ = std::thread::Builder::new()
                    .name("proxy-conn".into())
                    .spawn(move || handle(s, target, serial, tid, stop, partition));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads until `buf` holds `n` bytes, EOF, or the deadline.
fn read_at_least(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize, deadline: Instant) -> bool {
    let mut tmp = [0u8; 4096];
    while buf.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut tmp) {
            Ok(0) => return false,
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn classify(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    target_id: u64,
) -> (Flavor, Option<u64>, Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let known_target = (target_id != 0).then_some(target_id);
    if !read_at_least(s, buf, MAGIC.len(), deadline) {
        return (Flavor::Opaque, None, known_target);
    }
    if &buf[..MAGIC.len()] == MAGIC {
        if !read_at_least(s, buf, PREAMBLE_LEN, deadline) {
            return (Flavor::Opaque, None, known_target);
        }
        let kind = buf[8];
        let from = u64::from_be_bytes(buf[9..17].try_into().unwrap());
        let to = u64::from_be_bytes(buf[17..25].try_into().unwrap());
        let from = (from != 0).then_some(from);
        let to = if to != 0 { Some(to) } else { known_target };
        return (Flavor::Cairn(kind), from, to);
    }
    let methods: [&[u8]; 4] = [b"GET ", b"POST", b"PUT ", b"HEAD"];
    if !methods.iter().any(|m| buf.starts_with(m)) {
        return (Flavor::Opaque, None, known_target);
    }
    // An HTTP request: read its head.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        let want = buf.len() + 1;
        if !read_at_least(s, buf, want, deadline) {
            break;
        }
    }
    let text = String::from_utf8_lossy(buf).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let hex = |v: Option<&str>| v.and_then(|v| u64::from_str_radix(v, 16).ok());
    let from = hex(header_value(head, "X-Server-From"));
    let to = hex(header_value(head, "X-Raft-To")).or(known_target);
    (Flavor::Http, from, to)
}

fn handle(
    mut client: TcpStream,
    target: SocketAddr,
    proxy: u64,
    target_id: u64,
    stop: Arc<AtomicBool>,
    partition: Partition,
) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let mut first = Vec::new();
    let (flavor, from, to) = classify(&mut client, &mut first, target_id);
    let _ = client.set_read_timeout(None);
    if stop.load(Ordering::Relaxed) || !partition.allowed_for(from, to, flavor) {
        partition.st.lock().unwrap().refused += 1;
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if flavor == Flavor::Cairn(2) {
        partition.st.lock().unwrap().snapshots += 1;
    }
    if flavor == Flavor::Http {
        // Later requests on the connection are seen by `pump`.
        let hits = first
            .windows(HTTP_SNAPSHOT.len())
            .filter(|w| *w == HTTP_SNAPSHOT)
            .count();
        partition.st.lock().unwrap().snapshots += hits as u64;
    }
    let Ok(mut server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = server.set_nodelay(true);
    if server.write_all(&first).is_err() {
        return;
    }
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let Some(serial) = partition.register(Conn {
        serial: 0,
        proxy,
        from,
        to,
        flavor,
        streams: [c2, s2],
    }) else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) else {
        partition.unregister(serial);
        return;
    };
    let p2 = partition.clone();
    let back = std::thread::spawn(move || pump(s3, c3, &p2, false));
    // etcd may send its snapshot POST on a kept-alive connection: look at every request.
    pump(client, server, &partition, flavor == Flavor::Http);
    let _ = back.join();
    partition.unregister(serial);
}

impl Partition {
    fn allowed_for(&self, from: Option<u64>, to: Option<u64>, flavor: Flavor) -> bool {
        allowed(&self.st.lock().unwrap(), from, to, flavor)
    }
}

/// Copies `src` to `dst` until either side closes; then shuts both down.
fn pump(mut src: TcpStream, mut dst: TcpStream, partition: &Partition, sniff_http: bool) {
    const SNAP: &[u8] = HTTP_SNAPSHOT;
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a request line split across reads is still seen.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if sniff_http {
                    carry.extend_from_slice(&buf[..n]);
                    let hits = carry.windows(SNAP.len()).filter(|w| *w == SNAP).count();
                    if hits > 0 {
                        partition.st.lock().unwrap().snapshots += hits as u64;
                    }
                    let keep = carry.len().saturating_sub(SNAP.len() - 1);
                    carry.drain(..keep);
                }
                let d = partition.delay();
                if !d.is_zero() {
                    std::thread::sleep(d);
                }
                if dst.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = src.shutdown(Shutdown::Both);
    let _ = dst.shutdown(Shutdown::Both);
}
