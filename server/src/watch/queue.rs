//! The bounded outgoing queue of one watch stream.
//!
//! The apply loop pushes with [`StreamQueue::try_push`], which never blocks: when the
//! queue is full the push fails and the watcher falls back to catch-up. Control answers
//! (created, canceled, progress) are pushed with [`StreamQueue::push_control`], which is
//! not bounded by the event budget (their number follows the client's own requests).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::pb::etcdserverpb::WatchResponse;

/// Most event responses queued per stream.
pub(crate) const MAX_ITEMS: usize = 1024;
/// Most event bytes (keys and values) queued per stream.
pub(crate) const MAX_BYTES: usize = 16 * 1024 * 1024;

/// One queued response and how to finish it on the way out.
pub(crate) struct Item {
    pub(crate) resp: WatchResponse,
    /// Fill missing prev_kv of events (the watcher asked for them).
    pub(crate) prev_kv: bool,
    /// Split the response when it exceeds the request size limit.
    pub(crate) fragment: bool,
    /// Bytes accounted against [`MAX_BYTES`] (0 for control answers).
    bytes: usize,
    /// Counted against [`MAX_ITEMS`].
    counted: bool,
}

impl Item {
    pub(crate) fn control(resp: WatchResponse) -> Item {
        Item {
            resp,
            prev_kv: false,
            fragment: false,
            bytes: 0,
            counted: false,
        }
    }

    pub(crate) fn events(resp: WatchResponse, prev_kv: bool, fragment: bool) -> Item {
        let bytes = resp
            .events
            .iter()
            .map(|e| {
                64 + e.kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len())
                    + e.prev_kv
                        .as_ref()
                        .map_or(0, |kv| kv.key.len() + kv.value.len())
            })
            .sum();
        Item {
            resp,
            prev_kv,
            fragment,
            bytes,
            counted: false,
        }
    }
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Item>,
    event_items: usize,
    bytes: usize,
    /// A push failed since the queue last drained below half: wake the syncer then.
    starved: bool,
}

/// The outgoing queue of one stream, plus the hub handles of its watchers.
pub(crate) struct StreamQueue {
    inner: Mutex<Inner>,
    ready: Notify,
    closed: AtomicBool,
    /// Woken when a starved queue has room again (the hub's syncer).
    syncer: Arc<Notify>,
    /// Hub handles of the watchers on this stream.
    pub(crate) handles: Mutex<HashSet<u64>>,
    /// A progress request waits until every watcher is synced.
    pub(crate) progress_deferred: AtomicBool,
}

impl StreamQueue {
    pub(crate) fn new(syncer: Arc<Notify>) -> StreamQueue {
        StreamQueue {
            inner: Mutex::new(Inner::default()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            syncer,
            handles: Mutex::new(HashSet::new()),
            progress_deferred: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Whether an event push would currently fit (used by catch-up before reading).
    pub(crate) fn has_room(&self) -> bool {
        let q = self.inner.lock();
        q.event_items < MAX_ITEMS / 2 && q.bytes < MAX_BYTES / 2
    }

    /// Queues an event response unless the queue is full. Never blocks.
    pub(crate) fn try_push(&self, mut item: Item) -> bool {
        if self.is_closed() {
            return true; // nobody reads any more; the watcher is being removed
        }
        let mut q = self.inner.lock();
        let full = q.event_items >= MAX_ITEMS || (q.bytes > 0 && q.bytes + item.bytes > MAX_BYTES);
        if full {
            q.starved = true;
            return false;
        }
        q.event_items += 1;
        q.bytes += item.bytes;
        item.counted = true;
        q.items.push_back(item);
        drop(q);
        self.ready.notify_one();
        true
    }

    /// Queues a control answer (created, canceled, progress).
    pub(crate) fn push_control(&self, resp: WatchResponse) {
        self.inner.lock().items.push_back(Item::control(resp));
        self.ready.notify_one();
    }

    /// Takes the next item, waiting for one; `None` once the stream is closed.
    pub(crate) async fn pop(&self) -> Option<Item> {
        loop {
            if self.is_closed() {
                return None;
            }
            {
                let mut q = self.inner.lock();
                if let Some(it) = q.items.pop_front() {
                    if it.counted {
                        q.event_items -= 1;
                        q.bytes -= it.bytes;
                    }
                    if q.starved && q.event_items < MAX_ITEMS / 2 && q.bytes < MAX_BYTES / 2 {
                        q.starved = false;
                        self.syncer.notify_one();
                    }
                    return Some(it);
                }
            }
            self.ready.notified().await;
        }
    }
}
