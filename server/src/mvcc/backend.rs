//! The backend: the engine file with etcd's bucket layout, plus the write buffer of the
//! not-yet-committed batch.
//!
//! Only the apply loop writes: it stages puts and deletes in the pending buffer. A commit
//! moves the pending buffer aside ("committing") and writes it, with the applied raft index,
//! in one engine write transaction on a committer thread, so the apply loop never waits for
//! the engine's fsyncs; the next commit first waits for the previous one. Readers look a
//! revision key up in the pending buffer, then the committing one, then in an engine read
//! transaction opened while they hold the buffers' read lock, so a batch being committed is
//! never missed: it is dropped only after the engine commit, under the write lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cairn_engine::{Db, Options, ReadTx};
use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::schema::{BUCKETS, KEY, META};

pub(crate) fn engine_err(e: cairn_engine::Error) -> Error {
    Error::from(e)
}

#[derive(Default)]
struct Buffer {
    /// Staged changes in order: (bucket, key, value or delete).
    ops: Vec<(&'static [u8], Bytes, Option<Bytes>)>,
    /// Latest staged state of `key`-bucket entries, for readers.
    keys: HashMap<Bytes, Option<Bytes>>,
    /// Bytes of keys and values staged.
    bytes: u64,
}

#[derive(Default)]
struct Buffers {
    pending: Buffer,
    /// The batch being written by the committer thread.
    committing: Option<Arc<Buffer>>,
}

impl Buffers {
    fn lookup(&self, k: &[u8]) -> Option<Option<Bytes>> {
        if let Some(v) = self.pending.keys.get(k) {
            return Some(v.clone());
        }
        self.committing
            .as_ref()
            .and_then(|c| c.keys.get(k).cloned())
    }
}

type Meta = Vec<(&'static [u8], Vec<u8>)>;

/// The engine file plus the staged batches.
pub(crate) struct Backend {
    db: RwLock<Arc<Db>>,
    path: PathBuf,
    buf: Arc<RwLock<Buffers>>,
    committer: parking_lot::Mutex<Option<std::thread::JoinHandle<Result<()>>>>,
}

impl Backend {
    /// Opens (or creates) the backend file and makes sure etcd's buckets exist.
    pub(crate) fn open(path: &Path) -> Result<Backend> {
        if let Some(dir) = path.parent() {
            crate::fileutil::create_dir_all(dir)
                .map_err(|e| Error::Internal(format!("create {}: {e}", dir.display())))?;
        }
        let db = Self::open_file(path)?;
        Ok(Backend {
            db: RwLock::new(Arc::new(db)),
            path: path.to_path_buf(),
            buf: Arc::new(RwLock::new(Buffers::default())),
            committer: parking_lot::Mutex::new(None),
        })
    }

    /// Opens an engine file (not yet this backend's) and makes sure etcd's buckets exist:
    /// the first step of installing a received backend, which must not disturb this one.
    pub(crate) fn open_file(path: &Path) -> Result<Db> {
        let db = open_db(path)?;
        create_buckets(&db)?;
        Ok(db)
    }

    /// Moves `file` over this backend's file (rename, then directory fsync): the first
    /// half of installing a received backend. The engine handle in use still reads the
    /// old (now unlinked) file until [`swap`](Self::swap). A failed rename is returned;
    /// after a failed directory fsync the member must stop.
    pub(crate) fn move_in(&self, file: &Path) -> Result<()> {
        std::fs::rename(file, &self.path).map_err(|e| {
            Error::Internal(format!(
                "install {} as {}: {e}",
                file.display(),
                self.path.display()
            ))
        })?;
        sync_dir(&self.path)
    }

    /// Swaps in the engine handle of the file [`move_in`](Self::move_in) installed and
    /// discards the staged batches (the new file replaces the whole state). Apply loop
    /// only, after [`wait_committed`](Self::wait_committed). Read transactions already
    /// open keep reading the old file until dropped. Returns the old handle (for the
    /// caller to drop outside its locks).
    pub(crate) fn swap(&self, db: Db) -> Arc<Db> {
        let mut bufs = self.buf.write();
        *bufs = Buffers::default();
        std::mem::replace(&mut *self.db.write(), Arc::new(db))
    }

    /// The current engine handle (replaced by defragmentation).
    pub(crate) fn db(&self) -> Arc<Db> {
        self.db.read().clone()
    }

    /// Stages a put (apply loop only).
    pub(crate) fn put(&self, bucket: &'static [u8], key: Bytes, value: Bytes) {
        let mut g = self.buf.write();
        let b = &mut g.pending;
        if bucket == KEY {
            b.keys.insert(key.clone(), Some(value.clone()));
        }
        b.bytes += (key.len() + value.len()) as u64;
        b.ops.push((bucket, key, Some(value)));
    }

    /// Stages a delete (apply loop only).
    pub(crate) fn delete(&self, bucket: &'static [u8], key: Bytes) {
        let mut g = self.buf.write();
        let b = &mut g.pending;
        if bucket == KEY {
            b.keys.insert(key.clone(), None);
        }
        b.ops.push((bucket, key, None));
    }

    /// Number of staged changes.
    pub(crate) fn pending(&self) -> usize {
        self.buf.read().pending.ops.len()
    }

    /// Starts committing the staged batch plus `meta` (e.g. the consistent index) in one
    /// engine transaction on the committer thread, after waiting for the previous commit
    /// (whose failure is returned here). Apply loop only.
    pub(crate) fn commit_async(&self, meta: Meta) -> Result<()> {
        self.wait_committed()?;
        let batch = {
            let mut g = self.buf.write();
            if g.pending.ops.is_empty() && meta.is_empty() {
                return Ok(());
            }
            let batch = Arc::new(std::mem::take(&mut g.pending));
            g.committing = Some(batch.clone());
            batch
        };
        let db = self.db();
        let bufs = self.buf.clone();
        let h = std::thread::Builder::new()
            .name("backend-commit".into())
            .spawn(move || {
                let start = std::time::Instant::now();
                let res = write_batch(&db, &batch, &meta);
                crate::metrics::METRICS
                    .backend_commit
                    .observe(start.elapsed().as_secs_f64());
                if res.is_ok() {
                    bufs.write().committing = None;
                }
                res
            })
            .map_err(|e| Error::Internal(format!("spawn committer: {e}")))?;
        *self.committer.lock() = Some(h);
        Ok(())
    }

    /// Waits for the commit in flight, if any.
    pub(crate) fn wait_committed(&self) -> Result<()> {
        let h = self.committer.lock().take();
        match h {
            Some(h) => h
                .join()
                .map_err(|_| Error::Internal("backend committer panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Commits the staged batch plus `meta` and waits until it is durable. Apply loop only.
    pub(crate) fn commit(&self, meta: &[(&'static [u8], Vec<u8>)]) -> Result<()> {
        self.commit_async(meta.to_vec())?;
        self.wait_committed()
    }

    /// A read transaction on the committed state (the staged batch is not in it).
    pub(crate) fn read_tx(&self) -> Result<ReadTx> {
        self.db().begin_read().map_err(engine_err)
    }

    /// Values of the given revision keys of the `key` bucket (staged batch included);
    /// `None` for a key that does not exist (e.g. compacted meanwhile).
    pub(crate) fn get_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        let b = self.buf.read();
        let mut rtx: Option<ReadTx> = None;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = b.lookup(k) {
                out.push(v);
                continue;
            }
            if rtx.is_none() {
                rtx = Some(self.read_tx()?);
            }
            let tx = rtx.as_ref().expect("opened above");
            let v = tx
                .bucket(KEY)
                .and_then(|bk| bk.get(k).map(Bytes::copy_from_slice));
            out.push(v);
        }
        Ok(out)
    }

    /// Reads one committed value of any bucket.
    pub(crate) fn get_committed(&self, bucket: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        let tx = self.read_tx()?;
        Ok(tx
            .bucket(bucket)
            .and_then(|b| b.get(key).map(<[u8]>::to_vec)))
    }

    /// All committed entries of a bucket, in key order.
    pub(crate) fn scan_committed(&self, bucket: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let tx = self.read_tx()?;
        let mut out = Vec::new();
        if let Some(b) = tx.bucket(bucket) {
            let mut c = b.cursor();
            let mut item = c.first();
            while let Some((k, v)) = item {
                out.push((k.to_vec(), v.to_vec()));
                item = c.next();
            }
        }
        Ok(out)
    }

    /// Staged `key`-bucket keys (for compaction, which must also drop staged revisions).
    pub(crate) fn staged_keys(&self) -> Vec<Bytes> {
        let g = self.buf.read();
        let mut out: Vec<Bytes> = g
            .pending
            .keys
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(c) = &g.committing {
            out.extend(
                c.keys
                    .iter()
                    .filter(|(k, v)| v.is_some() && !g.pending.keys.contains_key(*k))
                    .map(|(k, _)| k.clone()),
            );
        }
        out
    }

    /// Size as etcd reports it (bbolt's `tx.Size()`): pages up to the high-water mark.
    pub(crate) fn size(&self) -> u64 {
        let st = self.db().stats();
        st.high_water * st.page_size as u64
    }

    /// [`size`](Self::size) plus the bytes staged but not yet committed (so the quota
    /// sees writes of the batch in flight).
    pub(crate) fn size_with_staged(&self) -> u64 {
        let staged = {
            let g = self.buf.read();
            g.pending.bytes + g.committing.as_ref().map_or(0, |c| c.bytes)
        };
        self.size() + staged
    }

    /// Bytes of pages in use.
    pub(crate) fn size_in_use(&self) -> u64 {
        self.db().stats().in_use_bytes
    }

    /// Rewrites the file compactly and swaps it in. The staged batch must have been
    /// committed (apply loop only, so nothing is staged meanwhile).
    pub(crate) fn defragment(&self) -> Result<()> {
        let start = std::time::Instant::now();
        let r = self.defragment_inner();
        crate::metrics::METRICS
            .defrag
            .observe(start.elapsed().as_secs_f64());
        r
    }

    fn defragment_inner(&self) -> Result<()> {
        self.wait_committed()?;
        let mut guard = self.db.write();
        let tmp = self.path.with_extension("defrag.tmp");
        let _ = std::fs::remove_file(&tmp);
        guard.compact_into(&tmp).map_err(engine_err)?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| Error::Internal(format!("defrag rename: {e}")))?;
        sync_dir(&self.path)?;
        *guard = Arc::new(open_db(&self.path)?);
        Ok(())
    }
}

/// Fsyncs the directory holding `path` (makes a rename into it durable).
fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all()
                .map_err(|e| Error::Internal(format!("sync {}: {e}", dir.display())))?;
        }
    }
    Ok(())
}

fn create_buckets(db: &Db) -> Result<()> {
    let rtx = db.begin_read().map_err(engine_err)?;
    if BUCKETS.iter().all(|b| rtx.bucket(b).is_some()) {
        return Ok(());
    }
    drop(rtx);
    let mut tx = db.begin_write().map_err(engine_err)?;
    for b in BUCKETS {
        tx.create_bucket_if_not_exists(b).map_err(engine_err)?;
    }
    tx.commit().map_err(engine_err)
}

fn open_db(path: &Path) -> Result<Db> {
    let opts = Options {
        initial_mmap_size: 10 * 1024 * 1024,
        ..Options::default()
    };
    Db::open(path, opts).map_err(engine_err)
}

/// Writes one batch in one engine transaction (committer thread).
fn write_batch(db: &Db, b: &Buffer, meta: &[(&'static [u8], Vec<u8>)]) -> Result<()> {
    let mut tx = db.begin_write().map_err(engine_err)?;
    // Group by bucket, keeping each bucket's order.
    let mut order: Vec<usize> = (0..b.ops.len()).collect();
    order.sort_by_key(|&i| b.ops[i].0);
    let mut i = 0;
    while i < order.len() {
        let name = b.ops[order[i]].0;
        let mut bucket = tx.bucket_mut(name).map_err(engine_err)?;
        while i < order.len() && b.ops[order[i]].0 == name {
            let (_, k, v) = &b.ops[order[i]];
            match v {
                Some(v) => bucket.put_bytes(k.clone(), v.clone()).map_err(engine_err)?,
                None => {
                    bucket.delete(k).map_err(engine_err)?;
                }
            }
            i += 1;
        }
    }
    if !meta.is_empty() {
        let mut bucket = tx.bucket_mut(META).map_err(engine_err)?;
        for (k, v) in meta {
            bucket.put(k, v).map_err(engine_err)?;
        }
    }
    tx.commit().map_err(engine_err)
}
