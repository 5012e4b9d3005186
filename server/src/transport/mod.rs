//! Member-to-member transport: raft messages and snapshots between members, over Cairn's
//! own protocol on TCP, or on TLS over TCP for https peer URLs and listeners ([`PeerTls`]:
//! the TLS session is set up right after connect/accept, under its own deadline, and the
//! protocol below runs unchanged inside it; see `stream.rs`).
//!
//! # Shape
//! - One long-lived outgoing connection per (local → peer) pair carries raft messages in
//!   one direction only; the peer's messages to us come on the connection it opens. Each
//!   peer has a bounded queue ([`PEER_QUEUE`] messages) filled by [`Transport::send`]
//!   with `try_send`, so a slow or dead peer never blocks the raft loop: on overflow the
//!   messages are dropped and [`Handler::on_unreachable`] is reported. A writer task per
//!   peer takes everything queued, encodes it into one buffer and writes it with one
//!   `write_all` (`TCP_NODELAY` is set), then reconnects with backoff (50 ms doubling to
//!   1 s) when the connection breaks. While it is disconnected, queued messages are
//!   dropped (raft resends) so a reconnect never delivers stale traffic in bulk.
//! - Snapshots travel on their own short-lived connection, so a large backend file never
//!   delays heartbeats. The file is streamed in 1 MiB chunks from
//!   [`SnapshotSource::write_to`] (on a blocking thread) and checked with CRC32C; the
//!   receiver writes `snap_dir/<to>-<index>.snap.db.tmp`, fsyncs it, renames it to
//!   `<to>-<index>.snap.db`, fsyncs the directory and only then calls
//!   [`Handler::on_snapshot`]. The file then belongs to the handler (it installs and
//!   removes it).
//! - A members query answers [`Handler::members`] to a member that is still joining.
//!
//! # Trust
//! Nothing on the peer port is trusted by default. A raft stream or a snapshot is accepted
//! only from a current member ([`Handler::is_member`]) of our cluster, addressed to us,
//! and every message on it must be from that member and to us; the raft loop then checks
//! each message against its state before raft-rs sees it (`raft/guard.rs`). A connection
//! proves who it is with a certificate verified against `--peer-trusted-ca-file` (mutual
//! TLS); any other connection (plain http, or TLS without a CA) must come from an address
//! of the claimed member's recorded peer URLs (hosts resolved), so the claimed id is at
//! least tied to where that member lives. A members query is answered only to a member
//! that was added and has not started yet (its peer URLs, from one of their hosts), and a
//! "removed" answer is believed only when it names the member we dialed and our cluster.
//!
//! Handler methods are called from tokio tasks or blocking threads of the runtime that
//! started the transport, never from inside `send`/`send_snapshot`.
//!
//! # Wire protocol (version `CAIRNP01`)
//! All integers are big-endian. Every connection is opened by the sender and starts with
//! a 33-byte preamble:
//! ```text
//! magic   [u8; 8]  b"CAIRNP01"
//! kind    u8       1 = raft message stream, 2 = snapshot, 3 = members query
//! from    u64      sender member id (0 in a members query from a member without an id)
//! to      u64      addressed member id (0 in a members query)
//! cluster u64      sender's cluster id (0 in a members query)
//! ```
//! The receiver answers `status u8` + `len u16` + `len` bytes of UTF-8 reason (empty when
//! the status is 0) and closes the connection on a non-zero status:
//! ```text
//! 0  OK
//! 1  cluster id mismatch        ("cluster ID mismatch: ...")
//! 2  not the addressed member   (`to` is not the receiver's member id)
//! 3  sender removed             ("the member has been permanently removed from the cluster")
//! 4  bad preamble               (unknown magic or kind)
//! 5  not a member               (`from` is not a current member, or is the receiver; a
//!                                members query from URLs of no member waiting to join)
//! ```
//! Checks are made in that order: magic and kind, then (kinds 1 and 2 only) the cluster
//! id, `to`, whether `from` was removed, whether `from` is a current member other than
//! the receiver. A status 3 reply is followed by `member u64` + `cluster u64`: the
//! refusing member's id and cluster id. A sender told 3 calls [`Handler::on_removed`]
//! only when those are the member it dialed and its own cluster id (a refusal from
//! elsewhere is logged and treated like any failed connection).
//!
//! A members query (kind 3) ignores the preamble's ids; right after the preamble the
//! asker writes one frame (at most 64 KiB) holding the JSON array of its advertised peer
//! URLs, and the receiver answers 0 only when [`Handler::members`] accepts them, 5
//! otherwise.
//!
//! A *frame* is `len u32` + `len` bytes (at most 512 MiB).
//!
//! **Kind 1, raft stream.** After status 0 the sender writes frames, each holding one
//! `raft::eraftpb::Message` in rust-protobuf encoding, in send order, until it closes.
//! Nothing flows back; the receiver delivers each message to [`Handler::on_message`]
//! (a message whose `from` differs from the preamble's or whose `to` is not the receiver
//! is dropped; the stream is closed once the sender is no longer a member).
//!
//! **Kind 2, snapshot.** After status 0:
//! ```text
//! frame    the MsgSnapshot raft message (rust-protobuf)
//! size     u64      file size announced by the source (a hint)
//! chunk*   len u32 (1..=16 MiB) + len bytes of the backend file, in order (1 MiB sent)
//! end      u32 = 0
//! total    u64      number of file bytes sent
//! crc      u32      CRC32C (Castagnoli) of all file bytes
//! ```
//! The receiver checks `total` and `crc`, fsyncs and renames the file, calls
//! [`Handler::on_snapshot`] and answers one result byte: 0 stored and delivered,
//! 1 rejected (length or CRC mismatch, malformed stream, a message that is not a
//! MsgSnapshot, is addressed to another member or is not from the connection's member, the
//! same file already being received, a file [`Handler::on_snapshot`] refuses),
//! 2 the receiver could not store it. A broken connection delivers nothing and leaves no
//! file. The sender reports the outcome with [`Handler::on_snapshot_status`].
//!
//! **Kind 3, members query.** After status 0 the receiver writes one frame holding the
//! opaque bytes of [`Handler::members`] and closes.
//!
//! **TLS.** On an https listener every connection starts with a TLS handshake (10 s
//! deadline, in the connection's task); a dialer uses TLS for `https://` URLs. With a peer
//! CA, both sides verify the other's certificate (the dialer presents its peer certificate
//! as a client certificate) and `--peer-cert-allowed-cn`/`-hostname` are applied; a
//! refused certificate fails the handshake, before any preamble is read.
//!
//! **Timeouts.** Dial 2 s (TLS handshake 5 s); preamble and reply 5 s each; a raft batch write 5 s (a peer
//! that stopped reading is disconnected); each snapshot read or write 30 s, the final
//! result byte 300 s (the receiver fsyncs first).

mod listener;
mod peer;
mod snapshot;
mod stream;
mod wire;

pub(crate) use stream::PeerTls;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Messages queued per peer before `send` starts dropping.
pub(crate) const PEER_QUEUE: usize = 4096;
/// First reconnect delay; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Dialing a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting for the handshake (preamble or reply); also bounds a dialed TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An accepted connection's TLS handshake (etcd's 10 s): a peer that opens TCP and never
/// finishes it is dropped, off the accept loop.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A batch write (at most 4 MiB) not finished in this long breaks the connection (a peer
/// that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Any single read or write of a snapshot transfer.
const SNAPSHOT_IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Waiting for the receiver to fsync a snapshot file and answer.
const SNAPSHOT_RESULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Repeated failures to reach a peer are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// What the transport delivers to (and asks of) the member.
pub(crate) trait Handler: Send + Sync + 'static {
    /// A raft message from a peer's stream.
    fn on_message(&self, m: Message);
    /// A snapshot message whose backend file is fully received and fsynced at `db`; `Err`
    /// rejects the file (it is removed and the sender told 1). Called on a blocking thread.
    fn on_snapshot(&self, m: Message, db: PathBuf) -> Result<(), String>;
    /// The connection to peer `id` failed or broke, or its queue overflowed.
    fn on_unreachable(&self, id: u64);
    /// Peer `id` closed our stream to it (end of file or reset): its process stopped,
    /// crashed or restarted. Called after [`Handler::on_unreachable`]. A peer that is only
    /// cut off by the network is silent instead, and never reported here.
    fn on_peer_closed(&self, id: u64);
    /// Outcome of a snapshot we sent to `to`.
    fn on_snapshot_status(&self, to: u64, ok: bool);
    /// The answer to a members query from a member joining at `peer_urls` (opaque to the
    /// transport); `None` refuses the query (status 5).
    fn members(&self, peer_urls: &[String]) -> Option<Vec<u8>>;
    /// Whether `id` was removed from the cluster (its connections are refused with status 3).
    fn is_removed(&self, id: u64) -> bool;
    /// Whether `id` is a current member of the cluster (only members' raft streams and
    /// snapshots are accepted; others are refused with status 5).
    fn is_member(&self, id: u64) -> bool;
    /// The peer URLs recorded for member `id` (empty when unknown). A connection that did
    /// not prove who it is with a CA-verified certificate must come from one of their
    /// hosts.
    fn peer_urls(&self, id: u64) -> Vec<String>;
    /// A member of our cluster told us we were removed from it (status 3). May be called
    /// more than once.
    fn on_removed(&self);
}

/// Something that can write a backend file (a pinned engine read transaction).
pub(crate) trait SnapshotSource: Send + 'static {
    /// Size of the file `write_to` will write.
    fn size(&self) -> u64;
    /// Writes the whole file; blocking (called in `spawn_blocking`).
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<u64>;
}

/// Settings of a [`Transport`].
pub(crate) struct TransportConfig {
    pub local_id: u64,
    pub cluster_id: u64,
    /// Where received snapshot files are written.
    pub snap_dir: PathBuf,
    /// TLS for https listeners and https peer URLs (`None`: http only).
    pub tls: Option<PeerTls>,
}

/// A peer listener, and whether it is https (TLS with [`TransportConfig::tls`]).
pub(crate) struct PeerListener {
    pub tcp: tokio::net::TcpListener,
    pub https: bool,
}

impl From<tokio::net::TcpListener> for PeerListener {
    fn from(tcp: tokio::net::TcpListener) -> Self {
        PeerListener { tcp, https: false }
    }
}

/// Errors of the transport's connections.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("peer URL {url:?}: {why}")]
    Url { url: String, why: &'static str },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("refused by the peer (status {status}): {reason}")]
    Refused { status: u8, reason: String },
    #[error("raft message encoding: {0}")]
    Codec(protobuf::ProtobufError),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("no URL known for peer {0:x}")]
    UnknownPeer(u64),
    #[error(
        "refused by member {member:x} of cluster {cluster:x}: {}",
        wire::REASON_REMOVED
    )]
    Removed { member: u64, cluster: u64 },
    #[error("snapshot rejected by the peer (result {0})")]
    SnapshotRejected(u8),
}

/// Raft messages and snapshots to and from the other members.
#[derive(Clone)]
pub(crate) struct Transport {
    inner: Arc<Inner>,
}

/// State shared by the transport's tasks.
pub(crate) struct Inner {
    local_id: AtomicU64,
    cluster_id: AtomicU64,
    snap_dir: PathBuf,
    tls: Option<PeerTls>,
    handler: Arc<dyn Handler>,
    rt: tokio::runtime::Handle,
    peers: RwLock<HashMap<u64, Peer>>,
    listeners: Mutex<Vec<JoinHandle<()>>>,
    /// Flipped to true by `stop`; every task watches it.
    shutdown: watch::Sender<bool>,
    /// The same, for blocking snapshot threads.
    stopped: AtomicBool,
    /// Snapshot files being received (two transfers never share a temporary file).
    receiving: Mutex<HashSet<PathBuf>>,
    /// Rate limit of refusal logs on the listening side, per (peer, status).
    refusal_logged: Mutex<HashMap<(u64, u8), Instant>>,
}

/// One registered peer.
struct Peer {
    tx: mpsc::Sender<Message>,
    urls: watch::Sender<Vec<String>>,
    /// Since when the outgoing raft stream is up.
    #[cfg_attr(not(test), allow(dead_code))]
    active: Arc<Mutex<Option<Instant>>>,
    /// When `send` last logged an overflow for this peer.
    overflow_logged: Mutex<Option<Instant>>,
    task: JoinHandle<()>,
}

impl Transport {
    /// Starts accepting on `listeners`; spawns on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime; with an https listener and no `cfg.tls`.
    pub(crate) fn start<L: Into<PeerListener>>(
        cfg: TransportConfig,
        listeners: Vec<L>,
        h: Arc<dyn Handler>,
    ) -> Transport {
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            local_id: AtomicU64::new(cfg.local_id),
            cluster_id: AtomicU64::new(cfg.cluster_id),
            snap_dir: cfg.snap_dir,
            tls: cfg.tls,
            handler: h,
            rt: tokio::runtime::Handle::current(),
            peers: RwLock::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            shutdown,
            stopped: AtomicBool::new(false),
            receiving: Mutex::new(HashSet::new()),
            refusal_logged: Mutex::new(HashMap::new()),
        });
        let tasks = listeners
            .into_iter()
            .map(|l| {
                let l: PeerListener = l.into();
                let tls = l.https.then(|| {
                    let t = inner.tls.as_ref();
                    t.expect("an https peer listener needs the peer TLS configuration")
                        .server
                        .clone()
                });
                inner
                    .rt
                    .spawn(listener::accept_loop(inner.clone(), l.tcp, tls))
            })
            .collect();
        *inner.listeners.lock() = tasks;
        Transport { inner }
    }

    /// Registers peer `id` at `peer_urls` ("http://host:port"), or replaces its URLs (the
    /// stream reconnects if they changed).
    pub(crate) fn add_peer(&self, id: u64, peer_urls: Vec<String>) {
        if self.inner.stopped.load(Ordering::Relaxed) {
            return;
        }
        let mut peers = self.inner.peers.write();
        if let Some(p) = peers.get(&id) {
            p.urls.send_if_modified(|u| {
                let changed = *u != peer_urls;
                if changed {
                    *u = peer_urls;
                }
                changed
            });
            return;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let (urls, urls_rx) = watch::channel(peer_urls);
        let active = Arc::new(Mutex::new(None));
        let task = self.inner.rt.spawn(peer::run(
            self.inner.clone(),
            id,
            rx,
            urls_rx,
            active.clone(),
        ));
        peers.insert(
            id,
            Peer {
                tx,
                urls,
                active,
                overflow_logged: Mutex::new(None),
                task,
            },
        );
    }

    /// Forgets peer `id` and closes its stream.
    pub(crate) fn remove_peer(&self, id: u64) {
        if let Some(p) = self.inner.peers.write().remove(&id) {
            p.task.abort();
        }
    }

    /// Queues raft messages for their peers. Never blocks: a full queue drops the
    /// message and reports the peer unreachable; messages to unknown peers are dropped.
    pub(crate) fn send(&self, msgs: Vec<Message>) {
        let mut overflowed: Vec<u64> = Vec::new();
        {
            let peers = self.inner.peers.read();
            for m in msgs {
                let to = m.to;
                let Some(p) = peers.get(&to) else {
                    tracing::debug!(to = %format_args!("{to:x}"), msg = ?m.get_msg_type(), "dropping message for an unknown peer");
                    continue;
                };
                match p.tx.try_send(m) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(m)) => {
                        if m.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat {
                            crate::metrics::METRICS.heartbeat_send_failures.inc();
                        }
                        if !overflowed.contains(&to) {
                            overflowed.push(to);
                            let mut last = p.overflow_logged.lock();
                            if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                                *last = Some(Instant::now());
                                tracing::warn!(peer = %format_args!("{to:x}"), queue = PEER_QUEUE, "peer queue full, dropping raft messages");
                            }
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        for id in overflowed {
            let h = self.inner.handler.clone();
            self.inner.rt.spawn(async move { h.on_unreachable(id) });
        }
    }

    /// Streams a snapshot and its backend file to `m.to` on a connection of its own;
    /// the outcome is reported through [`Handler::on_snapshot_status`]. Non-blocking.
    pub(crate) fn send_snapshot(&self, m: Message, src: Box<dyn SnapshotSource>) {
        let inner = self.inner.clone();
        self.inner.rt.spawn(async move {
            let to = m.to;
            let res = snapshot::send(&inner, m, src).await;
            if let Err(e) = &res {
                tracing::warn!(peer = %format_args!("{to:x}"), error = %e, "sending a snapshot failed");
            }
            inner.handler.on_snapshot_status(to, res.is_ok());
        });
    }

    /// Since when the outgoing stream to `id` is connected (`None` when it is not). Only
    /// the tests read it so far (the strict reconfiguration check uses raft's view).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn active_since(&self, id: u64) -> Option<Instant> {
        self.inner
            .peers
            .read()
            .get(&id)
            .and_then(|p| *p.active.lock())
    }

    /// Closes the listeners and every connection. Snapshot transfers on blocking threads
    /// stop at their next chunk.
    pub(crate) async fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        self.inner.shutdown.send_replace(true);
        let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.listeners.lock());
        tasks.extend(self.inner.peers.write().drain().map(|(_, p)| p.task));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Inner {
    fn local_id(&self) -> u64 {
        self.local_id.load(Ordering::Relaxed)
    }

    fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Relaxed)
    }

    /// Whether inbound TLS certificates are verified against a peer CA.
    fn tls_verifies_peers(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.verifies_peers)
    }

    fn peer_urls(&self, id: u64) -> Option<Vec<String>> {
        self.peers.read().get(&id).map(|p| p.urls.borrow().clone())
    }

    /// A receiver that resolves when `stop` is called.
    fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Opens a connection of `kind` to peer `to` at `url`; a status 3 answer is reported
    /// to the handler.
    async fn connect(&self, url: &str, kind: wire::Kind, to: u64) -> Result<stream::Stream, Error> {
        let pre = wire::Preamble {
            kind,
            from: self.local_id(),
            to,
            cluster: self.cluster_id(),
        };
        let tls = self.tls.as_ref().map(|t| &t.client);
        let res = wire::handshake(url, pre, tls, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT).await;
        if let Err(Error::Removed { member, cluster }) = &res {
            if removal_is_believed(*member, *cluster, to, self.cluster_id()) {
                self.handler.on_removed();
            } else {
                tracing::warn!(
                    peer = %format_args!("{to:x}"),
                    %url,
                    answered_member = %format_args!("{member:x}"),
                    answered_cluster = %format_args!("{cluster:x}"),
                    "ignoring a \"removed\" answer from outside this cluster"
                );
            }
        }
        res
    }
}

/// A "removed" answer (status 3) naming `member` and `cluster` is believed only from the
/// member we dialed (`to`) in our own cluster.
fn removal_is_believed(member: u64, cluster: u64, to: u64, our_cluster: u64) -> bool {
    our_cluster != 0 && cluster == our_cluster && member == to
}

/// Asks the members at `peer_urls`, in turn, for their member list (a members query) on
/// behalf of the member joining at `my_peer_urls`; returns the first answer (the bytes of
/// the peer's [`Handler::members`]). `timeout` bounds each attempt. https URLs are
/// dialed with `tls`.
pub(crate) async fn fetch_members(
    peer_urls: &[String],
    my_peer_urls: &[String],
    tls: Option<&PeerTls>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut errors = Vec::new();
    let asker = serde_json::to_vec(my_peer_urls).unwrap_or_default();
    for url in peer_urls {
        let attempt = async {
            let pre = wire::Preamble {
                kind: wire::Kind::Members,
                from: 0,
                to: 0,
                cluster: 0,
            };
            let tls = tls.map(|t| &t.client);
            let mut s = wire::handshake_with(url, pre, Some(&asker), tls, timeout, timeout).await?;
            match wire::read_frame(&mut s).await? {
                Some(b) => Ok(b.to_vec()),
                None => Err(Error::Protocol("connection closed before the member list")),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(members)) => return Ok(members),
            Ok(Err(e)) => errors.push(format!("{url}: {e}")),
            Err(_) => errors.push(format!("{url}: timed out")),
        }
    }
    if errors.is_empty() {
        return Err("no peer URLs to ask for the member list".to_string());
    }
    Err(format!(
        "could not fetch the member list: {}",
        errors.join("; ")
    ))
}
