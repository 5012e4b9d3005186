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
