//! Executing KV requests against the store (etcd's apply.go / txn.go semantics), and the
//! request checks done before proposing (etcd's v3rpc/key.go).

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::mvcc::{Store, WriteTxn};
use crate::pb::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

fn rev_header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

// ---------------------------------------------------------------- checks before proposing

/// etcd's checkRangeRequest.
pub(crate) fn check_range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if range_request::SortOrder::try_from(r.sort_order).is_err()
        || range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(Error::InvalidSortOption);
    }
    Ok(())
}

/// etcd's checkPutRequest.
pub(crate) fn check_put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// etcd's checkDeleteRequest.
pub(crate) fn check_delete(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// etcd's checkTxnRequest (op counts per level, each op) plus checkIntervals (no key
/// written twice, or written and deleted, in one branch).
pub(crate) fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<()> {
    check_txn_ops(r, max_ops)?;
    intervals(&r.success)?;
    intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_ops: usize) -> Result<()> {
    if r.compare.len() > max_ops || r.success.len() > max_ops || r.failure.len() > max_ops {
        return Err(Error::TooManyOps);
    }
    for c in &r.compare {
        if c.key.is_empty() {
            return Err(Error::EmptyKey);
        }
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        match &op.request {
            Some(request_op::Request::RequestRange(x)) => check_range(x)?,
            Some(request_op::Request::RequestPut(x)) => check_put(x)?,
            Some(request_op::Request::RequestDeleteRange(x)) => check_delete(x)?,
            Some(request_op::Request::RequestTxn(x)) => check_txn_ops(x, max_ops)?,
            None => {}
        }
    }
    Ok(())
}

/// A delete interval as etcd's interval tree sees it: a point, or `[key, end)` compared
/// byte-wise (so an `end` of "\0" covers nothing beyond the point rules, as in etcd).
#[derive(Clone)]
struct Interval {
    key: Bytes,
    end: Bytes,
}

impl Interval {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            self.key.as_ref() == k
        } else {
            self.key.as_ref() <= k && k < self.end.as_ref()
        }
    }
}

type Puts = std::collections::HashSet<Bytes>;

fn intervals(reqs: &[RequestOp]) -> Result<(Puts, Vec<Interval>)> {
    let mut dels: Vec<Interval> = Vec::new();
    for op in reqs {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &op.request {
            dels.push(Interval {
                key: d.key.clone(),
                end: d.range_end.clone(),
            });
        }
    }
    let hit = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.contains(k));
    let mut puts = Puts::new();
    for op in reqs {
        if let Some(request_op::Request::RequestTxn(t)) = &op.request {
            let (puts_then, dels_then) = intervals(&t.success)?;
            let (puts_else, dels_else) = intervals(&t.failure)?;
            for k in &puts_then {
                if puts.contains(k) || hit(&dels, k) {
                    return Err(Error::DuplicateKey);
                }
                puts.insert(k.clone());
            }
            for k in &puts_else {
                if puts.contains(k) && !puts_then.contains(k) {
                    return Err(Error::DuplicateKey);
                }
                if hit(&dels, k) {
                    return Err(Error::DuplicateKey);
                }
                puts.insert(k.clone());
            }
            dels.extend(dels_then);
            dels.extend(dels_else);
        }
    }
    for op in reqs {
        if let Some(request_op::Request::RequestPut(p)) = &op.request {
            if puts.contains(&p.key) || hit(&dels, &p.key) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels))
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

/// True if every range of the txn is serializable.
pub(crate) fn txn_is_serializable(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(x)) => x.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_is_serializable(t),
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
                tr.header = Some(ResponseHeader::default());
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
