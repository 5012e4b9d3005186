//! The workloads of etcd's `benchmark` tool (put, range, txn-put, txn-mixed,
//! watch, watch-latency, lease-keepalive) and `txn-cas`, the read-modify-write
//! a Kubernetes API server does for every object update. Each returns one
//! summary per measured phase or request class.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{stream, StreamExt};
use rand::Rng;
use tokio::sync::{mpsc, Mutex, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    ConnRateArgs, Consistency, LeaseArgs, PutArgs, RangeArgs, TxnCasArgs, TxnMixedArgs, TxnPutArgs,
    WatchArgs, WatchLatencyArgs,
};
use crate::conn::{flag_err, BenchError, Dialer, Kv, Pool};
use crate::driver::{drive, drive_classes, Loop, Progress};
use crate::proto::etcdserverpb::{
    compare, request_op, response_op, watch_request, Compare, LeaseGrantRequest,
    LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchRequest,
};
use crate::report::{Recorder, Summary};

/// What every workload needs: the connections, the client count, Ctrl-C.
pub(crate) struct Ctx {
    pub(crate) pool: Pool,
    pub(crate) clients: usize,
    pub(crate) cancel: CancellationToken,
    /// No progress bar (used by `compare`, which prints its own lines).
    pub(crate) quiet: bool,
}

impl Ctx {
    fn lp<'a>(&'a self, name: &'a str, total: u64, rate: u64) -> Loop<'a> {
        Loop {
            name,
            total,
            rate,
            cancel: &self.cancel,
            quiet: self.quiet,
        }
    }

    fn kvs(&self) -> Vec<Kv> {
        (0..self.clients).map(|i| self.pool.kv(i)).collect()
    }
}

/// Go's `binary.PutVarint` (zig-zag, then base-128) of `n` into a zeroed key of
/// `size` bytes: etcd benchmark's key layout. Errors if `size` cannot hold it.
pub(crate) fn varint_key(n: u64, size: usize) -> Option<Vec<u8>> {
    let mut z = (n as i64 as u64) << 1; // zig-zag of a non-negative number
    if (n as i64) < 0 {
        z = !z;
    }
    let mut key = vec![0u8; size];
    let mut i = 0;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        let slot = key.get_mut(i)?;
        if z == 0 {
            *slot = byte;
            return Some(key);
        }
        *slot = byte | 0x80;
        i += 1;
    }
}

/// The smallest key greater than every key with `prefix` (etcd's range end for
/// a prefix); `[0]` (all keys) when no such key exists.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn random_value(size: usize) -> Bytes {
    let mut rng = rand::thread_rng();
    (0..size)
        .map(|_| rng.gen_range(b'a'..=b'z'))
        .collect::<Vec<u8>>()
        .into()
}

fn check_key_space(key_size: usize, key_space_size: u64) -> Result<(), BenchError> {
    if key_space_size == 0 {
        return Err(flag_err("key-space-size", "expected a positive number"));
    }
    if varint_key(key_space_size - 1, key_size).is_none() {
        return Err(flag_err(
            "key-size",
            format!("{key_size} bytes cannot hold {key_space_size} distinct keys"),
        ));
    }
    Ok(())
}

fn put_op(key: Vec<u8>, value: Bytes) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into(),
            value,
            ..Default::default()
        })),
    }
}

pub(crate) async fn put(ctx: &Ctx, a: &PutArgs) -> Result<Vec<Summary>, BenchError> {
    check_key_space(a.key_size, a.key_space_size)?;
    let value = random_value(a.val_size);
    let (ks, size, seq) = (a.key_space_size, a.key_size, a.sequential_keys);
    let s = drive(
        ctx.lp("put", a.total, a.rate),
        ctx.kvs(),
        move |mut c, i| {
            let n = if seq {
                i % ks
            } else {
                rand::thread_rng().gen_range(0..ks)
            };
            let key = varint_key(n, size).unwrap_or_default();
            let value = value.clone();
            async move {
                c.put(PutRequest {
                    key: key.into(),
                    value,
                    ..Default::default()
                })
                .await
                .map(|_| ())
            }
        },
    )
    .await;
    Ok(vec![s])
}

pub(crate) fn range_request(a: &RangeArgs) -> Result<RangeRequest, BenchError> {
    let key = match (&a.key, a.prefix) {
        (Some(k), _) => k.as_bytes().to_vec(),
        (None, true) => Vec::new(),
        (None, false) => {
            return Err(flag_err(
                "key",
                "range needs KEY [END] (or --prefix for every key)",
            ))
        }
    };
    if a.prefix && a.end.is_some() {
        return Err(flag_err("prefix", "cannot be combined with an END key"));
    }
    let range_end = if a.prefix {
        prefix_end(&key)
    } else {
        a.end.clone().map(String::into_bytes).unwrap_or_default()
    };
    if a.limit < 0 {
        return Err(flag_err("limit", "must not be negative"));
    }
    Ok(RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        limit: a.limit,
        serializable: a.consistency == Consistency::S,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    })
}

pub(crate) async fn range(ctx: &Ctx, a: &RangeArgs) -> Result<Vec<Summary>, BenchError> {
    let req = range_request(a)?;
    let s = drive(
        ctx.lp("range", a.total, a.rate),
        ctx.kvs(),
        move |mut c, _| {
            let req = req.clone();
            async move { c.range(req).await.map(|_| ()) }
        },
    )
    .await;
    Ok(vec![s])
}

/// The source chain of a connection error, for the error summary.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// New connections per second: request *i* dials `endpoints[i mod n]` anew (TCP,
/// the TLS handshake when the endpoint uses TLS, the HTTP/2 preface), sends one
/// serializable Range of `--range-key` and drops the connection, which closes it.
/// Every connection gets a TLS client configuration of its own, so no session is
/// resumed: each handshake is a full one, as etcd's Go clients make them.
pub(crate) async fn conn_rate(
    ctx: &Ctx,
    endpoints: &[String],
    a: &ConnRateArgs,
) -> Result<Vec<Summary>, BenchError> {
    if endpoints.is_empty() {
        return Err(flag_err("endpoints", "at least one endpoint is needed"));
    }
    let dialer = ctx.pool.dialer().clone();
    for ep in endpoints {
        dialer.endpoint(ep)?; // flags and URLs are checked before the loop
    }
    let req = RangeRequest {
        key: a.range_key.as_bytes().to_vec().into(),
        serializable: true,
        ..Default::default()
    };
    struct Target {
        dialer: Dialer,
        endpoints: Vec<String>,
        auth: crate::conn::AuthToken,
        req: RangeRequest,
    }
    let target = Arc::new(Target {
        dialer,
        endpoints: endpoints.to_vec(),
        auth: ctx.pool.auth(),
        req,
    });
    let clients = vec![target; ctx.clients];
    let s = drive(
        ctx.lp("conn-rate", a.total, a.rate),
        clients,
        |t, i| async move {
            let ep = &t.endpoints[(i % t.endpoints.len() as u64) as usize];
            let e = t
                .dialer
                .endpoint(ep)
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            let ch = e
                .connect()
                .await
                .map_err(|e| tonic::Status::unavailable(error_chain(&e)))?;
            let mut kv = crate::conn::kv_client(ch, t.auth.clone());
            kv.range(t.req.clone()).await.map(|_| ())
        },
    )
    .await;
    Ok(vec![s])
}

/// `range` with each request sent to the next member in turn: request *i* goes
/// to `pools[i mod pools.len()]` (one pool per member), so a single client
/// spreads its reads over the whole cluster, and so do many.
pub(crate) async fn range_spread(
    ctx: &Ctx,
    pools: &[Pool],
    a: &RangeArgs,
) -> Result<Vec<Summary>, BenchError> {
    if pools.is_empty() {
        return Err(flag_err("endpoints", "at least one endpoint is needed"));
    }
    let req = range_request(a)?;
    let clients: Vec<Arc<Vec<Kv>>> = (0..ctx.clients)
        .map(|j| Arc::new(pools.iter().map(|p| p.kv(j)).collect()))
        .collect();
    let s = drive(ctx.lp("range", a.total, a.rate), clients, move |c, i| {
        let mut kv = c[(i % c.len() as u64) as usize].clone();
        let req = req.clone();
        async move { kv.range(req).await.map(|_| ()) }
    })
    .await;
    Ok(vec![s])
}

pub(crate) async fn txn_put(ctx: &Ctx, a: &TxnPutArgs) -> Result<Vec<Summary>, BenchError> {
    check_key_space(a.key_size, a.key_space_size)?;
    if a.txn_ops == 0 {
        return Err(flag_err("txn-ops", "expected a positive number"));
    }
    if a.txn_ops as u64 > a.key_space_size {
        return Err(flag_err(
            "txn-ops",
            format!(
                "{} puts per txn need at least as many keys; --key-space-size is {}",
                a.txn_ops, a.key_space_size
            ),
        ));
    }
    let value = random_value(a.val_size);
    let (ks, size, ops) = (a.key_space_size, a.key_size, a.txn_ops as u64);
    let s = drive(
        ctx.lp("txn-put", a.total, a.rate),
        ctx.kvs(),
        move |mut c, _| {
            // Distinct keys: a txn may not put the same key twice.
            let base = rand::thread_rng().gen_range(0..ks);
            let success = (0..ops)
                .map(|j| {
                    put_op(
                        varint_key((base + j) % ks, size).unwrap_or_default(),
                        value.clone(),
                    )
                })
                .collect();
            async move {
                c.txn(TxnRequest {
                    success,
                    ..Default::default()
                })
                .await
                .map(|_| ())
            }
        },
    )
    .await;
    Ok(vec![s])
}

pub(crate) async fn txn_mixed(ctx: &Ctx, a: &TxnMixedArgs) -> Result<Vec<Summary>, BenchError> {
    check_key_space(a.key_size, a.key_space_size)?;
    if !(a.rw_ratio >= 0.0 && a.rw_ratio.is_finite()) {
        return Err(flag_err("rw-ratio", "expected a non-negative number"));
    }
    let (key, end) = match (&a.key, &a.end) {
        (None, _) => (vec![0u8], vec![0u8]), // every key
        (Some(k), None) => (k.as_bytes().to_vec(), prefix_end(k.as_bytes())),
        (Some(k), Some(e)) => (k.as_bytes().to_vec(), e.as_bytes().to_vec()),
    };
    let read = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.into(),
            range_end: end.into(),
            limit: a.limit,
            serializable: a.consistency == Consistency::S,
            ..Default::default()
        })),
    };
    let value = random_value(a.val_size);
    let (ks, size) = (a.key_space_size, a.key_size);
    let p_read = a.rw_ratio / (1.0 + a.rw_ratio);
    let v = drive_classes(
        ctx.lp("txn-mixed", a.total, a.rate),
        &["read", "write"],
        ctx.kvs(),
        move |mut c, i| {
            let is_read = rand::thread_rng().gen::<f64>() < p_read;
            let op = if is_read {
                read.clone()
            } else {
                put_op(varint_key(i % ks, size).unwrap_or_default(), value.clone())
            };
            async move {
                let r = c
                    .txn(TxnRequest {
                        success: vec![op],
                        ..Default::default()
                    })
                    .await
                    .map(|_| ());
                (usize::from(!is_read), r)
            }
        },
    )
    .await;
    Ok(v)
}

/// Puts every (key, value) with up to `concurrency` requests in flight; returns
/// each key's mod revision in input order. Used to prepare a key space.
pub(crate) async fn seed(
    pool: &Pool,
    items: Vec<(Vec<u8>, Bytes)>,
    concurrency: usize,
    cancel: &CancellationToken,
) -> Result<Vec<i64>, BenchError> {
    let progress = Progress::new(items.len() as u64, true);
    let results: Vec<Result<(usize, i64), tonic::Status>> =
        stream::iter(items.into_iter().enumerate())
            .map(|(idx, (key, value))| {
                let mut c = pool.kv(idx);
                async move {
                    let r = c
                        .put(PutRequest {
                            key: key.into(),
                            value,
                            ..Default::default()
                        })
                        .await?;
                    let rev = r.into_inner().header.map(|h| h.revision).unwrap_or(0);
                    Ok((idx, rev))
                }
            })
            .buffer_unordered(concurrency.max(1))
            .take_until(cancel.cancelled())
            .collect()
            .await;
    progress.finish();
    if cancel.is_cancelled() {
        return Err(BenchError::Setup("interrupted while preparing keys".into()));
    }
    let mut revs = vec![0i64; results.len()];
    for r in results {
        match r {
            Ok((idx, rev)) => revs[idx] = rev,
            Err(s) => {
                return Err(BenchError::Setup(format!(
                    "preparing keys failed: {:?}: {}",
                    s.code(),
                    s.message()
                )))
            }
        }
    }
    Ok(revs)
}

/// Keys of `txn-cas`: a readable prefix and the object number, `key_size` wide.
fn cas_key(n: u64, key_size: usize) -> Vec<u8> {
    format!("/bench/cas/{n:0width$}", width = key_size).into_bytes()
}

/// Compare-and-swap retries before one update is given up (as an Aborted error).
const CAS_MAX_TRIES: u32 = 100;

pub(crate) async fn txn_cas(ctx: &Ctx, a: &TxnCasArgs) -> Result<Vec<Summary>, BenchError> {
    if a.key_space_size == 0 {
        return Err(flag_err("key-space-size", "expected a positive number"));
    }
    let value = random_value(a.val_size);
    let keys: Vec<Vec<u8>> = (0..a.key_space_size)
        .map(|n| cas_key(n, a.key_size))
        .collect();
    let revs = seed(
        &ctx.pool,
        keys.iter().map(|k| (k.clone(), value.clone())).collect(),
        64,
        &ctx.cancel,
    )
    .await?;
    // What each client believes every object's mod revision is, as an informer cache would.
    let known: Arc<Vec<AtomicI64>> = Arc::new(revs.into_iter().map(AtomicI64::new).collect());
    let keys = Arc::new(keys);
    let conflicts = Arc::new(AtomicU64::new(0));
    let ks = a.key_space_size;
    let conf = conflicts.clone();
    let mut s = drive(
        ctx.lp("txn-cas", a.total, a.rate),
        ctx.kvs(),
        move |mut c, _| {
            let (known, keys, conflicts, value) =
                (known.clone(), keys.clone(), conf.clone(), value.clone());
            let k = rand::thread_rng().gen_range(0..ks) as usize;
            async move {
                let key: Bytes = keys[k].clone().into();
                for _ in 0..CAS_MAX_TRIES {
                    let expect = known[k].load(Ordering::Relaxed);
                    let resp = c
                        .txn(TxnRequest {
                            compare: vec![Compare {
                                result: compare::CompareResult::Equal as i32,
                                target: compare::CompareTarget::Mod as i32,
                                key: key.clone(),
                                target_union: Some(compare::TargetUnion::ModRevision(expect)),
                                ..Default::default()
                            }],
                            success: vec![put_op(key.to_vec(), value.clone())],
                            failure: vec![RequestOp {
                                request: Some(request_op::Request::RequestRange(RangeRequest {
                                    key: key.clone(),
                                    ..Default::default()
                                })),
                            }],
                        })
                        .await?
                        .into_inner();
                    if resp.succeeded {
                        let rev = resp.header.map(|h| h.revision).unwrap_or(0);
                        known[k].fetch_max(rev, Ordering::Relaxed);
                        return Ok(());
                    }
                    conflicts.fetch_add(1, Ordering::Relaxed);
                    let current = resp
                        .responses
                        .first()
                        .and_then(|r| match &r.response {
                            Some(response_op::Response::ResponseRange(rr)) => {
                                rr.kvs.first().map(|kv| kv.mod_revision)
                            }
                            _ => None,
                        })
                        .unwrap_or(0);
                    known[k].fetch_max(current, Ordering::Relaxed);
                }
                Err(tonic::Status::aborted("txn-cas: too many conflicts"))
            }
        },
    )
    .await;
    s.notes.push((
        "CAS conflicts".into(),
        format!("{} (retried)", conflicts.load(Ordering::Relaxed)),
    ));
    Ok(vec![s])
}

fn create_watch(key: Bytes, prev_kv: bool) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key,
                prev_kv,
                ..Default::default()
            },
        )),
    }
}

/// One open watch stream: its request sender and its response stream.
struct Stream {
    tx: mpsc::Sender<WatchRequest>,
    rx: tonic::Streaming<crate::proto::etcdserverpb::WatchResponse>,
}

async fn open_stream(pool: &Pool, i: usize, first: WatchRequest) -> Result<Stream, tonic::Status> {
    let (tx, rx) = mpsc::channel(1024);
    // gRPC servers may hold the response headers back until their first message,
    // so the first request must be queued before waiting for the call to open.
    tx.send(first)
        .await
        .map_err(|_| tonic::Status::internal("watch request queue closed"))?;
    let rx = pool
        .watch(i)
        .watch(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Stream { tx, rx })
}

/// Opens a stream on connection `i` with `n` watchers of `keys[j % keys.len()]`,
/// recording the latency from each create request to its "created" response.
async fn open_watchers(
    pool: &Pool,
    i: usize,
    keys: &[Bytes],
    n: usize,
    prev_kv: bool,
    rec: &mut Recorder,
) -> Result<Stream, tonic::Status> {
    let mut t = Instant::now();
    let mut st = open_stream(pool, i, create_watch(keys[0].clone(), prev_kv)).await?;
    for j in 0..n {
        if j > 0 {
            t = Instant::now();
            st.tx
                .send(create_watch(keys[j % keys.len()].clone(), prev_kv))
                .await
                .map_err(|_| tonic::Status::unavailable("watch stream closed"))?;
        }
        loop {
            match st.rx.message().await? {
                Some(r) if r.created => break,
                Some(r) if r.canceled => {
                    return Err(tonic::Status::failed_precondition(format!(
                        "watch canceled: {}",
                        r.cancel_reason
                    )))
                }
                Some(_) => continue,
                None => return Err(tonic::Status::unavailable("watch stream ended")),
            }
        }
        rec.ok(t.elapsed());
    }
    Ok(st)
}

/// Put number of an event: its value starts with the number, little-endian.
fn put_number(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

fn numbered_value(i: u64, size: usize) -> Bytes {
    let mut v = vec![b'x'; size.max(8)];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v.into()
}

/// How long watchers wait for events once every put is done.
const EVENT_GRACE: Duration = Duration::from_secs(10);

pub(crate) async fn watch(ctx: &Ctx, a: &WatchArgs) -> Result<Vec<Summary>, BenchError> {
    if a.streams == 0 || a.watch_per_stream == 0 || a.watched_key_total == 0 {
        return Err(flag_err(
            "streams",
            "--streams, --watch-per-stream and --watched-key-total must be positive",
        ));
    }
    let keys: Vec<Bytes> = (0..a.watched_key_total)
        .map(|_| random_value(a.key_size))
        .collect();
    let cpu0 = crate::procstat::cpu_time(None).unwrap_or_default();
    // Phase 1: watch creation.
    let t_create = Instant::now();
    let mut create_rec = Recorder::new();
    let mut streams = Vec::with_capacity(a.streams);
    for s in 0..a.streams {
        match open_watchers(
            &ctx.pool,
            s,
            &keys,
            a.watch_per_stream,
            false,
            &mut create_rec,
        )
        .await
        {
            Ok(st) => streams.push(st),
            Err(e) => create_rec.status(&e),
        }
    }
    let create_elapsed = t_create.elapsed();
    let cpu1 = crate::procstat::cpu_time(None).unwrap_or_default();
    let creation = Summary {
        name: "Watch creation".into(),
        elapsed: create_elapsed,
        rec: create_rec,
        client_cpu: cpu1.saturating_sub(cpu0),
        interrupted: ctx.cancel.is_cancelled(),
        notes: vec![],
    };
    if streams.is_empty() {
        return Ok(vec![creation]);
    }
    // Phase 2: puts to the watched keys; every event's latency from its put's send.
    // Watchers of key j: those created with index ≡ j (mod watched-key-total).
    let per_key: Vec<u64> = (0..keys.len())
        .map(|j| {
            let per_stream = (0..a.watch_per_stream)
                .filter(|w| w % keys.len() == j)
                .count();
            (per_stream * streams.len()) as u64
        })
        .collect();
    let expected: u64 = (0..a.put_total)
        .map(|i| per_key[(i as usize) % keys.len()])
        .sum();
    let base = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..a.put_total).map(|_| AtomicU64::new(0)).collect());
    let puts_done = CancellationToken::new();
    let per_stream_expected = expected / streams.len() as u64;
    let mut tasks = Vec::new();
    for st in streams {
        let (sent_at, cancel, puts_done) = (sent_at.clone(), ctx.cancel.clone(), puts_done.clone());
        tasks.push(tokio::spawn(async move {
            let Stream { tx, mut rx } = st;
            let mut rec = Recorder::new();
            let mut last = base;
            while rec.count() < per_stream_expected {
                let msg = tokio::select! {
                    m = rx.message() => m,
                    _ = cancel.cancelled() => break,
                    _ = async { puts_done.cancelled().await; tokio::time::sleep(EVENT_GRACE).await } => break,
                };
                match msg {
                    Ok(Some(r)) => {
                        let now = Instant::now();
                        for ev in &r.events {
                            let Some(i) = ev.kv.as_ref().and_then(|kv| put_number(&kv.value)) else {
                                continue;
                            };
                            let sent = sent_at.get(i as usize).map(|t| t.load(Ordering::Acquire)).unwrap_or(0);
                            let sent = base + Duration::from_nanos(sent.saturating_sub(1));
                            rec.ok(now.saturating_duration_since(sent));
                            last = now;
                        }
                    }
                    Ok(None) => break,
                    Err(s) => {
                        rec.status(&s);
                        break;
                    }
                }
            }
            drop(tx);
            (rec, last)
        }));
    }
    let keys = Arc::new(keys);
    let sa = sent_at.clone();
    let put_args = (a.put_total, a.put_rate);
    let puts = drive(
        ctx.lp("watch-put", put_args.0, put_args.1),
        ctx.kvs(),
        move |mut c, i| {
            let key = keys[(i as usize) % keys.len()].clone();
            let sa = sa.clone();
            async move {
                sa[i as usize].store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                c.put(PutRequest {
                    key,
                    value: numbered_value(i, 8),
                    ..Default::default()
                })
                .await
                .map(|_| ())
            }
        },
    )
    .await;
    puts_done.cancel();
    let mut events = Recorder::new();
    let mut last = base;
    for t in tasks {
        if let Ok((rec, l)) = t.await {
            events.merge(&rec);
            last = last.max(l);
        }
    }
    let received = events.count();
    if received < expected && !ctx.cancel.is_cancelled() {
        for _ in received..expected.min(received + 1_000_000) {
            events.err("EventMissing", "watch event not received");
        }
    }
    let cpu2 = crate::procstat::cpu_time(None).unwrap_or_default();
    let events_summary = Summary {
        name: "Watch events received".into(),
        elapsed: last.saturating_duration_since(base),
        rec: events,
        client_cpu: cpu2.saturating_sub(cpu1),
        interrupted: ctx.cancel.is_cancelled(),
        notes: vec![("Events expected".into(), expected.to_string())],
    };
    Ok(vec![creation, puts, events_summary])
}

/// How long watch-latency waits for every watcher to see one put.
const WATCH_LATENCY_WAIT: Duration = Duration::from_secs(5);

pub(crate) async fn watch_latency(
    ctx: &Ctx,
    a: &WatchLatencyArgs,
) -> Result<Vec<Summary>, BenchError> {
    if a.streams == 0 || a.watchers_per_stream == 0 {
        return Err(flag_err(
            "streams",
            "--streams and --watchers-per-stream must be positive",
        ));
    }
    if a.put_rate == 0 {
        return Err(flag_err("put-rate", "expected a positive number"));
    }
    let key = random_value(a.key_size);
    let watchers = a.streams * a.watchers_per_stream;
    let mut setup = Recorder::new();
    let mut streams = Vec::new();
    for s in 0..a.streams {
        let k = [key.clone()];
        match open_watchers(
            &ctx.pool,
            s,
            &k,
            a.watchers_per_stream,
            a.prevkv,
            &mut setup,
        )
        .await
        {
            Ok(st) => streams.push(st),
            Err(e) => {
                return Err(BenchError::Setup(format!(
                    "creating watchers: {:?}: {}",
                    e.code(),
                    e.message()
                )))
            }
        }
    }
    let total = a.put_total as usize;
    let base = Instant::now();
    // received[i]: how many watchers have seen put i.
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..total).map(|_| AtomicUsize::new(0)).collect());
    let notify = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for st in streams {
        let (received, notify, cancel) = (received.clone(), notify.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let Stream { tx, mut rx } = st;
            let mut seen: Vec<(u64, Instant)> = Vec::new();
            let mut err: Option<tonic::Status> = None;
            loop {
                let msg = tokio::select! {
                    m = rx.message() => m,
                    _ = cancel.cancelled() => break,
                };
                match msg {
                    Ok(Some(r)) => {
                        let now = Instant::now();
                        for ev in &r.events {
                            if let Some(i) = ev.kv.as_ref().and_then(|kv| put_number(&kv.value)) {
                                seen.push((i, now));
                                if let Some(c) = received.get(i as usize) {
                                    c.fetch_add(1, Ordering::AcqRel);
                                }
                            }
                        }
                        notify.notify_waiters();
                    }
                    Ok(None) => break,
                    Err(s) => {
                        err = Some(s);
                        notify.notify_waiters();
                        break;
                    }
                }
            }
            drop(tx);
            (seen, err)
        }));
    }
    let cpu0 = crate::procstat::cpu_time(None).unwrap_or_default();
    let progress = Progress::new(a.put_total, ctx.quiet);
    let mut put_client = ctx.pool.kv(0);
    let mut rec = Recorder::new();
    let mut acked: Vec<Option<Instant>> = vec![None; total]; // send time of put i
    let interval = Duration::from_secs_f64(1.0 / a.put_rate as f64);
    let start = tokio::time::Instant::now();
    let mut missing = 0u64;
    for i in 0..total {
        if ctx.cancel.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(start + interval.mul_f64(i as f64)) => {}
            _ = ctx.cancel.cancelled() => break,
        }
        // Latency runs from the put's send to each watcher's event: on loopback
        // the event often arrives before the put's own response, so etcd
        // benchmark's "from the acknowledgement" reads as ~0 and says little.
        let sent = Instant::now();
        let put = put_client
            .put(PutRequest {
                key: key.clone(),
                value: numbered_value(i as u64, a.val_size),
                ..Default::default()
            })
            .await;
        if let Err(s) = put {
            rec.status(&s);
            missing += watchers as u64;
            continue;
        }
        acked[i] = Some(sent);
        // Wait until every watcher saw put i (etcd's barrier), or give up.
        let deadline = tokio::time::Instant::now() + WATCH_LATENCY_WAIT;
        loop {
            let waiter = notify.notified();
            tokio::pin!(waiter);
            waiter.as_mut().enable();
            if received[i].load(Ordering::Acquire) >= watchers {
                break;
            }
            tokio::select! {
                _ = &mut waiter => {}
                _ = tokio::time::sleep_until(deadline) => {
                    missing += (watchers - received[i].load(Ordering::Acquire).min(watchers)) as u64;
                    break;
                }
                _ = ctx.cancel.cancelled() => break,
            }
        }
        progress.set(i as u64 + 1);
    }
    progress.finish();
    let elapsed = base.elapsed();
    stop.cancel();
    for t in tasks {
        match t.await {
            Ok((seen, err)) => {
                for (i, at) in seen {
                    if let Some(Some(ack)) = acked.get(i as usize) {
                        rec.ok(at.saturating_duration_since(*ack));
                    }
                }
                if let Some(s) = err {
                    rec.status(&s);
                }
            }
            Err(e) => rec.err("ClientPanic", &e.to_string()),
        }
    }
    for _ in 0..missing {
        rec.err(
            "EventMissing",
            "watch event not received within 5s of its put",
        );
    }
    let cpu1 = crate::procstat::cpu_time(None).unwrap_or_default();
    Ok(vec![Summary {
        name: "watch-latency".into(),
        elapsed,
        rec,
        client_cpu: cpu1.saturating_sub(cpu0),
        interrupted: ctx.cancel.is_cancelled(),
        notes: vec![("Watchers".into(), watchers.to_string())],
    }])
}

/// Lease keep-alive stream of one client.
struct KeepAlive {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: tonic::Streaming<crate::proto::etcdserverpb::LeaseKeepAliveResponse>,
    id: i64,
}

pub(crate) async fn lease_keepalive(ctx: &Ctx, a: &LeaseArgs) -> Result<Vec<Summary>, BenchError> {
    let mut clients = Vec::with_capacity(ctx.clients);
    for i in 0..ctx.clients {
        let mut lc = ctx.pool.lease(i);
        let grant = lc
            .lease_grant(LeaseGrantRequest { ttl: 100, id: 0 })
            .await
            .map_err(|s| {
                BenchError::Setup(format!("lease grant: {:?}: {}", s.code(), s.message()))
            })?
            .into_inner();
        let setup_err = |s: tonic::Status| {
            BenchError::Setup(format!("lease keepalive: {:?}: {}", s.code(), s.message()))
        };
        let (tx, rx) = mpsc::channel(16);
        // Queue one keepalive before opening (the server may answer the call only
        // with its first message) and consume its answer here, outside the timing.
        tx.send(LeaseKeepAliveRequest { id: grant.id })
            .await
            .map_err(|_| BenchError::Setup("lease keepalive queue closed".into()))?;
        let mut rx = lc
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(setup_err)?
            .into_inner();
        rx.message().await.map_err(setup_err)?;
        clients.push(Arc::new(Mutex::new(KeepAlive {
            tx,
            rx,
            id: grant.id,
        })));
    }
    let s = drive(
        ctx.lp("lease-keepalive", a.total, 0),
        clients,
        |c, _| async move {
            let mut ka = c.lock().await;
            let id = ka.id;
            ka.tx
                .send(LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| tonic::Status::unavailable("keepalive stream closed"))?;
            match ka.rx.message().await? {
                Some(r) if r.ttl > 0 => Ok(()),
                Some(_) => Err(tonic::Status::not_found("lease expired or revoked")),
                None => Err(tonic::Status::unavailable("keepalive stream ended")),
            }
        },
    )
    .await;
    Ok(vec![s])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_keys_match_gos_put_varint() {
        // Go: binary.PutVarint(buf, 0) = [0], 1 = [2], -1 = [1], 63 = [126], 64 = [128 1].
        assert_eq!(varint_key(0, 4).unwrap(), vec![0, 0, 0, 0]);
        assert_eq!(varint_key(1, 2).unwrap(), vec![2, 0]);
        assert_eq!(varint_key(63, 1).unwrap(), vec![126]);
        assert_eq!(varint_key(64, 3).unwrap(), vec![0x80, 1, 0]);
        assert_eq!(varint_key(300, 2).unwrap(), vec![0xd8, 0x04]);
        assert!(varint_key(64, 1).is_none());
        assert!(check_key_space(1, 64).is_ok());
        assert!(check_key_space(1, 65).is_err());
        assert!(check_key_space(8, 0).is_err());
    }

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"abc"), b"abd".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn range_request_from_flags() {
        let mut a = RangeArgs {
            key: Some("/registry/pods/".into()),
            end: None,
            rate: 0,
            total: 1,
            consistency: Consistency::S,
            limit: 500,
            count_only: false,
            keys_only: true,
            prefix: true,
        };
        let r = range_request(&a).unwrap();
        assert_eq!(&r.key[..], b"/registry/pods/");
        assert_eq!(&r.range_end[..], b"/registry/pods0");
        assert!(r.serializable && r.keys_only && !r.count_only);
        assert_eq!(r.limit, 500);
        a.end = Some("x".into());
        assert!(range_request(&a).is_err());
        a.prefix = false;
        assert_eq!(&range_request(&a).unwrap().range_end[..], b"x");
        a.key = None;
        assert!(range_request(&a).is_err());
        a.key = Some("k".into());
        a.limit = -1;
        assert!(range_request(&a).is_err());
    }

    #[test]
    fn numbered_values_round_trip() {
        let v = numbered_value(123_456, 32);
        assert_eq!(v.len(), 32);
        assert_eq!(put_number(&v), Some(123_456));
        assert_eq!(numbered_value(1, 0).len(), 8);
        assert_eq!(put_number(b"short"), None);
    }
}
