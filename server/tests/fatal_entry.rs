//! A committed raft entry that cannot be decoded stops the member with a typed fatal error
//! naming its index: every member must apply the same entries, so skipping one would fork
//! the state machines. The entry is planted in a stopped member's WAL (as a disk fault or
//! a bug in another version would leave it), committed by the hard state beside it.

mod common;

use bytes::Bytes;
use cairn_server::error::Fatal;
use cairn_server::{Error, Server};
use cairn_wal::{Entry, HardState, Record, Wal};
use common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_committed_entry_stops_the_member_naming_its_index() {
    let mut ts = TestServer::start().await;
    let mut c = ts.client().await;
    c.put("k", "v", None).await.expect("put before the fault");
    let opts = ts.opts.clone();
    ts.server.take().expect("running").stop().await;

    let wal_dir = opts.data_dir.join("member/wal");
    let (wal, replay) = Wal::open(&wal_dir, cairn_wal::Options::default()).expect("open wal");
    let last = replay.entries.last().expect("entries written").clone();
    let term = replay.hard_state.map(|h| h.term).unwrap_or(last.term);
    let bad = last.index + 1;
    wal.append_blocking(vec![
        Record::Entry(Entry {
            index: bad,
            term,
            kind: 0,
            // Field 1 (the request id) as a length-delimited field: not the entry format.
            data: Bytes::from_static(&[0x0a, 0x05, 0xff]),
        }),
        Record::HardState(HardState {
            term,
            vote: replay.hard_state.map(|h| h.vote).unwrap_or(0),
            commit: bad,
        }),
    ])
    .expect("append the bad entry");
    wal.close().expect("close wal");
    drop(wal);

    let server = Server::start(opts).await.expect("the member starts");
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), server.terminated())
        .await
        .expect("the member stops by itself");
    match outcome {
        Err(Error::Fatal(Fatal::BadEntry { index, .. })) => assert_eq!(index, bad),
        other => panic!("expected a fatal error for entry {bad}, got {other:?}"),
    }
    server.stop().await;
}

/// A txn nested one level deeper than a raft entry can carry still decodes as a gRPC
/// request; it must be refused before it becomes an entry (otherwise every member would
/// stop when applying it), and the member keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_too_deep_for_an_entry_is_refused_and_the_member_keeps_serving() {
    use cairn_server::pb::etcdserverpb::kv_client::KvClient;
    use cairn_server::pb::etcdserverpb::{request_op, PutRequest, RequestOp, TxnRequest};

    let ts = TestServer::start().await;
    let mut kv = KvClient::connect(ts.endpoint.clone())
        .await
        .expect("connect");
    // 50 nested read-only txns (the deepest a gRPC request may be), beside a put at the
    // top so that the txn writes and would go through raft.
    let mut t = TxnRequest::default();
    for _ in 0..50 {
        t = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(t)),
            }],
            ..Default::default()
        };
    }
    t.success.push(RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: Bytes::from_static(b"deep"),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })),
    });
    let err = kv.txn(t).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let mut c = ts.client().await;
    c.put("after", "ok", None)
        .await
        .expect("the member still serves");
    let got = c.get("deep", None).await.expect("get");
    assert!(
        got.kvs().is_empty(),
        "nothing of the refused txn was written"
    );
    ts.stop().await;
}
