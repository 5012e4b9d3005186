//! Applies committed raft entries to the store, in raft order: each write request gets one
//! new revision (a whole txn shares it; a request that changes nothing does not bump it).

pub(crate) mod kv;
pub(crate) mod request;

use bytes::Bytes;
use prost::Message;

use crate::core::Core;
use crate::error::{Error, Result};
use crate::mvcc::backend::ALARM;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    CompactionRequest, CompactionResponse, Member, MemberUpdateRequest, ResponseHeader,
};
pub(crate) use request::{ApplyResult, InternalRequest, Op};

/// Executes one decoded request. `commit` commits the staged backend batch (used between
/// compaction batches).
pub(crate) fn apply(
    core: &Core,
    req: Op,
    commit: &mut dyn FnMut() -> Result<()>,
) -> Result<ApplyResult> {
    let store = &core.store;
    match req {
        Op::Put(p) => {
            if core.alarms.has(AlarmType::Nospace) {
                return Err(Error::NoSpace);
            }
            let mut t = store.write();
            let res = kv::apply_put(&mut t, p);
            let rev = t.end();
            let mut r = res?;
            set_rev(&mut r.header, rev);
            Ok(ApplyResult::Put(r))
        }
        Op::DeleteRange(d) => {
            let mut t = store.write();
            let res = kv::apply_delete(&mut t, &d);
            let rev = t.end();
            let mut r = res?;
            set_rev(&mut r.header, rev);
            Ok(ApplyResult::DeleteRange(r))
        }
        Op::Txn(x) => {
            if core.alarms.has(AlarmType::Nospace) && !kv::txn_is_read_only(&x) {
                // etcd's capped applier refuses txns that contain puts.
                let has_put = x
                    .success
                    .iter()
                    .chain(x.failure.iter())
                    .filter_map(|o| o.request.as_ref())
                    .any(|o| kv::put_cost(o) > 0);
                if has_put {
                    return Err(Error::NoSpace);
                }
            }
            let mut t = store.write();
            let res = kv::apply_txn(store, &mut t, x);
            let rev = t.end();
            let mut r = res?;
            r.header = Some(ResponseHeader {
                revision: rev,
                ..Default::default()
            });
            Ok(ApplyResult::Txn(r))
        }
        Op::Compaction(c) => apply_compaction(core, c, commit).map(ApplyResult::Compaction),
        Op::Alarm(a) => Ok(ApplyResult::Alarm(apply_alarm(core, a))),
        Op::LeaseGrant(g) => crate::lease::apply_grant(core, g).map(ApplyResult::LeaseGrant),
        Op::LeaseRevoke(r) => crate::lease::apply_revoke(core, r).map(ApplyResult::LeaseRevoke),
        Op::LeaseCheckpoint(c) => {
            crate::lease::apply_checkpoint(core, c);
            Ok(ApplyResult::LeaseCheckpoint)
        }
        Op::MemberAttr(m) => apply_member_attr(core, m),
        Op::MemberUpdate(u) => apply_member_update(core, u),
    }
}

fn apply_member_attr(core: &Core, m: Member) -> Result<ApplyResult> {
    let mut c = core.cluster.write();
    let Some(mut rec) = c.members.get(&m.id).cloned() else {
        return Err(Error::MemberNotFound);
    };
    rec.name = m.name;
    rec.client_urls = m.client_ur_ls;
    c.put(&core.store.backend, rec);
    Ok(ApplyResult::Members {
        member: None,
        members: c.list(),
    })
}

fn apply_member_update(core: &Core, u: MemberUpdateRequest) -> Result<ApplyResult> {
    let mut c = core.cluster.write();
    let Some(mut rec) = c.members.get(&u.id).cloned() else {
        return Err(Error::MemberNotFound);
    };
    if let Some(other) = c.by_peer_url(&u.peer_ur_ls) {
        if other.id != u.id {
            return Err(Error::PeerUrlExists);
        }
    }
    rec.peer_urls = u.peer_ur_ls;
    tracing::info!(member = %format!("{:x}", rec.id), peer_urls = ?rec.peer_urls, "member updated");
    c.put(&core.store.backend, rec.clone());
    if rec.id != core.member.id {
        if let Some(t) = core.transport.get() {
            t.add_peer(rec.id, rec.peer_urls.clone());
        }
    }
    Ok(ApplyResult::Members {
        member: Some(rec.to_pb()),
        members: c.list(),
    })
}

fn set_rev(h: &mut Option<ResponseHeader>, rev: i64) {
    h.get_or_insert_with(Default::default).revision = rev;
}

fn apply_compaction(
    core: &Core,
    c: CompactionRequest,
    commit: &mut dyn FnMut() -> Result<()>,
) -> Result<CompactionResponse> {
    let store = &core.store;
    store.check_compact(c.revision)?;
    store.compact(c.revision, |_| commit())?;
    Ok(CompactionResponse {
        header: Some(ResponseHeader {
            revision: store.rev(),
            ..Default::default()
        }),
    })
}

fn apply_alarm(core: &Core, a: AlarmRequest) -> AlarmResponse {
    let mut resp = AlarmResponse {
        header: Some(ResponseHeader {
            revision: core.store.rev(),
            ..Default::default()
        }),
        alarms: Vec::new(),
    };
    let m = AlarmMember {
        member_id: a.member_id,
        alarm: a.alarm,
    };
    match AlarmAction::try_from(a.action) {
        Ok(AlarmAction::Get) => resp.alarms = core.alarms.list(),
        Ok(AlarmAction::Activate) => {
            if a.alarm == AlarmType::None as i32 {
                return resp;
            }
            if core.alarms.activate(m) {
                tracing::warn!(member = %format!("{:x}", a.member_id), alarm = ?a.alarm, "alarm raised");
                core.store
                    .backend
                    .put(ALARM, Bytes::from(m.encode_to_vec()), Bytes::new());
            }
            resp.alarms.push(m);
        }
        Ok(AlarmAction::Deactivate) => {
            if core.alarms.deactivate(&m) {
                tracing::info!(member = %format!("{:x}", a.member_id), alarm = ?a.alarm, "alarm cleared");
                core.store
                    .backend
                    .delete(ALARM, Bytes::from(m.encode_to_vec()));
                resp.alarms.push(m);
            }
        }
        Err(_) => {}
    }
    resp
}
