//! The revision store: the index (which revisions each key has) plus the backend (the
//! `mvccpb.KeyValue` stored under each revision key), with etcd's MVCC semantics.
//!
//! Writes happen only in the apply loop through [`WriteTxn`]; a write request's changes
//! become visible to readers at once when [`WriteTxn::end`] publishes its revision.
//!
//! The whole state (backend file, index, current and compact revisions) can be replaced
//! by a backend received from the raft leader ([`Store::replace`]). The index sits behind
//! a read-write lock that every read holds shared for its whole duration (a [`View`]);
//! `replace` builds the new index aside and holds the lock exclusively only to swap the
//! file handle, the index and the revisions, so a read sees either the old state or the
//! new one, never a mix. Nothing takes the lock twice on one thread: a `View` (and a
//! `WriteTxn`, which holds one) does its reads through itself.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use cairn_engine::ReadTx;
use cairn_index::{Index, Revision};
use parking_lot::{RwLock, RwLockReadGuard};
use prost::Message;

use super::backend::Backend;
use super::revkey;
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::{range_request, RangeRequest, RangeResponse};
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};
use crate::schema::{
    BUCKETS, KEY, META, META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT,
    META_STORAGE_VERSION, META_TERM,
};

/// How many revision keys one compaction step deletes before staging the next batch.
const COMPACTION_BATCH: usize = 10_000;

/// Sees every published revision's changes (watchers, lease attachments) and answers
/// whether a lease exists. Installed once at start-up.
pub(crate) trait Observer: Send + Sync {
    /// Called by the apply loop right after revision `rev` becomes visible; `events` are
    /// its changes in order (delete events carry their previous key-value).
    fn on_revision(&self, rev: i64, events: Vec<Event>);
    /// Whether lease `id` exists.
    fn lease_exists(&self, id: i64) -> bool;
}

/// The revision store.
pub(crate) struct Store {
    pub(crate) backend: Backend,
    /// Held shared by every read, exclusively by [`Store::replace`] while it swaps.
    index: RwLock<Index>,
    current_rev: AtomicI64,
    compact_rev: AtomicI64,
    observer: OnceLock<Arc<dyn Observer>>,
}

/// What the store recovered from the backend at open (or at [`Store::replace`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) consistent_index: u64,
    pub(crate) term: u64,
    /// A compaction that was scheduled but not finished (re-run by the caller).
    pub(crate) pending_compaction: Option<i64>,
}

fn read_u64(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|v| {
        v.get(..8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    })
    .unwrap_or(0)
}

/// The state read from a backend file: the index and revisions, and what to report.
struct Loaded {
    index: Index,
    current: i64,
    compact: i64,
    recovered: Recovered,
}

/// Reads the meta keys and rebuilds the index from the `key` bucket of `tx`.
fn load(tx: &ReadTx) -> Result<Loaded> {
    let meta = |k: &[u8]| -> Option<Vec<u8>> {
        tx.bucket(META).and_then(|b| b.get(k).map(<[u8]>::to_vec))
    };
    let ci = read_u64(meta(META_CONSISTENT_INDEX));
    let term = read_u64(meta(META_TERM));
    let rev_of = |v: Option<Vec<u8>>| -> Option<i64> {
        v.and_then(|v| revkey::decode(&v).map(|(r, _)| r.main))
    };
    let scheduled = rev_of(meta(META_SCHEDULED_COMPACT));
    let finished = rev_of(meta(META_FINISHED_COMPACT));

    let index = Index::new();
    let mut current = 1i64;
    if let Some(b) = tx.bucket(KEY) {
        let mut c = b.cursor();
        let mut item = c.first();
        while let Some((k, v)) = item {
            if let Some((rev, tomb)) = revkey::decode(k) {
                let kv = KeyValue::decode(v).map_err(|e| {
                    Error::Internal(format!("corrupt value at revision {rev}: {e}"))
                })?;
                let res = if tomb {
                    index.restore_tombstone(&kv.key, rev)
                } else {
                    index.restore_put(&kv.key, rev, kv.create_revision, kv.version)
                };
                if let Err(e) = res {
                    tracing::warn!(%rev, error = %e, "index restore skipped a revision");
                }
                current = current.max(rev.main);
            }
            item = c.next();
        }
    }
    let compact = finished.unwrap_or(-1);
    let current = current.max(compact);
    let pending = match (scheduled, finished) {
        (Some(s), Some(f)) if s > f => Some(s),
        (Some(s), None) => Some(s),
        _ => None,
    };
    tracing::info!(
        revision = current,
        compact_revision = compact,
        consistent_index = ci,
        keys = index.len(),
        "restored revision store"
    );
    Ok(Loaded {
        index,
        current,
        compact,
        recovered: Recovered {
            consistent_index: ci,
            term,
            pending_compaction: pending,
        },
    })
}

impl Store {
    /// Opens the backend file and rebuilds the index from the `key` bucket.
    pub(crate) fn open(path: &Path) -> Result<(Store, Recovered)> {
        let backend = Backend::open(path)?;
        let loaded = load(&backend.read_tx()?)?;
        let store = Store {
            backend,
            index: RwLock::new(loaded.index),
            current_rev: AtomicI64::new(loaded.current),
            compact_rev: AtomicI64::new(loaded.compact),
            observer: OnceLock::new(),
        };
        Ok((store, loaded.recovered))
    }

    /// Replaces the whole state with the backend file `file` (one received from the
    /// leader): waits for the commit in flight, opens and checks `file` and rebuilds its
    /// index aside (an unreadable or corrupt file is an error and changes nothing), then
    /// renames it over the backend file (directory fsynced) and swaps the engine handle,
    /// the index and the revisions at once; the staged batches are discarded. Apply loop
    /// only. The observer is not told (the caller moves watchers and reloads leases).
    /// An error after the rename (directory fsync) leaves the old state serving but the
    /// new file in place: the member must stop.
    pub(crate) fn replace(&self, file: &Path) -> Result<Recovered> {
        self.backend.wait_committed()?;
        // Opening creates a missing or empty file: a received backend is never either.
        match std::fs::metadata(file) {
            Ok(m) if m.is_file() && m.len() > 0 => {}
            Ok(_) => {
                return Err(Error::Internal(format!(
                    "received backend {} is empty",
                    file.display()
                )))
            }
            Err(e) => {
                return Err(Error::Internal(format!(
                    "received backend {}: {e}",
                    file.display()
                )))
            }
        }
        let db = Backend::open_file(file)?;
        let problems = db.check();
        if let Some(p) = problems.first() {
            return Err(Error::Internal(format!(
                "received backend {} is corrupt ({} problems, first: {p:?})",
                file.display(),
                problems.len()
            )));
        }
        let loaded = load(&db.begin_read().map_err(super::backend::engine_err)?)?;
        self.backend.move_in(file)?;
        let mut index = self.index.write();
        let old_db = self.backend.swap(db);
        let old_index = std::mem::replace(&mut *index, loaded.index);
        self.current_rev.store(loaded.current, Ordering::Release);
        self.compact_rev.store(loaded.compact, Ordering::Release);
        drop(index);
        // Freed after readers were let in again.
        drop((old_db, old_index));
        Ok(loaded.recovered)
    }

    /// A consistent read view: holds the state shared until dropped (see the module
    /// doc). Do not take a second one on the same thread while holding it.
    pub(crate) fn view(&self) -> View<'_> {
        View {
            store: self,
            index: self.index.read(),
        }
    }

    /// The current (published) revision.
    pub(crate) fn rev(&self) -> i64 {
        self.current_rev.load(Ordering::Acquire)
    }

    /// The compaction revision (-1 before the first compaction).
    pub(crate) fn compact_rev(&self) -> i64 {
        self.compact_rev.load(Ordering::Acquire)
    }

    /// Installs the observer of published revisions (once, at start-up).
    pub(crate) fn set_observer(&self, o: Arc<dyn Observer>) {
        let _ = self.observer.set(o);
    }

    /// The key-value of `key` as of revision `rev` (None if absent or compacted).
    pub(crate) fn get_kv_at(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        self.view().get_kv_at(key, rev)
    }

    /// Range at the current revision (readers).
    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        crate::metrics::METRICS.range_total.inc();
        self.view().range(r)
    }

    /// Range at the current revision, and that revision (for the response header), read
    /// in one view: a serializable read never mixes states across a [`replace`](Self::replace).
    pub(crate) fn range_current(&self, r: &RangeRequest) -> Result<(RangeResponse, i64)> {
        let v = self.view();
        let cur = self.rev();
        Ok((v.range_at(r, cur)?, cur))
    }

    /// Starts the write of one request (apply loop only).
    pub(crate) fn write(&self) -> WriteTxn<'_> {
        let view = self.view();
        WriteTxn {
            begin: self.rev(),
            view,
            sub: 0,
            events: Vec::new(),
        }
    }

    /// Checks a compaction request against the current state (apply loop).
    pub(crate) fn check_compact(&self, rev: i64) -> Result<()> {
        if rev <= self.compact_rev() {
            return Err(Error::Compacted);
        }
        if rev > self.rev() {
            return Err(Error::FutureRev);
        }
        Ok(())
    }

    /// Compacts at `rev` (apply loop): raises the compaction revision, drops old
    /// revisions from the index and stages their deletion from the backend. `commit` is
    /// called between batches so a big compaction never stages everything at once.
    pub(crate) fn compact(
        &self,
        rev: i64,
        mut commit: impl FnMut(&Backend) -> Result<()>,
    ) -> Result<()> {
        let rev_bytes = Bytes::from(revkey::encode(Revision::new(rev, 0), false));
        self.compact_rev.store(rev, Ordering::Release);
        self.backend.put(
            META,
            Bytes::from_static(META_SCHEDULED_COMPACT),
            rev_bytes.clone(),
        );
        let keep = self.index.read().compact(rev);
        let end = revkey::encode(Revision::new(rev + 1, 0), false);
        // Staged (not yet committed) revisions first.
        for k in self.backend.staged_keys() {
            if k.as_ref() < end.as_slice() {
                if let Some((r, _)) = revkey::decode(&k) {
                    if !keep.contains(&r) {
                        self.backend.delete(KEY, k);
                    }
                }
            }
        }
        commit(&self.backend)?;
        // Then the committed ones, in batches.
        let mut from: Vec<u8> = Vec::new();
        loop {
            let mut batch = Vec::new();
            {
                let tx = self.backend.read_tx()?;
                let Some(b) = tx.bucket(KEY) else { break };
                let mut c = b.cursor();
                let mut item = if from.is_empty() {
                    c.first()
                } else {
                    c.seek(&from)
                };
                while let Some((k, _)) = item {
                    if k >= end.as_slice() || batch.len() >= COMPACTION_BATCH {
                        break;
                    }
                    if let Some((r, _)) = revkey::decode(k) {
                        if !keep.contains(&r) {
                            batch.push(Bytes::copy_from_slice(k));
                        }
                    }
                    from = k.to_vec();
                    from.push(0);
                    item = c.next();
                }
                if item.is_none() || item.is_some_and(|(k, _)| k >= end.as_slice()) {
                    from.clear();
                }
            }
            let done = from.is_empty();
            for k in batch {
                self.backend.delete(KEY, k);
            }
            commit(&self.backend)?;
            if done {
                break;
            }
        }
        self.backend
            .put(META, Bytes::from_static(META_FINISHED_COMPACT), rev_bytes);
        tracing::info!(revision = rev, "compaction finished");
        Ok(())
    }

    /// etcd's HashKV over the committed backend: CRC-32C of the bucket name and of every
    /// revision key and value up to `rev`, skipping compacted-away ones. The caller
    /// commits the staged batch first. Returns (hash, compact revision, hash revision).
    pub(crate) fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        let index = self.index.read();
        let compact = self.compact_rev();
        let cur = self.rev();
        if rev > 0 && rev < compact {
            return Err(Error::Compacted);
        }
        if rev > 0 && rev > cur {
            return Err(Error::FutureRev);
        }
        let rev = if rev <= 0 { cur } else { rev };
        let keep: HashSet<Revision> = index.keep(rev);
        let mut h = 0u32;
        h = crc32c::crc32c_append(h, KEY);
        let tx = self.backend.read_tx()?;
        if let Some(b) = tx.bucket(KEY) {
            let mut c = b.cursor();
            let mut item = c.first();
            while let Some((k, v)) = item {
                if let Some((r, _)) = revkey::decode(k) {
                    if r.main > rev {
                        break;
                    }
                    let below_compact = r.main < compact + 1;
                    if !(below_compact && !keep.is_empty() && !keep.contains(&r)) {
                        h = crc32c::crc32c_append(h, k);
                        h = crc32c::crc32c_append(h, v);
                    }
                }
                item = c.next();
            }
        }
        Ok((h, compact, rev))
    }

    /// etcd's backend Hash: CRC-32C over every bucket name, key and value (committed
    /// state), skipping the meta keys that differ between members.
    pub(crate) fn hash(&self) -> Result<u32> {
        let mut h = 0u32;
        let tx = self.backend.read_tx()?;
        for name in BUCKETS {
            let Some(b) = tx.bucket(name) else { continue };
            h = crc32c::crc32c_append(h, name);
            let mut c = b.cursor();
            let mut item = c.first();
            while let Some((k, v)) = item {
                let ignored = name == META
                    && (k == META_CONSISTENT_INDEX || k == META_TERM || k == META_STORAGE_VERSION);
                if !ignored {
                    h = crc32c::crc32c_append(h, k);
                    h = crc32c::crc32c_append(h, v);
                }
                item = c.next();
            }
        }
        Ok(h)
    }
}

/// A consistent read view of the store ([`Store::view`]): the state cannot be replaced
/// while it lives.
pub(crate) struct View<'a> {
    store: &'a Store,
    index: RwLockReadGuard<'a, Index>,
}

impl View<'_> {
    /// Revisions in `[key, end)` with main revision at or above `rev`, sorted (watch
    /// catch-up; see `cairn_index::Index::range_since`).
    pub(crate) fn revisions_since(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        self.index.range_since(key, end, rev)
    }

    /// The changes stored under `revs` as watch events (no prev_kv); revisions no longer
    /// in the backend (compacted meanwhile) are skipped.
    pub(crate) fn events_at(&self, revs: &[Revision]) -> Result<Vec<Event>> {
        let keys: Vec<Vec<u8>> = revs.iter().map(|r| revkey::encode(*r, false)).collect();
        let vals = self.store.backend.get_keys(&keys)?;
        let mut out = Vec::with_capacity(revs.len());
        for (r, v) in revs.iter().zip(vals) {
            let (v, tomb) = match v {
                Some(v) => (v, false),
                None => match self
                    .store
                    .backend
                    .get_keys(&[revkey::encode(*r, true)])?
                    .pop()
                {
                    Some(Some(v)) => (v, true),
                    _ => continue,
                },
            };
            let mut kv =
                KeyValue::decode(v).map_err(|e| Error::Internal(format!("corrupt value: {e}")))?;
            let ty = if tomb {
                kv = KeyValue {
                    key: kv.key,
                    mod_revision: r.main,
                    ..Default::default()
                };
                EventType::Delete
            } else {
                EventType::Put
            };
            out.push(Event {
                r#type: ty as i32,
                kv: Some(kv),
                prev_kv: None,
            });
        }
        Ok(out)
    }

    /// The key-value of `key` as of revision `rev` (None if absent or compacted).
    pub(crate) fn get_kv_at(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        if rev < self.store.compact_rev() || rev <= 0 {
            return Ok(None);
        }
        self.get_at(key, rev)
    }

    /// Range at the current revision.
    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        self.range_at(r, self.store.rev())
    }

    fn fetch(&self, revs: &[Revision]) -> Result<Vec<KeyValue>> {
        let keys: Vec<Vec<u8>> = revs.iter().map(|r| revkey::encode(*r, false)).collect();
        let vals = self.store.backend.get_keys(&keys)?;
        let mut out = Vec::with_capacity(vals.len());
        for v in vals.into_iter().flatten() {
            let kv =
                KeyValue::decode(v).map_err(|e| Error::Internal(format!("corrupt value: {e}")))?;
            out.push(kv);
        }
        Ok(out)
    }

    /// etcd's Range (apply.go Range + kvstore_txn.go rangeKeys) with `cur` as the
    /// current revision. The header is left to the caller.
    pub(crate) fn range_at(&self, r: &RangeRequest, cur: i64) -> Result<RangeResponse> {
        if r.revision > cur {
            return Err(Error::FutureRev);
        }
        let rev = if r.revision <= 0 { cur } else { r.revision };
        if rev < self.store.compact_rev() {
            return Err(Error::Compacted);
        }
        if r.count_only {
            let total = self.index.count_revisions(&r.key, &r.range_end, rev);
            return Ok(RangeResponse {
                count: total as i64,
                ..Default::default()
            });
        }
        let sort_order = r.sort_order();
        let filtered = sort_order != range_request::SortOrder::None
            || r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let mut limit = if filtered || r.limit <= 0 {
            0
        } else {
            r.limit as usize
        };
        if limit > 0 {
            limit += 1;
        }
        let (revs, total) = self.index.revisions(&r.key, &r.range_end, rev, limit);
        let mut kvs = self.fetch(&revs)?;
        if r.max_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
        }
        if r.min_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
        }
        if r.max_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
        }
        if r.min_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
        }
        sort_kvs(&mut kvs, r);
        let mut more = false;
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse {
            header: None,
            kvs,
            more,
            count: total as i64,
        })
    }

    fn get_at(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        match self.index.get(key, rev) {
            Ok(at) => Ok(self.fetch(&[at.modified])?.into_iter().next()),
            Err(_) => Ok(None),
        }
    }
}

fn sort_kvs(kvs: &mut [KeyValue], r: &RangeRequest) {
    use range_request::{SortOrder, SortTarget};
    let mut order = r.sort_order();
    let target = r.sort_target();
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order == SortOrder::None {
        return;
    }
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    if order == SortOrder::Descend {
        kvs.sort_by(|a, b| cmp(b, a));
    } else {
        kvs.sort_by(cmp);
    }
}

/// The changes of one write request (apply loop only). All of them share one main
/// revision; [`end`](Self::end) publishes it if anything changed.
pub(crate) struct WriteTxn<'a> {
    view: View<'a>,
    begin: i64,
    sub: i64,
    events: Vec<Event>,
}

impl WriteTxn<'_> {
    /// Revision reads inside this request see (earlier changes included).
    pub(crate) fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.begin + 1
        } else {
            self.begin
        }
    }

    /// The revision this request's changes get.
    pub(crate) fn write_rev(&self) -> i64 {
        self.begin + 1
    }

    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        crate::metrics::METRICS.range_total.inc();
        self.view.range_at(r, self.read_rev())
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        self.view.get_at(key, self.read_rev())
    }

    /// Whether lease `id` exists (asks the observer; none without one).
    pub(crate) fn lease_exists(&self, id: i64) -> bool {
        self.view
            .store
            .observer
            .get()
            .is_some_and(|o| o.lease_exists(id))
    }

    /// Puts `key`; returns nothing (the caller reads prev_kv before).
    pub(crate) fn put(&mut self, key: Bytes, value: Bytes, lease: i64) -> Result<()> {
        crate::metrics::METRICS.put_total.inc();
        let main = self.begin + 1;
        let rev = Revision::new(main, self.sub);
        let (create, version) = match self.view.index.get(&key, main) {
            Ok(at) => (at.created.main, at.version + 1),
            Err(_) => (main, 1),
        };
        let kv = KeyValue {
            key: key.clone(),
            create_revision: create,
            mod_revision: main,
            version,
            value,
            lease,
        };
        self.view.store.backend.put(
            KEY,
            Bytes::from(revkey::encode(rev, false)),
            Bytes::from(kv.encode_to_vec()),
        );
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        });
        self.view
            .index
            .put(&key, rev)
            .map_err(|e| Error::Internal(format!("index: {e}")))?;
        self.sub += 1;
        Ok(())
    }

    /// Deletes every key of the range; returns the deleted key-values (previous state).
    pub(crate) fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<Vec<KeyValue>> {
        crate::metrics::METRICS.delete_total.inc();
        let (keys, revs) = self.view.index.range(key, end, self.read_rev());
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let prev = self.view.fetch(&revs)?;
        let main = self.begin + 1;
        for (i, k) in keys.into_iter().enumerate() {
            let rev = Revision::new(main, self.sub);
            let tomb = KeyValue {
                key: k.clone(),
                ..Default::default()
            };
            self.view.store.backend.put(
                KEY,
                Bytes::from(revkey::encode(rev, true)),
                Bytes::from(tomb.encode_to_vec()),
            );
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: k.clone(),
                    mod_revision: main,
                    ..Default::default()
                }),
                prev_kv: prev.get(i).filter(|p| p.key == k).cloned(),
            });
            self.view
                .index
                .tombstone(&k, rev)
                .map_err(|e| Error::Internal(format!("index: {e}")))?;
            self.sub += 1;
        }
        Ok(prev)
    }

    /// Publishes the revision if anything changed; returns the revision to report.
    pub(crate) fn end(self) -> i64 {
        if self.sub > 0 {
            self.view
                .store
                .current_rev
                .store(self.begin + 1, Ordering::Release);
            if let Some(o) = self.view.store.observer.get() {
                o.on_revision(self.begin + 1, self.events);
            }
            self.begin + 1
        } else {
            self.begin
        }
    }
}
