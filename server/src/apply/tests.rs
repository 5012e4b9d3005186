//! `apply` on a [`State`] over a temporary directory: no raft, no threads, no sockets.

use bytes::Bytes;

use super::*;
use crate::error::Error;
use crate::pb::etcdserverpb::{
    compare, request_op, AlarmRequest, AlarmType, CompactionRequest, Compare, DeleteRangeRequest,
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use crate::state::test_support::{all, state};
use crate::state::State;

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

/// Applies `req` as the raft loop would (committing between compaction batches) and
/// returns its typed response.
fn run<P: Proposal>(st: &State, req: P) -> Result<P::Response> {
    let mut commit = || st.store.backend.commit(&[]);
    let res = apply(st, req.into_op(), &mut commit)?;
    Ok(P::response(res).expect("apply answers each request with its own response type"))
}

fn put_req(k: &str, v: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: b(k),
        value: b(v),
        lease,
        prev_kv: true,
        ..Default::default()
    }
}

/// The value of `k` at the current revision.
fn get(st: &State, k: &str) -> Option<Bytes> {
    let r = RangeRequest {
        key: b(k),
        ..Default::default()
    };
    st.store
        .range(&r)
        .expect("range")
        .kvs
        .into_iter()
        .next()
        .map(|kv| kv.value)
}

#[test]
fn puts_get_one_revision_each_and_return_the_previous_value() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let r1 = run(&st, put_req("a", "1", 0)).unwrap();
    assert_eq!(r1.header.unwrap().revision, 2);
    assert!(r1.prev_kv.is_none());
    let r2 = run(&st, put_req("a", "2", 0)).unwrap();
    assert_eq!(r2.header.unwrap().revision, 3);
    assert_eq!(r2.prev_kv.unwrap().value, b("1"));
    assert_eq!(get(&st, "a"), Some(b("2")));
    assert_eq!(st.store.rev(), 3);
}

#[test]
fn a_put_with_an_unknown_lease_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    assert_eq!(run(&st, put_req("a", "1", 99)), Err(Error::LeaseNotFound));
    assert_eq!(st.store.rev(), 1);
    assert_eq!(get(&st, "a"), None);
}

#[test]
fn delete_range_removes_keys_in_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    for k in ["a", "b", "c"] {
        run(&st, put_req(k, "v", 0)).unwrap();
    }
    let d = run(
        &st,
        DeleteRangeRequest {
            key: b("a"),
            range_end: b("c"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.deleted, 2);
    assert_eq!(d.header.unwrap().revision, 5);
    let (left, rev) = all(&st.store);
    assert_eq!(rev, 5);
    assert_eq!(left.kvs.len(), 1);
    assert_eq!(left.kvs[0].key, b("c"));
    // Deleting nothing does not bump the revision.
    let none = run(
        &st,
        DeleteRangeRequest {
            key: b("zz"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(none.deleted, 0);
    assert_eq!(st.store.rev(), 5);
}

#[test]
fn a_txn_takes_its_branch_and_shares_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    run(&st, put_req("k", "1", 0)).unwrap();
    let put_op = |k: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(k, "t", 0))),
    };
    let txn = |want: &str| TxnRequest {
        compare: vec![Compare {
            key: b("k"),
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            target_union: Some(compare::TargetUnion::Value(b(want))),
            ..Default::default()
        }],
        success: vec![put_op("x"), put_op("y")],
        failure: vec![put_op("z")],
    };
    let t = run(&st, txn("1")).unwrap();
    assert!(t.succeeded);
    assert_eq!(t.responses.len(), 2);
    assert_eq!(t.header.unwrap().revision, 3);
    assert_eq!(get(&st, "x"), Some(b("t")));
    assert_eq!(get(&st, "y"), Some(b("t")));
    let f = run(&st, txn("nope")).unwrap();
    assert!(!f.succeeded);
    assert_eq!(f.header.unwrap().revision, 4);
    assert_eq!(get(&st, "z"), Some(b("t")));
}

#[test]
fn nospace_refuses_puts_and_txns_that_put_but_not_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    run(&st, put_req("a", "1", 0)).unwrap();
    let raise = AlarmRequest {
        action: crate::pb::etcdserverpb::alarm_request::AlarmAction::Activate as i32,
        member_id: 1,
        alarm: AlarmType::Nospace as i32,
    };
    let a = run(&st, raise).unwrap();
    assert_eq!(a.alarms.len(), 1);
    assert!(st.alarms.has(AlarmType::Nospace));
    assert_eq!(run(&st, put_req("b", "1", 0)), Err(Error::NoSpace));
    let txn_put = TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(put_req("b", "1", 0))),
        }],
        ..Default::default()
    };
    assert_eq!(run(&st, txn_put), Err(Error::NoSpace));
    assert_eq!(
        run(&st, LeaseGrantRequest { id: 5, ttl: 10 }),
        Err(Error::NoSpace)
    );
    let d = run(
        &st,
        DeleteRangeRequest {
            key: b("a"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.deleted, 1);
}

#[test]
fn leases_grant_attach_checkpoint_and_revoke_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let g = run(&st, LeaseGrantRequest { id: 7, ttl: 60 }).unwrap();
    assert_eq!((g.id, g.ttl), (7, 60));
    assert_eq!(
        run(&st, LeaseGrantRequest { id: 7, ttl: 60 }).map(|g| g.id),
        Err(Error::LeaseExists)
    );
    run(&st, put_req("a", "1", 7)).unwrap();
    run(&st, put_req("b", "1", 7)).unwrap();
    run(&st, put_req("c", "1", 0)).unwrap();
    run(
        &st,
        LeaseCheckpointRequest {
            checkpoints: vec![LeaseCheckpoint {
                id: 7,
                remaining_ttl: 30,
            }],
        },
    )
    .unwrap();
    // The checkpoint and the attachments survive a reload from the committed backend.
    st.store.backend.commit(&[]).unwrap();
    st.lessor.restore(&st.store).unwrap();
    let ttl = st.lessor.time_to_live(7, true).expect("lease 7");
    assert_eq!(ttl.keys.len(), 2);
    let rev_before = st.store.rev();
    let r = run(&st, LeaseRevokeRequest { id: 7 }).unwrap();
    assert_eq!(r.header.unwrap().revision, rev_before + 1);
    assert!(!st.lessor.exists(7));
    assert_eq!(get(&st, "a"), None);
    assert_eq!(get(&st, "b"), None);
    assert_eq!(get(&st, "c"), Some(b("1")));
    assert_eq!(
        run(&st, LeaseRevokeRequest { id: 7 }).map(|_| ()),
        Err(Error::LeaseNotFound)
    );
}

#[test]
fn compaction_drops_old_revisions_and_refuses_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    for i in 0..5 {
        run(&st, put_req("a", &i.to_string(), 0)).unwrap();
    }
    let c = run(
        &st,
        CompactionRequest {
            revision: 4,
            physical: true,
        },
    )
    .unwrap();
    assert_eq!(c.header.unwrap().revision, 6);
    assert_eq!(st.store.compact_rev(), 4);
    let old = RangeRequest {
        key: b("a"),
        revision: 3,
        ..Default::default()
    };
    assert_eq!(st.store.range(&old).map(|_| ()), Err(Error::Compacted));
    assert_eq!(
        run(
            &st,
            CompactionRequest {
                revision: 2,
                physical: false
            }
        )
        .map(|_| ()),
        Err(Error::Compacted)
    );
    assert_eq!(
        run(
            &st,
            CompactionRequest {
                revision: 100,
                physical: false
            }
        )
        .map(|_| ()),
        Err(Error::FutureRev)
    );
    assert_eq!(get(&st, "a"), Some(b("4")));
}

#[test]
fn member_attributes_of_an_unknown_member_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let m = crate::pb::etcdserverpb::Member {
        id: 42,
        name: "x".into(),
        ..Default::default()
    };
    assert_eq!(run(&st, m).map(|_| ()), Err(Error::MemberNotFound));
}
