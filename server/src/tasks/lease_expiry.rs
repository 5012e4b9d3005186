//! The lease expiry task: while this member leads, it proposes a revoke for every expired
//! lease (so expiry is just another applied revoke) and, every checkpoint interval, a
//! checkpoint of the remaining TTLs. It also promotes the lessor when this member becomes
//! leader and demotes it when it stops leading (see `crate::lease`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::lease::{CHECKPOINTS_PER_PROPOSAL, EXPIRY_CHECK, MAX_REVOKES_PER_CHECK, OBSERVE_EVERY};
use crate::pb::etcdserverpb::{LeaseCheckpointRequest, LeaseRevokeRequest};
use crate::raft::Proposer;
use crate::state::State;

/// Starts the task; it ends when `shutdown` turns true.
pub(crate) fn spawn(
    state: Arc<State>,
    raft: Arc<Proposer>,
    checkpoint_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let me = state.member.id;
        let mut last_checkpoint = Instant::now();
        let mut last_check = Instant::now();
        let mut tick = tokio::time::interval(OBSERVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
            let primary = state
                .lessor
                .ensure_primary(me, raft.leader_id(), raft.term());
            if !primary || last_check.elapsed() < EXPIRY_CHECK {
                continue;
            }
            last_check = Instant::now();
            for id in state
                .lessor
                .take_expired(Instant::now(), MAX_REVOKES_PER_CHECK)
            {
                let (state, raft) = (state.clone(), raft.clone());
                tokio::spawn(async move {
                    match raft.propose(LeaseRevokeRequest { id }).await {
                        Ok(_) => tracing::debug!(lease = id, "expired lease revoked"),
                        Err(Error::LeaseNotFound) => {}
                        Err(e) => {
                            tracing::warn!(lease = id, error = %e, "revoking expired lease failed");
                            state.lessor.retry(id);
                        }
                    }
                });
            }
            if last_checkpoint.elapsed() >= checkpoint_interval {
                last_checkpoint = Instant::now();
                let cps = state.lessor.checkpoints(checkpoint_interval);
                // Chunks keep each proposal well under the request size limit.
                for chunk in cps.chunks(CHECKPOINTS_PER_PROPOSAL) {
                    let req = LeaseCheckpointRequest {
                        checkpoints: chunk.to_vec(),
                    };
                    if let Err(e) = raft.propose(req).await {
                        tracing::warn!(error = %e, "lease checkpoint failed");
                    }
                }
            }
        }
    })
}
