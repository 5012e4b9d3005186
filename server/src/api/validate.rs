//! The request checks made before a request is proposed or read (etcd's v3rpc/key.go):
//! a request that fails them never reaches raft.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::pb::etcdserverpb::{
    range_request, request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

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
    if txn_nesting(r) > MAX_TXN_NESTING {
        return Err(Error::TxnTooDeep);
    }
    check_txn_ops(r, max_ops)?;
    intervals(&r.success)?;
    intervals(&r.failure)?;
    Ok(())
}

/// The deepest txn nesting whose raft entry still decodes. The entry wraps the txn in one
/// more message than the gRPC request does, and protobuf decoders stop at 100 levels (each
/// nested txn costs two: the `RequestOp` and the `TxnRequest`); a txn the API accepted but
/// the entry decoder refused would stop every member at apply.
pub(crate) const MAX_TXN_NESTING: usize = 49;

/// How many txns are nested inside `r` (0 for a flat txn).
fn txn_nesting(r: &TxnRequest) -> usize {
    r.success
        .iter()
        .chain(r.failure.iter())
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestTxn(t)) => Some(1 + txn_nesting(t)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::apply::{InternalRequest, Op};

    fn nested(levels: usize) -> TxnRequest {
        let mut t = TxnRequest::default();
        for _ in 0..levels {
            t = TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(t)),
                }],
                ..Default::default()
            };
        }
        t
    }

    fn entry_decodes(t: TxnRequest) -> bool {
        let data = InternalRequest {
            id: 1,
            op: Some(Op::Txn(t)),
        }
        .encode_to_vec();
        InternalRequest::decode(data.as_slice()).is_ok()
    }

    #[test]
    fn the_deepest_accepted_txn_still_decodes_as_an_entry() {
        assert_eq!(txn_nesting(&nested(MAX_TXN_NESTING)), MAX_TXN_NESTING);
        assert!(check_txn(&nested(MAX_TXN_NESTING), 128).is_ok());
        assert!(entry_decodes(nested(MAX_TXN_NESTING)));
        // One level more still decodes as a gRPC request but not as an entry: refused.
        let deeper = nested(MAX_TXN_NESTING + 1);
        assert!(TxnRequest::decode(deeper.encode_to_vec().as_slice()).is_ok());
        assert!(!entry_decodes(deeper.clone()));
        assert_eq!(check_txn(&deeper, 128), Err(Error::TxnTooDeep));
    }
}
