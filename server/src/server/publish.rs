//! Publishing this member's name and client URLs through raft.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Node;
use crate::error::Error;

/// Publishes this member's name and client URLs through raft once a leader is known, as
/// etcd's members do after starting (until then others see them without).
pub(super) fn spawn_publish(
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
    published: tokio::sync::oneshot::Sender<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _published = published;
        loop {
            let up_to_date = node
                .state
                .cluster
                .read()
                .members
                .get(&node.state.member.id)
                .map(|m| {
                    m.name == node.state.member.name
                        && m.client_urls == node.state.member.client_urls
                });
            if up_to_date == Some(true) {
                return;
            }
            if up_to_date.is_some() && node.raft.has_leader() {
                let m = crate::pb::etcdserverpb::Member {
                    id: node.state.member.id,
                    name: node.state.member.name.clone(),
                    client_ur_ls: node.state.member.client_urls.clone(),
                    ..Default::default()
                };
                match node.raft.propose(m).await {
                    Ok(_) => {
                        tracing::info!(
                            name = %node.state.member.name,
                            client_urls = ?node.state.member.client_urls,
                            "published member attributes to the cluster"
                        );
                        return;
                    }
                    Err(Error::Stopped) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "publishing member attributes failed; retrying")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
        }
    })
}
