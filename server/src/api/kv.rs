//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::validate;
use super::{check_leader, Node};
use crate::apply::kv as kvx;
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmRequest, AlarmType, CompactionRequest,
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

/// The KV service.
pub(crate) struct KvService {
    pub(crate) node: Arc<Node>,
}

impl KvService {
    /// etcd's quota check: refuse when NOSPACE is active, or raise it when this write
    /// would take the backend over the quota.
    async fn check_quota(&self, cost: usize) -> Result<()> {
        if cost == 0 {
            return Ok(());
        }
        let node = &self.node;
        if node.state.alarms.has(AlarmType::Nospace) {
            return Err(Error::NoSpace);
        }
        let quota = node.limits.quota_backend_bytes;
        if quota > 0 && node.state.store.backend.size_with_staged() + cost as u64 > quota {
            let req = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: node.state.member.id,
                alarm: AlarmType::Nospace as i32,
            };
            let _ = node.raft.propose(req).await;
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    pub(crate) async fn range(&self, r: RangeRequest) -> Result<RangeResponse> {
        validate::check_range(&r)?;
        if !r.serializable {
            self.node.check_not_learner()?;
            self.node.raft.read_index().await?;
        }
        let (mut resp, cur) = self.node.state.store.range_current(&r)?;
        resp.header = Some(self.node.header(cur));
        Ok(resp)
    }

    async fn txn_inner(&self, r: TxnRequest) -> Result<TxnResponse> {
        validate::check_txn(&r, self.node.limits.max_txn_ops)?;
        if kvx::txn_is_read_only(&r) {
            if !validate::txn_is_serializable(&r) {
                self.node.raft.read_index().await?;
            }
            let store = &self.node.state.store;
            let mut t = store.write();
            let mut resp = kvx::apply_txn(store, &mut t, r)?;
            let rev = t.end();
            resp.header = Some(self.node.header(rev));
            return Ok(resp);
        }
        let cost: usize = r
            .success
            .iter()
            .chain(r.failure.iter())
            .filter_map(|o| o.request.as_ref())
            .map(kvx::put_cost)
            .sum();
        self.check_quota(cost).await?;
        let mut t = self.node.raft.propose(r).await?;
        self.node.fill(&mut t.header);
        Ok(t)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        check_leader(&self.node, &req)?;
        Ok(Response::new(
            KvService::range(self, req.into_inner()).await?,
        ))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        check_leader(&self.node, &req)?;
        self.node.check_not_learner()?;
        let r = req.into_inner();
        validate::check_put(&r)?;
        self.check_quota(kvx::put_cost(&request_op::Request::RequestPut(r.clone())))
            .await?;
        let mut p = self.node.raft.propose(r).await?;
        self.node.fill(&mut p.header);
        Ok(Response::new(p))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        check_leader(&self.node, &req)?;
        self.node.check_not_learner()?;
        let r = req.into_inner();
        validate::check_delete(&r)?;
        let mut d = self.node.raft.propose(r).await?;
        self.node.fill(&mut d.header);
        Ok(Response::new(d))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        check_leader(&self.node, &req)?;
        self.node.check_not_learner()?;
        Ok(Response::new(self.txn_inner(req.into_inner()).await?))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        check_leader(&self.node, &req)?;
        self.node.check_not_learner()?;
        let r = req.into_inner();
        let mut c = self.node.raft.propose(r).await?;
        self.node.fill(&mut c.header);
        Ok(Response::new(c))
    }
}
