//! `etcdserverpb.Cluster`: membership through raft conf changes. Adding, removing and
//! promoting members are decided by the leader (it knows replication progress); a
//! follower forwards those calls to the leader's client URL. MemberUpdate is an ordinary
//! proposal; MemberList reads the applied membership (after a ReadIndex when
//! linearizable).

use std::sync::Arc;

use raft::eraftpb::ConfChangeType;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::Node;
use crate::apply::Members;
use crate::error::Error;
use crate::membership;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::raft::{ProgressView, MAX_LEARNERS};
use crate::schema::MemberRecord;

/// The Cluster service.
pub(crate) struct ClusterService {
    pub(crate) node: Arc<Node>,
}

/// A learner counts as in sync when it has at least this share of the leader's log (etcd:
/// 90 %).
const PROMOTE_READY_PERCENT: u64 = 90;

async fn progress(node: &Node) -> Result<ProgressView, Status> {
    Ok(node.raft.progress().await?)
}

/// A client of the leader's Cluster service, for calls a follower cannot decide.
async fn leader_client(node: &Node) -> Result<ClusterClient<Channel>, Status> {
    let urls = node.leader_client_urls();
    if node.raft.leader_id() == 0 {
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
    /// The applied record of member `id`.
    fn member(&self, id: u64) -> Result<MemberRecord, Status> {
        self.node
            .state
            .cluster
            .read()
            .members
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::MemberNotFound.into())
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.node.check_not_learner()?;
        if !self.node.raft.is_leader() {
            let mut c = leader_client(&self.node).await?;
            return c.member_add(req.into_inner()).await;
        }
        let r = req.into_inner();
        membership::check_peer_urls(&r.peer_ur_ls)?;
        {
            let c = self.node.state.cluster.read();
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
            let p = progress(&self.node).await?;
            let voters = p.voters.len() + 1;
            if active_voters(&p, self.node.state.member.id) < voters / 2 + 1 {
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
        let Members { member, members } = self
            .node
            .raft
            .propose_conf_change(change_type, member)
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.node.header(0)),
            member,
            members,
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.node.check_not_learner()?;
        if !self.node.raft.is_leader() {
            let mut c = leader_client(&self.node).await?;
            return c.member_remove(req.into_inner()).await;
        }
        let id = req.into_inner().id;
        let rec = self.member(id)?;
        if !rec.is_learner {
            // etcd's strict reconfiguration check: the started voters left must be a
            // quorum of the voters left.
            let p = progress(&self.node).await?;
            let left: Vec<u64> = p.voters.iter().copied().filter(|v| *v != id).collect();
            let view = ProgressView {
                voters: left.clone(),
                ..p.clone()
            };
            if left.is_empty()
                || active_voters(&view, self.node.state.member.id) < left.len() / 2 + 1
            {
                return Err(Error::NotEnoughStartedMembers.into());
            }
        }
        let Members { member: _, members } = self
            .node
            .raft
            .propose_conf_change(ConfChangeType::RemoveNode, rec)
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.node.header(0)),
            members,
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.node.check_not_learner()?;
        let r = req.into_inner();
        membership::check_peer_urls(&r.peer_ur_ls)?;
        if !self.node.state.cluster.read().members.contains_key(&r.id) {
            return Err(Error::MemberNotFound.into());
        }
        let Members { members, .. } = self.node.raft.propose(r).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.node.header(0)),
            members,
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.node.raft.read_index().await?;
        }
        Ok(Response::new(MemberListResponse {
            // etcd's Cluster service leaves the header revision at 0.
            header: Some(self.node.header(0)),
            members: self.node.state.cluster.read().list(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.node.check_not_learner()?;
        if !self.node.raft.is_leader() {
            let mut c = leader_client(&self.node).await?;
            return c.member_promote(req.into_inner()).await;
        }
        let id = req.into_inner().id;
        let rec = self.member(id)?;
        if !rec.is_learner {
            return Err(Error::MemberNotLearner.into());
        }
        let p = progress(&self.node).await?;
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
        if active_voters(&p, self.node.state.member.id) + 1 < voters / 2 + 1 {
            return Err(Error::NotEnoughStartedMembers.into());
        }
        let Members { member: _, members } = self
            .node
            .raft
            .propose_conf_change(ConfChangeType::AddNode, rec)
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.node.header(0)),
            members,
        }))
    }
}
