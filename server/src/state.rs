//! The member's state machine: what applying committed entries changes and what reads see.
//!
//! [`State`] holds the revision store, the lessor, the watch hub, the membership and the
//! alarms. Applying committed entries (`apply/`) mutates it (raft loop thread only); the gRPC services read it.
//! It knows nothing of raft, threads or sockets, so apply can be tested on a temporary
//! directory (see `apply`'s tests and [`test_support`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message;

use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::membership::{MemberInfo, Membership};
use crate::mvcc::store::Recovered;
use crate::mvcc::Store;
use crate::pb::etcdserverpb::{AlarmMember, AlarmType};
use crate::pb::mvccpb::Event;
use crate::schema::{applied_meta, ALARM};
use crate::watch::WatchHub;

/// Active alarms (mirrors the `alarm` bucket).
#[derive(Default)]
pub(crate) struct Alarms(RwLock<Vec<AlarmMember>>);

impl Alarms {
    pub(crate) fn has(&self, t: AlarmType) -> bool {
        self.0.read().iter().any(|a| a.alarm == t as i32)
    }
    pub(crate) fn list(&self) -> Vec<AlarmMember> {
        self.0.read().clone()
    }
    pub(crate) fn activate(&self, m: AlarmMember) -> bool {
        let mut v = self.0.write();
        if v.contains(&m) {
            return false;
        }
        v.push(m);
        true
    }
    pub(crate) fn deactivate(&self, m: &AlarmMember) -> bool {
        let mut v = self.0.write();
        let before = v.len();
        v.retain(|a| a != m);
        v.len() != before
    }
    pub(crate) fn load(&self, ms: Vec<AlarmMember>) {
        *self.0.write() = ms;
    }
}

/// The applied state of one member.
pub(crate) struct State {
    pub(crate) store: Arc<Store>,
    /// This member: id, cluster id, name, client URLs.
    pub(crate) member: MemberInfo,
    /// The cluster's members as of the applied index.
    pub(crate) cluster: RwLock<Membership>,
    pub(crate) alarms: Alarms,
    pub(crate) lessor: Arc<Lessor>,
    pub(crate) watch: Arc<WatchHub>,
    /// Whether this member is a raft learner (set when membership is applied).
    learner: AtomicBool,
}

impl State {
    /// Wraps an opened store; the lessor and the watch hub observe every revision it
    /// publishes.
    pub(crate) fn new(store: Store, member: MemberInfo, cluster: Membership) -> State {
        let learner = cluster
            .members
            .get(&member.id)
            .is_some_and(|m| m.is_learner);
        let lessor = Arc::new(Lessor::default());
        let watch = Arc::new(WatchHub::new(store.rev()));
        store.set_observer(Arc::new(Observer {
            lessor: lessor.clone(),
            hub: watch.clone(),
        }));
        State {
            store: Arc::new(store),
            member,
            cluster: RwLock::new(cluster),
            alarms: Alarms::default(),
            lessor,
            watch,
            learner: AtomicBool::new(learner),
        }
    }

    pub(crate) fn is_learner(&self) -> bool {
        self.learner.load(Ordering::Acquire)
    }

    /// Makes `m` the member's view of the cluster (membership applied or reloaded).
    pub(crate) fn set_membership(&self, m: Membership) {
        let learner = m.members.get(&self.member.id).is_some_and(|r| r.is_learner);
        self.learner.store(learner, Ordering::Release);
        *self.cluster.write() = m;
    }

    /// Reloads what lives beside the key space from the committed backend: alarms and
    /// leases (start-up and snapshot install).
    pub(crate) fn reload(&self) -> Result<()> {
        let mut alarms = Vec::new();
        for (k, _) in self.store.backend.scan_committed(ALARM)? {
            if let Ok(m) = AlarmMember::decode(k.as_slice()) {
                alarms.push(m);
            }
        }
        self.alarms.load(alarms);
        self.lessor.restore(&self.store)
    }

    /// Finishes a compaction the backend records as started but not finished (start-up,
    /// snapshot install), committing between batches at the backend's own applied index.
    pub(crate) fn finish_compaction(&self, rec: &Recovered) -> Result<()> {
        let Some(rev) = rec.pending_compaction else {
            return Ok(());
        };
        tracing::info!(revision = rev, "finishing an interrupted compaction");
        let meta = applied_meta(rec.consistent_index, rec.term);
        self.store.compact(rev, |be| be.commit(&meta))?;
        self.store.backend.commit(&meta)
    }

    /// The refusal of a write while the NOSPACE alarm is active.
    pub(crate) fn check_space(&self) -> Result<()> {
        if self.alarms.has(AlarmType::Nospace) {
            return Err(Error::NoSpace);
        }
        Ok(())
    }
}

/// Hands every published revision to the lessor (key attachment) and the watch hub.
struct Observer {
    lessor: Arc<Lessor>,
    hub: Arc<WatchHub>,
}

impl crate::mvcc::store::Observer for Observer {
    fn on_revision(&self, rev: i64, events: Vec<Event>) {
        self.lessor.on_events(&events);
        self.hub.notify(rev, events);
    }

    fn lease_exists(&self, id: i64) -> bool {
        self.lessor.exists(id)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A member state on a temp dir, and the writes the apply loop would make.

    use std::path::Path;

    use bytes::Bytes;

    use super::State;
    use crate::membership::MemberInfo;
    use crate::mvcc::Store;
    use crate::pb::etcdserverpb::{RangeRequest, RangeResponse};
    use crate::schema::{META_CONSISTENT_INDEX, META_TERM};

    /// A state whose backend is `dir/member/snap/db`.
    pub(crate) fn state(dir: &Path) -> State {
        let (store, _) = Store::open(&dir.join("member/snap/db")).expect("open store");
        let member = MemberInfo {
            id: 1,
            cluster_id: 2,
            name: "test".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
        };
        State::new(store, member, crate::membership::Membership::default())
    }

    /// One write request putting `k` = `v`; returns its revision.
    pub(crate) fn put(store: &Store, k: &str, v: &str) -> i64 {
        let mut t = store.write();
        t.put(Bytes::from(k.to_owned()), Bytes::from(v.to_owned()), 0)
            .expect("put");
        t.end()
    }

    /// One write request deleting `k`; returns its revision.
    pub(crate) fn delete(store: &Store, k: &str) -> i64 {
        let mut t = store.write();
        t.delete_range(k.as_bytes(), &[]).expect("delete");
        t.end()
    }

    /// Commits the staged batch with consistent index `ci`.
    pub(crate) fn commit(store: &Store, ci: u64) {
        store
            .backend
            .commit(&[
                (META_CONSISTENT_INDEX, ci.to_be_bytes().to_vec()),
                (META_TERM, 3u64.to_be_bytes().to_vec()),
            ])
            .expect("commit");
    }

    /// Every key at the current revision, and that revision.
    pub(crate) fn all(store: &Store) -> (RangeResponse, i64) {
        let r = RangeRequest {
            key: Bytes::from_static(b"\0"),
            range_end: Bytes::from_static(b"\0"),
            ..Default::default()
        };
        store.range_current(&r).expect("range")
    }

    /// Writes the committed backend of `store` to `path` (what the leader sends).
    pub(crate) fn export(store: &Store, path: &Path) {
        let mut f = std::fs::File::create(path).expect("create export");
        store
            .backend
            .read_tx()
            .expect("read tx")
            .write_to(&mut f)
            .expect("export");
        f.sync_all().expect("sync export");
    }
}
