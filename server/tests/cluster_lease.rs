//! Leases in a 3-member cluster (issue 7): grants on followers, keep-alives and
//! time-to-live answered by the leader through a follower, a lease surviving the leader's
//! kill -9 and then expiring exactly once, `hasleader` streams closed when their member
//! loses its leader, and lease ids distinct across members.
//!
//! Runs against `cairn`; `CAIRN_CLUSTER_IMPL=etcd` runs the same scenarios against etcd
//! 3.5.1 (a check of the tests themselves). Nothing here asserts timing: waits have
//! generous deadlines.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn_server::pb::etcdserverpb::lease_client::LeaseClient;
use cairn_server::pb::etcdserverpb::watch_client::WatchClient;
use cairn_server::pb::etcdserverpb::{
    watch_request, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use etcd_client::{EventType, GetOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions};
use support::cluster::{Cluster, ClusterOpts};
use support::Impl;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

/// Deadline of every single wait.
const WAIT: Duration = Duration::from_secs(30);

fn under_test() -> Impl {
    match std::env::var("CAIRN_CLUSTER_IMPL").as_deref() {
        Ok("etcd") | Ok("etcd351") => Impl::Etcd351,
        _ => Impl::Cairn,
    }
}

fn opts() -> ClusterOpts {
    ClusterOpts {
        proxied: false,
        ..ClusterOpts::default()
    }
}

async fn channel(endpoint: &str) -> Channel {
    Channel::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

fn with_has_leader<T>(msg: T, has_leader: bool) -> Request<T> {
    let mut r = Request::new(msg);
    if has_leader {
        r.metadata_mut()
            .insert("hasleader", "true".parse().expect("metadata"));
    }
    r
}

/// A keep-alive stream on one member, through the generated client (so TTL 0 answers and
/// error statuses are seen as they are). The call completes in the background: a server
/// may send its response headers only with its first answer.
struct KeepAlive {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    call: Option<tokio::task::JoinHandle<Result<Streaming<LeaseKeepAliveResponse>, Status>>>,
    rx: Option<Streaming<LeaseKeepAliveResponse>>,
}

impl KeepAlive {
    async fn open(endpoint: &str, has_leader: bool) -> KeepAlive {
        Self::open_with(endpoint, has_leader, None).await
    }

    async fn open_with(
        endpoint: &str,
        has_leader: bool,
        metadata: Option<(&'static str, &'static str)>,
    ) -> KeepAlive {
        let mut client = LeaseClient::new(channel(endpoint).await);
        let (tx, rx) = mpsc::channel(4);
        let mut req = with_has_leader(ReceiverStream::new(rx), has_leader);
        if let Some((k, v)) = metadata {
            req.metadata_mut().insert(k, v.parse().expect("metadata"));
        }
        let call =
            tokio::spawn(async move { Ok(client.lease_keep_alive(req).await?.into_inner()) });
        KeepAlive {
            tx,
            call: Some(call),
            rx: None,
        }
    }

    /// One keep-alive of lease `id` and its answer.
    async fn once(&mut self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        if self.tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            // The server ended the call before reading a request (a refused stream): its
            // status is what the call returned.
            return match self.next().await {
                Err(s) => Err(s),
                Ok(r) => panic!("a closed keep-alive stream answered {r:?}"),
            };
        }
        self.next().await
    }

    async fn next(&mut self) -> Result<LeaseKeepAliveResponse, Status> {
        let fut = async {
            if let Some(call) = self.call.take() {
                self.rx = Some(call.await.expect("keep-alive call task")?);
            }
            match self.rx.as_mut() {
                Some(rx) => rx.message().await,
                None => Err(Status::unavailable("keep-alive stream failed")),
            }
        };
        match tokio::time::timeout(WAIT, fut).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(Status::unavailable("keep-alive stream ended")),
            Ok(Err(s)) => Err(s),
            Err(_) => panic!("no keep-alive answer within {WAIT:?}"),
        }
    }
}

/// Keeps lease `id` alive through `endpoint` every 500 ms for `period`, reopening the stream
/// after an error. Every answer must carry the full TTL `ttl` (an expired lease answers 0).
/// Returns how many keep-alives were answered.
async fn keep_alive_for(
    ka: &mut KeepAlive,
    endpoint: &str,
    id: i64,
    ttl: i64,
    period: Duration,
) -> usize {
    let until = Instant::now() + period;
    let mut answered = 0;
    while Instant::now() < until {
        match ka.once(id).await {
            Ok(r) => {
                assert_eq!(r.id, id);
                assert_eq!(r.ttl, ttl, "keep-alive answered TTL {} (lease lost)", r.ttl);
                answered += 1;
            }
            Err(s) => {
                eprintln!(
                    "keep-alive through {endpoint}: {:?} {}",
                    s.code(),
                    s.message()
                );
                *ka = KeepAlive::open(endpoint, false).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    answered
}

/// A watch stream on one member through the generated client.
struct RawWatch {
    _tx: mpsc::Sender<WatchRequest>,
    rx: Streaming<WatchResponse>,
}

impl RawWatch {
    /// Opens a stream and creates one watcher on `key`; `Err` if the stream is refused.
    async fn open(endpoint: &str, key: &str, has_leader: bool) -> Result<RawWatch, Status> {
        let mut client = WatchClient::new(channel(endpoint).await);
        let (tx, rx) = mpsc::channel(4);
        tx.send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: key.as_bytes().to_vec().into(),
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("queue create");
        let req = with_has_leader(ReceiverStream::new(rx), has_leader);
        let mut rx = client.watch(req).await?.into_inner();
        match tokio::time::timeout(WAIT, rx.message()).await {
            Ok(Ok(Some(r))) => assert!(r.created, "first answer is the creation"),
            Ok(Ok(None)) => return Err(Status::unavailable("watch stream ended")),
            Ok(Err(s)) => return Err(s),
            Err(_) => panic!("watch not created within {WAIT:?}"),
        }
        Ok(RawWatch { _tx: tx, rx })
    }
}

fn assert_no_leader(s: &Status, what: &str) {
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unavailable, "etcdserver: no leader"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_kept_alive_through_a_follower_survives_the_leader_and_then_expires_once() {
    let mut c = Cluster::start(under_test(), 3, opts()).await;
    let leader = c.wait_leader(None, WAIT).await;
    let f = (0..3).find(|&i| i != leader).unwrap();
    let f_ep = c.nodes[f].endpoint();
    let mut cf = c.client(f).await;

    // Granted on a follower (the grant travels through raft).
    let ttl = 3;
    let g = cf
        .lease_grant(ttl, None)
        .await
        .expect("grant on a follower");
    let id = g.id();
    assert_eq!(g.ttl(), ttl);
    let mut rev = 0;
    for k in ["cl/a", "cl/b"] {
        let p = cf
            .put(k, "v", Some(PutOptions::new().with_lease(id)))
            .await
            .expect("put with the lease");
        rev = p.header().unwrap().revision();
    }
    let mut w = cf
        .watch(
            "cl/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev + 1),
            ),
        )
        .await
        .expect("watch");
    assert!(w.message().await.unwrap().unwrap().created());

    // Kept alive through the follower for three TTLs: every answer is the leader's full TTL.
    let mut ka = KeepAlive::open(&f_ep, false).await;
    let n = keep_alive_for(&mut ka, &f_ep, id, ttl, Duration::from_secs(3 * ttl as u64)).await;
    assert!(n > 0);
    let t = cf
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time-to-live on a follower");
    assert_eq!(t.granted_ttl(), ttl);
    assert!(t.ttl() >= 1 && t.ttl() <= ttl, "ttl {}", t.ttl());
    let mut keys = t.keys().to_vec();
    keys.sort();
    assert_eq!(keys, vec![b"cl/a".to_vec(), b"cl/b".to_vec()]);

    // kill -9 the leader: the follower keeps the lease alive through the new leader.
    c.kill9(leader);
    let n = keep_alive_for(&mut ka, &f_ep, id, ttl, Duration::from_secs(3 * ttl as u64)).await;
    assert!(n > 0, "no keep-alive answered after the leader was killed");
    let new_leader = c.wait_leader(Some(&[leader]), WAIT).await;
    eprintln!(
        "leader {} killed, {} leads; {n} keep-alives answered meanwhile",
        c.nodes[leader].name, c.nodes[new_leader].name
    );
    let got = cf
        .get("cl/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 2, "the lease outlived the leader");

    // No more keep-alives: the new leader expires it, once.
    drop(ka);
    let resp = tokio::time::timeout(WAIT, w.message())
        .await
        .expect("lease expires")
        .unwrap()
        .unwrap();
    let evs = resp.events();
    assert_eq!(evs.len(), 2, "both keys deleted in one revision: {evs:?}");
    let del_rev = evs[0].kv().unwrap().mod_revision();
    for (ev, k) in evs.iter().zip(["cl/a", "cl/b"]) {
        assert_eq!(ev.event_type(), EventType::Delete);
        assert_eq!(ev.kv().unwrap().key(), k.as_bytes());
        assert_eq!(ev.kv().unwrap().mod_revision(), del_rev);
    }
    // Exactly once: the next event on the prefix is a sentinel written afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = cf.put("cl/sentinel", "x", None).await.unwrap();
    let next = tokio::time::timeout(WAIT, w.message())
        .await
        .expect("sentinel event")
        .unwrap()
        .unwrap();
    let evs = next.events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].event_type(), EventType::Put);
    assert_eq!(evs[0].kv().unwrap().key(), b"cl/sentinel");
    assert_eq!(
        evs[0].kv().unwrap().mod_revision(),
        s.header().unwrap().revision()
    );
    assert_eq!(
        s.header().unwrap().revision(),
        del_rev + 1,
        "nothing between the expiry and the sentinel"
    );
    // Every live member agrees.
    for i in c.live() {
        let mut ci = c.client(i).await;
        let t = ci.lease_time_to_live(id, None).await.unwrap();
        assert_eq!(t.ttl(), -1, "{} still knows the lease", c.nodes[i].name);
        let got = ci
            .get("cl/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let keys: Vec<&[u8]> = got.kvs().iter().map(|kv| kv.key()).collect();
        assert_eq!(keys, vec![b"cl/sentinel".as_slice()]);
    }
    // The killed leader comes back and learns of the expiry from the log: its own list
    // (answered locally) loses the lease, its keys are gone.
    c.restart(leader).await;
    let mut cl = c.client(leader).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = cl
            .leases()
            .await
            .map(|l| l.leases().iter().any(|l| l.id() == id));
        if listed.as_ref().is_ok_and(|&listed| !listed) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted {} still lists the lease: {listed:?}",
            c.nodes[leader].name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = cl
        .get("cl/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_live_and_keep_alive_on_a_follower_are_the_leaders() {
    let mut c = Cluster::start(under_test(), 3, opts()).await;
    let leader = c.wait_leader(None, WAIT).await;
    let f = (0..3).find(|&i| i != leader).unwrap();
    let mut cl = c.client(leader).await;
    let mut cf = c.client(f).await;

    let id = cl.lease_grant(30, None).await.unwrap().id();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Renewed on the leader: the leader's countdown restarts at 30 s; the follower saw
    // only the grant, 6 s ago.
    let mut ka = KeepAlive::open(&c.nodes[leader].endpoint(), false).await;
    assert_eq!(ka.once(id).await.unwrap().ttl, 30);
    let t = cf.lease_time_to_live(id, None).await.unwrap();
    assert_eq!(t.granted_ttl(), 30);
    assert!(
        t.ttl() > 26,
        "the follower answered {} (not the leader's)",
        t.ttl()
    );

    // Unknown leases, through the follower: TTL -1 (time-to-live), TTL 0 (keep-alive).
    let t = cf.lease_time_to_live(0x7777, None).await.unwrap();
    assert_eq!(t.ttl(), -1);
    let mut kf = KeepAlive::open(&c.nodes[f].endpoint(), false).await;
    let r = kf.once(0x7777).await.unwrap();
    assert_eq!((r.id, r.ttl), (0x7777, 0));
    let r = kf.once(id).await.unwrap();
    assert_eq!((r.id, r.ttl), (id, 30));
    // The header is the member's the client talks to.
    assert_eq!(r.header.unwrap().member_id, c.nodes[f].id);

    // Leases is answered by every member.
    let ids: Vec<i64> = cf
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    assert_eq!(ids, vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hasleader_streams_close_when_their_member_loses_its_leader() {
    let mut c = Cluster::start(under_test(), 3, opts()).await;
    let leader = c.wait_leader(None, WAIT).await;
    let f = (0..3).find(|&i| i != leader).unwrap();
    let f_ep = c.nodes[f].endpoint();
    let id = c.client(f).await.lease_grant(60, None).await.unwrap().id();

    let mut w_leader = RawWatch::open(&f_ep, "hl/", true)
        .await
        .expect("hasleader watch");
    let mut w_plain = RawWatch::open(&f_ep, "hl/", false)
        .await
        .expect("plain watch");
    let mut ka = KeepAlive::open(&f_ep, true).await;
    assert_eq!(ka.once(id).await.unwrap().ttl, 60);

    // Both other members gone: the follower has no leader any more.
    for i in 0..3 {
        if i != f {
            c.kill9(i);
        }
    }
    let s = match tokio::time::timeout(WAIT, w_leader.rx.message()).await {
        Ok(Err(s)) => s,
        other => panic!("hasleader watch not closed with an error: {other:?}"),
    };
    assert_no_leader(&s, "hasleader watch");
    let s = ka.next().await.expect_err("hasleader keep-alive closed");
    assert_no_leader(&s, "hasleader keep-alive");
    // A stream without hasleader stays open.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), w_plain.rx.message())
            .await
            .is_err(),
        "a watch without hasleader was closed"
    );
    // New hasleader streams are refused while there is no leader.
    let s = RawWatch::open(&f_ep, "hl/", true)
        .await
        .err()
        .expect("hasleader watch refused");
    assert_no_leader(&s, "new hasleader watch");
    let refused = KeepAlive::open(&f_ep, true)
        .await
        .once(id)
        .await
        .expect_err("hasleader keep-alive refused");
    assert_no_leader(&refused, "new hasleader keep-alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_on_every_member_get_distinct_ids() {
    let mut c = Cluster::start(under_test(), 3, opts()).await;
    c.wait_leader(None, WAIT).await;
    let per_member = 30;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let mut ci = c.client(i).await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..per_member {
                ids.push(ci.lease_grant(60, None).await.expect("grant").id());
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(id > 0);
            assert!(all.insert(id), "lease id {id:#x} granted twice");
        }
    }
    assert_eq!(all.len(), 3 * per_member);
    // Granted through one member, revoked at once through another (which may not have
    // applied the grant yet: the revoke is decided where it is applied).
    for i in 0..3 {
        let mut a = c.client(i).await;
        let mut b = c.client((i + 1) % 3).await;
        for _ in 0..5 {
            let id = a.lease_grant(60, None).await.unwrap().id();
            b.lease_revoke(id)
                .await
                .expect("revoke through another member");
        }
    }
    // Every member knows every lease (LeaseLeases is answered locally: wait for apply).
    for i in 0..3 {
        let mut ci = c.client(i).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let have: HashSet<i64> = ci
                .leases()
                .await
                .unwrap()
                .leases()
                .iter()
                .map(|l| l.id())
                .collect();
            if have == all {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} lists {} of {} leases",
                c.nodes[i].name,
                have.len(),
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Cairn's own forwarding marker: a member that does not lead refuses a forwarded request
/// instead of passing it on (no forwarding loops while leadership moves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_is_served_by_the_leader_only() {
    if under_test() != Impl::Cairn {
        return;
    }
    const FORWARDED: (&str, &str) = ("cairn-lease-forwarded", "1");
    let mut c = Cluster::start(Impl::Cairn, 3, opts()).await;
    let leader = c.wait_leader(None, WAIT).await;
    let f = (0..3).find(|&i| i != leader).unwrap();
    let id = c.client(f).await.lease_grant(60, None).await.unwrap().id();

    let mut on_leader =
        KeepAlive::open_with(&c.nodes[leader].endpoint(), false, Some(FORWARDED)).await;
    assert_eq!(on_leader.once(id).await.unwrap().ttl, 60);
    let refused = KeepAlive::open_with(&c.nodes[f].endpoint(), false, Some(FORWARDED))
        .await
        .once(id)
        .await
        .expect_err("follower refuses");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::FailedPrecondition, "etcdserver: not leader")
    );
    let mut lc = LeaseClient::new(channel(&c.nodes[f].endpoint()).await);
    let mut req = Request::new(LeaseTimeToLiveRequest { id, keys: false });
    req.metadata_mut()
        .insert(FORWARDED.0, FORWARDED.1.parse().unwrap());
    let s = lc
        .lease_time_to_live(req)
        .await
        .expect_err("follower refuses");
    assert_eq!(s.code(), Code::FailedPrecondition);
}
