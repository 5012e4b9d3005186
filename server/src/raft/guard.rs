//! Checks a raft message from a peer must pass before `RawNode::step` sees it.
//!
//! raft-rs trusts its input: a number of messages a correct member never sends make it
//! `fatal!` (panic), and a panic on the raft thread stops the member. The transport has
//! already checked who sent the message (a current member, over a connection opened in its
//! name, addressed to us, in our cluster); these checks need the raft state, so the raft
//! loop makes them just before stepping. A message that fails is dropped and logged.
//!
//! What raft-rs 0.7 does with each kind of input, and the check that keeps it safe:
//! - local-only types (`MsgHup`, `MsgBeat`, `MsgUnreachable`, `MsgSnapStatus`,
//!   `MsgCheckQuorum`): never sent between members;
//! - term 0 is raft's "local message" marker: it skips the term checks, and a candidate
//!   stepping a term-0 `MsgAppend`/`MsgHeartbeat`/`MsgSnapshot` hits a `debug_assert`.
//!   Only forwarded proposals and read requests travel with term 0. Terms near `u64::MAX`
//!   would overflow at the next campaign (`term + 1`);
//! - `MsgHeartbeat`: `commit_to(m.commit)` is fatal when the commit is beyond our last
//!   index ("to_commit is out of range");
//! - `MsgAppend`: `maybe_append` is fatal when an entry conflicts at or below our commit
//!   index, slices out of bounds when the entries do not follow `m.index` one by one, and
//!   overflows with indexes near `u64::MAX`: entries must be `m.index+1, m.index+2, ...`,
//!   with terms between `m.log_term` and `m.term`;
//! - `MsgSnapshot`: only ever sent with its backend file on a snapshot connection (never
//!   on a raft stream). `restore` is fatal when the conf state does not survive
//!   `confchange::restore` unchanged (duplicates, a member both voter and learner, a joint
//!   configuration Cairn never creates) and panics on `prs.get_mut(self.id).unwrap()`
//!   unless we are in it; the data must be Cairn's marker;
//! - `MsgPropose`: an empty one is fatal on the leader ("stepped empty MsgProp"); an entry
//!   that does not decode would be committed and then stop every member at apply
//!   (`Fatal::BadEntry`): normal entries must decode into an operation, conf changes into a
//!   `ConfChange` with Cairn's context; conf change v2 entries are never proposed;
//! - `MsgReadIndex`: the leader indexes `m.entries[0]` (a panic without it) — exactly one
//!   entry;
//! - `MsgAppendResponse` on the leader: an acknowledged index beyond the leader's log sets
//!   a progress past the end of the log (slices out of range when sending the next
//!   append); `reject_hint + 1` overflows near `u64::MAX`: indexes must be within our log;
//! - `MsgTransferLeader`: Cairn moves leadership only on the leader itself; never sent;
//! - `MsgTimeoutNow`: only from the leader we follow (otherwise any member could start
//!   elections at will).

use super::*;

/// Terms above this are refused (raft adds 1 to the term when it campaigns).
const MAX_TERM: u64 = u64::MAX >> 1;

/// What the checks need of the raft state.
#[derive(Clone, Copy, Debug)]
pub(super) struct RaftView {
    pub(super) id: u64,
    pub(super) role: StateRole,
    pub(super) term: u64,
    pub(super) leader_id: u64,
    pub(super) last_index: u64,
    pub(super) committed: u64,
}

impl RaftView {
    pub(super) fn of(node: &RawNode<RaftStore>) -> RaftView {
        let r = &node.raft;
        RaftView {
            id: r.id,
            role: r.state,
            term: r.term,
            leader_id: r.leader_id,
            last_index: r.raft_log.last_index(),
            committed: r.raft_log.committed,
        }
    }
}

/// Whether a raft message from a peer's stream may be stepped (`Err` says why not).
/// Snapshot messages never come this way.
pub(super) fn check(m: &RaftMessage, v: &RaftView) -> std::result::Result<(), String> {
    use MessageType::*;
    if m.to != v.id {
        return Err(format!("addressed to {:x}", m.to));
    }
    if m.from == 0 || m.from == v.id {
        return Err(format!("sender {:x}", m.from));
    }
    if m.term > MAX_TERM {
        return Err(format!("term {} out of range", m.term));
    }
    let t = m.get_msg_type();
    match t {
        MsgHup | MsgBeat | MsgUnreachable | MsgSnapStatus | MsgCheckQuorum => {
            return Err("a local-only message type".into())
        }
        MsgSnapshot => return Err("a snapshot outside a snapshot connection".into()),
        MsgTransferLeader => return Err("leader transfers are never forwarded".into()),
        _ => {}
    }
    if m.term == 0 && !matches!(t, MsgPropose | MsgReadIndex) {
        return Err("term 0 (raft's mark of a local message)".into());
    }
    if m.term != 0 && m.term < v.term {
        // raft answers or ignores a message from an older term without using its
        // contents.
        return Ok(());
    }
    match t {
        MsgHeartbeat if m.commit > v.last_index => {
            return Err(format!(
                "heartbeat commit {} beyond the last index {}",
                m.commit, v.last_index
            ));
        }
        MsgAppend => check_append(m)?,
        MsgPropose => check_proposal(m)?,
        MsgReadIndex if m.entries.len() != 1 => {
            return Err(format!("read index with {} entries", m.entries.len()));
        }
        MsgAppendResponse if v.role == StateRole::Leader && m.term == v.term => {
            for (what, i) in [
                ("index", m.index),
                ("reject hint", m.reject_hint),
                ("requested snapshot", m.request_snapshot),
            ] {
                if i > v.last_index {
                    return Err(format!(
                        "append response {what} {i} beyond the last index {}",
                        v.last_index
                    ));
                }
            }
        }
        MsgTimeoutNow if m.from != v.leader_id => {
            return Err(format!(
                "timeout-now from {:x}, not from the leader {:x}",
                m.from, v.leader_id
            ));
        }
        _ => {}
    }
    Ok(())
}

fn check_append(m: &RaftMessage) -> std::result::Result<(), String> {
    if m.log_term > m.term {
        return Err(format!(
            "append log term {} above the message term {}",
            m.log_term, m.term
        ));
    }
    let n = m.entries.len() as u64;
    if m.index.checked_add(n).is_none_or(|l| l > MAX_TERM) {
        return Err(format!("append index {} out of range", m.index));
    }
    let mut prev_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        if e.index != m.index + 1 + i as u64 {
            return Err(format!(
                "append entry {i} has index {}, expected {}",
                e.index,
                m.index + 1 + i as u64
            ));
        }
        if e.term < prev_term || e.term > m.term {
            return Err(format!(
                "append entry {} has term {} (previous {prev_term}, message {})",
                e.index, e.term, m.term
            ));
        }
        prev_term = e.term;
    }
    Ok(())
}

fn check_proposal(m: &RaftMessage) -> std::result::Result<(), String> {
    if m.entries.is_empty() {
        return Err("empty proposal".into());
    }
    for e in m.entries.iter() {
        match e.get_entry_type() {
            EntryType::EntryNormal => {
                if !e.data.is_empty()
                    && !matches!(
                        InternalRequest::decode(e.data.clone()),
                        Ok(InternalRequest { op: Some(_), .. })
                    )
                {
                    return Err("proposed entry is not a request".into());
                }
            }
            EntryType::EntryConfChange => {
                let ok = ConfChange::parse_from_bytes(&e.data).is_ok_and(|cc| {
                    serde_json::from_slice::<ConfChangeContext>(&cc.context).is_ok()
                });
                if !ok {
                    return Err("proposed conf change does not decode".into());
                }
            }
            EntryType::EntryConfChangeV2 => {
                return Err("proposed conf change v2 (never used)".into());
            }
        }
    }
    Ok(())
}

/// Whether a snapshot message received with its backend file may be stepped.
pub(super) fn check_snapshot(m: &RaftMessage, v: &RaftView) -> std::result::Result<(), String> {
    if m.get_msg_type() != MessageType::MsgSnapshot {
        return Err(format!("{:?} on a snapshot connection", m.get_msg_type()));
    }
    if m.to != v.id || m.from == 0 || m.from == v.id {
        return Err(format!("from {:x} to {:x}", m.from, m.to));
    }
    if m.term == 0 || m.term > MAX_TERM {
        return Err(format!("term {}", m.term));
    }
    let s = m.get_snapshot();
    let md = s.get_metadata();
    if md.index == 0 || md.index > MAX_TERM || md.term == 0 || md.term > m.term {
        return Err(format!(
            "snapshot index {} term {} (message term {})",
            md.index, md.term, m.term
        ));
    }
    if s.get_data() != SNAPSHOT_DATA {
        return Err("snapshot data is not Cairn's".into());
    }
    let cs = md.get_conf_state();
    if !cs.get_voters_outgoing().is_empty() || !cs.get_learners_next().is_empty() || cs.auto_leave {
        return Err("joint configuration in a snapshot".into());
    }
    if cs.get_voters().is_empty() {
        return Err("snapshot without voters".into());
    }
    let mut seen = std::collections::HashSet::new();
    for id in cs.get_voters().iter().chain(cs.get_learners()) {
        if *id == 0 || !seen.insert(*id) {
            return Err(format!("snapshot conf state lists member {id:x} badly"));
        }
    }
    if !seen.contains(&v.id) {
        return Err("snapshot conf state without this member".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::SnapshotMetadata;

    const ME: u64 = 2;
    const LEADER: u64 = 1;

    fn follower() -> RaftView {
        RaftView {
            id: ME,
            role: StateRole::Follower,
            term: 5,
            leader_id: LEADER,
            last_index: 100,
            committed: 90,
        }
    }

    fn leader() -> RaftView {
        RaftView {
            id: ME,
            role: StateRole::Leader,
            leader_id: ME,
            ..follower()
        }
    }

    fn msg(t: MessageType, term: u64) -> RaftMessage {
        let mut m = RaftMessage::default();
        m.set_msg_type(t);
        m.from = LEADER;
        m.to = ME;
        m.term = term;
        m
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn request() -> Vec<u8> {
        InternalRequest {
            id: 7,
            op: Some(apply::Op::Compaction(
                crate::pb::etcdserverpb::CompactionRequest {
                    revision: 1,
                    physical: false,
                },
            )),
        }
        .encode_to_vec()
    }

    #[test]
    fn heartbeat_commit_must_be_within_the_log() {
        let mut m = msg(MessageType::MsgHeartbeat, 5);
        m.commit = 100;
        assert!(check(&m, &follower()).is_ok());
        m.commit = 101;
        assert!(check(&m, &follower()).is_err());
        m.commit = u64::MAX;
        let e = check(&m, &follower()).unwrap_err();
        assert!(e.contains("beyond the last index"), "{e}");
        // A higher term (we would become its follower) is checked the same way.
        m.term = 9;
        assert!(check(&m, &follower()).is_err());
        // A candidate too.
        let cand = RaftView {
            role: StateRole::Candidate,
            ..follower()
        };
        assert!(check(&m, &cand).is_err());
        // An older term is answered by raft without using the commit.
        m.term = 4;
        assert!(check(&m, &follower()).is_ok());
    }

    #[test]
    fn local_only_and_never_sent_types_are_dropped() {
        for t in [
            MessageType::MsgHup,
            MessageType::MsgBeat,
            MessageType::MsgUnreachable,
            MessageType::MsgSnapStatus,
            MessageType::MsgCheckQuorum,
            MessageType::MsgSnapshot,
            MessageType::MsgTransferLeader,
        ] {
            assert!(check(&msg(t, 5), &follower()).is_err(), "{t:?}");
            assert!(check(&msg(t, 5), &leader()).is_err(), "{t:?}");
        }
    }

    #[test]
    fn term_zero_only_for_forwarded_requests() {
        for t in [
            MessageType::MsgAppend,
            MessageType::MsgHeartbeat,
            MessageType::MsgRequestVote,
            MessageType::MsgRequestVoteResponse,
            MessageType::MsgAppendResponse,
            MessageType::MsgTimeoutNow,
        ] {
            assert!(check(&msg(t, 0), &follower()).is_err(), "{t:?}");
        }
        let mut p = msg(MessageType::MsgPropose, 0);
        p.mut_entries().push(Entry {
            data: request().into(),
            ..Default::default()
        });
        assert!(check(&p, &leader()).is_ok());
        let mut r = msg(MessageType::MsgReadIndex, 0);
        r.mut_entries().push(Entry::default());
        assert!(check(&r, &leader()).is_ok());
        let mut huge = msg(MessageType::MsgRequestVote, u64::MAX);
        huge.index = 1;
        assert!(check(&huge, &follower()).is_err());
    }

    #[test]
    fn identity_fields() {
        let mut m = msg(MessageType::MsgHeartbeat, 5);
        m.to = 3;
        assert!(check(&m, &follower()).is_err());
        let mut m = msg(MessageType::MsgHeartbeat, 5);
        m.from = ME;
        assert!(check(&m, &follower()).is_err());
        m.from = 0;
        assert!(check(&m, &follower()).is_err());
    }

    #[test]
    fn appends_must_be_contiguous_and_ordered() {
        let ok = |m: &RaftMessage| check(m, &follower()).is_ok();
        let mut m = msg(MessageType::MsgAppend, 5);
        m.index = 95;
        m.log_term = 4;
        m.commit = 1_000; // beyond the entries: raft takes the minimum
        m.set_entries(vec![entry(96, 4), entry(97, 5), entry(98, 5)].into());
        assert!(ok(&m));
        // A gap, a repeat, an entry before the anchor.
        let mut g = m.clone();
        g.mut_entries()[1].index = 98;
        assert!(!ok(&g));
        let mut g = m.clone();
        g.mut_entries()[0].index = 95;
        assert!(!ok(&g));
        let mut g = m.clone();
        g.mut_entries()[0].index = 80;
        assert!(!ok(&g));
        // Terms going down, above the message's, a log term above the message's.
        let mut g = m.clone();
        g.mut_entries()[2].term = 4;
        assert!(!ok(&g));
        let mut g = m.clone();
        g.mut_entries()[2].term = 6;
        assert!(!ok(&g));
        let mut g = m.clone();
        g.log_term = 6;
        assert!(!ok(&g));
        // Indexes that overflow.
        let mut g = msg(MessageType::MsgAppend, 5);
        g.index = u64::MAX;
        g.set_entries(vec![entry(0, 5)].into());
        assert!(!ok(&g));
        // An empty append (a probe) is fine.
        let mut p = msg(MessageType::MsgAppend, 5);
        p.index = 100;
        p.log_term = 5;
        p.commit = 100;
        assert!(ok(&p));
    }

    #[test]
    fn proposals_must_decode() {
        let v = leader();
        let mut m = msg(MessageType::MsgPropose, 0);
        m.from = 3;
        assert!(check(&m, &v).unwrap_err().contains("empty"));
        m.mut_entries().push(Entry {
            data: request().into(),
            ..Default::default()
        });
        assert!(check(&m, &v).is_ok());
        let mut g = m.clone();
        g.mut_entries()[0].data = b"\xff\xff garbage".to_vec().into();
        assert!(check(&g, &v).is_err());
        let mut g = m.clone();
        g.mut_entries()[0].set_entry_type(EntryType::EntryConfChange);
        assert!(check(&g, &v).is_err());
        let cc = ConfChange {
            node_id: 9,
            context: serde_json::to_vec(&ConfChangeContext {
                request_id: 1,
                member: MemberRecord {
                    id: 9,
                    name: String::new(),
                    peer_urls: vec!["http://127.0.0.1:1".into()],
                    client_urls: Vec::new(),
                    is_learner: false,
                },
            })
            .unwrap()
            .into(),
            ..Default::default()
        };
        g.mut_entries()[0].data = cc.write_to_bytes().unwrap().into();
        assert!(check(&g, &v).is_ok());
        g.mut_entries()[0].set_entry_type(EntryType::EntryConfChangeV2);
        assert!(check(&g, &v).is_err());
    }

    #[test]
    fn read_index_needs_one_entry() {
        let mut m = msg(MessageType::MsgReadIndex, 0);
        m.from = 3;
        assert!(check(&m, &leader()).is_err());
        m.mut_entries().push(Entry::default());
        assert!(check(&m, &leader()).is_ok());
        m.mut_entries().push(Entry::default());
        assert!(check(&m, &leader()).is_err());
    }

    #[test]
    fn append_responses_within_the_leaders_log() {
        let mut m = msg(MessageType::MsgAppendResponse, 5);
        m.from = 3;
        m.index = 100;
        assert!(check(&m, &leader()).is_ok());
        m.index = 101;
        assert!(check(&m, &leader()).is_err());
        m.index = 50;
        m.reject = true;
        m.reject_hint = u64::MAX;
        assert!(check(&m, &leader()).is_err());
        m.reject_hint = 40;
        m.request_snapshot = 500;
        assert!(check(&m, &leader()).is_err());
        m.request_snapshot = 0;
        assert!(check(&m, &leader()).is_ok());
    }

    #[test]
    fn timeout_now_only_from_our_leader() {
        let mut m = msg(MessageType::MsgTimeoutNow, 5);
        assert!(check(&m, &follower()).is_ok());
        m.from = 3;
        assert!(check(&m, &follower()).is_err());
    }

    fn snapshot(index: u64, term: u64, voters: &[u64], learners: &[u64]) -> RaftMessage {
        let mut m = msg(MessageType::MsgSnapshot, 5);
        let mut s = Snapshot::default();
        s.set_data(SNAPSHOT_DATA.to_vec().into());
        let mut md = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        let mut cs = ConfState::default();
        cs.set_voters(voters.to_vec());
        cs.set_learners(learners.to_vec());
        md.set_conf_state(cs);
        s.set_metadata(md);
        m.set_snapshot(s);
        m
    }

    #[test]
    fn snapshot_metadata_must_be_sane() {
        let v = follower();
        assert!(check_snapshot(&snapshot(200, 5, &[1, 2, 3], &[]), &v).is_ok());
        assert!(check_snapshot(&snapshot(200, 5, &[1, 3], &[2]), &v).is_ok());
        // Not containing us, duplicates, voter and learner, id 0, no voters.
        for (voters, learners) in [
            (&[1u64, 3][..], &[][..]),
            (&[1, 2, 2][..], &[][..]),
            (&[1, 2][..], &[2][..]),
            (&[0, 1, 2][..], &[][..]),
            (&[][..], &[2][..]),
        ] {
            let m = snapshot(200, 5, voters, learners);
            assert!(check_snapshot(&m, &v).is_err(), "{voters:?} {learners:?}");
        }
        // Joint configurations, index 0, a term above the message's, foreign data.
        let mut m = snapshot(200, 5, &[1, 2, 3], &[]);
        m.mut_snapshot()
            .mut_metadata()
            .mut_conf_state()
            .set_voters_outgoing(vec![1]);
        assert!(check_snapshot(&m, &v).is_err());
        assert!(check_snapshot(&snapshot(0, 5, &[1, 2], &[]), &v).is_err());
        assert!(check_snapshot(&snapshot(200, 6, &[1, 2], &[]), &v).is_err());
        let mut m = snapshot(200, 5, &[1, 2, 3], &[]);
        m.mut_snapshot().set_data(b"x".to_vec().into());
        assert!(check_snapshot(&m, &v).is_err());
        // A snapshot on a raft stream is never accepted.
        assert!(check(&snapshot(200, 5, &[1, 2, 3], &[]), &v).is_err());
    }
}
