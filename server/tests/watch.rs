//! Watch service over real gRPC with the `etcd-client` crate (and the generated client
//! where etcd-client hides a field): create with every option, cancel, ids, progress,
//! compaction, catch-up from history, fragments, many watchers and streams.

mod common;

use std::time::Duration;

use cairn_server::pb::etcdserverpb::watch_client::WatchClient;
use cairn_server::pb::etcdserverpb::{
    watch_request::RequestUnion, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse as PbWatchResponse,
};
use common::TestServer;
use etcd_client::{
    Client, CompactionOptions, EventType, PutOptions, Txn, TxnOp, WatchFilterType, WatchOptions,
    WatchResponse, WatchStream,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(30);

async fn next(w: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(WAIT, w.message())
        .await
        .expect("a watch response in time")
        .expect("stream ok")
        .expect("stream open")
}

fn is_progress(r: &WatchResponse) -> bool {
    r.events().is_empty() && !r.created() && !r.canceled() && r.compact_revision() == 0
}

/// Collects events until `n` arrived (skipping progress notifications).
async fn collect(w: &mut WatchStream, n: usize) -> Vec<(EventType, Vec<u8>, i64, Vec<u8>)> {
    let mut out = Vec::new();
    while out.len() < n {
        let r = next(w).await;
        assert!(!r.canceled(), "unexpected cancel: {r:?}");
        for ev in r.events() {
            let kv = ev.kv().unwrap();
            out.push((
                ev.event_type(),
                kv.key().to_vec(),
                kv.mod_revision(),
                kv.value().to_vec(),
            ));
        }
    }
    assert_eq!(out.len(), n, "no more events than expected");
    out
}

async fn rev(c: &mut Client) -> i64 {
    c.get("x", None).await.unwrap().header().unwrap().revision()
}

/// A raw bidi stream with the generated client.
struct Raw {
    tx: mpsc::Sender<WatchRequest>,
    rx: tonic::Streaming<PbWatchResponse>,
}

impl Raw {
    async fn open(ts: &TestServer) -> Raw {
        let mut wc = WatchClient::connect(ts.endpoint.clone())
            .await
            .unwrap()
            .max_decoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(16);
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        req.metadata_mut()
            .insert("hasleader", "true".parse().unwrap());
        let rx = wc.watch(req).await.unwrap().into_inner();
        Raw { tx, rx }
    }

    async fn create(&self, c: WatchCreateRequest) {
        self.tx
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(c)),
            })
            .await
            .unwrap();
    }

    async fn next(&mut self) -> PbWatchResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn created_then_events_ids_from_zero_and_cancel() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.put("pre", "1", None).await.unwrap();
    let cur = rev(&mut c).await;

    let mut w = c.watch("foo", None).await.unwrap();
    let r = next(&mut w).await;
    assert!(r.created());
    assert_eq!(r.watch_id(), 0, "ids start at 0 per stream");
    assert_eq!(r.header().unwrap().revision(), cur);
    assert_ne!(r.header().unwrap().member_id(), 0);

    w.watch("bar", None).await.unwrap();
    let r = next(&mut w).await;
    assert!(r.created());
    assert_eq!(r.watch_id(), 1);

    c.put("foo", "v1", None).await.unwrap();
    c.put("bar", "v2", None).await.unwrap();
    c.delete("foo", None).await.unwrap();
    let r = next(&mut w).await;
    assert_eq!(r.watch_id(), 0);
    assert_eq!(r.events().len(), 1);
    let ev = &r.events()[0];
    assert_eq!(ev.event_type(), EventType::Put);
    let kv = ev.kv().unwrap();
    assert_eq!((kv.key(), kv.value()), (b"foo".as_ref(), b"v1".as_ref()));
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (cur + 1, cur + 1, 1)
    );
    assert!(ev.prev_kv().is_none(), "prev_kv only when asked");
    let r = next(&mut w).await;
    assert_eq!(
        (r.watch_id(), r.events()[0].kv().unwrap().key()),
        (1, b"bar".as_ref())
    );
    let r = next(&mut w).await;
    assert_eq!(r.watch_id(), 0);
    let ev = &r.events()[0];
    assert_eq!(ev.event_type(), EventType::Delete);
    assert_eq!(ev.kv().unwrap().mod_revision(), cur + 3);
    assert_eq!(ev.kv().unwrap().version(), 0);

    w.cancel(0).await.unwrap();
    let r = next(&mut w).await;
    assert!(r.canceled());
    assert_eq!(r.watch_id(), 0);
    c.put("foo", "after-cancel", None).await.unwrap();
    c.put("bar", "still", None).await.unwrap();
    let r = next(&mut w).await;
    assert_eq!(r.watch_id(), 1, "the canceled watcher gets nothing more");
    assert_eq!(r.events()[0].kv().unwrap().value(), b"still");

    // A second stream on the same connection numbers its watchers from 0 too.
    let mut w2 = c.watch("foo", None).await.unwrap();
    let r = next(&mut w2).await;
    assert!(r.created());
    assert_eq!(r.watch_id(), 0);
    ts.stop().await;
}

#[tokio::test]
async fn client_ids_duplicates_and_bad_create_requests() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let mut w = c
        .watch("a", Some(WatchOptions::new().with_watch_id(100)))
        .await
        .unwrap();
    let r = next(&mut w).await;
    assert!(r.created() && !r.canceled());
    assert_eq!(r.watch_id(), 100);

    w.watch("b", Some(WatchOptions::new().with_watch_id(100)))
        .await
        .unwrap();
    let r = next(&mut w).await;
    assert!(r.created() && r.canceled());
    assert_eq!(r.watch_id(), -1);
    assert_eq!(
        r.cancel_reason(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );

    // An auto id skips the ids in use.
    w.watch("c", None).await.unwrap();
    assert_eq!(next(&mut w).await.watch_id(), 0);

    w.watch("z", Some(WatchOptions::new().with_range("a")))
        .await
        .unwrap();
    let r = next(&mut w).await;
    assert!(r.created() && r.canceled());
    assert_eq!(r.cancel_reason(), "mvcc: watcher range is empty");

    c.put("a", "1", None).await.unwrap();
    let r = next(&mut w).await;
    assert_eq!(r.watch_id(), 100);
    ts.stop().await;
}

#[tokio::test]
async fn prefix_from_key_all_keys_filters_and_prev_kv() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.put("p/a", "0", None).await.unwrap();

    let mut prefix = c
        .watch(
            "p/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    let mut all = c
        .watch("", Some(WatchOptions::new().with_all_keys()))
        .await
        .unwrap();
    let mut from = c
        .watch("p/b", Some(WatchOptions::new().with_from_key()))
        .await
        .unwrap();
    let mut noput = c
        .watch(
            "p/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap();
    let mut nodel = c
        .watch(
            "p/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .unwrap();
    for w in [&mut prefix, &mut all, &mut from, &mut noput, &mut nodel] {
        assert!(next(w).await.created());
    }

    c.put("p/a", "1", None).await.unwrap();
    c.put("p/b", "2", None).await.unwrap();
    c.put("q", "3", None).await.unwrap();
    c.put("\0", "nul", None).await.unwrap();
    c.delete("p/a", None).await.unwrap();

    let got = collect(&mut prefix, 3).await;
    let keys: Vec<&[u8]> = got.iter().map(|e| e.1.as_slice()).collect();
    assert_eq!(keys, vec![b"p/a".as_ref(), b"p/b", b"p/a"]);

    let got = collect(&mut all, 5).await;
    let keys: Vec<&[u8]> = got.iter().map(|e| e.1.as_slice()).collect();
    assert_eq!(keys, vec![b"p/a".as_ref(), b"p/b", b"q", b"\0", b"p/a"]);

    let got = collect(&mut from, 2).await;
    let keys: Vec<&[u8]> = got.iter().map(|e| e.1.as_slice()).collect();
    assert_eq!(keys, vec![b"p/b".as_ref(), b"q"]);

    let got = collect(&mut noput, 1).await;
    assert_eq!(got[0].0, EventType::Delete);
    let got = collect(&mut nodel, 2).await;
    assert!(got.iter().all(|e| e.0 == EventType::Put));

    // prev_kv on put and delete, checked on a fresh watcher from history too.
    let cur = rev(&mut c).await;
    let mut hist = c
        .watch(
            "p/a",
            Some(
                WatchOptions::new()
                    .with_start_revision(cur - 4)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap();
    assert!(next(&mut hist).await.created());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let r = next(&mut hist).await;
        for ev in r.events() {
            seen.push((ev.event_type(), ev.prev_kv().map(|p| p.value().to_vec())));
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventType::Put, Some(b"0".to_vec())),
            (EventType::Delete, Some(b"1".to_vec()))
        ]
    );
    // The live prefix watcher had prev_kv too.
    c.put("p/b", "again", None).await.unwrap();
    let r = next(&mut prefix).await;
    assert_eq!(r.events()[0].prev_kv().unwrap().value(), b"2");
    ts.stop().await;
}

#[tokio::test]
async fn from_revision_one_after_thousands_of_writes_and_future_start() {
    let ts = TestServer::start().await;
    let c = ts.client().await;
    const N: usize = 3000;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..N).step_by(8) {
                c.put(format!("h/{:03}", i % 100), format!("{i}"), None)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = c.clone();
    let cur = rev(&mut c).await;
    assert_eq!(cur, N as i64 + 1);

    let mut w = c
        .watch(
            "h/",
            Some(WatchOptions::new().with_prefix().with_start_revision(1)),
        )
        .await
        .unwrap();
    assert!(next(&mut w).await.created());
    let got = collect(&mut w, N).await;
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.2, i as i64 + 2, "every revision once, in order");
    }
    // Live events follow the history without a gap.
    c.put("h/live", "x", None).await.unwrap();
    let got = collect(&mut w, 1).await;
    assert_eq!(got[0].2, cur + 1);

    // A start revision in the future: nothing before it.
    let mut fut = c
        .watch(
            "h/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(cur + 5),
            ),
        )
        .await
        .unwrap();
    assert!(next(&mut fut).await.created());
    for i in 0..6 {
        c.put("h/f", format!("{i}"), None).await.unwrap();
    }
    let got = collect(&mut fut, 2).await;
    assert_eq!((got[0].2, got[1].2), (cur + 5, cur + 6));
    ts.stop().await;
}

#[tokio::test]
async fn compacted_start_is_canceled_with_compact_revision() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    for i in 0..10 {
        c.put("c", format!("{i}"), None).await.unwrap();
    }
    let cur = rev(&mut c).await;
    c.compact(cur - 3, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();

    let mut w = c
        .watch("c", Some(WatchOptions::new().with_start_revision(cur - 5)))
        .await
        .unwrap();
    let r = next(&mut w).await;
    assert!(r.created());
    let r = next(&mut w).await;
    assert!(r.canceled());
    assert_eq!(r.compact_revision(), cur - 3);

    // At the compaction revision itself the history is still there.
    let mut ok = c
        .watch("c", Some(WatchOptions::new().with_start_revision(cur - 3)))
        .await
        .unwrap();
    assert!(next(&mut ok).await.created());
    let got = collect(&mut ok, 4).await;
    assert_eq!(got[0].2, cur - 3);
    assert_eq!(got[3].2, cur);
    ts.stop().await;
}

#[tokio::test]
async fn progress_requests_synced_and_unsynced() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    for i in 0..50 {
        c.put(format!("g/{i}"), "v", None).await.unwrap();
    }
    let cur = rev(&mut c).await;

    // Only synced watchers: answered at once with id -1 and the current revision.
    let mut w = c
        .watch("g/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(next(&mut w).await.created());
    w.request_progress().await.unwrap();
    let r = next(&mut w).await;
    assert!(is_progress(&r));
    assert_eq!(r.watch_id(), -1);
    assert_eq!(r.header().unwrap().revision(), cur);

    // An empty stream is trivially synced.
    let mut empty = Raw::open(&ts).await;
    empty
        .tx
        .send(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        })
        .await
        .unwrap();
    let r = empty.next().await;
    assert_eq!(r.watch_id, -1);
    assert_eq!(r.header.unwrap().revision, cur);

    // With a watcher catching up from history, the answer never comes before the events
    // it vouches for.
    w.watch(
        "g/",
        Some(WatchOptions::new().with_prefix().with_start_revision(2)),
    )
    .await
    .unwrap();
    w.request_progress().await.unwrap();
    let mut events = 0;
    let mut created = false;
    loop {
        let r = next(&mut w).await;
        if r.created() {
            created = true;
            continue;
        }
        if is_progress(&r) {
            assert!(created);
            assert_eq!(r.watch_id(), -1);
            assert_eq!(events, 50, "progress after every caught-up event");
            assert_eq!(r.header().unwrap().revision(), cur);
            break;
        }
        events += r.events().len();
    }

    // A watcher starting in the future holds the answer back until its start is reached.
    w.watch(
        "g/",
        Some(
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(cur + 3),
        ),
    )
    .await
    .unwrap();
    assert!(next(&mut w).await.created());
    w.request_progress().await.unwrap();
    for i in 0..2 {
        c.put(format!("other/{i}"), "v", None).await.unwrap();
    }
    let r = next(&mut w).await;
    assert!(is_progress(&r));
    assert!(
        r.header().unwrap().revision() >= cur + 2,
        "never below a watcher's start - 1"
    );
    ts.stop().await;
}

#[tokio::test]
async fn periodic_progress_notifications() {
    let ts =
        TestServer::start_with(|o| o.watch_progress_notify_interval = Duration::from_millis(200))
            .await;
    let mut c = ts.client().await;
    c.put("k", "v", None).await.unwrap();
    let cur = rev(&mut c).await;
    let mut w = c
        .watch("k", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    assert!(next(&mut w).await.created());
    let r = next(&mut w).await;
    assert!(is_progress(&r));
    assert_eq!(r.watch_id(), 0);
    assert_eq!(r.header().unwrap().revision(), cur);
    ts.stop().await;
}

#[tokio::test]
async fn fragments_split_a_revision_larger_than_the_request_limit() {
    let ts = TestServer::start_with(|o| o.max_request_bytes = 64 * 1024).await;
    let mut c = ts.client().await;
    let mut raw = Raw::open(&ts).await;
    raw.create(WatchCreateRequest {
        key: "f/".into(),
        range_end: "f0".into(),
        fragment: true,
        prev_kv: true,
        ..Default::default()
    })
    .await;
    assert!(raw.next().await.created);
    let mut whole = Raw::open(&ts).await;
    whole
        .create(WatchCreateRequest {
            key: "f/".into(),
            range_end: "f0".into(),
            prev_kv: true,
            ..Default::default()
        })
        .await;
    assert!(whole.next().await.created);

    // Two txns of three 20 KiB puts each (each request fits the 64 KiB limit). The second
    // overwrites the first, so with prev_kv its revision's response is ~120 KiB.
    let big = vec![b'x'; 20 * 1024];
    for _ in 0..2 {
        let ops: Vec<TxnOp> = (0..3)
            .map(|i| TxnOp::put(format!("f/{i}"), big.clone(), None::<PutOptions>))
            .collect();
        c.txn(Txn::new().and_then(ops)).await.unwrap();
    }
    let first = raw.next().await;
    assert_eq!(
        first.events.len(),
        3,
        "the first revision fits in one response"
    );
    assert!(!first.fragment);
    let mut pieces = Vec::new();
    let mut n = 0;
    while n < 3 {
        let r = raw.next().await;
        n += r.events.len();
        assert!(r.events.iter().all(|e| e.prev_kv.is_some()));
        pieces.push((r.fragment, r.header.unwrap().revision));
    }
    assert!(pieces.len() >= 2, "split into fragments: {pieces:?}");
    for p in &pieces[..pieces.len() - 1] {
        assert!(
            p.0,
            "all but the last piece carry fragment=true: {pieces:?}"
        );
    }
    assert!(!pieces[pieces.len() - 1].0);
    assert!(pieces.iter().all(|p| p.1 == pieces[0].1));
    // Without fragment=true each revision comes whole.
    assert_eq!(whole.next().await.events.len(), 3);
    let r = whole.next().await;
    assert_eq!(r.events.len(), 3);
    assert!(!r.fragment);
    ts.stop().await;
}

#[tokio::test]
async fn ten_thousand_watchers_on_one_stream() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    const N: i64 = 10_000;
    let mut raw = Raw::open(&ts).await;
    let tx = raw.tx.clone();
    tokio::spawn(async move {
        for i in 0..N {
            let key = if i % 2 == 0 { "same" } else { "m/" };
            let c = WatchCreateRequest {
                key: key.into(),
                range_end: if i % 2 == 0 {
                    Default::default()
                } else {
                    "m0".into()
                },
                ..Default::default()
            };
            let _ = tx
                .send(WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(c)),
                })
                .await;
        }
    });
    let mut ids = std::collections::HashSet::new();
    while (ids.len() as i64) < N {
        let r = raw.next().await;
        assert!(r.created && !r.canceled);
        assert!(ids.insert(r.watch_id));
    }
    assert_eq!(ids, (0..N).collect());
    c.put("same", "1", None).await.unwrap();
    c.put("m/x", "2", None).await.unwrap();
    let mut per = std::collections::HashMap::new();
    let mut total = 0;
    while total < N {
        let r = raw.next().await;
        assert_eq!(r.events.len(), 1);
        let key = r.events[0].kv.as_ref().unwrap().key.clone();
        let want: &[u8] = if r.watch_id % 2 == 0 { b"same" } else { b"m/x" };
        assert_eq!(key.as_ref(), want);
        assert!(
            per.insert(r.watch_id, ()).is_none(),
            "one event per watcher"
        );
        total += 1;
    }
    ts.stop().await;
}
