//! Lease service over real gRPC with the `etcd-client` crate: grant (ids, minimum TTL,
//! errors), revoke, keep-alive, time-to-live, leases, attaching keys with Put, expiry
//! through raft, and what survives a restart.

mod common;

use std::time::Duration;

use cairn_server::pb::etcdserverpb::lease_client::LeaseClient;
use cairn_server::pb::etcdserverpb::LeaseKeepAliveRequest;
use common::{status_of, TestServer};
use etcd_client::{
    AlarmAction, AlarmType, EventType, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions,
    PutOptions, WatchOptions,
};
use tonic::Code;

fn ttl_keys(opts: bool) -> Option<LeaseTimeToLiveOptions> {
    opts.then(|| LeaseTimeToLiveOptions::new().with_keys())
}

#[tokio::test]
async fn grant_ids_minimum_ttl_and_errors() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;

    let g = c.lease_grant(1, None).await.unwrap();
    assert!(g.id() > 0, "server-chosen id is a positive int63");
    assert_eq!(g.ttl(), 2, "TTL raised to ceil(1.5 × 1 s election timeout)");
    assert!(g.header().unwrap().revision() >= 1);

    let g2 = c.lease_grant(60, None).await.unwrap();
    assert_ne!(g2.id(), g.id());
    assert_eq!(g2.ttl(), 60);

    let mine = c
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .unwrap();
    assert_eq!(mine.id(), 0x1234);
    assert_eq!(mine.ttl(), 30);

    let dup = c
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(dup),
        (
            Code::FailedPrecondition,
            "etcdserver: lease already exists".to_string()
        )
    );

    let big = c.lease_grant(9_000_000_001, None).await.unwrap_err();
    assert_eq!(
        status_of(big),
        (
            Code::OutOfRange,
            "etcdserver: too large lease TTL".to_string()
        )
    );
    // Exactly the maximum is fine.
    let max = c.lease_grant(9_000_000_000, None).await.unwrap();
    assert_eq!(max.ttl(), 9_000_000_000);

    let mut ids: Vec<i64> = c
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    ids.sort_unstable();
    let mut want = vec![g.id(), g2.id(), 0x1234, max.id()];
    want.sort_unstable();
    assert_eq!(ids, want);
    ts.stop().await;
}

#[tokio::test]
async fn larger_election_timeout_raises_the_minimum_ttl() {
    let ts = TestServer::start_with(|o| o.election_timeout = Duration::from_millis(3000)).await;
    let mut c = ts.client().await;
    // ceil(1.5 × 3 s) = 5 s.
    assert_eq!(c.lease_grant(1, None).await.unwrap().ttl(), 5);
    assert_eq!(c.lease_grant(7, None).await.unwrap().ttl(), 7);
    ts.stop().await;
}

#[tokio::test]
async fn put_attaches_keys_ignore_lease_keeps_and_revoke_deletes_in_one_revision() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let id = c.lease_grant(100, None).await.unwrap().id();

    let unknown = c
        .put("k", "v", Some(PutOptions::new().with_lease(777)))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(unknown),
        (
            Code::NotFound,
            "etcdserver: requested lease not found".to_string()
        )
    );

    for k in ["a", "b", "c"] {
        c.put(k, "v", Some(PutOptions::new().with_lease(id)))
            .await
            .unwrap();
    }
    c.put("free", "v", None).await.unwrap();
    // ignore_lease keeps the attachment.
    c.put("a", "v2", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap();
    let a = c.get("a", None).await.unwrap();
    assert_eq!(a.kvs()[0].lease(), id);
    assert_eq!(a.kvs()[0].value(), b"v2");
    // A put without a lease detaches.
    c.put("c", "v", None).await.unwrap();

    let t = c.lease_time_to_live(id, ttl_keys(true)).await.unwrap();
    assert_eq!(t.id(), id);
    assert_eq!(t.granted_ttl(), 100);
    assert!(t.ttl() > 0 && t.ttl() <= 100, "ttl {}", t.ttl());
    let mut keys: Vec<Vec<u8>> = t.keys().to_vec();
    keys.sort();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    let no_keys = c.lease_time_to_live(id, ttl_keys(false)).await.unwrap();
    assert!(no_keys.keys().is_empty());

    let before = c
        .get("free", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut w = c
        .watch("", Some(WatchOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert!(w.message().await.unwrap().unwrap().created());

    let r = c.lease_revoke(id).await.unwrap();
    let rev = r.header().unwrap().revision();
    assert_eq!(
        rev,
        before + 1,
        "revoke deletes every attached key in one revision"
    );

    let resp = w.message().await.unwrap().unwrap();
    let evs = resp.events();
    assert_eq!(evs.len(), 2);
    for (ev, k) in evs.iter().zip(["a", "b"]) {
        assert_eq!(ev.event_type(), EventType::Delete);
        assert_eq!(ev.kv().unwrap().key(), k.as_bytes());
        assert_eq!(ev.kv().unwrap().mod_revision(), rev);
    }
    let left = c
        .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
        .await
        .unwrap();
    let names: Vec<&[u8]> = left.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(names, vec![b"c".as_ref(), b"free".as_ref()]);

    let gone = c.lease_time_to_live(id, None).await.unwrap();
    assert_eq!(gone.ttl(), -1, "unknown lease: TTL -1, no error");
    let again = c.lease_revoke(id).await.unwrap_err();
    assert_eq!(
        status_of(again),
        (
            Code::NotFound,
            "etcdserver: requested lease not found".to_string()
        )
    );
    assert!(c.leases().await.unwrap().leases().is_empty());
    ts.stop().await;
}

#[tokio::test]
async fn keep_alive_extends_and_unknown_gets_ttl_zero() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let id = c.lease_grant(3, None).await.unwrap().id();
    c.put("ka", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let (mut keeper, mut stream) = c.lease_keep_alive(id).await.unwrap();
    // Keep it alive for well over its TTL.
    for _ in 0..12 {
        keeper.keep_alive().await.unwrap();
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!(r.id(), id);
        assert_eq!(r.ttl(), 3);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(c.get("ka", None).await.unwrap().kvs().len(), 1);
    let t = c.lease_time_to_live(id, None).await.unwrap();
    assert!(t.ttl() >= 1 && t.ttl() <= 3, "ttl {}", t.ttl());

    // etcd-client turns TTL 0 into an error: check the raw answer with the generated
    // client.
    let mut raw = LeaseClient::connect(ts.endpoint.clone()).await.unwrap();
    let reqs = futures::stream::iter(vec![
        LeaseKeepAliveRequest { id: 4242 },
        LeaseKeepAliveRequest { id },
    ]);
    let mut out = raw.lease_keep_alive(reqs).await.unwrap().into_inner();
    let r = out.message().await.unwrap().unwrap();
    assert_eq!((r.id, r.ttl), (4242, 0), "unknown lease: TTL 0, no error");
    assert!(r.header.unwrap().revision > 0);
    let r = out.message().await.unwrap().unwrap();
    assert_eq!((r.id, r.ttl), (id, 3));
    ts.stop().await;
}

#[tokio::test]
async fn expiry_deletes_attached_keys_in_one_revision_with_one_delete_event_each() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let id = c.lease_grant(2, None).await.unwrap().id();
    for k in ["e/1", "e/2", "e/3"] {
        c.put(k, "v", Some(PutOptions::new().with_lease(id)))
            .await
            .unwrap();
    }
    let mut w = c
        .watch("e/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(w.message().await.unwrap().unwrap().created());
    let resp = tokio::time::timeout(Duration::from_secs(30), w.message())
        .await
        .expect("lease expires")
        .unwrap()
        .unwrap();
    let evs = resp.events();
    assert_eq!(evs.len(), 3);
    let rev = evs[0].kv().unwrap().mod_revision();
    for (ev, k) in evs.iter().zip(["e/1", "e/2", "e/3"]) {
        assert_eq!(ev.event_type(), EventType::Delete);
        assert_eq!(ev.kv().unwrap().key(), k.as_bytes());
        assert_eq!(ev.kv().unwrap().mod_revision(), rev);
    }
    assert_eq!(c.lease_time_to_live(id, None).await.unwrap().ttl(), -1);
    assert!(c
        .get("e/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap()
        .kvs()
        .is_empty());
    ts.stop().await;
}

#[tokio::test]
async fn leases_and_attachments_survive_restart() {
    let mut ts = TestServer::start().await;
    let mut c = ts.client().await;
    let id = c.lease_grant(1000, None).await.unwrap().id();
    c.put("r/1", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("r/2", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    ts.restart().await;
    let mut c = ts.client().await;
    let t = c.lease_time_to_live(id, ttl_keys(true)).await.unwrap();
    assert_eq!(t.granted_ttl(), 1000);
    assert!(t.ttl() > 0 && t.ttl() <= 1000, "ttl {}", t.ttl());
    let mut keys = t.keys().to_vec();
    keys.sort();
    assert_eq!(keys, vec![b"r/1".to_vec(), b"r/2".to_vec()]);
    // Still a real lease: revoking deletes the keys.
    c.lease_revoke(id).await.unwrap();
    assert!(c
        .get("r/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap()
        .kvs()
        .is_empty());
    // A second restart (WAL replay of the revoke) keeps it revoked.
    ts.restart().await;
    let mut c = ts.client().await;
    assert_eq!(c.lease_time_to_live(id, None).await.unwrap().ttl(), -1);
    ts.stop().await;
}

#[tokio::test]
async fn checkpointed_remaining_ttl_is_used_after_restart() {
    let mut ts =
        TestServer::start_with(|o| o.lease_checkpoint_interval = Duration::from_millis(500)).await;
    let mut c = ts.client().await;
    let id = c.lease_grant(100, None).await.unwrap().id();
    // Wait until a checkpoint made it durable: a restart then resumes from the
    // checkpointed remaining TTL instead of the full 100 s. Checkpoints round the
    // remaining TTL up to a second, so each round lets more than two seconds pass
    // (restarting faster could keep the checkpoint at 100 forever).
    let mut resumed = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        ts.restart().await;
        let mut c = ts.client().await;
        let t = c.lease_time_to_live(id, None).await.unwrap();
        assert_eq!(t.granted_ttl(), 100);
        assert!(t.ttl() > 0 && t.ttl() <= 100, "ttl {}", t.ttl());
        if t.ttl() < 99 {
            resumed = Some(t.ttl());
            break;
        }
    }
    assert!(resumed.is_some(), "restart resumed from a checkpoint");
    // A keep-alive clears the checkpoint: the lease is back to its full TTL.
    let mut c = ts.client().await;
    let (mut k, mut s) = c.lease_keep_alive(id).await.unwrap();
    k.keep_alive().await.unwrap();
    assert_eq!(s.message().await.unwrap().unwrap().ttl(), 100);
    ts.stop().await;
}

#[tokio::test]
async fn grant_is_refused_under_nospace() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.alarm(AlarmAction::Activate, AlarmType::Nospace, None)
        .await
        .unwrap();
    let e = c.lease_grant(10, None).await.unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded".to_string()
        )
    );
    ts.stop().await;
}
