//! `etcdserverpb.Watch`: one bidirectional stream carries many watchers (ids assigned per
//! stream from 0, or chosen by the client). Requests are handled by a task per stream; the
//! responses come out of the stream's bounded queue (see `crate::watch`), where prev_kv is
//! filled in and large responses are fragmented on the way out.
//!
//! A stream opened with `hasleader: true` metadata (clientv3 `WithRequireLeader`, used by
//! Kubernetes) is refused when this member knows no leader, and closed with
//! `etcdserver: no leader` (Unavailable) once the member has been without a leader for
//! [`NO_LEADER_CHECKS`] consecutive checks one election timeout apart, as etcd's
//! leader monitor does. The lease keep-alive stream does the same ([`leader_lost`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::check_leader;
use super::Node;
use crate::error::Error;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{
    watch_create_request::FilterType, watch_request, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use crate::watch::queue::{Item, StreamQueue};
use crate::watch::WatchSpec;

/// cancel_reason of a duplicate client-chosen watch id (etcd's mvcc error text).
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// cancel_reason of a negative start revision (etcd's mvcc.ErrCompacted text).
const COMPACTED: &str = "mvcc: required revision has been compacted";
/// cancel_reason of a range whose end is not after its key.
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// Consecutive checks (one election timeout apart) without a leader after which a
/// `hasleader` stream is closed.
pub(crate) const NO_LEADER_CHECKS: u32 = 3;

/// Whether the request carries `hasleader: true` (the client wants the stream closed
/// when this member has no leader).
pub(crate) fn requires_leader<T>(req: &Request<T>) -> bool {
    req.metadata()
        .get("hasleader")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// Completes once this member has seen no leader at [`NO_LEADER_CHECKS`] consecutive
/// checks one election timeout apart.
pub(crate) type LeaderLost = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The `hasleader` monitor of one stream (see [`LeaderLost`]).
pub(crate) fn leader_lost(node: Arc<Node>) -> LeaderLost {
    let every = node.state.lessor.election_timeout();
    Box::pin(
        async move { no_leader_for(move || node.raft.has_leader(), every, NO_LEADER_CHECKS).await },
    )
}

/// Checks `has_leader` every `every` and returns after `checks` consecutive misses. Only
/// checks actually made count: a monitor that was not polled for a while never fires on
/// time alone.
async fn no_leader_for(has_leader: impl Fn() -> bool, every: Duration, checks: u32) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut misses = 0;
    loop {
        tick.tick().await;
        if has_leader() {
            misses = 0;
        } else {
            misses += 1;
            if misses >= checks {
                return;
            }
        }
    }
}

/// The Watch service.
pub(crate) struct WatchService {
    pub(crate) node: Arc<Node>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// The watchers of one stream.
struct StreamState {
    node: Arc<Node>,
    queue: Arc<StreamQueue>,
    /// watch id → hub handle.
    ids: HashMap<i64, u64>,
    next_id: i64,
}

impl StreamState {
    fn header(&self) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(crate::pb::etcdserverpb::ResponseHeader {
            revision: self.node.state.watch.rev(),
            ..Default::default()
        })
    }

    fn create(&mut self, c: WatchCreateRequest) {
        let mut id = c.watch_id;
        let refused = if id != 0 && self.ids.contains_key(&id) {
            Some(DUPLICATE_ID)
        } else if c.start_revision < 0 {
            Some(COMPACTED)
        } else if !c.range_end.is_empty()
            && c.range_end.as_ref() != b"\0"
            && c.key.as_ref() >= c.range_end.as_ref()
        {
            Some(EMPTY_RANGE)
        } else {
            None
        };
        if let Some(reason) = refused {
            // etcd answers a refused create with watch id -1, created and canceled.
            self.queue.push_control(WatchResponse {
                header: self.header(),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: reason.into(),
                ..Default::default()
            });
            return;
        }
        if id == 0 {
            while self.ids.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            id = self.next_id;
            self.next_id += 1;
        }
        let key = if c.key.is_empty() {
            Bytes::from_static(b"\0")
        } else {
            c.key.clone()
        };
        let spec = Arc::new(WatchSpec {
            id,
            key,
            end: c.range_end.clone(),
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: c.prev_kv,
            fragment: c.fragment,
            progress_notify: c.progress_notify,
            queue: self.queue.clone(),
        });
        // The created answer is queued before the watcher exists, so no event of it can
        // overtake the answer.
        self.queue.push_control(WatchResponse {
            header: self.header(),
            watch_id: id,
            created: true,
            ..Default::default()
        });
        let h = self.node.state.watch.add(spec, c.start_revision);
        self.ids.insert(id, h);
    }

    fn cancel(&mut self, id: i64) {
        if let Some(h) = self.ids.remove(&id) {
            // Canceled only if the hub still had it (a compaction may have canceled it).
            if self.node.state.watch.remove(h) {
                self.queue.push_control(WatchResponse {
                    header: self.header(),
                    watch_id: id,
                    canceled: true,
                    ..Default::default()
                });
            }
        }
    }

    fn close(&mut self) {
        for (_, h) in self.ids.drain() {
            self.node.state.watch.remove(h);
        }
        let rest: Vec<u64> = self.queue.handles.lock().iter().copied().collect();
        for h in rest {
            self.node.state.watch.remove(h);
        }
        self.queue.close();
    }
}

/// Removes the stream's watchers when the response side goes away.
struct CloseGuard {
    node: Arc<Node>,
    queue: Arc<StreamQueue>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.queue.close();
        let rest: Vec<u64> = self.queue.handles.lock().iter().copied().collect();
        for h in rest {
            self.node.state.watch.remove(h);
        }
    }
}

/// Fills prev_kv (from the revision before each event) where the watcher asked for it.
fn fill_prev(node: &Node, resp: &mut WatchResponse) {
    for ev in &mut resp.events {
        if ev.prev_kv.is_some() {
            continue;
        }
        if let Some(kv) = &ev.kv {
            ev.prev_kv = node
                .state
                .store
                .get_kv_at(&kv.key, kv.mod_revision - 1)
                .ok()
                .flatten();
        }
    }
}

/// Splits a response whose encoding exceeds `limit` into fragments (all but the last
/// carry `fragment = true`), each holding at least one event.
fn fragments(resp: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() <= limit || resp.events.len() <= 1 {
        return vec![resp];
    }
    let base = WatchResponse {
        events: Vec::new(),
        ..resp.clone()
    };
    let overhead = base.encoded_len();
    let mut out = Vec::new();
    let mut cur: Vec<crate::pb::mvccpb::Event> = Vec::new();
    let mut size = overhead;
    for ev in resp.events {
        let n = ev.encoded_len() + 8;
        if !cur.is_empty() && size + n > limit {
            out.push(WatchResponse {
                events: std::mem::take(&mut cur),
                fragment: true,
                ..base.clone()
            });
            size = overhead;
        }
        size += n;
        cur.push(ev);
    }
    out.push(WatchResponse {
        events: cur,
        fragment: false,
        ..base
    });
    out
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        check_leader(&self.node, &req)?;
        let lost = requires_leader(&req).then(|| leader_lost(self.node.clone()));
        let mut input = req.into_inner();
        let node = self.node.clone();
        let queue = Arc::new(StreamQueue::new(node.state.watch.wake.clone()));
        let mut state = StreamState {
            node: node.clone(),
            queue: queue.clone(),
            ids: HashMap::new(),
            next_id: 0,
        };
        tokio::spawn(async move {
            while let Some(msg) = input.next().await {
                let Ok(m) = msg else { break };
                match m.request_union {
                    Some(watch_request::RequestUnion::CreateRequest(c)) => state.create(c),
                    Some(watch_request::RequestUnion::CancelRequest(c)) => state.cancel(c.watch_id),
                    Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                        state.node.state.watch.request_progress(&state.queue)
                    }
                    None => {}
                }
                if state.queue.is_closed() {
                    break;
                }
            }
            state.close();
        });
        let limit = node.limits.max_request_bytes;
        let guard = CloseGuard {
            node: node.clone(),
            queue: queue.clone(),
        };
        let out = futures::stream::unfold(
            (guard, VecDeque::<WatchResponse>::new(), lost),
            move |(guard, mut pending, mut lost)| async move {
                if let Some(r) = pending.pop_front() {
                    return Some((Ok(r), (guard, pending, lost)));
                }
                let item: Item = match lost.as_mut() {
                    Some(l) => tokio::select! {
                        item = guard.queue.pop() => item?,
                        _ = l => {
                            // The last item: the stream ends (and its watchers go) after it.
                            guard.queue.close();
                            return Some((Err(Error::NoLeader.into()), (guard, pending, None)));
                        }
                    },
                    None => guard.queue.pop().await?,
                };
                let mut resp = item.resp;
                if item.prev_kv {
                    fill_prev(&guard.node, &mut resp);
                }
                let rev = resp.header.map_or(0, |h| h.revision);
                resp.header = Some(guard.node.header(rev));
                if item.fragment {
                    pending.extend(fragments(resp, limit));
                    let first = pending.pop_front()?;
                    Some((Ok(first), (guard, pending, lost)))
                } else {
                    Some((Ok(resp), (guard, pending, lost)))
                }
            },
        );
        Ok(Response::new(Box::pin(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Runs the monitor over a scripted leader view; returns how many checks it made
    /// before firing.
    async fn checks_until_fired(script: impl Fn(u32) -> bool + Send + 'static) -> u32 {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let has_leader = move || script(c.fetch_add(1, Ordering::SeqCst));
        tokio::time::timeout(
            Duration::from_secs(60),
            no_leader_for(has_leader, Duration::from_millis(2), NO_LEADER_CHECKS),
        )
        .await
        .expect("monitor fires");
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn fires_after_consecutive_checks_without_a_leader() {
        assert_eq!(checks_until_fired(|_| false).await, NO_LEADER_CHECKS);
    }

    #[tokio::test]
    async fn a_leader_seen_in_between_restarts_the_count() {
        // Leader at checks 0..10, then at every third check up to check 29 (never three
        // misses in a row), then none: misses at checks 30, 31, 32 fire it.
        let script = |n: u32| n < 10 || (n < 30 && n % 3 == 2);
        assert_eq!(checks_until_fired(script).await, 30 + NO_LEADER_CHECKS);
    }

    #[test]
    fn hasleader_metadata_is_read_exactly() {
        let mut r = Request::new(());
        assert!(!requires_leader(&r));
        r.metadata_mut()
            .insert("hasleader", "false".parse().unwrap());
        assert!(!requires_leader(&r));
        r.metadata_mut()
            .insert("hasleader", "true".parse().unwrap());
        assert!(requires_leader(&r));
    }
}
