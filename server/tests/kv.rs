//! KV service over real gRPC with the `etcd-client` crate: every Range/Put/DeleteRange/Txn/
//! Compact field and error.

mod common;

use common::{status_of, TestServer};
use etcd_client::{
    CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse,
};
use tonic::Code;

fn keys(r: &etcd_client::GetResponse) -> Vec<String> {
    r.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

#[tokio::test]
async fn put_get_revisions_versions_and_prev_kv() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;

    let empty = c.get("foo", None).await.unwrap();
    assert_eq!(
        empty.header().unwrap().revision(),
        1,
        "empty store is at revision 1"
    );
    assert!(empty.kvs().is_empty());
    assert_eq!(empty.count(), 0);

    let p = c.put("foo", "bar", None).await.unwrap();
    let h = p.header().unwrap();
    assert_eq!(h.revision(), 2);
    assert_ne!(h.member_id(), 0);
    assert_ne!(h.cluster_id(), 0);
    assert!(h.raft_term() >= 1);
    assert!(p.prev_key().is_none());

    let p2 = c
        .put("foo", "baz", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(p2.header().unwrap().revision(), 3);
    let prev = p2.prev_key().expect("prev_kv");
    assert_eq!(prev.value(), b"bar");
    assert_eq!(prev.mod_revision(), 2);

    let g = c.get("foo", None).await.unwrap();
    let kv = &g.kvs()[0];
    assert_eq!(kv.value(), b"baz");
    assert_eq!(kv.create_revision(), 2);
    assert_eq!(kv.mod_revision(), 3);
    assert_eq!(kv.version(), 2);
    assert_eq!(kv.lease(), 0);
    assert_eq!(g.header().unwrap().revision(), 3);

    // Historical read: header carries the current revision.
    let old = c
        .get("foo", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap();
    assert_eq!(old.kvs()[0].value(), b"bar");
    assert_eq!(old.kvs()[0].version(), 1);
    assert_eq!(old.header().unwrap().revision(), 3);

    // Serializable read sees the same.
    let s = c
        .get("foo", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(s.kvs()[0].value(), b"baz");

    // Delete then re-create: version restarts, create revision moves.
    c.delete("foo", None).await.unwrap();
    c.put("foo", "again", None).await.unwrap();
    let g = c.get("foo", None).await.unwrap();
    assert_eq!(g.kvs()[0].version(), 1);
    assert_eq!(g.kvs()[0].create_revision(), 5);
    ts.stop().await;
}

#[tokio::test]
async fn ignore_value_and_ignore_lease() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    let e = c
        .put("k", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (Code::InvalidArgument, "etcdserver: key not found".into())
    );
    c.put("k", "v1", None).await.unwrap();
    let r = c
        .put(
            "k",
            "",
            Some(PutOptions::new().with_ignore_value().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"v1");
    let g = c.get("k", None).await.unwrap();
    assert_eq!(g.kvs()[0].value(), b"v1");
    assert_eq!(g.kvs()[0].version(), 2);

    let e = c
        .put("k", "x", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::InvalidArgument,
            "etcdserver: value is provided".into()
        )
    );
    let e = c
        .put(
            "k",
            "x",
            Some(PutOptions::new().with_ignore_lease().with_lease(7)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::InvalidArgument,
            "etcdserver: lease is provided".into()
        )
    );
    c.put("k", "v2", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap();
    assert_eq!(c.get("k", None).await.unwrap().kvs()[0].value(), b"v2");
    let e = c
        .put("nokey", "x", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (Code::InvalidArgument, "etcdserver: key not found".into())
    );

    // No lease exists: any lease id is unknown, and nothing is applied.
    let before = c.get("k", None).await.unwrap().header().unwrap().revision();
    let e = c
        .put("k", "x", Some(PutOptions::new().with_lease(12345)))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::NotFound,
            "etcdserver: requested lease not found".into()
        )
    );
    let after = c.get("k", None).await.unwrap();
    assert_eq!(after.header().unwrap().revision(), before);
    assert_eq!(after.kvs()[0].value(), b"v2");
    ts.stop().await;
}

#[tokio::test]
async fn range_options() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    // a: rev 2, b: rev 3, c: rev 4, then a again: rev 5, d: rev 6.
    c.put("a", "3", None).await.unwrap();
    c.put("b", "1", None).await.unwrap();
    c.put("c", "2", None).await.unwrap();
    c.put("a", "4", None).await.unwrap();
    c.put("d", "0", None).await.unwrap();
    c.put("other", "x", None).await.unwrap();

    let all = c
        .get("a", Some(GetOptions::new().with_range("e")))
        .await
        .unwrap();
    assert_eq!(keys(&all), ["a", "b", "c", "d"]);
    assert_eq!(all.count(), 4);
    assert!(!all.more());

    let from = c
        .get("c", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(keys(&from), ["c", "d", "other"]);
    let everything = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(everything.count(), 5);

    let p = c
        .get("o", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(keys(&p), ["other"]);

    // limit: count ignores it, more reports truncation.
    let l = c
        .get("a", Some(GetOptions::new().with_range("e").with_limit(2)))
        .await
        .unwrap();
    assert_eq!(keys(&l), ["a", "b"]);
    assert!(l.more());
    assert_eq!(l.count(), 4);
    let l = c
        .get("a", Some(GetOptions::new().with_range("e").with_limit(4)))
        .await
        .unwrap();
    assert!(!l.more());

    // Sorting.
    let d = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_sort(SortTarget::Key, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&d), ["d", "c", "b", "a"]);
    let v = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_sort(SortTarget::Value, SortOrder::Ascend),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&v), ["d", "b", "c", "a"]);
    let m = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&m), ["d", "a", "c", "b"]);
    let cr = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_sort(SortTarget::Create, SortOrder::Ascend),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&cr), ["a", "b", "c", "d"]);
    // A target other than KEY with order NONE sorts ascending.
    let ver = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_sort(SortTarget::Version, SortOrder::None),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&ver).last().unwrap(), "a");
    // Sorted + limit: sort first, then truncate.
    let sl = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_sort(SortTarget::Value, SortOrder::Descend)
                    .with_limit(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&sl), ["a"]);
    assert!(sl.more());
    assert_eq!(sl.count(), 4);

    // keys_only and count_only.
    let ko = c
        .get(
            "a",
            Some(GetOptions::new().with_range("e").with_keys_only()),
        )
        .await
        .unwrap();
    assert_eq!(ko.kvs().len(), 4);
    assert!(ko.kvs().iter().all(|kv| kv.value().is_empty()));
    assert_eq!(ko.kvs()[0].mod_revision(), 5);
    let co = c
        .get(
            "a",
            Some(GetOptions::new().with_range("e").with_count_only()),
        )
        .await
        .unwrap();
    assert!(co.kvs().is_empty());
    assert_eq!(co.count(), 4);

    // min/max mod/create revision filters; count ignores them.
    let f = c
        .get(
            "a",
            Some(GetOptions::new().with_range("e").with_min_mod_revision(4)),
        )
        .await
        .unwrap();
    assert_eq!(keys(&f), ["a", "c", "d"]);
    assert_eq!(f.count(), 4);
    let f = c
        .get(
            "a",
            Some(GetOptions::new().with_range("e").with_max_mod_revision(4)),
        )
        .await
        .unwrap();
    assert_eq!(keys(&f), ["b", "c"]);
    let f = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_min_create_revision(3),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&f), ["b", "c", "d"]);
    let f = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_range("e")
                    .with_max_create_revision(3)
                    .with_limit(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&f), ["a"]);
    assert!(f.more());

    // Historical range.
    let h = c
        .get(
            "a",
            Some(GetOptions::new().with_range("e").with_revision(3)),
        )
        .await
        .unwrap();
    assert_eq!(keys(&h), ["a", "b"]);
    assert_eq!(h.kvs()[0].value(), b"3");
    assert_eq!(h.header().unwrap().revision(), 7);
    ts.stop().await;
}

#[tokio::test]
async fn request_errors() {
    let ts = TestServer::start_with(|o| {
        o.max_request_bytes = 4096;
        o.max_txn_ops = 4;
    })
    .await;
    let mut c = ts.client().await;
    let empty = (
        Code::InvalidArgument,
        "etcdserver: key is not provided".to_string(),
    );
    assert_eq!(status_of(c.put("", "v", None).await.unwrap_err()), empty);
    assert_eq!(status_of(c.get("", None).await.unwrap_err()), empty);
    assert_eq!(status_of(c.delete("", None).await.unwrap_err()), empty);

    c.put("k", "v", None).await.unwrap();
    let e = c
        .get("k", Some(GetOptions::new().with_revision(100)))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into()
        )
    );

    let big = vec![b'x'; 5000];
    let e = c.put("big", big, None).await.unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::InvalidArgument,
            "etcdserver: request is too large".into()
        )
    );

    let ops: Vec<TxnOp> = (0..5)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    let e = c.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into()
        )
    );
    let e = c
        .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".into()
        )
    );
    let e = c
        .txn(Txn::new().and_then([
            TxnOp::delete("a", Some(DeleteOptions::new().with_range("z"))),
            TxnOp::put("m", "2", None),
        ]))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".into()
        )
    );
    // A put in then and in else of a nested txn is fine.
    c.txn(
        Txn::new().and_then([TxnOp::txn(
            Txn::new()
                .when([Compare::version("k", CompareOp::Equal, 1)])
                .and_then([TxnOp::put("n", "1", None)])
                .or_else([TxnOp::put("n", "2", None)]),
        )]),
    )
    .await
    .unwrap();
    assert_eq!(c.get("n", None).await.unwrap().kvs()[0].value(), b"1");

    // Nothing failed above was applied.
    let g = c.get("d", None).await.unwrap();
    assert!(g.kvs().is_empty());

    // Invalid enum values (not expressible with etcd-client's builders): raw request.
    let mut raw = cairn_server::pb::etcdserverpb::kv_client::KvClient::connect(ts.endpoint.clone())
        .await
        .unwrap();
    let e = raw
        .range(cairn_server::pb::etcdserverpb::RangeRequest {
            key: "k".into(),
            sort_order: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: invalid sort option")
    );
    let e = raw
        .range(cairn_server::pb::etcdserverpb::RangeRequest {
            key: "k".into(),
            sort_target: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    ts.stop().await;
}

#[tokio::test]
async fn delete_range() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    for k in ["p/1", "p/2", "p/3", "q"] {
        c.put(k, k, None).await.unwrap();
    }
    let d = c
        .delete(
            "p/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(d.deleted(), 3);
    assert_eq!(d.prev_kvs().len(), 3);
    assert_eq!(d.prev_kvs()[1].value(), b"p/2");
    assert_eq!(
        d.header().unwrap().revision(),
        6,
        "one revision for the whole delete"
    );
    // Deleting nothing does not bump the revision.
    let d = c.delete("missing", None).await.unwrap();
    assert_eq!(d.deleted(), 0);
    assert_eq!(d.header().unwrap().revision(), 6);
    // Without prev_kv nothing is returned.
    let d = c.delete("q", None).await.unwrap();
    assert_eq!(d.deleted(), 1);
    assert!(d.prev_kvs().is_empty());
    let rest = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(rest.count(), 0);
    // Old revisions still readable.
    let old = c
        .get("p/", Some(GetOptions::new().with_prefix().with_revision(5)))
        .await
        .unwrap();
    assert_eq!(old.count(), 3);
    ts.stop().await;
}

#[tokio::test]
async fn txn_compares_branches_and_nesting() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.put("x", "1", None).await.unwrap(); // rev 2
    c.put("y", "2", None).await.unwrap(); // rev 3

    // Success branch: several ops, one revision.
    let t = c
        .txn(
            Txn::new()
                .when([
                    Compare::value("x", CompareOp::Equal, "1"),
                    Compare::version("x", CompareOp::Equal, 1),
                    Compare::create_revision("y", CompareOp::Greater, 2),
                    Compare::mod_revision("y", CompareOp::Less, 4),
                    Compare::lease("x", CompareOp::Equal, 0),
                    Compare::value("y", CompareOp::NotEqual, "9"),
                ])
                .and_then([
                    TxnOp::put("x", "10", Some(PutOptions::new().with_prev_key())),
                    TxnOp::put("z", "30", None),
                    TxnOp::get("x", None),
                    TxnOp::delete("y", None),
                ])
                .or_else([TxnOp::put("failed", "1", None)]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(t.header().unwrap().revision(), 4);
    let rs = t.op_responses();
    assert_eq!(rs.len(), 4);
    match &rs[0] {
        TxnOpResponse::Put(p) => assert_eq!(p.prev_key().unwrap().value(), b"1"),
        other => panic!("{other:?}"),
    }
    match &rs[2] {
        TxnOpResponse::Get(g) => {
            // Reads inside the txn see its earlier writes.
            assert_eq!(g.kvs()[0].value(), b"10");
            assert_eq!(g.kvs()[0].mod_revision(), 4);
        }
        other => panic!("{other:?}"),
    }
    match &rs[3] {
        TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 1),
        other => panic!("{other:?}"),
    }
    let z = c.get("z", None).await.unwrap();
    assert_eq!(z.kvs()[0].mod_revision(), 4);
    assert_eq!(z.kvs()[0].create_revision(), 4);

    // Failure branch; VALUE compare on a missing key is false whatever the operator.
    let t = c
        .txn(
            Txn::new()
                .when([Compare::value("missing", CompareOp::NotEqual, "a")])
                .and_then([TxnOp::put("s", "1", None)])
                .or_else([TxnOp::get("x", None)]),
        )
        .await
        .unwrap();
    assert!(!t.succeeded());
    // Read-only branch: no new revision.
    assert_eq!(t.header().unwrap().revision(), 4);
    // A missing key compares as version 0.
    let t = c
        .txn(
            Txn::new()
                .when([Compare::version("missing", CompareOp::Equal, 0)])
                .and_then([TxnOp::put("created", "1", None)]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(t.header().unwrap().revision(), 5);

    // Range compare: every key of the range must hold.
    c.put("r/1", "a", None).await.unwrap();
    c.put("r/2", "b", None).await.unwrap();
    let t = c
        .txn(Txn::new().when([Compare::value("r/", CompareOp::Greater, "").with_prefix()]))
        .await
        .unwrap();
    assert!(t.succeeded());
    let t = c
        .txn(Txn::new().when([Compare::value("r/", CompareOp::Equal, "a").with_prefix()]))
        .await
        .unwrap();
    assert!(!t.succeeded());
    let t = c
        .txn(Txn::new().when([Compare::version("r/1", CompareOp::Equal, 1).with_range("r/3")]))
        .await
        .unwrap();
    assert!(t.succeeded());

    // Nested txn: compares decided up front, one revision for everything.
    let rev_before = c.get("x", None).await.unwrap().header().unwrap().revision();
    let t = c
        .txn(
            Txn::new()
                .when([Compare::value("x", CompareOp::Equal, "10")])
                .and_then([
                    TxnOp::put("outer", "1", None),
                    TxnOp::txn(
                        Txn::new()
                            .when([Compare::version("outer", CompareOp::Equal, 0)])
                            .and_then([TxnOp::put("inner", "then", None)])
                            .or_else([TxnOp::put("inner", "else", None)]),
                    ),
                ]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(t.header().unwrap().revision(), rev_before + 1);
    match &t.op_responses()[1] {
        TxnOpResponse::Txn(n) => assert!(
            n.succeeded(),
            "nested compare sees the state before the txn"
        ),
        other => panic!("{other:?}"),
    }
    let inner = c.get("inner", None).await.unwrap();
    assert_eq!(inner.kvs()[0].value(), b"then");
    assert_eq!(inner.kvs()[0].mod_revision(), rev_before + 1);

    // A future revision in a txn range fails the whole txn.
    let e = c
        .txn(Txn::new().and_then([
            TxnOp::put("never", "1", None),
            TxnOp::get("x", Some(GetOptions::new().with_revision(1000))),
        ]))
        .await
        .unwrap_err();
    assert_eq!(status_of(e).0, Code::OutOfRange);
    assert!(c.get("never", None).await.unwrap().kvs().is_empty());
    ts.stop().await;
}

#[tokio::test]
async fn compaction() {
    let ts = TestServer::start().await;
    let mut c = ts.client().await;
    for i in 0..10 {
        c.put("key", format!("v{i}"), None).await.unwrap(); // revs 2..=11
    }
    c.put("other", "o", None).await.unwrap(); // rev 12
    c.delete("other", None).await.unwrap(); // rev 13
    let e = c.compact(100, None).await.unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into()
        )
    );
    c.compact(6, None).await.unwrap();
    let e = c
        .get("key", Some(GetOptions::new().with_revision(5)))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(e),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".into()
        )
    );
    // The compaction revision itself stays readable.
    let at = c
        .get("key", Some(GetOptions::new().with_revision(6)))
        .await
        .unwrap();
    assert_eq!(at.kvs()[0].value(), b"v4");
    let e = c.compact(6, None).await.unwrap_err();
    assert_eq!(status_of(e).0, Code::OutOfRange);
    c.compact(13, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let cur = c.get("key", None).await.unwrap();
    assert_eq!(cur.kvs()[0].value(), b"v9");
    assert_eq!(cur.kvs()[0].version(), 10);
    assert!(c.get("other", None).await.unwrap().kvs().is_empty());
    // Writes go on from the same revision sequence.
    let p = c.put("key", "after", None).await.unwrap();
    assert_eq!(p.header().unwrap().revision(), 14);
    ts.stop().await;
}

#[tokio::test]
async fn restart_keeps_data_and_revisions() {
    let mut ts = TestServer::start().await;
    {
        let mut c = ts.client().await;
        for i in 0..50 {
            c.put(format!("k{i:02}"), format!("v{i}"), None)
                .await
                .unwrap();
        }
        c.delete("k00", None).await.unwrap();
        c.compact(10, None).await.unwrap();
    }
    ts.restart().await;
    let mut c = ts.client().await;
    let all = c
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(all.count(), 49);
    assert_eq!(all.header().unwrap().revision(), 52);
    assert_eq!(all.kvs()[0].key(), b"k01");
    assert_eq!(all.kvs()[0].create_revision(), 3);
    let e = c
        .get("k01", Some(GetOptions::new().with_revision(9)))
        .await
        .unwrap_err();
    assert_eq!(status_of(e).0, Code::OutOfRange);
    let p = c.put("k01", "new", None).await.unwrap();
    assert_eq!(p.header().unwrap().revision(), 53);
    let g = c.get("k01", None).await.unwrap();
    assert_eq!(g.kvs()[0].version(), 2);
    ts.stop().await;
}

#[tokio::test]
async fn restart_after_raft_log_compaction() {
    let mut ts = TestServer::start_with(|o| o.snapshot_count = 10).await;
    {
        let mut c = ts.client().await;
        for i in 0..35 {
            c.put(format!("s{i:02}"), format!("{i}"), None)
                .await
                .unwrap();
        }
    }
    let snaps: Vec<_> = std::fs::read_dir(ts.opts.data_dir.join("member/snap"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .collect();
    assert_eq!(snaps.len(), 1, "one raft snapshot metadata file is kept");
    ts.restart().await;
    let mut c = ts.client().await;
    let all = c
        .get("s", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(all.count(), 35);
    assert_eq!(all.header().unwrap().revision(), 36);
    let p = c.put("s00", "again", None).await.unwrap();
    assert_eq!(p.header().unwrap().revision(), 37);
    ts.stop().await;
}
