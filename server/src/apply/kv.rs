//! Executing KV requests against the store (etcd's apply.go / txn.go semantics). The checks
//! made before proposing live in the API layer (`api/validate.rs`).

use crate::error::{Error, Result};
use crate::mvcc::{Store, WriteTxn};
use crate::pb::etcdserverpb::{
    compare, request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;
use crate::state::State;

use super::rev_header;

/// Applies a Put (refused while NOSPACE is active).
pub(crate) fn put(state: &State, p: PutRequest) -> Result<PutResponse> {
    state.check_space()?;
    let mut t = state.store.write();
    let res = apply_put(&mut t, p);
    let rev = t.end();
    let mut r = res?;
    r.header.get_or_insert_with(Default::default).revision = rev;
    Ok(r)
}

/// Applies a DeleteRange.
pub(crate) fn delete(state: &State, d: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
    let mut t = state.store.write();
    let res = apply_delete(&mut t, &d);
    let rev = t.end();
    let mut r = res?;
    r.header.get_or_insert_with(Default::default).revision = rev;
    Ok(r)
}

/// Applies a Txn; one revision for all its writes. While NOSPACE is active a txn that
/// puts is refused (etcd's capped applier).
pub(crate) fn txn(state: &State, x: TxnRequest) -> Result<TxnResponse> {
    crate::metrics::METRICS.txn_total.inc();
    if !txn_is_read_only(&x) {
        let has_put = x
            .success
            .iter()
            .chain(x.failure.iter())
            .filter_map(|o| o.request.as_ref())
            .any(|o| put_cost(o) > 0);
        if has_put {
            state.check_space()?;
        }
    }
    let store = &state.store;
    let mut t = store.write();
    let res = apply_txn(store, &mut t, x);
    let rev = t.end();
    let mut r = res?;
    r.header = rev_header(rev);
    Ok(r)
}

/// True if no branch of the txn (nested ones included) writes.
pub(crate) fn txn_is_read_only(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestPut(_))
            | Some(request_op::Request::RequestDeleteRange(_)) => false,
            Some(request_op::Request::RequestTxn(t)) => txn_is_read_only(t),
            _ => true,
        })
}

/// Bytes of puts in the request (etcd's quota cost; 0 = nothing to refuse).
pub(crate) fn put_cost(op: &request_op::Request) -> usize {
    use prost::Message;
    match op {
        request_op::Request::RequestPut(p) => p.encoded_len() + 256,
        request_op::Request::RequestTxn(t) => t
            .success
            .iter()
            .chain(t.failure.iter())
            .filter_map(|o| o.request.as_ref())
            .map(put_cost)
            .sum(),
        _ => 0,
    }
}

// ---------------------------------------------------------------- execution (apply loop)

/// etcd's checkRequestPut against the state before the request.
fn precheck_put(t: &WriteTxn<'_>, p: &PutRequest) -> Result<()> {
    if (p.ignore_value || p.ignore_lease) && t.get(&p.key)?.is_none() {
        return Err(Error::KeyNotFound);
    }
    if p.lease != 0 && !t.lease_exists(p.lease) {
        return Err(Error::LeaseNotFound);
    }
    Ok(())
}

/// etcd's checkRequestRange (only explicit revisions are checked up front).
fn precheck_range(store: &Store, t: &WriteTxn<'_>, r: &RangeRequest) -> Result<()> {
    if r.revision == 0 {
        return Ok(());
    }
    if r.revision > t.read_rev() {
        return Err(Error::FutureRev);
    }
    if r.revision < store.compact_rev() {
        return Err(Error::Compacted);
    }
    Ok(())
}

pub(crate) fn apply_put(t: &mut WriteTxn<'_>, p: PutRequest) -> Result<PutResponse> {
    let prev = t.get(&p.key)?;
    if (p.ignore_value || p.ignore_lease) && prev.is_none() {
        return Err(Error::KeyNotFound);
    }
    let value = if p.ignore_value {
        prev.as_ref().map(|kv| kv.value.clone()).unwrap_or_default()
    } else {
        p.value
    };
    let lease = if p.ignore_lease {
        prev.as_ref().map(|kv| kv.lease).unwrap_or(0)
    } else {
        p.lease
    };
    if lease != 0 && !t.lease_exists(lease) {
        return Err(Error::LeaseNotFound);
    }
    t.put(p.key, value, lease)?;
    Ok(PutResponse {
        header: rev_header(t.write_rev()),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

pub(crate) fn apply_delete(
    t: &mut WriteTxn<'_>,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse> {
    let prev = t.delete_range(&d.key, &d.range_end)?;
    Ok(DeleteRangeResponse {
        header: rev_header(t.read_rev()),
        deleted: prev.len() as i64,
        prev_kvs: if d.prev_kv { prev } else { Vec::new() },
    })
}

/// The branch taken by a txn and by each nested txn of that branch, decided before
/// anything executes (etcd's compareToPath).
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn compare_path(t: &WriteTxn<'_>, store: &Store, r: &TxnRequest) -> Result<Path> {
    let mut ok = true;
    for c in &r.compare {
        if !apply_compare(t, c)? {
            ok = false;
            break;
        }
    }
    let branch = if ok { &r.success } else { &r.failure };
    let mut nested = Vec::new();
    for op in branch {
        match &op.request {
            Some(request_op::Request::RequestTxn(n)) => nested.push(compare_path(t, store, n)?),
            Some(request_op::Request::RequestPut(p)) => precheck_put(t, p)?,
            Some(request_op::Request::RequestRange(x)) => precheck_range(store, t, x)?,
            _ => {}
        }
    }
    Ok(Path {
        succeeded: ok,
        nested,
    })
}

fn apply_compare(t: &WriteTxn<'_>, c: &Compare) -> Result<bool> {
    let kvs: Vec<KeyValue> = if c.range_end.is_empty() {
        t.get(&c.key)?.into_iter().collect()
    } else {
        let r = RangeRequest {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            ..Default::default()
        };
        t.range(&r)?.kvs
    };
    if kvs.is_empty() {
        if c.target() == compare::CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ord = match c.target() {
        CompareTarget::Value => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_ref().cmp(want)
        }
        CompareTarget::Version => {
            let want = match c.target_union {
                Some(TargetUnion::Version(v)) => v,
                _ => 0,
            };
            kv.version.cmp(&want)
        }
        CompareTarget::Create => {
            let want = match c.target_union {
                Some(TargetUnion::CreateRevision(v)) => v,
                _ => 0,
            };
            kv.create_revision.cmp(&want)
        }
        CompareTarget::Mod => {
            let want = match c.target_union {
                Some(TargetUnion::ModRevision(v)) => v,
                _ => 0,
            };
            kv.mod_revision.cmp(&want)
        }
        CompareTarget::Lease => {
            let want = match c.target_union {
                Some(TargetUnion::Lease(v)) => v,
                _ => 0,
            };
            kv.lease.cmp(&want)
        }
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Err(_) => false,
    }
}

/// Applies a txn (or, with a txn that writes nothing, just evaluates it).
pub(crate) fn apply_txn(store: &Store, t: &mut WriteTxn<'_>, r: TxnRequest) -> Result<TxnResponse> {
    let path = compare_path(t, store, &r)?;
    exec_txn(t, r, &path)
}

fn exec_txn(t: &mut WriteTxn<'_>, r: TxnRequest, path: &Path) -> Result<TxnResponse> {
    let branch = if path.succeeded { r.success } else { r.failure };
    let mut responses = Vec::with_capacity(branch.len());
    let mut nested = path.nested.iter();
    for op in branch {
        let resp = match op.request {
            Some(request_op::Request::RequestRange(x)) => {
                let mut rr: RangeResponse = t.range(&x)?;
                rr.header = rev_header(t.read_rev());
                Some(response_op::Response::ResponseRange(rr))
            }
            Some(request_op::Request::RequestPut(p)) => {
                Some(response_op::Response::ResponsePut(apply_put(t, p)?))
            }
            Some(request_op::Request::RequestDeleteRange(d)) => Some(
                response_op::Response::ResponseDeleteRange(apply_delete(t, &d)?),
            ),
            Some(request_op::Request::RequestTxn(n)) => {
                let np = nested
                    .next()
                    .ok_or_else(|| Error::Internal("txn path mismatch".into()))?;
                let mut tr = exec_txn(t, n, np)?;
                // etcd leaves a nested txn's header empty.
                tr.header = Some(Default::default());
                Some(response_op::Response::ResponseTxn(tr))
            }
            None => None,
        };
        responses.push(ResponseOp { response: resp });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: path.succeeded,
        responses,
    })
}
