//! `--experimental-initial-corrupt-check`: before a restarted member serves anyone, its
//! HashKV at its current revision is compared with its peers' at the same revision, as
//! etcd 3.5's `corruptionChecker.InitialCheck` (server/etcdserver/corrupt.go) does; a
//! member whose hash differs from a peer's at the same compact revision refuses to start
//! with etcd's error, `<member id> found data inconsistency with peers`.
//!
//! Like etcd: a peer that cannot be reached on any of its URLs, one that has compacted past
//! the revision or has not reached it yet, one of another cluster, or one at another compact
//! revision is logged and passed over; only equal compact revisions with different hashes
//! count. etcd asks its peers over the peer port (`/members/hashkv`); Cairn's peer port
//! speaks its own protocol, so the peers' Maintenance.HashKV is called on their client
//! URLs (from the membership records), which answers the same fields.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Endpoint;

use crate::error::{Error, Result};
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::{HashKvRequest, HashKvResponse};
use crate::state::State;

/// Why a peer's hash could not be had (etcd's `rpctypes` errors the check tells apart).
#[derive(Debug)]
enum PeerError {
    FutureRev,
    Compacted,
    ClusterIdMismatch,
    Other(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::FutureRev => write!(f, "{}", Error::FutureRev),
            PeerError::Compacted => write!(f, "{}", Error::Compacted),
            PeerError::ClusterIdMismatch => write!(f, "etcdserver: cluster ID mismatch"),
            PeerError::Other(s) => write!(f, "{s}"),
        }
    }
}

/// etcd's request timeout (`ServerConfig.ReqTimeout`): 5 s plus two election timeouts.
pub(crate) fn request_timeout(election_timeout: Duration) -> Duration {
    Duration::from_secs(5) + 2 * election_timeout
}

/// Compares this member's HashKV with its peers'. `Err` (etcd's text) on a mismatch.
pub(crate) async fn initial_check(state: &Arc<State>, timeout: Duration) -> Result<()> {
    let me = format!("{:x}", state.member.id);
    tracing::info!(local_member_id = %me, ?timeout, "starting initial corruption check");
    let st = state.clone();
    let (hash, compact, rev) = tokio::task::spawn_blocking(move || st.store.hash_kv(0))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(format!("{me} failed to fetch hash ({e})")))?;
    let peers: Vec<(u64, Vec<String>)> = state
        .cluster
        .read()
        .members
        .values()
        .filter(|m| m.id != state.member.id && !m.client_urls.is_empty())
        .map(|m| (m.id, m.client_urls.clone()))
        .collect();
    let mut mismatch = 0;
    for (id, urls) in peers {
        let peer = format!("{id:x}");
        match peer_hash(state, &me, &urls, rev, timeout).await {
            Ok(resp) => {
                let remote_rev = resp.header.as_ref().map_or(0, |h| h.revision);
                if resp.hash == hash {
                    continue;
                }
                // Hashes of different compactions are not comparable: logged, not counted.
                let what = if resp.compact_revision == compact {
                    mismatch += 1;
                    "found different hash values from remote peer"
                } else {
                    "found different compact revision values from remote peer"
                };
                tracing::warn!(
                    local_member_id = %me,
                    local_member_revision = rev,
                    local_member_compact_revision = compact,
                    local_member_hash = hash,
                    remote_peer_id = %peer,
                    remote_peer_endpoints = ?urls,
                    remote_peer_revision = remote_rev,
                    remote_peer_compact_revision = resp.compact_revision,
                    remote_peer_hash = resp.hash,
                    "{what}"
                );
            }
            Err(e) => {
                let what = match e {
                    PeerError::FutureRev => "cannot fetch hash from slow remote peer",
                    PeerError::Compacted => {
                        "cannot fetch hash from remote peer; local member is behind"
                    }
                    PeerError::ClusterIdMismatch => "cluster ID mismatch",
                    // etcd logs nothing more than the failed requests.
                    PeerError::Other(_) => continue,
                };
                tracing::warn!(
                    local_member_id = %me,
                    local_member_revision = rev,
                    local_member_compact_revision = compact,
                    local_member_hash = hash,
                    remote_peer_id = %peer,
                    remote_peer_endpoints = ?urls,
                    error = %e,
                    "{what}"
                );
            }
        }
    }
    if mismatch > 0 {
        let err = Error::Inconsistent(format!("{me} found data inconsistency with peers"));
        tracing::error!(error = %err, "checkInitialHashKV failed");
        return Err(err);
    }
    tracing::info!(local_member_id = %me, "initial corruption checking passed; no corruption");
    Ok(())
}

/// The peer's HashKV at `rev` from the first of its URLs that answers (etcd's
/// `getPeerHashKVs`: every failed URL is logged, the last error kept).
async fn peer_hash(
    state: &State,
    me: &str,
    urls: &[String],
    rev: i64,
    timeout: Duration,
) -> std::result::Result<HashKvResponse, PeerError> {
    let mut last = PeerError::Other("no URL".into());
    for url in urls {
        match hash_at(url, rev, timeout).await {
            Ok(resp) => {
                let cluster = resp.header.as_ref().map_or(0, |h| h.cluster_id);
                if cluster == state.member.cluster_id {
                    return Ok(resp);
                }
                last = PeerError::ClusterIdMismatch;
            }
            Err(e) => last = e,
        }
        tracing::warn!(
            local_member_id = %me,
            requested_revision = rev,
            remote_peer_endpoint = %url,
            error = %last,
            "failed hash kv request"
        );
    }
    Err(last)
}

async fn hash_at(
    url: &str,
    rev: i64,
    timeout: Duration,
) -> std::result::Result<HashKvResponse, PeerError> {
    let other = |e: &dyn std::fmt::Display| PeerError::Other(e.to_string());
    let ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| other(&e))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let ch = tokio::time::timeout(timeout, ep.connect())
        .await
        .map_err(|e| other(&e))?
        .map_err(|e| other(&e))?;
    match MaintenanceClient::new(ch)
        .hash_kv(HashKvRequest { revision: rev })
        .await
    {
        Ok(r) => Ok(r.into_inner()),
        Err(s) if s.message() == Error::Compacted.to_string() => Err(PeerError::Compacted),
        Err(s) if s.message() == Error::FutureRev.to_string() => Err(PeerError::FutureRev),
        Err(s) => Err(PeerError::Other(format!("{:?}: {}", s.code(), s.message()))),
    }
}
