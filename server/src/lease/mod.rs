//! Leases: the lessor (granted leases, their deadlines and attached keys). Applying
//! LeaseGrant / LeaseRevoke / LeaseCheckpoint is `apply/lease.rs`; the expiry task
//! that proposes revokes is `tasks/lease_expiry.rs`.
//!
//! - Grants and revokes go through raft; the lessor changes only in the apply loop, so
//!   every member (and a restart replaying the WAL) reaches the same set of leases.
//! - Each lease is persisted in etcd's `lease` bucket: key = 8-byte big-endian id, value =
//!   etcd's `leasepb.Lease {ID=1, TTL=2, RemainingTTL=3}`.
//! - Keys are attached by applying a Put with `lease` (the observer of published revisions
//!   calls [`Lessor::on_events`]); a delete or a put with another lease detaches them. On
//!   restart the attachments are rebuilt from the `lease` field of the live keys.
//! - Only the leader counts deadlines down: the expiry task (`tasks/lease_expiry.rs`) proposes a
//!   revoke for each expired lease, so expiry is just another applied revoke (all attached
//!   keys deleted in one revision, one delete event each).
//! - Primary lessor (etcd's Promote/Demote): deadlines mean something only on the leader.
//!   A member that is not leader is *demoted*: it expires nothing, and keep-alives and
//!   time-to-live requests are forwarded to the leader (`api/lease.rs`). The first
//!   time a member acts as leader in a raft term (the expiry task, which looks every
//!   [`OBSERVE_EVERY`], or a keep-alive / time-to-live it serves) it *promotes*: every
//!   lease's countdown restarts from its checkpointed remaining TTL (if set, else its full
//!   TTL), counted from the *anchor*: the last moment this member saw another member lead
//!   (or, if it never has since start-up, the moment it loaded its leases). Another
//!   leader's keep-alives all happened before this member stopped seeing it lead (a
//!   follower keeps its leader for at least an election timeout after the leader's last
//!   message, far longer than [`OBSERVE_EVERY`]), so no lease expires earlier than its TTL
//!   after its last keep-alive anywhere; a deadline this member set itself (its own
//!   keep-alives in an earlier term, or a grant) is never shortened by a promotion. A
//!   single member that restarts keeps counting from its restart instead of from its
//!   election. (etcd counts from the promotion plus an election timeout: longer, never
//!   shorter than needed, as here.)
//!
//! # Remaining-TTL rule (etcd's checkpoint behaviour with checkpoint persistence on)
//! Every `checkpoint interval` (etcd's `--experimental-lease-checkpoint-interval`, 5 min by
//! default) the leader proposes a `LeaseCheckpoint` with the remaining TTL (rounded up to a
//! second) of every lease whose granted TTL is longer than the interval; applying it
//! stores `RemainingTTL` in the `lease` bucket. A keep-alive of a checkpointed lease
//! proposes a checkpoint of 0, clearing it. After a restart (or on becoming leader) a lease
//! expires `RemainingTTL` seconds later when that is set, otherwise after its full TTL. So
//! a restart extends a lease by at most one checkpoint interval beyond what it had left
//! (never beyond its granted TTL), and never shortens it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;

use crate::error::{Error, Result};
use crate::mvcc::Store;
use crate::pb::etcdserverpb::LeaseCheckpoint;
use crate::pb::mvccpb::{event::EventType, Event};
use crate::schema::LEASE;

mod ids;
pub(crate) use ids::LeaseIds;

/// etcd's `MaxLeaseTTL` (seconds).
pub(crate) const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How often the leader looks for expired leases (etcd: 500 ms).
pub(crate) const EXPIRY_CHECK: Duration = Duration::from_millis(500);
/// How often the expiry task looks at who leads (promotion, demotion, the anchor).
pub(crate) const OBSERVE_EVERY: Duration = Duration::from_millis(50);
/// Most revokes proposed per check (etcd limits expiry to 1000 leases per second).
pub(crate) const MAX_REVOKES_PER_CHECK: usize = 500;
/// Most lease checkpoints per proposal (about 24 bytes each).
pub(crate) const CHECKPOINTS_PER_PROPOSAL: usize = 10_000;
/// Election timeout assumed until [`Lessor::set_election_timeout`] (etcd's default).
const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// etcd's `leasepb.Lease`, the value stored in the `lease` bucket.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// The `lease` bucket key of lease `id`.
pub(crate) fn bucket_key(id: i64) -> Bytes {
    Bytes::copy_from_slice(&(id as u64).to_be_bytes())
}

struct Lease {
    /// Granted TTL in seconds (after raising it to the minimum).
    ttl: i64,
    /// Checkpointed remaining TTL (0 = none).
    remaining_ttl: i64,
    deadline: Instant,
    keys: BTreeSet<Bytes>,
}

impl Lease {
    fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }

    /// Seconds a fresh countdown starts from: the checkpointed remaining TTL when set
    /// (never more than the TTL), else the TTL.
    fn fresh_secs(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl.min(self.ttl)
        } else {
            self.ttl
        }
        .max(0)
    }
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, Lease>,
    /// Which lease each attached key is on.
    key_lease: HashMap<Bytes, i64>,
    /// Leases whose revoke has been proposed by the expiry task.
    revoking: HashSet<i64>,
    /// The raft term in which this lessor was promoted (deadlines are live); `None` while
    /// this member is not the leader.
    primary_term: Option<u64>,
    /// Where a promotion restarts countdowns from: the last time another member was seen
    /// leading, or the load time (see the module documentation).
    anchor: Option<Instant>,
}

/// What [`Lessor::time_to_live`] reports.
pub(crate) struct TimeToLive {
    pub(crate) ttl: i64,
    pub(crate) granted_ttl: i64,
    pub(crate) keys: Vec<Bytes>,
}

/// The set of leases of this member.
pub(crate) struct Lessor {
    state: Mutex<State>,
    /// Minimum TTL in seconds (etcd: ceil(1.5 × election timeout)).
    min_ttl: AtomicI64,
    /// Election timeout in milliseconds (the interval of the `hasleader` stream monitor).
    election_ms: AtomicU64,
    /// `primary_term + 1` (0 = not primary), read without the lock on every keep-alive.
    promoted: AtomicU64,
}

impl Default for Lessor {
    fn default() -> Self {
        Lessor {
            state: Mutex::new(State::default()),
            min_ttl: AtomicI64::new(2),
            election_ms: AtomicU64::new(DEFAULT_ELECTION_TIMEOUT.as_millis() as u64),
            promoted: AtomicU64::new(0),
        }
    }
}

/// etcd's minimum lease TTL for an election timeout: ⌈1.5 × election timeout⌉ seconds.
pub(crate) fn min_ttl_for(election_timeout: Duration) -> i64 {
    let ms = election_timeout.as_millis() as i64 * 3 / 2;
    ((ms + 999) / 1000).max(1)
}

impl Lessor {
    pub(crate) fn set_min_ttl(&self, secs: i64) {
        self.min_ttl.store(secs.max(1), Ordering::Relaxed);
    }

    pub(crate) fn min_ttl(&self) -> i64 {
        self.min_ttl.load(Ordering::Relaxed)
    }

    /// Sets the election timeout (also raises the minimum TTL to etcd's
    /// ⌈1.5 × election timeout⌉). To be called by the server at start-up instead of
    /// [`Lessor::set_min_ttl`].
    pub(crate) fn set_election_timeout(&self, d: Duration) {
        self.election_ms
            .store((d.as_millis() as u64).max(1), Ordering::Relaxed);
        self.set_min_ttl(min_ttl_for(d));
    }

    /// The election timeout this lessor was configured with.
    pub(crate) fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_ms.load(Ordering::Relaxed))
    }

    /// Makes this lessor primary for raft term `term` (this member leads in that term).
    /// The first call for a term restarts every lease's countdown from the anchor (see the
    /// module documentation), never shortening a deadline. Returns whether it promoted.
    pub(crate) fn promote(&self, term: u64) -> bool {
        if self.promoted.load(Ordering::Acquire) == term.wrapping_add(1) {
            return false;
        }
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.primary_term == Some(term) {
            return false;
        }
        st.primary_term = Some(term);
        self.promoted.store(term.wrapping_add(1), Ordering::Release);
        st.revoking.clear();
        let anchor = *st.anchor.get_or_insert(now);
        for l in st.leases.values_mut() {
            let fresh = anchor + Duration::from_secs(l.fresh_secs() as u64);
            l.deadline = l.deadline.max(fresh);
        }
        true
    }

    /// Another member leads: it counts the deadlines now (promotions later count from
    /// here), and this lessor is demoted.
    pub(crate) fn saw_other_leader(&self) {
        let now = Instant::now();
        let mut st = self.state.lock();
        st.primary_term = None;
        self.promoted.store(0, Ordering::Release);
        st.anchor = Some(st.anchor.map_or(now, |a| a.max(now)));
    }

    /// This member no longer leads: nothing expires here until the next promotion.
    /// Returns whether it was primary.
    pub(crate) fn demote(&self) -> bool {
        if self.promoted.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut st = self.state.lock();
        self.promoted.store(0, Ordering::Release);
        st.primary_term.take().is_some()
    }

    /// Whether this lessor is primary (promoted and not demoted since).
    #[cfg(test)]
    fn is_primary(&self) -> bool {
        self.state.lock().primary_term.is_some()
    }

    /// Whether lease `id` exists.
    pub(crate) fn exists(&self, id: i64) -> bool {
        self.state.lock().leases.contains_key(&id)
    }

    /// Replaces the leases with those of the `lease` bucket and the attachments with those
    /// of the live keys (start-up, or a snapshot installed from the leader).
    pub(crate) fn load(&self, records: Vec<LeaseRecord>, attached: Vec<(Bytes, i64)>) {
        let now = Instant::now();
        let mut st = self.state.lock();
        st.leases.clear();
        st.key_lease.clear();
        st.revoking.clear();
        st.anchor = Some(st.anchor.map_or(now, |a| a.max(now)));
        for r in records {
            let mut l = Lease {
                ttl: r.ttl,
                remaining_ttl: r.remaining_ttl,
                deadline: now,
                keys: BTreeSet::new(),
            };
            l.deadline = now + Duration::from_secs(l.fresh_secs() as u64);
            st.leases.insert(r.id, l);
        }
        for (k, id) in attached {
            if let Some(l) = st.leases.get_mut(&id) {
                l.keys.insert(k.clone());
                st.key_lease.insert(k, id);
            }
        }
    }

    /// Grants a lease (apply loop). Returns the TTL actually granted.
    pub(crate) fn grant(&self, id: i64, ttl: i64) -> Result<i64> {
        if id == 0 {
            return Err(Error::LeaseNotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        let ttl = ttl.max(self.min_ttl());
        let mut st = self.state.lock();
        if st.leases.contains_key(&id) {
            return Err(Error::LeaseExists);
        }
        st.leases.insert(
            id,
            Lease {
                ttl,
                remaining_ttl: 0,
                deadline: Instant::now() + Duration::from_secs(ttl as u64),
                keys: BTreeSet::new(),
            },
        );
        Ok(ttl)
    }

    /// Attached keys of lease `id`, sorted; `None` if the lease does not exist.
    pub(crate) fn keys(&self, id: i64) -> Option<Vec<Bytes>> {
        let st = self.state.lock();
        st.leases.get(&id).map(|l| l.keys.iter().cloned().collect())
    }

    pub(crate) fn remove(&self, id: i64) {
        let mut st = self.state.lock();
        st.revoking.remove(&id);
        if let Some(l) = st.leases.remove(&id) {
            for k in l.keys {
                if st.key_lease.get(&k) == Some(&id) {
                    st.key_lease.remove(&k);
                }
            }
        }
    }

    /// Extends lease `id` by its TTL (keep-alive; only meaningful on the primary). Returns
    /// the TTL, 0 if the lease is unknown or already expired, and whether a checkpoint must
    /// be cleared.
    /// `None` when this lessor is not primary (the keep-alive belongs to the leader).
    pub(crate) fn renew(&self, id: i64) -> Option<(i64, bool)> {
        let now = Instant::now();
        let mut st = self.state.lock();
        st.primary_term?;
        let revoking = st.revoking.contains(&id);
        Some(match st.leases.get_mut(&id) {
            Some(l) if !revoking && l.deadline > now => {
                l.deadline = now + Duration::from_secs(l.ttl as u64);
                (l.ttl, l.remaining_ttl > 0)
            }
            _ => (0, false),
        })
    }

    /// Remaining and granted TTL (and keys) of lease `id`; `None` if unknown.
    pub(crate) fn time_to_live(&self, id: i64, with_keys: bool) -> Option<TimeToLive> {
        let st = self.state.lock();
        let l = st.leases.get(&id)?;
        Some(TimeToLive {
            ttl: l.remaining(Instant::now()).as_secs() as i64,
            granted_ttl: l.ttl,
            keys: if with_keys {
                l.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease id, soonest deadline first.
    pub(crate) fn list(&self) -> Vec<i64> {
        let st = self.state.lock();
        let mut v: Vec<(Instant, i64)> =
            st.leases.iter().map(|(id, l)| (l.deadline, *id)).collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Expired leases not yet being revoked (marks them as being revoked). Nothing unless
    /// this lessor is primary.
    pub(crate) fn take_expired(&self, now: Instant, limit: usize) -> Vec<i64> {
        let mut st = self.state.lock();
        if st.primary_term.is_none() {
            return Vec::new();
        }
        let mut out: Vec<i64> = st
            .leases
            .iter()
            .filter(|(id, l)| l.deadline <= now && !st.revoking.contains(id))
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        out.sort_unstable();
        for id in &out {
            st.revoking.insert(*id);
        }
        out
    }

    /// A revoke proposed by the expiry task failed: let the next check retry it.
    pub(crate) fn retry(&self, id: i64) {
        self.state.lock().revoking.remove(&id);
    }

    /// Remaining TTLs (seconds, rounded up) of leases granted for longer than `interval`
    /// (none unless primary: a follower's deadlines mean nothing).
    pub(crate) fn checkpoints(&self, interval: Duration) -> Vec<LeaseCheckpoint> {
        let now = Instant::now();
        let st = self.state.lock();
        if st.primary_term.is_none() {
            return Vec::new();
        }
        st.leases
            .iter()
            .filter(|(_, l)| Duration::from_secs(l.ttl as u64) > interval)
            .map(|(id, l)| {
                let rem = l.remaining(now);
                let secs = rem.as_secs() as i64 + i64::from(rem.subsec_nanos() > 0);
                LeaseCheckpoint {
                    id: *id,
                    remaining_ttl: secs.max(1),
                }
            })
            .collect()
    }

    /// Records a checkpoint; returns the record to persist.
    pub(crate) fn checkpoint(&self, id: i64, remaining: i64) -> Option<LeaseRecord> {
        let mut st = self.state.lock();
        let l = st.leases.get_mut(&id)?;
        l.remaining_ttl = remaining.max(0);
        Some(LeaseRecord {
            id,
            ttl: l.ttl,
            remaining_ttl: l.remaining_ttl,
        })
    }

    /// Keeps attachments in step with one published revision's changes.
    pub(crate) fn on_events(&self, events: &[Event]) {
        let mut guard = None;
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            let new = if ev.r#type == EventType::Put as i32 {
                kv.lease
            } else {
                0
            };
            let st = guard.get_or_insert_with(|| self.state.lock());
            let old = st.key_lease.get(&kv.key).copied().unwrap_or(0);
            if old == new {
                continue;
            }
            if old != 0 {
                st.key_lease.remove(&kv.key);
                if let Some(l) = st.leases.get_mut(&old) {
                    l.keys.remove(&kv.key);
                }
            }
            if new != 0 {
                if let Some(l) = st.leases.get_mut(&new) {
                    l.keys.insert(kv.key.clone());
                    st.key_lease.insert(kv.key.clone(), new);
                }
            }
        }
    }
}

impl Lessor {
    /// Restores the lessor from the `lease` bucket and the live keys (start-up and snapshot
    /// install).
    pub(crate) fn restore(&self, store: &Store) -> Result<()> {
        let mut records = Vec::new();
        for (k, v) in store.backend.scan_committed(LEASE)? {
            match LeaseRecord::decode(v.as_slice()) {
                Ok(r) => records.push(r),
                Err(e) => tracing::warn!(key = ?k, error = %e, "undecodable lease record skipped"),
            }
        }
        let all = crate::pb::etcdserverpb::RangeRequest {
            key: Bytes::from_static(b"\0"),
            range_end: Bytes::from_static(b"\0"),
            keys_only: true,
            ..Default::default()
        };
        let attached: Vec<(Bytes, i64)> = store
            .range(&all)?
            .kvs
            .into_iter()
            .filter(|kv| kv.lease != 0)
            .map(|kv| (kv.key, kv.lease))
            .collect();
        if !records.is_empty() {
            tracing::info!(
                leases = records.len(),
                attached = attached.len(),
                "restored leases"
            );
        }
        self.load(records, attached);
        Ok(())
    }

    /// Whether this member leads (`leader` is the known leader, 0 = none), promoting the
    /// lessor the first time it is asked in a new `term` and demoting it once it no longer
    /// leads. Callers that get `true` may count deadlines down, renew and report remaining
    /// TTLs locally.
    pub(crate) fn ensure_primary(&self, me: u64, leader: u64, term: u64) -> bool {
        if leader != me {
            if leader != 0 {
                self.saw_other_leader();
            } else if self.demote() {
                tracing::debug!("lessor demoted: no leader");
            }
            return false;
        }
        if self.promote(term) {
            tracing::debug!(term, "lessor promoted: lease countdowns restarted");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lessor_with(leases: &[(i64, i64)]) -> Lessor {
        let l = Lessor::default();
        l.set_min_ttl(1);
        for &(id, ttl) in leases {
            l.grant(id, ttl).unwrap();
        }
        l
    }

    /// Moves lease `id`'s deadline into the past (as if its countdown had run out).
    fn run_out(l: &Lessor, id: i64) {
        let past = Instant::now() - Duration::from_millis(1);
        l.state.lock().leases.get_mut(&id).unwrap().deadline = past;
    }

    #[test]
    fn a_follower_expires_renews_and_checkpoints_nothing() {
        let l = lessor_with(&[(1, 10), (2, 1000)]);
        assert!(!l.is_primary());
        run_out(&l, 1);
        assert!(l.take_expired(Instant::now(), 100).is_empty());
        assert_eq!(l.renew(1), None, "keep-alives belong to the leader");
        assert!(l.checkpoints(Duration::from_secs(1)).is_empty());
        assert!(l.exists(1) && l.exists(2));
    }

    #[test]
    fn promotion_restarts_every_countdown_from_its_full_ttl() {
        let l = lessor_with(&[(1, 10), (2, 60)]);
        // While following, the deadlines ran out (nobody counted them down here).
        run_out(&l, 1);
        run_out(&l, 2);
        assert!(l.promote(7));
        assert!(l.is_primary());
        assert!(l.take_expired(Instant::now(), 100).is_empty());
        let t1 = l.time_to_live(1, false).unwrap();
        let t2 = l.time_to_live(2, false).unwrap();
        assert!((9..=10).contains(&t1.ttl), "ttl {}", t1.ttl);
        assert!((59..=60).contains(&t2.ttl), "ttl {}", t2.ttl);
    }

    #[test]
    fn promotion_uses_the_checkpointed_remaining_ttl() {
        let l = lessor_with(&[(1, 1000), (2, 1000)]);
        l.checkpoint(1, 40).unwrap();
        // A remaining TTL beyond the TTL is capped.
        l.checkpoint(2, 5000).unwrap();
        run_out(&l, 1);
        run_out(&l, 2);
        l.promote(3);
        let t1 = l.time_to_live(1, false).unwrap().ttl;
        let t2 = l.time_to_live(2, false).unwrap().ttl;
        assert!((39..=40).contains(&t1), "ttl {t1}");
        assert!((999..=1000).contains(&t2), "ttl {t2}");
    }

    #[test]
    fn promotion_happens_once_per_term_and_again_after_demotion() {
        let l = lessor_with(&[(1, 10)]);
        assert!(l.promote(2));
        run_out(&l, 1);
        assert!(!l.promote(2), "same term: deadlines stand");
        assert_eq!(l.take_expired(Instant::now(), 100), vec![1]);
        assert!(
            l.take_expired(Instant::now(), 100).is_empty(),
            "a revoke is proposed once"
        );
        assert!(l.demote());
        assert!(!l.demote());
        assert!(l.take_expired(Instant::now(), 100).is_empty());
        // Leading again (in a later term): full countdown, and the pending revoke is
        // forgotten (the new term's leader decides afresh).
        assert!(l.promote(4));
        assert!(l.take_expired(Instant::now(), 100).is_empty());
        assert!(l.time_to_live(1, false).unwrap().ttl >= 9);
    }

    #[test]
    fn a_new_term_restarts_countdowns_even_without_a_visible_demotion() {
        // Leadership lost and won back between two looks: another leader may have
        // renewed leases meanwhile, so stale deadlines must not be trusted.
        let l = lessor_with(&[(1, 10)]);
        l.promote(5);
        run_out(&l, 1);
        assert!(l.promote(6));
        assert!(l.take_expired(Instant::now(), 100).is_empty());
    }

    #[test]
    fn promotion_counts_from_the_last_other_leader_and_never_shortens() {
        let l = lessor_with(&[(1, 100), (2, 100)]);
        l.saw_other_leader();
        // The other leader was last seen 30 s ago: its keep-alives were all before that.
        l.state.lock().anchor = Some(Instant::now() - Duration::from_secs(30));
        run_out(&l, 1);
        // Lease 2 has a later deadline of this member's own (a grant, or its own
        // keep-alive in an earlier term): kept.
        l.state.lock().leases.get_mut(&2).unwrap().deadline =
            Instant::now() + Duration::from_secs(500);
        assert!(l.promote(9));
        let t1 = l.time_to_live(1, false).unwrap().ttl;
        let t2 = l.time_to_live(2, false).unwrap().ttl;
        assert!((69..=70).contains(&t1), "ttl {t1}");
        assert!(t2 >= 499, "ttl {t2}");
        // Seeing another leader again demotes and moves the anchor to now.
        l.saw_other_leader();
        assert!(!l.is_primary());
        run_out(&l, 1);
        assert!(l.promote(10));
        assert!(l.time_to_live(1, false).unwrap().ttl >= 99);
    }

    #[test]
    fn loading_anchors_the_first_promotion_at_the_load() {
        let l = Lessor::default();
        l.load(
            vec![LeaseRecord {
                id: 5,
                ttl: 1000,
                remaining_ttl: 50,
            }],
            vec![(Bytes::from_static(b"k"), 5)],
        );
        // The election took a while: the countdown still runs from the load.
        l.state.lock().anchor = Some(Instant::now() - Duration::from_secs(10));
        run_out(&l, 5);
        l.promote(2);
        let t = l.time_to_live(5, true).unwrap();
        assert!((39..=40).contains(&t.ttl), "ttl {}", t.ttl);
        assert_eq!(t.keys, vec![Bytes::from_static(b"k")]);
    }

    #[test]
    fn loading_replaces_what_was_there() {
        // A follower installing the leader's snapshot: leases revoked in the snapshot's
        // history must not linger (their keys may belong to someone else by now).
        let l = lessor_with(&[(1, 10), (2, 10)]);
        l.on_events(&[Event {
            r#type: EventType::Put as i32,
            kv: Some(crate::pb::mvccpb::KeyValue {
                key: Bytes::from_static(b"a"),
                lease: 1,
                ..Default::default()
            }),
            prev_kv: None,
        }]);
        l.load(
            vec![LeaseRecord {
                id: 2,
                ttl: 10,
                remaining_ttl: 0,
            }],
            vec![(Bytes::from_static(b"a"), 2)],
        );
        assert!(!l.exists(1));
        assert_eq!(l.keys(2), Some(vec![Bytes::from_static(b"a")]));
    }

    #[test]
    fn the_primary_renews_and_reports_checkpoints_to_clear() {
        let l = lessor_with(&[(1, 10), (2, 10)]);
        l.promote(1);
        assert_eq!(l.renew(1), Some((10, false)));
        l.checkpoint(2, 4).unwrap();
        assert_eq!(l.renew(2), Some((10, true)));
        assert_eq!(l.renew(99), Some((0, false)), "unknown lease: TTL 0");
        run_out(&l, 1);
        assert_eq!(l.renew(1), Some((0, false)), "expired lease is not revived");
    }

    #[test]
    fn election_timeout_sets_the_minimum_ttl() {
        let l = Lessor::default();
        l.set_election_timeout(Duration::from_millis(3000));
        assert_eq!(l.min_ttl(), 5);
        assert_eq!(l.election_timeout(), Duration::from_secs(3));
    }
}
