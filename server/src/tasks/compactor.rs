//! Automatic compaction (`--auto-compaction-mode`): periodic mode keeps the given span of
//! history (sampling the revision every tenth of it); revision mode keeps the given number
//! of revisions (checked every `auto_compaction_check_interval`, etcd's 5 minutes).
//! Compactions are proposed through raft like a client's Compact.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::AutoCompaction;
use crate::pb::etcdserverpb::CompactionRequest;
use crate::raft::Proposer;
use crate::state::State;

/// Starts the compactor for `mode`; revision mode looks every `check` (etcd: 5 minutes).
pub(crate) fn spawn(
    state: Arc<State>,
    raft: Arc<Proposer>,
    mode: AutoCompaction,
    check: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let step = match mode {
            AutoCompaction::Off => return,
            AutoCompaction::Periodic(d) => (d / 10).max(Duration::from_millis(100)),
            AutoCompaction::Revision(_) => check.max(Duration::from_millis(10)),
        };
        tracing::info!(?mode, interval = ?step, "auto compaction enabled");
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut last = 0i64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
            let now = Instant::now();
            let rev = state.store.rev();
            let target = match mode {
                AutoCompaction::Off => return,
                AutoCompaction::Periodic(keep) => {
                    samples.push_back((now, rev));
                    let mut target = None;
                    while let Some(&(t, r)) = samples.front() {
                        if now.duration_since(t) >= keep {
                            target = Some(r);
                            samples.pop_front();
                        } else {
                            break;
                        }
                    }
                    target
                }
                AutoCompaction::Revision(keep) => Some(rev - keep as i64),
            };
            let Some(target) = target else { continue };
            if target <= last || target <= state.store.compact_rev() || target <= 0 {
                continue;
            }
            let req = CompactionRequest {
                revision: target,
                physical: false,
            };
            match raft.propose(req).await {
                Ok(_) => {
                    tracing::info!(revision = target, "auto compaction done");
                    last = target;
                }
                Err(e) => tracing::warn!(revision = target, error = %e, "auto compaction failed"),
            }
        }
    })
}
