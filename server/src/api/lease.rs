//! `etcdserverpb.Lease`: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive,
//! LeaseLeases.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::check_leader;
use crate::apply::{ApplyResult, Op};
use crate::core::Core;
use crate::error::Error;
use crate::lease::MAX_LEASE_TTL;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    AlarmType, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

/// The Lease service.
pub(crate) struct LeaseService {
    core: Arc<Core>,
    /// Source of server-chosen lease ids.
    next_id: AtomicU64,
}

impl LeaseService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ core.member.id.rotate_left(17);
        LeaseService {
            core,
            next_id: AtomicU64::new(seed),
        }
    }

    /// A positive int63 id not in use (etcd takes it from its request id generator).
    fn pick_id(&self) -> i64 {
        loop {
            // splitmix64 over a counter: distinct, well spread ids.
            let mut z = self
                .next_id
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let id = (z & (u64::MAX >> 1)) as i64;
            if id != 0 && !self.core.lessor.exists(id) {
                return id;
            }
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        check_leader(&self.core, &req)?;
        let mut r = req.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        if self.core.alarms.has(AlarmType::Nospace) {
            return Err(Error::NoSpace.into());
        }
        if r.id == 0 {
            r.id = self.pick_id();
        }
        match self.core.propose(Op::LeaseGrant(r)).await? {
            ApplyResult::LeaseGrant(mut g) => {
                self.core.fill(&mut g.header);
                Ok(Response::new(g))
            }
            _ => Err(Error::Internal("unexpected apply result".into()).into()),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        check_leader(&self.core, &req)?;
        let r = req.into_inner();
        if !self.core.lessor.exists(r.id) {
            return Err(Error::LeaseNotFound.into());
        }
        match self.core.propose(Op::LeaseRevoke(r)).await? {
            ApplyResult::LeaseRevoke(mut g) => {
                self.core.fill(&mut g.header);
                Ok(Response::new(g))
            }
            _ => Err(Error::Internal("unexpected apply result".into()).into()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        check_leader(&self.core, &req)?;
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let core = self.core.clone();
        tokio::spawn(async move {
            while let Some(msg) = input.next().await {
                let Ok(r) = msg else { break };
                if !core.is_leader() {
                    let _ = tx.send(Err(Error::NotLeader.into())).await;
                    break;
                }
                let (ttl, clear) = core.lessor.renew(r.id);
                if clear {
                    let core = core.clone();
                    tokio::spawn(async move { crate::lease::clear_checkpoint(&core, r.id).await });
                }
                let resp = LeaseKeepAliveResponse {
                    header: Some(core.header(core.store.rev())),
                    id: r.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        check_leader(&self.core, &req)?;
        let r = req.into_inner();
        let header = Some(self.core.header(self.core.store.rev()));
        let resp = match self.core.lessor.time_to_live(r.id, r.keys) {
            Some(t) => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            },
            None => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        check_leader(&self.core, &req)?;
        let leases = self
            .core
            .lessor
            .list()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.core.header(self.core.store.rev())),
            leases,
        }))
    }
}
