//! The accepting side: validates preambles and serves raft streams, snapshot transfers
//! and members queries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::stream::{self, Stream};
use super::wire::{self, Kind, Preamble};
use super::{snapshot, Error, Inner, HANDSHAKE_TIMEOUT, LOG_EVERY, TLS_HANDSHAKE_TIMEOUT};

/// Read buffer of a raft stream.
const READ_BUF: usize = 256 << 10;

/// Accepts connections until the transport stops (the task is aborted). With `tls`, each
/// connection's TLS handshake runs in the connection's own task, under
/// [`TLS_HANDSHAKE_TIMEOUT`].
pub(super) async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((tcp, addr)) => {
                let inner2 = inner.clone();
                let tls = tls.clone();
                inner.rt.spawn(async move {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(%addr, error = %e, "peer connection ended");
                        return;
                    }
                    let stream = match tls {
                        None => Stream::Plain(tcp),
                        Some(cfg) => {
                            match stream::accept_tls(tcp, cfg, TLS_HANDSHAKE_TIMEOUT).await
                            {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::warn!(%addr, error = %e, "refusing a peer connection: TLS handshake failed");
                                    return;
                                }
                            }
                        }
                    };
                    if let Err(e) = serve(&inner2, stream, addr).await {
                        tracing::debug!(%addr, error = %e, "peer connection ended");
                    }
                });
            }
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning.
                if last_error_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    last_error_log = Some(Instant::now());
                    tracing::warn!(error = %e, "accepting a peer connection failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one accepted connection.
async fn serve(inner: &Arc<Inner>, mut stream: Stream, addr: SocketAddr) -> Result<(), Error> {
    let mut raw = [0u8; wire::PREAMBLE_LEN];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut raw))
        .await
        .map_err(|_| Error::Timeout("waiting for a preamble"))??;
    let pre = match Preamble::decode(&raw) {
        Ok(p) => p,
        Err(reason) => {
            tracing::warn!(%addr, reason, "refusing a peer connection");
            return refuse(stream, wire::STATUS_BAD_PREAMBLE, reason).await;
        }
    };
    if pre.kind == Kind::Members {
        return members_query(inner, stream, addr).await;
    }
    if let Some((status, reason)) = check(inner, &pre) {
        log_refusal(inner, &pre, addr, status, &reason);
        if status == wire::STATUS_REMOVED {
            let reply = wire::encode_removed_reply(inner.local_id(), inner.cluster_id());
            stream.write_all(&reply).await?;
            stream.shutdown().await?;
            return Ok(());
        }
        return refuse(stream, status, &reason).await;
    }
    if !proven(inner, &stream) {
        let urls = inner.handler.peer_urls(pre.from);
        if !from_hosts_of(addr, &urls).await {
            let reason = format!(
                "connection from {} is not from a host of member {:x}'s peer URLs {urls:?}",
                addr.ip(),
                pre.from
            );
            log_refusal(inner, &pre, addr, wire::STATUS_NOT_MEMBER, &reason);
            return refuse(stream, wire::STATUS_NOT_MEMBER, &reason).await;
        }
    }
    stream
        .write_all(&wire::encode_reply(wire::STATUS_OK, ""))
        .await?;
    stream.flush().await?;
    match pre.kind {
        Kind::Raft => read_stream(inner, stream, pre.from).await,
        Kind::Snapshot => snapshot::receive(inner, stream, pre.from).await,
        Kind::Members => Ok(()),
    }
}

/// Answers a members query to a member waiting to join (its peer URLs follow the
/// preamble); refuses it with status 5 otherwise.
async fn members_query(
    inner: &Arc<Inner>,
    mut stream: Stream,
    addr: SocketAddr,
) -> Result<(), Error> {
    let query = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        wire::read_small_frame(&mut stream, wire::MAX_QUERY),
    )
    .await
    .map_err(|_| Error::Timeout("waiting for a members query"))??;
    let urls: Vec<String> = match serde_json::from_slice(&query) {
        Ok(u) => u,
        Err(_) => {
            tracing::warn!(%addr, "refusing a malformed members query");
            return refuse(stream, wire::STATUS_BAD_PREAMBLE, "malformed members query").await;
        }
    };
    let members = match inner.handler.members(&urls) {
        Some(m) if proven(inner, &stream) || from_hosts_of(addr, &urls).await => Some(m),
        _ => None,
    };
    let Some(members) = members else {
        let reason = format!(
            "peer URLs {urls:?} are not those of a member added to the cluster and waiting to join"
        );
        tracing::warn!(%addr, reason, "refusing a members query");
        return refuse(stream, wire::STATUS_NOT_MEMBER, &reason).await;
    };
    stream
        .write_all(&wire::encode_reply(wire::STATUS_OK, ""))
        .await?;
    wire::write_frame(&mut stream, &members).await?;
    stream.flush().await?;
    stream.shutdown().await?;
    Ok(())
}

/// Whether the connection proved who it is: TLS with a certificate verified against the
/// peer CA.
fn proven(inner: &Inner, stream: &Stream) -> bool {
    inner.tls_verifies_peers() && stream.peer_certificate().is_some()
}

/// Whether `addr` is an address of one of the hosts of `urls` (IP literals compared,
/// names resolved).
pub(super) async fn from_hosts_of(addr: SocketAddr, urls: &[String]) -> bool {
    let ip = addr.ip().to_canonical();
    for u in urls {
        let Some(host) = url_host(u) else { continue };
        if let Ok(lit) = host.parse::<std::net::IpAddr>() {
            if lit.to_canonical() == ip {
                return true;
            }
            continue;
        }
        let resolved = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), 0)),
        )
        .await;
        if let Ok(Ok(mut addrs)) = resolved {
            if addrs.any(|a| a.ip().to_canonical() == ip) {
                return true;
            }
        }
    }
    false
}

/// The host of a peer URL (`scheme://host:port`, IPv6 in brackets), without brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Why a raft or snapshot connection is refused, if it is.
fn check(inner: &Inner, pre: &Preamble) -> Option<(u8, String)> {
    let cluster = inner.cluster_id();
    if pre.cluster != cluster {
        return Some((
            wire::STATUS_CLUSTER_MISMATCH,
            format!(
                "cluster ID mismatch: local {cluster:x}, remote {:x}",
                pre.cluster
            ),
        ));
    }
    let local = inner.local_id();
    if pre.to != local {
        return Some((
            wire::STATUS_WRONG_MEMBER,
            format!("this is member {local:x}, not member {:x}", pre.to),
        ));
    }
    if inner.handler.is_removed(pre.from) {
        return Some((wire::STATUS_REMOVED, wire::REASON_REMOVED.to_string()));
    }
    if pre.from == local || !inner.handler.is_member(pre.from) {
        return Some((
            wire::STATUS_NOT_MEMBER,
            format!("{:x} is not a member of cluster {cluster:x}", pre.from),
        ));
    }
    None
}

async fn refuse(mut stream: Stream, status: u8, reason: &str) -> Result<(), Error> {
    stream
        .write_all(&wire::encode_reply(status, reason))
        .await?;
    stream.flush().await?;
    stream.shutdown().await?;
    Ok(())
}

/// Logs a refusal once per (peer, status) every [`LOG_EVERY`].
fn log_refusal(inner: &Inner, pre: &Preamble, addr: SocketAddr, status: u8, reason: &str) {
    let mut logged = inner.refusal_logged.lock();
    if logged.len() > 1024 {
        logged.clear();
    }
    let last = logged.entry((pre.from, status)).or_insert_with(|| {
        Instant::now()
            .checked_sub(LOG_EVERY)
            .unwrap_or_else(Instant::now)
    });
    if last.elapsed() >= LOG_EVERY {
        *last = Instant::now();
        tracing::warn!(%addr, from = %format_args!("{:x}", pre.from), status, reason, "refusing a peer connection");
    } else {
        tracing::debug!(%addr, from = %format_args!("{:x}", pre.from), status, reason, "refusing a peer connection");
    }
}

/// Delivers the raft messages of one stream until it ends or the transport stops.
async fn read_stream(inner: &Arc<Inner>, stream: Stream, from: u64) -> Result<(), Error> {
    let peer = format!("{from:x}");
    tracing::debug!(peer = %peer, "raft stream from peer opened");
    let mut shutdown = inner.shutdown_rx();
    let mut r = BufReader::with_capacity(READ_BUF, stream);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
            f = wire::read_frame(&mut r) => f?,
        };
        let Some(frame) = frame else {
            tracing::debug!(peer = %peer, "raft stream from peer closed");
            return Ok(());
        };
        let m = wire::decode_message(&frame)?;
        if m.from != from || m.to != inner.local_id() {
            tracing::warn!(peer = %peer, message_from = %format_args!("{:x}", m.from), message_to = %format_args!("{:x}", m.to), "dropping a raft message whose sender or addressee differs from its stream's");
            continue;
        }
        if !inner.handler.is_member(from) {
            // Removed while connected: closing makes the sender reconnect, and the
            // preamble check then tells it (status 3) that it was removed.
            tracing::info!(peer = %peer, "closing the raft stream of a member no longer in the cluster");
            return Ok(());
        }
        inner.handler.on_message(m);
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn peer_url_hosts() {
        assert_eq!(
            url_host("http://127.0.0.1:2380").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:2380").as_deref(), Some("::1"));
        assert_eq!(
            url_host("http://m1.example:2380/").as_deref(),
            Some("m1.example")
        );
        assert_eq!(url_host("http://:2380"), None);
    }

    #[tokio::test]
    async fn a_connection_must_come_from_a_host_of_the_peer_urls() {
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        let from = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 40000);
        assert!(from_hosts_of(from("127.0.0.1"), &urls).await);
        assert!(from_hosts_of(from("::ffff:127.0.0.1"), &urls).await);
        assert!(!from_hosts_of(from("127.0.0.2"), &urls).await);
        assert!(!from_hosts_of(from("127.0.0.1"), &[]).await);
        let named = vec!["http://localhost:2380".to_string()];
        assert!(from_hosts_of(from("127.0.0.1"), &named).await);
        assert!(!from_hosts_of(from("127.0.0.3"), &named).await);
    }
}
