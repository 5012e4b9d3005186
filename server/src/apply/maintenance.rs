//! Applying Compaction and Alarm requests.

use bytes::Bytes;
use prost::Message;

use super::rev_header;
use crate::error::Result;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    CompactionRequest, CompactionResponse,
};
use crate::schema::ALARM;
use crate::state::State;

/// Compacts the history up to `c.revision`, committing the backend between batches.
pub(crate) fn compaction(
    state: &State,
    c: CompactionRequest,
    commit: &mut dyn FnMut() -> Result<()>,
) -> Result<CompactionResponse> {
    let store = &state.store;
    store.check_compact(c.revision)?;
    store.compact(c.revision, |_| commit())?;
    Ok(CompactionResponse {
        header: rev_header(store.rev()),
    })
}

/// Lists, raises or clears an alarm (mirrored in the `alarm` bucket).
pub(crate) fn alarm(state: &State, a: AlarmRequest) -> AlarmResponse {
    let mut resp = AlarmResponse {
        header: rev_header(state.store.rev()),
        alarms: Vec::new(),
    };
    let m = AlarmMember {
        member_id: a.member_id,
        alarm: a.alarm,
    };
    match AlarmAction::try_from(a.action) {
        Ok(AlarmAction::Get) => resp.alarms = state.alarms.list(),
        Ok(AlarmAction::Activate) => {
            if a.alarm == AlarmType::None as i32 {
                return resp;
            }
            if state.alarms.activate(m) {
                tracing::warn!(member = %format!("{:x}", a.member_id), alarm = ?a.alarm, "alarm raised");
                state
                    .store
                    .backend
                    .put(ALARM, Bytes::from(m.encode_to_vec()), Bytes::new());
            }
            resp.alarms.push(m);
        }
        Ok(AlarmAction::Deactivate) => {
            if state.alarms.deactivate(&m) {
                tracing::info!(member = %format!("{:x}", a.member_id), alarm = ?a.alarm, "alarm cleared");
                state
                    .store
                    .backend
                    .delete(ALARM, Bytes::from(m.encode_to_vec()));
                resp.alarms.push(m);
            }
        }
        Err(_) => {}
    }
    resp
}
