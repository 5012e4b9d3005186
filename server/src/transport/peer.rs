//! The writer task of one peer: keeps a raft stream (kind 1) open to it and writes
//! everything queued in batches.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::stream::Stream;
use super::{wire, Error, Inner, LOG_EVERY, MAX_BACKOFF, MIN_BACKOFF, WRITE_TIMEOUT};

/// Most messages encoded into one write.
const BATCH_MESSAGES: usize = 1024;
/// A batch stops growing past this many bytes.
const BATCH_BYTES: usize = 4 << 20;
/// The batch buffer is given back when it grew past this.
const BUF_KEEP: usize = 16 << 20;

/// Why a connected stream ended.
enum End {
    /// The transport stops or the peer was removed: the task ends.
    Exit,
    /// The peer's URLs changed: reconnect at once.
    UrlsChanged,
    /// The connection broke on our side (a write timed out, a local error).
    Broken(Error),
    /// The peer closed the connection (end of file or reset): its process went away.
    Closed(Error),
}

impl End {
    /// The end of a stream after an I/O error: a reset or broken pipe is the peer's doing.
    fn io(e: std::io::Error) -> End {
        match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                End::Closed(Error::Io(e))
            }
            _ => End::Broken(Error::Io(e)),
        }
    }
}

/// Connects, streams, reconnects with backoff until the peer is removed or the transport stops.
pub(super) async fn run(
    inner: Arc<Inner>,
    id: u64,
    mut rx: mpsc::Receiver<Message>,
    mut urls_rx: watch::Receiver<Vec<String>>,
    active: Arc<Mutex<Option<Instant>>>,
) {
    let peer = format!("{id:x}");
    let mut shutdown = inner.shutdown_rx();
    let mut backoff = MIN_BACKOFF;
    let mut next_url = 0usize;
    let mut failures = 0u64;
    let mut last_failure_log: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let urls = urls_rx.borrow_and_update().clone();
        let reconnect_now = if urls.is_empty() {
            log_failure(&peer, "no peer URLs", &mut failures, &mut last_failure_log);
            false
        } else {
            let url = &urls[next_url % urls.len()];
            match inner.connect(url, wire::Kind::Raft, id).await {
                Ok(stream) => {
                    if failures > 0 {
                        tracing::info!(peer = %peer, %url, failed_attempts = failures, "peer connected");
                    } else {
                        tracing::info!(peer = %peer, %url, "peer connected");
                    }
                    failures = 0;
                    last_failure_log = None;
                    backoff = MIN_BACKOFF;
                    *active.lock() = Some(Instant::now());
                    let end = stream_to(stream, &mut rx, &mut urls_rx, &mut shutdown).await;
                    *active.lock() = None;
                    match end {
                        End::Exit => return,
                        End::UrlsChanged => {
                            tracing::info!(peer = %peer, "peer URLs changed, reconnecting");
                            true
                        }
                        End::Broken(e) => {
                            tracing::info!(peer = %peer, error = %e, "peer disconnected");
                            inner.handler.on_unreachable(id);
                            false
                        }
                        End::Closed(e) => {
                            tracing::info!(peer = %peer, error = %e, "peer disconnected");
                            inner.handler.on_unreachable(id);
                            inner.handler.on_peer_closed(id);
                            false
                        }
                    }
                }
                Err(e) => {
                    next_url = next_url.wrapping_add(1);
                    if failures == 0 {
                        match &e {
                            Error::Removed { member, cluster }
                                if super::removal_is_believed(
                                    *member,
                                    *cluster,
                                    id,
                                    inner.cluster_id(),
                                ) =>
                            {
                                tracing::error!(peer = %peer, "this member was removed from the cluster (told by a peer)")
                            }
                            Error::Url { .. } => {
                                tracing::error!(peer = %peer, error = %e, "unusable peer URL")
                            }
                            _ => {}
                        }
                    }
                    log_failure(&peer, &e.to_string(), &mut failures, &mut last_failure_log);
                    inner.handler.on_unreachable(id);
                    false
                }
            }
        };
        if reconnect_now {
            continue;
        }
        // Wait before the next attempt, dropping what is queued meanwhile.
        let wake = tokio::time::Instant::now() + backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                _ = shutdown.wait_for(|s| *s) => return,
                m = rx.recv() => {
                    if m.is_none() {
                        return;
                    }
                }
                changed = urls_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    backoff = MIN_BACKOFF;
                    break;
                }
            }
        }
    }
}

/// Logs a failed attempt: the first of a series, then at most every [`LOG_EVERY`].
fn log_failure(peer: &str, error: &str, failures: &mut u64, last: &mut Option<Instant>) {
    *failures += 1;
    if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
        *last = Some(Instant::now());
        tracing::warn!(peer = %peer, error = %error, failed_attempts = *failures, "cannot reach peer");
    } else {
        tracing::debug!(peer = %peer, error = %error, "cannot reach peer");
    }
}

/// Writes queued messages to `stream` until it breaks, the URLs change or the task must end.
async fn stream_to(
    stream: Stream,
    rx: &mut mpsc::Receiver<Message>,
    urls_rx: &mut watch::Receiver<Vec<String>>,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut probe = [0u8; 1];
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => return End::Exit,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return End::Exit,
            },
            // The peer never writes on this connection: a read ends only when it closes.
            r = rd.read(&mut probe) => {
                return match r {
                    Ok(0) => End::Closed(Error::Protocol("connection closed by the peer")),
                    Ok(_) => End::Broken(Error::Protocol("unexpected bytes from the peer")),
                    Err(e) => End::io(e),
                };
            }
            changed = urls_rx.changed() => {
                return if changed.is_err() { End::Exit } else { End::UrlsChanged };
            }
        };
        buf.clear();
        let mut count = 0usize;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            if let Err(e) = wire::encode_message(&m, &mut buf) {
                tracing::error!(to = m.to, error = %e, "cannot encode a raft message, dropped");
            }
            count += 1;
            if count < BATCH_MESSAGES && buf.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if buf.is_empty() {
            continue;
        }
        let write = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return End::io(e),
            Err(_) => return End::Broken(Error::Timeout("writing to the peer")),
        }
        if buf.capacity() > BUF_KEEP {
            buf = Vec::with_capacity(64 << 10);
        }
    }
}
