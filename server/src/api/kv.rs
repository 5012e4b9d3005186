//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::check_leader;
use crate::apply::kv as kvx;
use crate::apply::{ApplyResult, Op};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmRequest, AlarmType, CompactionRequest,
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

/// The KV service.
pub(crate) struct KvService {
    pub(crate) core: Arc<Core>,
}

impl KvService {
    /// etcd's quota check: refuse when NOSPACE is active, or raise it when this write
    /// would take the backend over the quota.
    async fn check_quota(&self, cost: usize) -> Result<()> {
        if cost == 0 {
            return Ok(());
        }
        let core = &self.core;
        if core.alarms.has(AlarmType::Nospace) {
            return Err(Error::NoSpace);
        }
        let quota = core.limits.quota_backend_bytes;
        if quota > 0 && core.store.backend.size_with_staged() + cost as u64 > quota {
            let req = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: core.member.id,
                alarm: AlarmType::Nospace as i32,
            };
            let _ = core.propose(Op::Alarm(req)).await;
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    pub(crate) async fn range(&self, r: RangeRequest) -> Result<RangeResponse> {
        kvx::check_range(&r)?;
        if !r.serializable {
            self.core.check_not_learner()?;
            self.core.read_index().await?;
        }
        let (mut resp, cur) = self.core.store.range_current(&r)?;
        resp.header = Some(self.core.header(cur));
        Ok(resp)
    }

    async fn txn_inner(&self, r: TxnRequest) -> Result<TxnResponse> {
        kvx::check_txn(&r, self.core.limits.max_txn_ops)?;
        if kvx::txn_is_read_only(&r) {
            if !kvx::txn_is_serializable(&r) {
                self.core.read_index().await?;
            }
            let store = &self.core.store;
            let mut t = store.write();
            let mut resp = kvx::apply_txn(store, &mut t, r)?;
            let rev = t.end();
            resp.header = Some(self.core.header(rev));
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
        match self.core.propose(Op::Txn(r)).await? {
            ApplyResult::Txn(mut t) => {
                self.core.fill(&mut t.header);
                Ok(t)
            }
            _ => Err(Error::Internal("unexpected apply result".into())),
        }
    }
}

fn unexpected() -> Status {
    Error::Internal("unexpected apply result".into()).into()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        check_leader(&self.core, &req)?;
        Ok(Response::new(
            KvService::range(self, req.into_inner()).await?,
        ))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        check_leader(&self.core, &req)?;
        self.core.check_not_learner()?;
        let r = req.into_inner();
        kvx::check_put(&r)?;
        self.check_quota(kvx::put_cost(&request_op::Request::RequestPut(r.clone())))
            .await?;
        match self.core.propose(Op::Put(r)).await? {
            ApplyResult::Put(mut p) => {
                self.core.fill(&mut p.header);
                Ok(Response::new(p))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        check_leader(&self.core, &req)?;
        self.core.check_not_learner()?;
        let r = req.into_inner();
        kvx::check_delete(&r)?;
        match self.core.propose(Op::DeleteRange(r)).await? {
            ApplyResult::DeleteRange(mut d) => {
                self.core.fill(&mut d.header);
                Ok(Response::new(d))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        check_leader(&self.core, &req)?;
        self.core.check_not_learner()?;
        Ok(Response::new(self.txn_inner(req.into_inner()).await?))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        check_leader(&self.core, &req)?;
        self.core.check_not_learner()?;
        let r = req.into_inner();
        match self.core.propose(Op::Compaction(r)).await? {
            ApplyResult::Compaction(mut c) => {
                self.core.fill(&mut c.header);
                Ok(Response::new(c))
            }
            _ => Err(unexpected()),
        }
    }
}
