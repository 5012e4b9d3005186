//! A watcher whose client stops reading while many writes are applied: writes keep going,
//! another watcher (on its own connection) gets every event live, the server's heap stays
//! bounded (the stalled stream's queue is bounded and its watcher falls back to catch-up),
//! and once the client reads again it receives every event exactly once, in order — or,
//! if its history was compacted away meanwhile, a cancel with `compact_revision`.
//!
//! Sizes are CI-friendly; `CAIRN_HEAVY_WATCH=1` runs the 100 000-write variant.
#![allow(unsafe_code)] // the counting global allocator below

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_server::pb::etcdserverpb::watch_client::WatchClient;
use cairn_server::pb::etcdserverpb::{
    watch_request::RequestUnion, WatchCreateRequest, WatchRequest, WatchResponse,
};
use common::TestServer;
use etcd_client::{CompactionOptions, PutOptions, Txn, TxnOp};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Counts live heap bytes and their peak (the server runs in this process).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged; the counters are plain atomics and never affect the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was returned by `alloc`/`realloc` above with layout `l`.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` was returned by this allocator with layout `l`.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WAIT: Duration = Duration::from_secs(60);

/// The tests of this file measure the process heap: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn heavy() -> bool {
    std::env::var("CAIRN_HEAVY_WATCH").is_ok_and(|v| v == "1")
}

struct Raw {
    _tx: mpsc::Sender<WatchRequest>,
    rx: tonic::Streaming<WatchResponse>,
}

/// A watch stream on its own connection, watching prefix `w/` from `start`.
async fn open(ts: &TestServer, start: i64) -> Raw {
    let mut wc = WatchClient::connect(ts.endpoint.clone())
        .await
        .unwrap()
        .max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "w/".into(),
            range_end: "w0".into(),
            start_revision: start,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut rx = wc
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = rx.message().await.unwrap().unwrap();
    assert!(first.created);
    Raw { _tx: tx, rx }
}

impl Raw {
    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .expect("stream open")
    }

    /// Reads events until revision `last`; checks each revision from `from` comes once,
    /// in order, with `per_rev` events.
    async fn drain_to(&mut self, from: i64, last: i64, per_rev: usize) {
        let mut expect = from;
        let mut in_rev = 0;
        while expect <= last {
            let r = self.next().await;
            assert!(!r.canceled, "unexpected cancel {r:?}");
            for ev in &r.events {
                let rev = ev.kv.as_ref().unwrap().mod_revision;
                assert_eq!(rev, expect, "gap, duplicate or reorder");
                in_rev += 1;
                if in_rev == per_rev {
                    in_rev = 0;
                    expect += 1;
                }
            }
        }
    }
}

// The raft log is compacted every 1000 entries (snapshot_count) so its in-memory tail
// does not count against the bound.

/// Writes `n` revisions (txns of `per_rev` puts of `size` bytes) from 8 writers.
async fn write(ts: &TestServer, n: usize, per_rev: usize, size: usize) -> Duration {
    let c = ts.client().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let v = vec![b'v'; size];
            for i in (t..n).step_by(8) {
                let ops: Vec<TxnOp> = (0..per_rev)
                    .map(|j| TxnOp::put(format!("w/{}/{j}", i % 64), v.clone(), None::<PutOptions>))
                    .collect();
                c.txn(Txn::new().and_then(ops)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_client_does_not_block_apply_or_others_and_gets_everything_later() {
    let _serial = SERIAL.lock().await;
    let (n, per_rev, size) = if heavy() {
        (100_000, 1, 2048)
    } else {
        (6_000, 4, 2048)
    };
    let ts = TestServer::start_with(|o| o.snapshot_count = 1000).await;
    let mut c = ts.client().await;
    let start = c.get("x", None).await.unwrap().header().unwrap().revision() + 1;

    let mut stalled = open(&ts, 0).await; // never read until the writes are done
    let mut live = open(&ts, 0).await;
    let reader = tokio::spawn(async move {
        live.drain_to(start, start + n as i64 - 1, per_rev).await;
        live
    });

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let took = write(&ts, n, per_rev, size).await;
    let peak_growth = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let data = n * per_rev * size;
    eprintln!(
        "{n} revisions ({} MiB of values) applied in {took:?} with a stalled watcher; \
         peak heap growth {} MiB",
        data >> 20,
        peak_growth >> 20
    );
    // The other watcher got everything live (it finishes within the wait).
    let _live = tokio::time::timeout(WAIT, reader)
        .await
        .expect("live watcher keeps up")
        .unwrap();
    // Bounded: the stalled stream's queue budget (16 MiB) plus the write path's own
    // buffers, not the whole history.
    let bound = 96 << 20;
    assert!(
        peak_growth < bound,
        "peak heap growth {} MiB with a stalled watcher",
        peak_growth >> 20
    );
    if heavy() {
        assert!(data > 2 * bound, "heavy variant writes more than the bound");
    }

    // The stalled client reads again: every event, once, in order.
    stalled.drain_to(start, start + n as i64 - 1, per_rev).await;
    // And it is live again afterwards.
    c.put("w/after", "x", None).await.unwrap();
    let r = stalled.next().await;
    assert_eq!(r.events[0].kv.as_ref().unwrap().key.as_ref(), b"w/after");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_client_whose_history_is_compacted_is_canceled() {
    let _serial = SERIAL.lock().await;
    let ts = TestServer::start_with(|o| o.snapshot_count = 1000).await;
    let mut c = ts.client().await;
    let mut stalled = open(&ts, 0).await;
    write(&ts, 3_000, 4, 2048).await;
    let cur = c.get("x", None).await.unwrap().header().unwrap().revision();
    c.compact(cur, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    // Reads what was queued before it fell behind, then the cancel.
    let mut last = 0;
    loop {
        let r = stalled.next().await;
        if r.canceled {
            assert_eq!(r.compact_revision, cur);
            break;
        }
        for ev in &r.events {
            let rev = ev.kv.as_ref().unwrap().mod_revision;
            assert!(rev >= last, "in order");
            last = rev;
        }
    }
    assert!(last < cur, "events stop where the history was compacted");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_watchers_cost_little_memory() {
    let _serial = SERIAL.lock().await;
    let ts = TestServer::start().await;
    let mut wc = WatchClient::connect(ts.endpoint.clone())
        .await
        .unwrap()
        .max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel(64);
    let mut out = wc
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    const N: usize = 10_000;
    // Warm up the stream (buffers, first allocations) before measuring.
    let create = |i: usize| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: format!("idle/{i:05}").into(),
            ..Default::default()
        })),
    };
    tx.send(create(N)).await.unwrap();
    assert!(out.message().await.unwrap().unwrap().created);
    let base = LIVE.load(Ordering::Relaxed);
    let sender = tokio::spawn(async move {
        for i in 0..N {
            tx.send(create(i)).await.unwrap();
        }
        tx
    });
    for _ in 0..N {
        let r = tokio::time::timeout(WAIT, out.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(r.created);
    }
    let _tx = sender.await.unwrap();
    let per = LIVE.load(Ordering::Relaxed).saturating_sub(base) / N;
    eprintln!("heap per idle watcher: {per} bytes ({N} watchers on one stream)");
    assert!(per < 4096, "{per} bytes per idle watcher");
    ts.stop().await;
}
