//! Randomized watch checker: concurrent writers run puts, deletes, range deletes, txns and
//! compactions while watchers start at different revisions (past, present, future, and
//! possibly compacted), break and resume, and ask for progress. Every write's outcome is
//! recorded; replaying them in revision order through a model gives the exact event
//! history, against which each watcher's responses are checked for etcd's six guarantees
//! (ordered, unique, reliable, atomic, resumable, bookmarkable) plus prev_kv and kv fields.
//!
//! CI-sized by default; `CAIRN_HEAVY_WATCH=1` runs ten times the load.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, EventType, Txn, TxnOp,
    WatchOptions,
};
use parking_lot::Mutex;

const KEYS: usize = 20;

fn key(i: usize) -> Vec<u8> {
    format!("k{i:02}").into_bytes()
}

/// A tiny deterministic generator (xorshift), seeded per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One effective change inside a revision, in execution order.
#[derive(Clone, Debug)]
enum Change {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
    DelRange(Vec<u8>, Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
struct Val {
    value: Vec<u8>,
    create: i64,
    modr: i64,
    version: i64,
}

#[derive(Clone, Debug, PartialEq)]
struct Ev {
    put: bool,
    key: Vec<u8>,
    rev: i64,
    val: Option<Val>,
    prev: Option<Val>,
}

#[derive(Debug)]
enum Resp {
    Events(Vec<Ev>),
    Progress(i64),
    Canceled(i64),
}

struct Segment {
    start: i64,
    resps: Vec<Resp>,
}

struct WatchLog {
    key: Vec<u8>,
    end: Vec<u8>,
    segments: Vec<Segment>,
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == b"\0" {
        k >= key
    } else {
        key <= k && k < end
    }
}

/// Every changing write: its revision and its changes in order.
type WriteLog = Arc<Mutex<Vec<(i64, Vec<Change>)>>>;

async fn writer(mut c: Client, seed: u64, ops: usize, log: WriteLog, compacted: Arc<AtomicI64>) {
    let mut rng = Rng(seed);
    for n in 0..ops {
        let choice = rng.below(100);
        let a = rng.below(KEYS as u64) as usize;
        let val = format!("v{seed}-{n}").into_bytes();
        if choice < 45 {
            let r = c.put(key(a), val.clone(), None).await.unwrap();
            log.lock().push((
                r.header().unwrap().revision(),
                vec![Change::Put(key(a), val)],
            ));
        } else if choice < 60 {
            let r = c.delete(key(a), None).await.unwrap();
            if r.deleted() > 0 {
                log.lock()
                    .push((r.header().unwrap().revision(), vec![Change::Del(key(a))]));
            }
        } else if choice < 67 {
            let b = (a + 1 + rng.below(4) as usize).min(KEYS);
            let r = c
                .delete(key(a), Some(DeleteOptions::new().with_range(key(b))))
                .await
                .unwrap();
            if r.deleted() > 0 {
                log.lock().push((
                    r.header().unwrap().revision(),
                    vec![Change::DelRange(key(a), key(b))],
                ));
            }
        } else if choice < 97 {
            // A txn with distinct keys per branch, each branch with at least one put.
            let b = (a + 1) % KEYS;
            let d = (a + 2) % KEYS;
            let e = (a + 3) % KEYS;
            let version = rng.below(3) as i64;
            let then = vec![
                Change::Put(key(b), val.clone()),
                Change::Del(key(d)),
                Change::Put(key(a), val.clone()),
            ];
            let els = vec![Change::Put(key(e), val.clone())];
            let to_ops = |cs: &[Change]| -> Vec<TxnOp> {
                cs.iter()
                    .map(|ch| match ch {
                        Change::Put(k, v) => TxnOp::put(k.clone(), v.clone(), None),
                        Change::Del(k) => TxnOp::delete(k.clone(), None),
                        Change::DelRange(..) => unreachable!(),
                    })
                    .collect()
            };
            let t = Txn::new()
                .when([Compare::version(key(a), CompareOp::Equal, version)])
                .and_then(to_ops(&then))
                .or_else(to_ops(&els));
            let r = c.txn(t).await.unwrap();
            let branch = if r.succeeded() { then } else { els };
            log.lock().push((r.header().unwrap().revision(), branch));
        } else {
            let cur = c.get("x", None).await.unwrap().header().unwrap().revision();
            let target = cur - rng.below(40) as i64;
            if target > compacted.load(Ordering::Acquire)
                && target > 1
                && c.compact(target, Some(CompactionOptions::new()))
                    .await
                    .is_ok()
            {
                compacted.fetch_max(target, Ordering::AcqRel);
            }
        }
    }
}

fn convert(r: &etcd_client::WatchResponse) -> Vec<Ev> {
    r.events()
        .iter()
        .map(|e| {
            let kv = e.kv().unwrap();
            let put = e.event_type() == EventType::Put;
            let to_val = |kv: &etcd_client::KeyValue| Val {
                value: kv.value().to_vec(),
                create: kv.create_revision(),
                modr: kv.mod_revision(),
                version: kv.version(),
            };
            Ev {
                put,
                key: kv.key().to_vec(),
                rev: kv.mod_revision(),
                val: put.then(|| to_val(kv)),
                prev: e.prev_kv().map(to_val),
            }
        })
        .collect()
}

/// One watcher: segments of streams; breaks and resumes now and then; asks for progress;
/// stops once it has seen (events or progress) up to the final revision.
async fn watcher(
    c: Client,
    seed: u64,
    key: Vec<u8>,
    end: Vec<u8>,
    start: i64,
    done: Arc<AtomicBool>,
    final_rev: Arc<AtomicI64>,
) -> WatchLog {
    let mut rng = Rng(seed);
    let mut c = c;
    let mut segments = Vec::new();
    let mut next_start = start;
    'outer: loop {
        let mut opts = WatchOptions::new()
            .with_prev_key()
            .with_start_revision(next_start);
        if !end.is_empty() {
            opts = opts.with_range(end.clone());
        }
        let mut w = c.watch(key.clone(), Some(opts)).await.unwrap();
        let created = w.message().await.unwrap().unwrap();
        assert!(created.created());
        let mut seg = Segment {
            start: next_start,
            resps: Vec::new(),
        };
        let mut seen = next_start - 1;
        let break_after = 5 + rng.below(40) as usize;
        loop {
            let fin = final_rev.load(Ordering::Acquire);
            if done.load(Ordering::Acquire) && fin > 0 && seen >= fin {
                segments.push(seg);
                break 'outer;
            }
            if rng.below(8) == 0 || done.load(Ordering::Acquire) {
                w.request_progress().await.unwrap();
            }
            let r = match tokio::time::timeout(Duration::from_millis(200), w.message()).await {
                Ok(r) => r.unwrap().unwrap(),
                Err(_) => continue,
            };
            if r.canceled() {
                assert!(
                    r.compact_revision() > 0,
                    "cancel only for compaction: {r:?}"
                );
                seg.resps.push(Resp::Canceled(r.compact_revision()));
                next_start = r.compact_revision();
                segments.push(seg);
                continue 'outer;
            }
            if r.events().is_empty() {
                if !r.created() {
                    let p = r.header().unwrap().revision();
                    seen = seen.max(p);
                    seg.resps.push(Resp::Progress(p));
                }
                continue;
            }
            let evs = convert(&r);
            seen = seen.max(evs.last().unwrap().rev);
            seg.resps.push(Resp::Events(evs));
            if seg.resps.len() >= break_after && !done.load(Ordering::Acquire) {
                // Break the stream and resume after the last revision seen.
                next_start = seen + 1;
                segments.push(seg);
                continue 'outer;
            }
        }
    }
    WatchLog { key, end, segments }
}

/// Replays the recorded writes in revision order: events per revision and the value of
/// every key before each revision.
struct Model {
    events: BTreeMap<i64, Vec<Ev>>,
}

fn build_model(first: i64, mut log: Vec<(i64, Vec<Change>)>) -> Model {
    log.sort_by_key(|(r, _)| *r);
    let mut state: BTreeMap<Vec<u8>, Val> = BTreeMap::new();
    let mut events = BTreeMap::new();
    for (i, (rev, changes)) in log.into_iter().enumerate() {
        assert_eq!(
            rev,
            first + i as i64,
            "one revision per changing write, no gaps"
        );
        let mut evs = Vec::new();
        for ch in changes {
            match ch {
                Change::Put(k, v) => {
                    let prev = state.get(&k).cloned();
                    let val = Val {
                        value: v,
                        create: prev.as_ref().map_or(rev, |p| p.create),
                        modr: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                    };
                    state.insert(k.clone(), val.clone());
                    evs.push(Ev {
                        put: true,
                        key: k,
                        rev,
                        val: Some(val),
                        prev,
                    });
                }
                Change::Del(k) => {
                    if let Some(prev) = state.remove(&k) {
                        evs.push(Ev {
                            put: false,
                            key: k,
                            rev,
                            val: None,
                            prev: Some(prev),
                        });
                    }
                }
                Change::DelRange(a, b) => {
                    let ks: Vec<Vec<u8>> = state.range(a..b).map(|(k, _)| k.clone()).collect();
                    for k in ks {
                        let prev = state.remove(&k);
                        evs.push(Ev {
                            put: false,
                            key: k,
                            rev,
                            val: None,
                            prev,
                        });
                    }
                }
            }
        }
        assert!(!evs.is_empty(), "revision {rev} changed something");
        events.insert(rev, evs);
    }
    Model { events }
}

/// Checks one watcher; returns (events checked, progress notifications, compaction
/// cancels, resumed segments).
fn check(model: &Model, w: &WatchLog, max_compact: i64) -> [usize; 4] {
    let mut checked = 0;
    let (mut progress, mut cancels) = (0, 0);
    for (si, seg) in w.segments.iter().enumerate() {
        let expected: Vec<&Ev> = model
            .events
            .range(seg.start..)
            .flat_map(|(_, evs)| evs.iter())
            .filter(|e| in_range(&e.key, &w.key, &w.end))
            .collect();
        let mut got: Vec<&Ev> = Vec::new();
        for resp in &seg.resps {
            match resp {
                Resp::Events(evs) => {
                    // Atomic: each response holds whole revisions.
                    for e in evs {
                        let want = expected.iter().filter(|x| x.rev == e.rev).count();
                        let have = evs.iter().filter(|x| x.rev == e.rev).count();
                        assert_eq!(have, want, "revision {} split across responses", e.rev);
                    }
                    got.extend(evs.iter());
                }
                Resp::Progress(p) => {
                    progress += 1;
                    // Bookmarkable: everything up to p was delivered before.
                    let want = expected.iter().filter(|x| x.rev <= *p).count();
                    assert_eq!(
                        got.len(),
                        want,
                        "progress {p} before all its events (segment from {})",
                        seg.start
                    );
                }
                Resp::Canceled(c) => {
                    cancels += 1;
                    assert!(*c > seg.start && *c <= max_compact, "cancel {c} justified");
                }
            }
        }
        // Ordered, unique, reliable: exactly the model's events, a prefix of them.
        assert!(got.len() <= expected.len(), "more events than history");
        for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
            assert_eq!(
                (g.put, &g.key, g.rev, &g.val),
                (e.put, &e.key, e.rev, &e.val),
                "event {i} of segment {si} (from {})",
                seg.start
            );
            match &g.prev {
                Some(p) => assert_eq!(Some(p), e.prev.as_ref(), "prev_kv of {:?}@{}", g.key, g.rev),
                None => assert!(
                    e.prev.is_none() || g.rev - 1 < max_compact,
                    "missing prev_kv of {:?}@{}",
                    g.key,
                    g.rev
                ),
            }
        }
        // Resumable: a broken segment is followed by one starting right after it.
        if let Some(next) = w.segments.get(si + 1) {
            if let Some(Resp::Canceled(c)) = seg.resps.last() {
                assert_eq!(next.start, *c);
            } else {
                let last = got.last().map_or(seg.start - 1, |e| e.rev);
                assert_eq!(next.start, last + 1);
            }
        }
        checked += got.len();
    }
    [checked, progress, cancels, w.segments.len() - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_load_keeps_all_six_watch_guarantees() {
    let heavy = std::env::var("CAIRN_HEAVY_WATCH").is_ok_and(|v| v == "1");
    let ops = if heavy { 3000 } else { 300 };
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let first = c.get("x", None).await.unwrap().header().unwrap().revision() + 1;

    let log = Arc::new(Mutex::new(Vec::new()));
    let compacted = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let final_rev = Arc::new(AtomicI64::new(0));

    let mut writers = Vec::new();
    for s in 0..4u64 {
        writers.push(tokio::spawn(writer(
            c.clone(),
            0x9E37_79B9 + s * 7919,
            ops,
            log.clone(),
            compacted.clone(),
        )));
    }
    // Watchers start while the load runs, at revisions in the past (maybe compacted),
    // the present and the future, on a single key, a prefix, a range and everything.
    let ranges: [(&[u8], &[u8]); 4] = [
        (b"k03", b""),
        (b"k", b"l"),
        (b"k05", b"k12"),
        (b"\0", b"\0"),
    ];
    let mut watchers = Vec::new();
    let mut rng = Rng(42);
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cur = c.get("x", None).await.unwrap().header().unwrap().revision();
        let start = match i % 3 {
            0 => (cur - rng.below(60) as i64).max(1),
            1 => cur + 1,
            _ => cur + 1 + rng.below(20) as i64,
        };
        let (k, e) = ranges[i % ranges.len()];
        watchers.push(tokio::spawn(watcher(
            c.clone(),
            1000 + i as u64,
            k.to_vec(),
            e.to_vec(),
            start,
            done.clone(),
            final_rev.clone(),
        )));
    }
    for w in writers {
        w.await.unwrap();
    }
    let fin = c.get("x", None).await.unwrap().header().unwrap().revision();
    final_rev.store(fin, Ordering::Release);
    done.store(true, Ordering::Release);

    let model = build_model(first, std::mem::take(&mut *log.lock()));
    assert_eq!(*model.events.keys().last().unwrap(), fin);
    let max_compact = compacted.load(Ordering::Acquire);
    let mut total = [0usize; 4];
    for w in watchers {
        let wl = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("watcher reaches the final revision")
            .unwrap();
        let r = check(&model, &wl, max_compact);
        for i in 0..4 {
            total[i] += r[i];
        }
    }
    eprintln!(
        "checked {} delivered events, {} progress notifications, {} compaction cancels, \
         {} resumed streams over {} revisions (compacted to {max_compact}): 0 violations",
        total[0],
        total[1],
        total[2],
        total[3],
        model.events.len()
    );
    assert!(total[0] > 0 && total[1] > 0 && total[3] > 0);
    ts.stop().await;
}
