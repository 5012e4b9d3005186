//! The watchable store: every watcher of the member, split into synced watchers (they
//! have everything up to the last applied revision and get new events straight from the
//! apply loop) and unsynced ones (they start in the past or fell behind, and are caught up
//! from the revision store in batches by the syncer task).
//!
//! - [`WatchHub::notify`] runs in the apply loop after each revision is published. It
//!   never blocks: each stream has a bounded [`queue::StreamQueue`]; when a push fails the
//!   watcher becomes unsynced at that revision (not dropped) and catches up later, so a
//!   stalled client costs at most its queue budget.
//! - The syncer ([`spawn_syncer`]) reads each unsynced watcher's events since its next
//!   revision (at most [`CATCH_UP_REVISIONS`] per batch, always whole revisions), queues
//!   them, and moves the watcher to synced once it reached the last notified revision
//!   (checked under the hub lock, so no revision falls between catch-up and live events).
//!   A watcher whose next revision was compacted away is canceled with `compact_revision`.
//! - Progress: a stream's progress request is answered (watch id -1) only when all its
//!   watchers are synced and none starts in the future, under the hub lock, so the answer
//!   is queued after every event it vouches for; otherwise it is deferred until then.
//!   Periodic notifications go to synced `progress_notify` watchers every interval.
//! - Restore: when the store is replaced by a backend from the leader,
//!   [`WatchHub::restore`] jumps the hub to the new revision and moves every synced
//!   watcher that has revisions to receive back to catch-up from its next revision, so
//!   it gets what it has not seen from the new history (or etcd's compacted cancel). A
//!   catch-up batch read before the restore is dropped (the hub's epoch changed) and read
//!   again from the new store.

pub(crate) mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::mvcc::Store;
use crate::pb::etcdserverpb::{ResponseHeader, WatchResponse};
use crate::pb::mvccpb::{event::EventType, Event};
use queue::{Item, StreamQueue};

/// Most revisions of history read for one watcher per catch-up batch.
pub(crate) const CATCH_UP_REVISIONS: usize = 1000;
/// Most unsynced watchers handled per syncer round (etcd: 512).
const SYNC_WATCHERS_PER_ROUND: usize = 512;
/// How often the syncer runs when nothing wakes it (etcd: 100 ms).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// What a watcher watches and how its responses are shaped.
pub(crate) struct WatchSpec {
    pub(crate) id: i64,
    pub(crate) key: Bytes,
    /// Empty = only `key`; `"\0"` = every key ≥ `key`; otherwise `[key, end)`.
    pub(crate) end: Bytes,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) prev_kv: bool,
    pub(crate) fragment: bool,
    pub(crate) progress_notify: bool,
    pub(crate) queue: Arc<StreamQueue>,
}

impl WatchSpec {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            self.key.as_ref() == k
        } else if self.end.as_ref() == b"\0" {
            k >= self.key.as_ref()
        } else {
            self.key.as_ref() <= k && k < self.end.as_ref()
        }
    }

    fn wants(&self, ev: &Event) -> bool {
        if ev.r#type == EventType::Delete as i32 {
            !self.no_delete
        } else {
            !self.no_put
        }
    }

    /// The event as this watcher gets it (prev_kv only when asked for).
    fn shape(&self, ev: &Event) -> Event {
        Event {
            r#type: ev.r#type,
            kv: ev.kv.clone(),
            prev_kv: if self.prev_kv {
                ev.prev_kv.clone()
            } else {
                None
            },
        }
    }

    fn response(&self, rev: i64, events: Vec<Event>) -> Item {
        Item::events(
            WatchResponse {
                header: Some(header(rev)),
                watch_id: self.id,
                events,
                ..Default::default()
            },
            self.prev_kv,
            self.fragment,
        )
    }
}

fn header(rev: i64) -> ResponseHeader {
    ResponseHeader {
        revision: rev,
        ..Default::default()
    }
}

struct Entry {
    spec: Arc<WatchSpec>,
    /// Next revision this watcher needs.
    next_rev: i64,
    synced: bool,
}

#[derive(Default)]
struct HubState {
    /// Last revision passed to `notify` (or the store revision at start or restore).
    rev: i64,
    /// Bumped by each restore: a catch-up read under an older epoch is stale.
    epoch: u64,
    next_handle: u64,
    watchers: HashMap<u64, Entry>,
    /// Single-key watchers by key.
    by_key: HashMap<Bytes, HashSet<u64>>,
    /// Range watchers.
    ranged: HashSet<u64>,
    unsynced: HashSet<u64>,
    /// Streams with a deferred progress request.
    deferred: Vec<Arc<StreamQueue>>,
}

/// Every watcher of the member.
pub(crate) struct WatchHub {
    st: Mutex<HubState>,
    /// Wakes the syncer.
    pub(crate) wake: Arc<Notify>,
}

impl WatchHub {
    pub(crate) fn new(rev: i64) -> WatchHub {
        WatchHub {
            st: Mutex::new(HubState {
                rev,
                ..Default::default()
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The last revision watchers were notified of.
    /// Watchers registered, and how many of them are unsynced (catching up).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.st.lock();
        (st.watchers.len(), st.unsynced.len())
    }

    pub(crate) fn rev(&self) -> i64 {
        self.st.lock().rev
    }

    /// Registers a watcher starting at `start_rev` (0 = after the current revision).
    /// Returns its handle.
    pub(crate) fn add(&self, spec: Arc<WatchSpec>, start_rev: i64) -> u64 {
        let mut st = self.st.lock();
        let h = st.next_handle;
        st.next_handle += 1;
        let cur = st.rev;
        let (next_rev, synced) = if start_rev <= 0 || start_rev > cur {
            (if start_rev <= 0 { cur + 1 } else { start_rev }, true)
        } else {
            (start_rev, false)
        };
        if spec.end.is_empty() {
            st.by_key.entry(spec.key.clone()).or_default().insert(h);
        } else {
            st.ranged.insert(h);
        }
        if !synced {
            st.unsynced.insert(h);
        }
        spec.queue.handles.lock().insert(h);
        st.watchers.insert(
            h,
            Entry {
                spec,
                next_rev,
                synced,
            },
        );
        drop(st);
        if !synced {
            self.wake.notify_one();
        }
        h
    }

    /// Removes a watcher; returns whether it existed.
    pub(crate) fn remove(&self, h: u64) -> bool {
        let mut st = self.st.lock();
        Self::remove_locked(&mut st, h)
    }

    fn remove_locked(st: &mut HubState, h: u64) -> bool {
        let Some(e) = st.watchers.remove(&h) else {
            return false;
        };
        if e.spec.end.is_empty() {
            if let Some(set) = st.by_key.get_mut(&e.spec.key) {
                set.remove(&h);
                if set.is_empty() {
                    st.by_key.remove(&e.spec.key);
                }
            }
        } else {
            st.ranged.remove(&h);
        }
        st.unsynced.remove(&h);
        e.spec.queue.handles.lock().remove(&h);
        true
    }

    /// Delivers revision `rev`'s events to synced watchers (apply loop; never blocks).
    pub(crate) fn notify(&self, rev: i64, events: Vec<Event>) {
        let mut st = self.st.lock();
        st.rev = rev;
        if st.watchers.is_empty() {
            return;
        }
        let mut per: HashMap<u64, Vec<Event>> = HashMap::new();
        for ev in &events {
            let Some(kv) = &ev.kv else { continue };
            if let Some(set) = st.by_key.get(&kv.key) {
                for h in set {
                    let e = &st.watchers[h];
                    if e.synced && e.next_rev <= rev && e.spec.wants(ev) {
                        per.entry(*h).or_default().push(e.spec.shape(ev));
                    }
                }
            }
            for h in &st.ranged {
                let e = &st.watchers[h];
                if e.synced && e.next_rev <= rev && e.spec.contains(&kv.key) && e.spec.wants(ev) {
                    per.entry(*h).or_default().push(e.spec.shape(ev));
                }
            }
        }
        let mut fell_behind = false;
        for (h, evs) in per {
            let Some(e) = st.watchers.get_mut(&h) else {
                continue;
            };
            if e.spec.queue.try_push(e.spec.response(rev, evs)) {
                e.next_rev = rev + 1;
            } else {
                e.synced = false;
                e.next_rev = rev;
                st.unsynced.insert(h);
                fell_behind = true;
            }
        }
        if fell_behind || !st.deferred.is_empty() {
            drop(st);
            self.wake.notify_one();
        }
    }

    /// The store was replaced by a backend at revision `rev` (apply loop, right after
    /// [`Store::replace`](crate::mvcc::Store::replace)): every synced watcher with
    /// revisions up to `rev` still to receive catches up from its next revision, from the
    /// new store. Watchers waiting for later revisions stay synced.
    pub(crate) fn restore(&self, rev: i64) {
        let mut st = self.st.lock();
        st.rev = rev;
        st.epoch += 1;
        let HubState {
            watchers, unsynced, ..
        } = &mut *st;
        for (h, e) in watchers.iter_mut() {
            if e.synced && e.next_rev <= rev {
                e.synced = false;
                unsynced.insert(*h);
            }
        }
        let moved = unsynced.len();
        drop(st);
        tracing::info!(revision = rev, catching_up = moved, "watch hub restored");
        self.wake.notify_one();
    }

    /// Answers a stream's progress request now if every watcher on it is synced (watch
    /// id -1, the current revision); otherwise defers it.
    pub(crate) fn request_progress(&self, q: &Arc<StreamQueue>) {
        let mut st = self.st.lock();
        if !Self::progress_locked(&st, q) {
            if !q.progress_deferred.swap(true, Ordering::AcqRel) {
                st.deferred.push(q.clone());
            }
            drop(st);
            self.wake.notify_one();
        }
    }

    fn progress_locked(st: &HubState, q: &StreamQueue) -> bool {
        let handles = q.handles.lock();
        let ready = handles.iter().all(|h| {
            st.watchers
                .get(h)
                .is_none_or(|e| e.synced && e.next_rev <= st.rev + 1)
        });
        if ready {
            q.push_control(WatchResponse {
                header: Some(header(st.rev)),
                watch_id: -1,
                ..Default::default()
            });
        }
        ready
    }

    /// Answers deferred progress requests that can be answered now.
    fn retry_deferred(&self) {
        let mut st = self.st.lock();
        if st.deferred.is_empty() {
            return;
        }
        let list = std::mem::take(&mut st.deferred);
        for q in list {
            if q.is_closed() {
                continue;
            }
            if Self::progress_locked(&st, &q) {
                q.progress_deferred.store(false, Ordering::Release);
            } else {
                st.deferred.push(q);
            }
        }
    }

    /// Periodic progress notifications to synced `progress_notify` watchers.
    fn progress_all(&self) {
        let st = self.st.lock();
        for e in st.watchers.values() {
            if e.spec.progress_notify && e.synced && e.next_rev <= st.rev + 1 {
                let resp = WatchResponse {
                    header: Some(header(st.rev)),
                    watch_id: e.spec.id,
                    ..Default::default()
                };
                // A full queue skips this round (the watcher is busy receiving anyway).
                let _ = e.spec.queue.try_push(Item::control(resp));
            }
        }
    }

    /// Cancels a watcher whose next revision was compacted away.
    fn cancel_compacted(&self, h: u64, spec: &WatchSpec, compact: i64) {
        let mut st = self.st.lock();
        if Self::remove_locked(&mut st, h) {
            spec.queue.push_control(WatchResponse {
                header: Some(header(st.rev)),
                watch_id: spec.id,
                canceled: true,
                compact_revision: compact,
                ..Default::default()
            });
        }
    }

    /// One catch-up round; returns true if more work is left.
    fn sync_round(&self, store: &Store) -> bool {
        let (cur, epoch, list) = {
            let st = self.st.lock();
            let list: Vec<(u64, Arc<WatchSpec>, i64)> = st
                .unsynced
                .iter()
                .filter_map(|h| st.watchers.get(h).map(|e| (*h, e.spec.clone(), e.next_rev)))
                .take(SYNC_WATCHERS_PER_ROUND)
                .collect();
            (st.rev, st.epoch, list)
        };
        let mut more = false;
        let compact = store.compact_rev();
        for (h, spec, next) in list {
            if spec.queue.is_closed() {
                self.remove(h);
                continue;
            }
            if next < compact {
                self.cancel_compacted(h, &spec, compact);
                continue;
            }
            if next > cur {
                // Waits for revisions the store has not reached (after a restore to an
                // older revision): nothing to read, live events will reach it.
                let mut st = self.st.lock();
                let live = st.rev;
                if st.epoch == epoch && live == cur {
                    if let Some(e) = st.watchers.get_mut(&h) {
                        e.synced = true;
                        st.unsynced.remove(&h);
                    }
                } else {
                    more = true;
                }
                continue;
            }
            if !spec.queue.has_room() {
                continue; // the queue wakes the syncer when it drains
            }
            match catch_up(store, &spec, next, cur) {
                Ok((evs, upto)) => {
                    // A compaction that ran during the read may have removed part of it.
                    let compact = store.compact_rev();
                    if next < compact {
                        self.cancel_compacted(h, &spec, compact);
                        continue;
                    }
                    let mut st = self.st.lock();
                    if st.epoch != epoch {
                        // The store was replaced during the read: read again from the new one.
                        more = true;
                        continue;
                    }
                    let live = st.rev;
                    let Some(e) = st.watchers.get_mut(&h) else {
                        continue;
                    };
                    if !evs.is_empty() && !e.spec.queue.try_push(e.spec.response(upto, evs)) {
                        continue;
                    }
                    e.next_rev = upto + 1;
                    if upto == cur && live == cur {
                        e.synced = true;
                        st.unsynced.remove(&h);
                    } else {
                        more = true;
                    }
                }
                Err(err) => {
                    tracing::warn!(watch_id = spec.id, error = %err, "watch catch-up failed");
                }
            }
        }
        more
    }
}

/// Events of `spec` from revision `from` up to at most `cur`, whole revisions, at most
/// [`CATCH_UP_REVISIONS`] revisions; returns them and the last revision covered.
fn catch_up(
    store: &Store,
    spec: &WatchSpec,
    from: i64,
    cur: i64,
) -> crate::error::Result<(Vec<Event>, i64)> {
    // One view for both reads: a restore in between would mix two histories.
    let view = store.view();
    let mut revs = view.revisions_since(&spec.key, &spec.end, from);
    revs.retain(|r| r.main <= cur);
    let mut upto = cur;
    let mut mains = 0usize;
    let mut last_main = i64::MIN;
    let mut cut = revs.len();
    for (i, r) in revs.iter().enumerate() {
        if r.main != last_main {
            if mains == CATCH_UP_REVISIONS {
                cut = i;
                upto = last_main;
                break;
            }
            mains += 1;
            last_main = r.main;
        }
    }
    revs.truncate(cut);
    let events = view
        .events_at(&revs)?
        .into_iter()
        .filter(|ev| spec.wants(ev))
        .collect();
    Ok((events, upto))
}

/// The syncer task: catches unsynced watchers up, answers deferred progress requests and
/// sends periodic progress notifications every `progress_interval`.
pub(crate) fn spawn_syncer(
    store: Arc<Store>,
    hub: Arc<WatchHub>,
    progress_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_progress = Instant::now();
        let mut more = false;
        loop {
            if more {
                tokio::task::yield_now().await;
                if *shutdown.borrow() {
                    return;
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(SYNC_INTERVAL) => {}
                    _ = hub.wake.notified() => {}
                    _ = shutdown.wait_for(|v| *v) => return,
                }
            }
            let (h, c) = (hub.clone(), store.clone());
            more = tokio::task::spawn_blocking(move || h.sync_round(&c))
                .await
                .unwrap_or(false);
            hub.retry_deferred();
            if last_progress.elapsed() >= progress_interval {
                last_progress = Instant::now();
                hub.progress_all();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use super::*;
    use crate::mvcc::Store;
    use crate::snapshot::install;
    use crate::state::test_support::{commit, export, put, state as core};
    use crate::state::State;

    fn watcher(core: &State, id: i64, key: &'static [u8], end: &'static [u8]) -> Arc<WatchSpec> {
        Arc::new(WatchSpec {
            id,
            key: Bytes::from_static(key),
            end: Bytes::from_static(end),
            no_put: false,
            no_delete: false,
            prev_kv: false,
            fragment: false,
            progress_notify: false,
            queue: Arc::new(StreamQueue::new(core.watch.wake.clone())),
        })
    }

    /// Runs catch-up rounds until the syncer has nothing left to do.
    fn sync(core: &State) {
        while core.watch.sync_round(&core.store) {}
    }

    /// Everything queued on `spec`'s stream: (header revision, [(event revision, value)]),
    /// and cancel answers as (header revision, [(-compact revision, "")]).
    fn drain(spec: &WatchSpec) -> Vec<(i64, Vec<(i64, String)>)> {
        let mut out = Vec::new();
        while let Some(Some(item)) = spec.queue.pop().now_or_never() {
            let r = item.resp;
            assert_eq!(r.watch_id, spec.id);
            let rev = r.header.map_or(0, |h| h.revision);
            if r.canceled {
                out.push((rev, vec![(-r.compact_revision, String::new())]));
                continue;
            }
            let evs = r
                .events
                .into_iter()
                .map(|e| {
                    let kv = e.kv.unwrap_or_default();
                    (
                        kv.mod_revision,
                        String::from_utf8_lossy(&kv.value).into_owned(),
                    )
                })
                .collect();
            out.push((rev, evs));
        }
        out
    }

    /// A store whose key `k` is written at revisions 3, 6, 9 and 12 (value "b<rev>").
    fn other(dir: &std::path::Path) -> Store {
        let (b, _) = Store::open(&dir.join("other/db")).unwrap();
        for rev in 2..=12 {
            let key = if rev % 3 == 0 { "k" } else { "filler" };
            assert_eq!(put(&b, key, &format!("b{rev}")), rev);
        }
        b
    }

    #[test]
    fn watchers_catch_up_from_the_installed_history() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        for v in ["a2", "a3", "a4"] {
            put(&c.store, "k", v);
        }
        commit(&c.store, 3);
        let key = watcher(&c, 1, b"k", b"");
        let range = watcher(&c, 2, b"j", b"l");
        let past = watcher(&c, 3, b"k", b"");
        c.watch.add(key.clone(), 0);
        c.watch.add(range.clone(), 0);
        c.watch.add(past.clone(), 3);
        sync(&c);
        let own = |r: i64| (r, format!("a{r}"));
        assert_eq!(drain(&past), vec![(4, vec![own(3), own(4)])]);
        assert!(drain(&key).is_empty());

        let b = other(dir.path());
        commit(&b, 20);
        let file = dir.path().join("in.snap.db");
        export(&b, &file);
        install(&c, &file).unwrap();
        assert_eq!(c.watch.rev(), 12);
        sync(&c);
        // Each watcher gets what it has not seen (revisions 5..=12), from the new history.
        let theirs = |r: i64| (r, format!("b{r}"));
        for w in [&key, &range, &past] {
            assert_eq!(drain(w), vec![(12, vec![theirs(6), theirs(9), theirs(12)])]);
        }
        // And live events afterwards, once.
        assert_eq!(put(&c.store, "k", "live"), 13);
        for w in [&key, &range, &past] {
            assert_eq!(drain(w), vec![(13, vec![(13, "live".to_string())])]);
        }
        sync(&c);
        assert!(drain(&key).is_empty());
    }

    #[test]
    fn watchers_behind_the_installed_compaction_are_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        put(&c.store, "k", "a2");
        commit(&c.store, 1);
        let key = watcher(&c, 7, b"k", b"");
        c.watch.add(key.clone(), 0);

        let b = other(dir.path());
        b.compact(8, |be| be.commit(&[])).unwrap();
        commit(&b, 20);
        let file = dir.path().join("in.snap.db");
        export(&b, &file);
        install(&c, &file).unwrap();
        assert_eq!(c.store.compact_rev(), 8);
        sync(&c);
        assert_eq!(drain(&key), vec![(12, vec![(-8, String::new())])]);
        // Canceled: a later write reaches nobody.
        put(&c.store, "k", "live");
        assert!(drain(&key).is_empty());
    }

    #[test]
    fn watchers_ahead_of_the_installed_revision_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = core(dir.path());
        for i in 2..=20 {
            put(&c.store, "k", &format!("a{i}"));
        }
        commit(&c.store, 19);
        let key = watcher(&c, 1, b"k", b"");
        c.watch.add(key.clone(), 0); // next revision 21
        let b = other(dir.path());
        commit(&b, 30);
        let file = dir.path().join("in.snap.db");
        export(&b, &file);
        install(&c, &file).unwrap();
        sync(&c);
        assert!(drain(&key).is_empty());
        for i in 13..=21 {
            assert_eq!(put(&c.store, "k", &format!("c{i}")), i);
        }
        sync(&c);
        assert_eq!(drain(&key), vec![(21, vec![(21, "c21".to_string())])]);
    }
}
