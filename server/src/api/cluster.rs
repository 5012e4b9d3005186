//! `etcdserverpb.Cluster`: membership through raft conf changes. Adding, removing and
//! promoting members are decided by the leader (it knows replication progress); a
//! follower forwards those calls to the leader's client URL. MemberUpdate is an ordinary
//! proposal; MemberList reads the applied membership (after a ReadIndex when
//! linearizable).

use std::sync::Arc;

use raft::eraftpb::{ConfChange, ConfChangeType};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::apply::{ApplyResult, Op};
use crate::core::Core;
use crate::error::Error;
use crate::membership::{self, MemberRecord};
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::raft::{ConfChangeContext, Msg, ProgressView, MAX_LEARNERS};

/// The Cluster service.
pub(crate) struct ClusterService {
    pub(crate) core: Arc<Core>,
}

/// A learner counts as in sync when it has at least this share of the leader's log (etcd:
/// 90 %).
const PROMOTE_READY_PERCENT: u64 = 90;

async fn progress(core: &Core) -> Result<ProgressView, Status> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    core.send(Msg::Progress(tx))?;
    rx.await.map_err(|_| Status::from(Error::Stopped))
}

/// A client of the leader's Cluster service, for calls a follower cannot decide.
async fn leader_client(core: &Core) -> Result<ClusterClient<Channel>, Status> {
    let urls = core.leader_client_urls();
    if core.leader_id() == 0 {
        return Err(Error::NoLeader.into());
    }
    for u in urls {
        let Ok(ep) = tonic::transport::Endpoint::from_shared(u.clone()) else {
            continue;
        };
        let ep = ep.connect_timeout(std::time::Duration::from_secs(2));
        match ep.connect().await {
            Ok(ch) => return Ok(ClusterClient::new(ch)),
            Err(e) => tracing::debug!(url = %u, error = %e, "leader not reachable"),
        }
    }
    Err(Error::NoLeader.into())
}

/// Members whose connection the leader sees as active, counting itself.
fn active_voters(p: &ProgressView, me: u64) -> usize {
    p.voters
        .iter()
        .filter(|v| **v == me || p.peers.iter().any(|(id, _, active)| id == *v && *active))
        .count()
}

impl ClusterService {
    /// Proposes a conf change for `member` (its record travels in the context) and waits
    /// until it is applied.
    async fn change(
        &self,
        change_type: ConfChangeType,
        member: MemberRecord,
    ) -> Result<ApplyResult, Status> {
        let request_id = self.core.next_request_id();
        let mut cc = ConfChange::default();
        cc.set_change_type(change_type);
        cc.node_id = member.id;
        cc.context = serde_json::to_vec(&ConfChangeContext { request_id, member })
            .unwrap_or_default()
            .into();
        let res = self
            .core
            .propose_raw(request_id, Msg::ConfChange { id: request_id, cc })
            .await?;
        Ok(res)
    }

    /// The applied record of member `id`.
    fn member(&self, id: u64) -> Result<MemberRecord, Status> {
        self.core
            .cluster
            .read()
            .members
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::MemberNotFound.into())
    }

    fn members_of(res: ApplyResult) -> (Option<Member>, Vec<Member>) {
        match res {
            ApplyResult::Members { member, members } => (member, members),
            _ => (None, Vec::new()),
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.core.check_not_learner()?;
        if !self.core.is_leader() {
            let mut c = leader_client(&self.core).await?;
            return c.member_add(req.into_inner()).await;
        }
        let r = req.into_inner();
        membership::check_peer_urls(&r.peer_ur_ls)?;
        {
            let c = self.core.cluster.read();
            if c.by_peer_url(&r.peer_ur_ls).is_some() {
                return Err(Error::PeerUrlExists.into());
            }
            if r.is_learner && c.learners() >= MAX_LEARNERS {
                return Err(Error::TooManyLearners.into());
            }
        }
        if !r.is_learner {
            // etcd's strict reconfiguration check: after adding, the started voters must
            // still be a quorum.
            let p = progress(&self.core).await?;
            let voters = p.voters.len() + 1;
            if active_voters(&p, self.core.member.id) < voters / 2 + 1 {
                return Err(Error::NotEnoughStartedMembers.into());
            }
        }
        let member = MemberRecord {
            id: membership::new_member_id(&r.peer_ur_ls),
            peer_urls: r.peer_ur_ls.clone(),
            is_learner: r.is_learner,
            name: String::new(),
            client_urls: Vec::new(),
        };
        let change_type = if r.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let (member, members) = Self::members_of(self.change(change_type, member).await?);
        Ok(Response::new(MemberAddResponse {
            header: Some(self.core.header(0)),
            member,
            members,
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.core.check_not_learner()?;
        if !self.core.is_leader() {
            let mut c = leader_client(&self.core).await?;
            return c.member_remove(req.into_inner()).await;
        }
        let id = req.into_inner().id;
        let rec = self.member(id)?;
        if !rec.is_learner {
            // etcd's strict reconfiguration check: the started voters left must be a
            // quorum of the voters left.
            let p = progress(&self.core).await?;
            let left: Vec<u64> = p.voters.iter().copied().filter(|v| *v != id).collect();
            let view = ProgressView {
                voters: left.clone(),
                ..p.clone()
            };
            if left.is_empty() || active_voters(&view, self.core.member.id) < left.len() / 2 + 1 {
                return Err(Error::NotEnoughStartedMembers.into());
            }
        }
        let (_, members) = Self::members_of(self.change(ConfChangeType::RemoveNode, rec).await?);
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.core.header(0)),
            members,
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.core.check_not_learner()?;
        let r = req.into_inner();
        membership::check_peer_urls(&r.peer_ur_ls)?;
        if !self.core.cluster.read().members.contains_key(&r.id) {
            return Err(Error::MemberNotFound.into());
        }
        let (_, members) = Self::members_of(self.core.propose(Op::MemberUpdate(r)).await?);
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.core.header(0)),
            members,
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.core.read_index().await?;
        }
        Ok(Response::new(MemberListResponse {
            // etcd's Cluster service leaves the header revision at 0.
            header: Some(self.core.header(0)),
            members: self.core.cluster.read().list(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.core.check_not_learner()?;
        if !self.core.is_leader() {
            let mut c = leader_client(&self.core).await?;
            return c.member_promote(req.into_inner()).await;
        }
        let id = req.into_inner().id;
        let rec = self.member(id)?;
        if !rec.is_learner {
            return Err(Error::MemberNotLearner.into());
        }
        let p = progress(&self.core).await?;
        if !p.is_leader {
            return Err(Error::NotLeader.into());
        }
        let matched = p
            .peers
            .iter()
            .find(|(pid, _, _)| *pid == id)
            .map(|(_, m, _)| *m)
            .unwrap_or(0);
        if matched * 100 < p.last_index * PROMOTE_READY_PERCENT {
            return Err(Error::LearnerNotReady.into());
        }
        let voters = p.voters.len() + 1;
        if active_voters(&p, self.core.member.id) + 1 < voters / 2 + 1 {
            return Err(Error::NotEnoughStartedMembers.into());
        }
        let (_, members) = Self::members_of(self.change(ConfChangeType::AddNode, rec).await?);
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.core.header(0)),
            members,
        }))
    }
}
