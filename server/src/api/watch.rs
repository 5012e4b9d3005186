//! `etcdserverpb.Watch`: one bidirectional stream carries many watchers (ids assigned per
//! stream from 0, or chosen by the client). Requests are handled by a task per stream; the
//! responses come out of the stream's bounded queue (see `crate::watch`), where prev_kv is
//! filled in and large responses are fragmented on the way out.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::check_leader;
use crate::core::Core;
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

/// The Watch service.
pub(crate) struct WatchService {
    pub(crate) core: Arc<Core>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// The watchers of one stream.
struct StreamState {
    core: Arc<Core>,
    queue: Arc<StreamQueue>,
    /// watch id → hub handle.
    ids: HashMap<i64, u64>,
    next_id: i64,
}

impl StreamState {
    fn header(&self) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(crate::pb::etcdserverpb::ResponseHeader {
            revision: self.core.watch.rev(),
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
        let h = self.core.watch.add(spec, c.start_revision);
        self.ids.insert(id, h);
    }

    fn cancel(&mut self, id: i64) {
        if let Some(h) = self.ids.remove(&id) {
            // Canceled only if the hub still had it (a compaction may have canceled it).
            if self.core.watch.remove(h) {
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
            self.core.watch.remove(h);
        }
        let rest: Vec<u64> = self.queue.handles.lock().iter().copied().collect();
        for h in rest {
            self.core.watch.remove(h);
        }
        self.queue.close();
    }
}

/// Removes the stream's watchers when the response side goes away.
struct CloseGuard {
    core: Arc<Core>,
    queue: Arc<StreamQueue>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.queue.close();
        let rest: Vec<u64> = self.queue.handles.lock().iter().copied().collect();
        for h in rest {
            self.core.watch.remove(h);
        }
    }
}

/// Fills prev_kv (from the revision before each event) where the watcher asked for it.
fn fill_prev(core: &Core, resp: &mut WatchResponse) {
    for ev in &mut resp.events {
        if ev.prev_kv.is_some() {
            continue;
        }
        if let Some(kv) = &ev.kv {
            ev.prev_kv = core
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
        check_leader(&self.core, &req)?;
        let mut input = req.into_inner();
        let core = self.core.clone();
        let queue = Arc::new(StreamQueue::new(core.watch.wake.clone()));
        let mut state = StreamState {
            core: core.clone(),
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
                        state.core.watch.request_progress(&state.queue)
                    }
                    None => {}
                }
                if state.queue.is_closed() {
                    break;
                }
            }
            state.close();
        });
        let limit = core.limits.max_request_bytes;
        let guard = CloseGuard {
            core: core.clone(),
            queue: queue.clone(),
        };
        let out = futures::stream::unfold(
            (guard, VecDeque::<WatchResponse>::new()),
            move |(guard, mut pending)| async move {
                if let Some(r) = pending.pop_front() {
                    return Some((Ok(r), (guard, pending)));
                }
                let item: Item = guard.queue.pop().await?;
                let mut resp = item.resp;
                if item.prev_kv {
                    fill_prev(&guard.core, &mut resp);
                }
                let rev = resp.header.map_or(0, |h| h.revision);
                resp.header = Some(guard.core.header(rev));
                if item.fragment {
                    pending.extend(fragments(resp, limit));
                    let first = pending.pop_front()?;
                    Some((Ok(first), (guard, pending)))
                } else {
                    Some((Ok(resp), (guard, pending)))
                }
            },
        );
        Ok(Response::new(Box::pin(out)))
    }
}
