//! Maintenance and Cluster services over real gRPC with the `etcd-client` crate.

mod common;

use common::{status_of, TestServer};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, DeleteOptions, GetOptions};
use sha2::{Digest, Sha256};
use tonic::Code;

#[tokio::test]
async fn status_reports_member_state() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.put("a", "1", None).await.unwrap();
    let s = c.status().await.unwrap();
    assert_eq!(s.version(), "3.5.17");
    let h = s.header().unwrap();
    assert_eq!(s.leader(), h.member_id());
    assert!(s.raft_term() >= 1);
    assert!(s.raft_index() >= 2, "leader no-op plus the put");
    assert!(s.raft_applied_index() >= s.raft_index() - 1);
    assert!(s.db_size() > 0);
    assert!(s.raft_used_db_size() > 0);
    assert!(!s.is_learner());
    assert!(s.errors().is_empty());
    assert_eq!(h.revision(), 2);
    ts.stop().await;
}

#[tokio::test]
async fn alarms_block_writes_until_disarmed() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.put("a", "1", None).await.unwrap();
    let none = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert!(none.alarms().is_empty());

    let id = ts.server.as_ref().unwrap().member_id();
    let mut opts = AlarmOptions::new();
    opts.with_member(id);
    let act = c
        .alarm(
            AlarmAction::Activate,
            AlarmType::Nospace,
            Some(opts.clone()),
        )
        .await
        .unwrap();
    assert_eq!(act.alarms().len(), 1);
    let list = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(list.alarms().len(), 1);
    assert_eq!(list.alarms()[0].member_id(), id);
    assert_eq!(list.alarms()[0].alarm(), AlarmType::Nospace);

    let nospace = (
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded".to_string(),
    );
    assert_eq!(status_of(c.put("b", "2", None).await.unwrap_err()), nospace);
    let e = c
        .txn(etcd_client::Txn::new().and_then([etcd_client::TxnOp::put("b", "2", None)]))
        .await
        .unwrap_err();
    assert_eq!(status_of(e), nospace);
    // Reads, deletes, compaction still work.
    assert_eq!(c.get("a", None).await.unwrap().count(), 1);
    c.delete("a", Some(DeleteOptions::new())).await.unwrap();
    c.compact(2, None).await.unwrap();
    let st = c.status().await.unwrap();
    assert_eq!(st.errors().len(), 1);
    assert!(st.errors()[0].contains("NOSPACE"));

    let dis = c
        .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(opts))
        .await
        .unwrap();
    assert_eq!(dis.alarms().len(), 1);
    c.put("b", "2", None).await.unwrap();
    assert!(c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap()
        .alarms()
        .is_empty());
    ts.stop().await;
}

#[tokio::test]
async fn alarm_survives_restart() {
    let mut ts = TestServer::start().await;
    let id = ts.server.as_ref().unwrap().member_id();
    {
        let mut c = ts.client().await;
        let mut o = AlarmOptions::new();
        o.with_member(id);
        c.alarm(AlarmAction::Activate, AlarmType::Nospace, Some(o))
            .await
            .unwrap();
    }
    ts.restart().await;
    let mut c = ts.client().await;
    let list = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(list.alarms().len(), 1);
    assert_eq!(
        status_of(c.put("x", "y", None).await.unwrap_err()).0,
        Code::ResourceExhausted
    );
    ts.stop().await;
}

#[tokio::test]
async fn quota_raises_nospace() {
    let ts = TestServer::start_with(|o| o.quota_backend_bytes_raw = 256 * 1024).await;
    let mut c = ts.client().await;
    let value = vec![b'v'; 16 * 1024];
    let mut refused = None;
    for i in 0..200 {
        match c.put(format!("k{i}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(status_of(e));
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some((
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded".into()
        ))
    );
    let list = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(list.alarms().len(), 1);
    assert_eq!(list.alarms()[0].alarm(), AlarmType::Nospace);
    // Reads still work.
    assert!(c.get("k0", None).await.unwrap().count() == 1);
    ts.stop().await;
}

#[tokio::test]
async fn defragment_keeps_data() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    for i in 0..200 {
        c.put(format!("k{i:03}"), vec![b'x'; 1000], None)
            .await
            .unwrap();
    }
    c.delete("k", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let rev = c
        .put("last", "1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.compact(rev, None).await.unwrap();
    let before = c.status().await.unwrap().db_size();
    c.defragment().await.unwrap();
    let after = c.status().await.unwrap().db_size();
    assert!(
        after <= before,
        "defrag does not grow the file ({before} -> {after})"
    );
    let g = c.get("last", None).await.unwrap();
    assert_eq!(g.kvs()[0].value(), b"1");
    c.put("post", "defrag", None).await.unwrap();
    assert_eq!(c.get("post", None).await.unwrap().count(), 1);
    ts.stop().await;
}

#[tokio::test]
async fn hash_and_hash_kv() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    for c in [&mut ca, &mut cb] {
        for i in 0..20 {
            c.put(format!("k{}", i % 7), format!("v{i}"), None)
                .await
                .unwrap();
        }
        c.delete("k3", None).await.unwrap();
    }
    let ha = ca.hash_kv(0).await.unwrap();
    let hb = cb.hash_kv(0).await.unwrap();
    assert_eq!(ha.hash(), hb.hash(), "same history, same HashKV");
    assert_eq!(ha.hash_revision(), 22);
    let h10a = ca.hash_kv(10).await.unwrap().hash();
    assert_ne!(h10a, ha.hash());
    assert_eq!(h10a, cb.hash_kv(10).await.unwrap().hash());

    // Compaction keeps the hash at and above the compaction revision.
    ca.compact(15, None).await.unwrap();
    cb.compact(15, None).await.unwrap();
    let after = ca.hash_kv(22).await.unwrap();
    assert_eq!(after.compact_version(), 15);
    assert_eq!(after.hash(), cb.hash_kv(22).await.unwrap().hash());
    let e = ca.hash_kv(10).await.unwrap_err();
    assert_eq!(status_of(e).0, Code::OutOfRange);
    let e = ca.hash_kv(1000).await.unwrap_err();
    assert_eq!(status_of(e).0, Code::OutOfRange);

    // A different history gives a different hash.
    cb.put("extra", "1", None).await.unwrap();
    assert_ne!(
        ca.hash_kv(0).await.unwrap().hash(),
        cb.hash_kv(0).await.unwrap().hash()
    );
    assert_ne!(ca.hash().await.unwrap().hash(), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn snapshot_streams_db_with_sha256_trailer() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    for i in 0..100 {
        c.put(format!("snap{i}"), vec![b'z'; 2000], None)
            .await
            .unwrap();
    }
    let mut stream = c.snapshot().await.unwrap();
    let mut msgs = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        msgs.push((m.remaining_bytes(), m.blob().to_vec()));
    }
    assert!(msgs.len() >= 2);
    let (last_remaining, digest) = msgs.pop().unwrap();
    assert_eq!(last_remaining, 0);
    assert_eq!(digest.len(), 32);
    let data: Vec<u8> = msgs.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert!(msgs.iter().all(|(_, b)| b.len() <= 32 * 1024));
    assert_eq!(
        msgs.last().unwrap().0,
        0,
        "remaining bytes reach 0 with the last chunk"
    );
    assert_eq!(msgs[0].0 as usize, data.len() - msgs[0].1.len());
    assert_eq!(Sha256::digest(&data).as_slice(), digest.as_slice());
    // The image is a bbolt file with etcd's buckets.
    let path = ts.dir.path().join("snap.db");
    std::fs::write(&path, &data).unwrap();
    let db = cairn_engine::Db::open(
        &path,
        cairn_engine::Options {
            read_only: true,
            ..Default::default()
        },
    )
    .expect("snapshot opens as a database");
    let tx = db.begin_read().unwrap();
    let kb = tx.bucket(b"key").expect("key bucket");
    let mut cur = kb.cursor();
    let mut n = 0;
    let mut item = cur.first();
    while item.is_some() {
        n += 1;
        item = cur.next();
    }
    assert_eq!(n, 100);
    assert!(tx
        .bucket(b"meta")
        .unwrap()
        .get(b"consistent_index")
        .is_some());
    ts.stop().await;
}

#[tokio::test]
async fn member_list_move_leader_and_unimplemented() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let ml = c.member_list().await.unwrap();
    let members = ml.members();
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!(m.id(), ts.server.as_ref().unwrap().member_id());
    assert_eq!(m.id(), ml.header().unwrap().member_id());
    assert_eq!(m.name(), "default");
    assert_eq!(m.peer_urls(), ["http://localhost:2380"]);
    assert_eq!(m.client_urls(), std::slice::from_ref(&ts.endpoint));

    c.move_leader(m.id()).await.unwrap();
    let e = c.move_leader(m.id() ^ 1).await.unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee".into()
        )
    );

    // Services not provided yet answer Unimplemented.
    let e = c.role_list().await.unwrap_err();
    assert_eq!(status_of(e).0, Code::Unimplemented);

    // gRPC health service.
    let channel = tonic::transport::Channel::from_shared(ts.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        r.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Linearizable read path.
    c.put("lin", "1", None).await.unwrap();
    let g = c.get("lin", Some(GetOptions::new())).await.unwrap();
    assert_eq!(g.count(), 1);
    ts.stop().await;
}
