//! `etcdserverpb.Maintenance`: Alarm, Status, Defragment, Hash, HashKV, Snapshot,
//! MoveLeader (Downgrade is not supported).

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::{check_leader, Node};
use crate::error::Error;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use crate::raft::LoopTask;
use crate::status::SERVER_VERSION;

/// Size of the blob in each Snapshot message (etcd's 32 KiB).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// The Maintenance service.
pub(crate) struct MaintenanceService {
    pub(crate) node: Arc<Node>,
}

fn alarm_name(a: i32) -> &'static str {
    match AlarmType::try_from(a) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        _ => "NONE",
    }
}

/// Builds the Status answer (shared with the HTTP handlers).
pub(crate) fn status(node: &Node) -> StatusResponse {
    let be = &node.state.store.backend;
    let errors = node
        .state
        .alarms
        .list()
        .iter()
        .map(|a| format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm)))
        .collect();
    StatusResponse {
        header: Some(node.current_header()),
        version: SERVER_VERSION.to_string(),
        db_size: be.size() as i64,
        leader: node.raft.leader_id(),
        raft_index: node.raft.committed(),
        raft_term: node.raft.term(),
        raft_applied_index: node.raft.applied(),
        errors,
        db_size_in_use: be.size_in_use() as i64,
        is_learner: node.state.is_learner(),
        storage_version: String::new(),
        db_size_quota: node.limits.quota_backend_bytes as i64,
        downgrade_info: None,
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

/// Cuts the bbolt image into chunks, hashing everything, and sends them on.
struct ChunkWriter {
    tx: mpsc::Sender<Result<SnapshotResponse, Status>>,
    buf: Vec<u8>,
    total: u64,
    sent: u64,
    sha: Sha256,
    header: crate::pb::etcdserverpb::ResponseHeader,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(SNAPSHOT_CHUNK));
        self.sent += blob.len() as u64;
        let msg = SnapshotResponse {
            header: Some(self.header),
            remaining_bytes: self.total.saturating_sub(self.sent),
            blob: blob.into(),
            version: String::new(),
        };
        self.tx
            .blocking_send(Ok(msg))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.sha.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let room = SNAPSHOT_CHUNK - self.buf.len();
            let n = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buf.len() == SNAPSHOT_CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        check_leader(&self.node, &req)?;
        let mut a = self.node.raft.propose(req.into_inner()).await?;
        self.node.fill(&mut a.header);
        Ok(Response::new(a))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(status(&self.node)))
    }

    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.node.raft.run_in_loop(LoopTask::Defragment).await?;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.node.current_header()),
        }))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.node.raft.run_in_loop(LoopTask::Commit).await?;
        let node = self.node.clone();
        let hash = tokio::task::spawn_blocking(move || node.state.store.hash())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashResponse {
            header: Some(self.node.current_header()),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = req.into_inner().revision;
        self.node.raft.run_in_loop(LoopTask::Commit).await?;
        let node = self.node.clone();
        let (hash, compact, hash_rev) =
            tokio::task::spawn_blocking(move || node.state.store.hash_kv(rev))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.current_header()),
            hash,
            compact_revision: compact,
            hash_revision: hash_rev,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.node.raft.run_in_loop(LoopTask::Commit).await?;
        let rtx = self.node.state.store.backend.read_tx()?;
        let header = self.node.current_header();
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let total = rtx.size();
            let mut w = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(SNAPSHOT_CHUNK),
                total,
                sent: 0,
                sha: Sha256::new(),
                header,
            };
            let res = rtx.write_to(&mut w).and_then(|_| w.flush_chunk());
            match res {
                Ok(()) => {
                    let digest = w.sha.finalize();
                    let _ = tx.blocking_send(Ok(SnapshotResponse {
                        header: Some(header),
                        remaining_bytes: 0,
                        blob: bytes::Bytes::copy_from_slice(&digest),
                        version: String::new(),
                    }));
                    tracing::info!(bytes = w.sent, "snapshot sent");
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::unknown(format!("snapshot: {e}"))));
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        if !self.node.raft.is_leader() {
            return Err(Error::NotLeader.into());
        }
        let target = req.into_inner().target_id;
        self.node.raft.transfer_leader(target).await?;
        tracing::info!(to = %format!("{target:x}"), "leadership moved");
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.node.current_header()),
        }))
    }

    async fn downgrade(
        &self,
        _req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: downgrade is not supported by cairn",
        ))
    }
}
