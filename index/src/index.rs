//! The concurrent index: an ordered lock-free skiplist of keys, each key's history behind
//! its own mutex.
//!
//! Locking: the skiplist itself takes no locks (crossbeam's epoch-based skiplist). A writer
//! locks only the key it changes; a reader locks each key it visits for the few
//! instructions it takes to read it, one key at a time. No operation ever holds two key
//! locks, so there is no lock order to respect.
//!
//! Removal race: compaction removes a key whose history became empty. It does so while
//! holding that key's lock: it marks the history `removed`, then unlinks the skiplist node.
//! A writer that locks a history and finds it `removed` knows the node is already unlinked,
//! so it looks the key up again and finds (or inserts) a fresh node. A reader that meets a
//! removed history sees no revisions in it, which is what the empty history means anyway.

use std::collections::HashSet;
use std::fmt;
use std::ops::Bound;

use bytes::Bytes;
use crossbeam_epoch as epoch;
use crossbeam_skiplist::base::SkipList;
use parking_lot::Mutex;

use crate::dump::KeyDump;
use crate::history::KeyHistory;
use crate::range::KeyRange;
use crate::{Error, KeyAt, Revision};

/// Keys visited under one epoch pin by whole-index walks (compaction, keep, dump), so
/// memory freed meanwhile can be reclaimed between chunks.
const WALK_CHUNK: usize = 1024;

type Map = SkipList<Box<[u8]>, Mutex<KeyHistory>>;
type Entry<'a, 'g> = crossbeam_skiplist::base::Entry<'a, 'g, Box<[u8]>, Mutex<KeyHistory>>;

/// The revision index: for every user key, its history of generations (etcd's `treeIndex`
/// semantics), safe to share between threads. See the crate documentation for the
/// visibility rule.
pub struct Index {
    map: Map,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index").field("keys", &self.len()).finish()
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Index {
            map: SkipList::new(epoch::default_collector().clone()),
        }
    }

    /// Number of keys with a history (live keys plus deleted keys whose tombstone was not
    /// yet compacted away).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key has a history.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records a put of `key` at `rev` (creating the key, or a new generation of it, when
    /// it is not live). Fails with [`Error::StaleRevision`] if `rev` is not above the key's
    /// latest revision.
    pub fn put(&self, key: &[u8], rev: Revision) -> Result<(), Error> {
        self.upsert(key, |h| h.put(rev))
    }

    /// Records the deletion of `key` at `rev`, ending its live generation. Fails with
    /// [`Error::RevisionNotFound`] when the key is not live.
    pub fn tombstone(&self, key: &[u8], rev: Revision) -> Result<(), Error> {
        let guard = &epoch::pin();
        loop {
            let Some(entry) = self.map.get(key, guard) else {
                return Err(Error::RevisionNotFound);
            };
            let mut h = entry.value().lock();
            if !h.removed {
                return h.tombstone(rev);
            }
        }
    }

    /// Startup restore of a key from its newest stored put (etcd's `restore`): if the key
    /// is already indexed this is a plain put; otherwise the key is created with
    /// `created = (create_main, 0)`, the given `version`, and `rev` as its only revision.
    pub fn restore_put(
        &self,
        key: &[u8],
        rev: Revision,
        create_main: i64,
        version: i64,
    ) -> Result<(), Error> {
        self.upsert(key, |h| {
            if h.is_empty() {
                *h = KeyHistory::restored(Revision::new(create_main, 0), rev, version);
                Ok(())
            } else {
                h.put(rev)
            }
        })
    }

    /// Startup restore of a tombstone (etcd's `restoreTombstone`): if the key is indexed
    /// this is a plain tombstone; otherwise the key is created dead, with the tombstone as
    /// its only revision, so that the next compaction above it removes it.
    pub fn restore_tombstone(&self, key: &[u8], rev: Revision) -> Result<(), Error> {
        self.upsert(key, |h| {
            if h.is_empty() {
                *h = KeyHistory::restored_tombstone(rev);
                Ok(())
            } else {
                h.tombstone(rev)
            }
        })
    }

    /// Runs `op` on the key's history, inserting an empty one first if the key is absent.
    fn upsert(
        &self,
        key: &[u8],
        mut op: impl FnMut(&mut KeyHistory) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let guard = &epoch::pin();
        loop {
            // Fast path: the key exists; no allocation, no reference count.
            if let Some(entry) = self.map.get(key, guard) {
                let mut h = entry.value().lock();
                if !h.removed {
                    return op(&mut h);
                }
            }
            let entry = self.map.get_or_insert_with(
                Box::from(key),
                || Mutex::new(KeyHistory::default()),
                guard,
            );
            let done = {
                let mut h = entry.value().lock();
                if h.removed {
                    None
                } else {
                    let res = op(&mut h);
                    // A failed first write leaves an empty history: a compaction removes it.
                    Some(res)
                }
            };
            entry.release(guard);
            if let Some(res) = done {
                return res;
            }
        }
    }

    /// The key's state at main revision `at_rev`: latest change at or below it, creation
    /// revision and version. [`Error::RevisionNotFound`] if the key does not exist at
    /// `at_rev` (never created, deleted, or — for `at_rev` below the compaction revision —
    /// its history there was compacted away).
    pub fn get(&self, key: &[u8], at_rev: i64) -> Result<KeyAt, Error> {
        let guard = &epoch::pin();
        self.map
            .get(key, guard)
            .and_then(|e| e.value().lock().get(at_rev))
            .ok_or(Error::RevisionNotFound)
    }

    /// Calls `f` for each key of the range with its history, in key order, until `f`
    /// returns false. Each history is locked only during its own call.
    fn visit(&self, start: &[u8], end: &[u8], mut f: impl FnMut(&[u8], &KeyHistory) -> bool) {
        let guard = &epoch::pin();
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = match KeyRange::new(start, end) {
            KeyRange::Single(key) => {
                if let Some(e) = self.map.get(key, guard) {
                    f(key, &e.value().lock());
                }
                return;
            }
            KeyRange::From(start) => (Bound::Included(start), Bound::Unbounded),
            KeyRange::Span(start, end) if start < end => {
                (Bound::Included(start), Bound::Excluded(end))
            }
            KeyRange::Span(..) => return,
        };
        for e in self.map.range::<[u8], _>(bounds, guard) {
            if !f(e.key(), &e.value().lock()) {
                break;
            }
        }
    }

    /// Keys existing at `at_rev` in the range, ascending, with their latest revision at or
    /// below `at_rev`.
    pub fn range(&self, start: &[u8], end: &[u8], at_rev: i64) -> (Vec<Bytes>, Vec<Revision>) {
        let mut keys = Vec::new();
        let mut revs = Vec::new();
        self.visit(start, end, |key, h| {
            if let Some(at) = h.get(at_rev) {
                keys.push(Bytes::copy_from_slice(key));
                revs.push(at.modified);
            }
            true
        });
        (keys, revs)
    }

    /// Like [`range`](Self::range) without the keys, at most `limit` revisions
    /// (`0` = no limit); the second value counts every matching key regardless of `limit`.
    pub fn revisions(
        &self,
        start: &[u8],
        end: &[u8],
        at_rev: i64,
        limit: usize,
    ) -> (Vec<Revision>, usize) {
        let mut revs = Vec::new();
        if limit > 0 {
            revs.reserve(limit.min(1024));
        }
        let mut total = 0;
        self.visit(start, end, |_, h| {
            if let Some(at) = h.get(at_rev) {
                if limit == 0 || revs.len() < limit {
                    revs.push(at.modified);
                }
                total += 1;
            }
            true
        });
        (revs, total)
    }

    /// Number of keys existing at `at_rev` in the range.
    pub fn count_revisions(&self, start: &[u8], end: &[u8], at_rev: i64) -> usize {
        let mut total = 0;
        self.visit(start, end, |_, h| {
            total += usize::from(h.get(at_rev).is_some());
            true
        });
        total
    }

    /// Every indexed revision in the range with main revision at or above `rev`, sorted
    /// by revision (for watch catch-up). Per key, of several revisions sharing a main
    /// revision only the largest sub is reported.
    pub fn range_since(&self, start: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let mut out = Vec::new();
        self.visit(start, end, |_, h| {
            h.since(rev, &mut out);
            true
        });
        out.sort_unstable();
        out
    }

    /// Walks every key in chunks, re-pinning the epoch between chunks.
    fn walk(&self, mut f: impl FnMut(&Entry<'_, '_>)) {
        let mut resume: Option<Box<[u8]>> = None;
        loop {
            let guard = &epoch::pin();
            let lower = match &resume {
                Some(k) => Bound::Excluded(&**k),
                None => Bound::Unbounded,
            };
            let mut next = None;
            for (n, e) in self
                .map
                .range::<[u8], _>((lower, Bound::Unbounded), guard)
                .enumerate()
            {
                f(&e);
                if n + 1 == WALK_CHUNK {
                    next = Some(e.key().clone());
                    break;
                }
            }
            match next {
                Some(k) => resume = Some(k),
                None => return,
            }
        }
    }

    /// Compacts every key at main revision `rev` (etcd's `treeIndex.Compact`): drops the
    /// revisions no read at or above `rev` can reach and removes keys left without
    /// history. Returns the revisions the backend must keep: per key, the latest revision
    /// at or below `rev` that is still reachable (a tombstone exactly at `rev` included).
    ///
    /// Runs concurrently with writers and with readers at revisions `>= rev`; readers
    /// below `rev` may see partly compacted histories (the store refuses those reads).
    /// Compactions themselves are expected one at a time, with increasing revisions.
    pub fn compact(&self, rev: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        self.walk(|e| {
            let mut h = e.value().lock();
            if h.removed {
                return;
            }
            h.compact(rev, &mut keep);
            if h.is_empty() {
                h.removed = true;
                // Unlink while still holding the lock: a writer that sees `removed` must
                // not find this node again.
                e.remove();
            }
        });
        keep
    }

    /// The revisions a compaction at `rev` would keep, leaving the index unchanged, minus
    /// tombstones sitting exactly at `rev` (etcd's `treeIndex.Keep`, used by HashKV).
    pub fn keep(&self, rev: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        self.walk(|e| e.value().lock().keep(rev, &mut keep));
        keep
    }

    /// A copy of every key's history, in key order (etcd's `keyIndex` shape). Meant for
    /// tests and diagnostics; it is a consistent copy per key, not across keys.
    pub fn dump(&self) -> Vec<KeyDump> {
        let mut out = Vec::new();
        self.walk(|e| {
            let h = e.value().lock();
            if !h.removed && !h.is_empty() {
                out.push(KeyDump::new(e.key(), &h));
            }
        });
        out
    }
}
