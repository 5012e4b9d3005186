//! Transactions: [`ReadTx`] (a pinned snapshot) and [`WriteTx`] (the single writer), and
//! [`BucketMut`], a bucket opened for writing.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::cursor::{lookup, Bucket, Cursor, Src, View};
use crate::db::{freelist_pages, grow_len, Db, Inner, Writer, WriterGuard};
use crate::error::{Error, Result};
use crate::format::{
    write_freelist, write_page_header, BucketHeader, Meta, Pgid, BUCKET_HEADER_SIZE,
    BUCKET_LEAF_FLAG, LEAF_PAGE, MAX_KEY_SIZE, MAX_VALUE_SIZE, PAGE_HEADER_SIZE, PGID_NO_FREELIST,
};
use crate::freelist::Freelist;
use crate::map::Map;
use crate::tree::{Ctx, Spiller, Tree};

/// Validate `put` arguments by length alone (before touching any data).
pub(crate) fn check_put_lengths(key_len: usize, value_len: usize) -> Result<()> {
    if key_len == 0 {
        Err(Error::KeyEmpty)
    } else if key_len > MAX_KEY_SIZE {
        Err(Error::KeyTooLarge)
    } else if value_len > MAX_VALUE_SIZE {
        Err(Error::ValueTooLarge)
    } else {
        Ok(())
    }
}

fn check_bucket_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        Err(Error::BucketNameRequired)
    } else if name.len() > MAX_KEY_SIZE {
        Err(Error::KeyTooLarge)
    } else {
        Ok(())
    }
}

/// A read transaction: a consistent snapshot that stays valid (its mapping pinned) for as
/// long as the value lives, whatever the writer does meanwhile. `Send + 'static`.
pub struct ReadTx {
    inner: Arc<Inner>,
    map: Arc<Map>,
    meta: Meta,
}

impl ReadTx {
    pub(crate) fn new(inner: Arc<Inner>, map: Arc<Map>, meta: Meta) -> ReadTx {
        ReadTx { inner, map, meta }
    }

    #[inline]
    fn src(&self) -> Src<'_> {
        Src {
            map: self.map.as_slice(),
            ps: self.inner.ps,
            hw: self.meta.pgid,
            arena: &[],
        }
    }

    /// The top-level bucket `name`, if it exists.
    pub fn bucket(&self, name: &[u8]) -> Option<Bucket<'_>> {
        let src = self.src();
        let root = View::Page(src.page(self.meta.root.root));
        match lookup(&src, root, name)? {
            (flags, v) if flags & BUCKET_LEAF_FLAG != 0 => Some(Bucket::from_value(src, v)),
            _ => None,
        }
    }

    /// Names of the top-level buckets, in order.
    pub fn bucket_names(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let src = self.src();
        let root = View::Page(src.page(self.meta.root.root));
        let mut c = Bucket { src, root, seq: 0 }.cursor();
        let mut first = true;
        std::iter::from_fn(move || {
            let r = if first { c.first() } else { c.next() };
            first = false;
            r.map(|(k, _)| k)
        })
    }

    /// The snapshot's transaction id.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// Bytes [`ReadTx::write_to`] produces: high-water mark × page size.
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.inner.ps as u64
    }

    /// Write a complete bbolt file holding exactly this snapshot: both meta pages derived
    /// from this transaction's meta (page 1 with txid - 1), then pages 2.. from the mapping.
    pub fn write_to(&self, w: &mut impl io::Write) -> io::Result<u64> {
        let ps = self.inner.ps;
        let mut meta = self.meta;
        w.write_all(&meta.to_page(0, ps))?;
        meta.txid = meta.txid.wrapping_sub(1);
        w.write_all(&meta.to_page(1, ps))?;
        let end = self.size() as usize;
        let data = self.map.as_slice().get(2 * ps..end).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "snapshot beyond the mapping")
        })?;
        for chunk in data.chunks(1 << 20) {
            w.write_all(chunk)?;
        }
        Ok(end as u64)
    }
}

impl Drop for ReadTx {
    fn drop(&mut self) {
        let mut sh = self.inner.shared.lock();
        if let Some(n) = sh.readers.get_mut(&self.meta.txid) {
            *n -= 1;
            if *n == 0 {
                sh.readers.remove(&self.meta.txid);
            }
        }
    }
}

/// The write transaction. Reads inside it see its own writes. Dropping it without
/// [`WriteTx::commit`] rolls back.
pub struct WriteTx<'db> {
    db: &'db Db,
    w: WriterGuard<'db>,
    ctx: Ctx,
    meta: Meta,
    root: Tree,
    buckets: HashMap<Vec<u8>, Tree>,
    _map: Arc<Map>,
}

struct MapOwner(Arc<Map>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl<'db> WriteTx<'db> {
    pub(crate) fn new(db: &'db Db, w: WriterGuard<'db>, map: Arc<Map>, meta: Meta) -> Self {
        let ctx = Ctx {
            map: Bytes::from_owner(MapOwner(map.clone())),
            ps: db.inner.ps,
            hw: meta.pgid,
            freed: Vec::new(),
        };
        let root = Tree::from_header(meta.root, &Bytes::new());
        let mut meta = meta;
        meta.txid += 1;
        WriteTx {
            db,
            w,
            ctx,
            meta,
            root,
            buckets: HashMap::new(),
            _map: map,
        }
    }

    /// This transaction's id (last committed + 1).
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// Read view of bucket `name`, including this transaction's changes.
    pub fn bucket(&self, name: &[u8]) -> Option<Bucket<'_>> {
        if let Some(t) = self.buckets.get(name) {
            let (src, root) = t.view(&self.ctx);
            return Some(Bucket {
                src,
                root,
                seq: t.sequence,
            });
        }
        let (src, root) = self.root.view(&self.ctx);
        match lookup(&src, root, name)? {
            (flags, v) if flags & BUCKET_LEAF_FLAG != 0 => {
                let src = self.ctx.src(&[]);
                Some(Bucket::from_value(src, v))
            }
            _ => None,
        }
    }

    /// Names of the top-level buckets, in order.
    pub fn bucket_names(&self) -> Vec<Vec<u8>> {
        let (src, root) = self.root.view(&self.ctx);
        let b = Bucket { src, root, seq: 0 };
        let mut c = b.cursor();
        let mut out = Vec::new();
        let mut item = c.first();
        while let Some((k, _)) = item {
            out.push(k.to_vec());
            item = c.next();
        }
        out
    }

    /// Open bucket `name` for writing.
    pub fn bucket_mut(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        if !self.buckets.contains_key(name) {
            let (flags, val) = self
                .root
                .get_bytes(&self.ctx, name)
                .ok_or(Error::BucketNotFound)?;
            if flags & BUCKET_LEAF_FLAG == 0 {
                return Err(Error::IncompatibleValue);
            }
            let tree = Tree::from_header(BucketHeader::decode(&val), &val);
            self.buckets.insert(name.to_vec(), tree);
        }
        let tree = self.buckets.get_mut(name).ok_or(Error::BucketNotFound)?;
        Ok(BucketMut {
            tree,
            ctx: &mut self.ctx,
        })
    }

    /// Create bucket `name`; `BucketExists` if it is already there.
    pub fn create_bucket(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        check_bucket_name(name)?;
        if let Some((flags, _)) = self.root.get(&self.ctx, name) {
            return Err(if flags & BUCKET_LEAF_FLAG != 0 {
                Error::BucketExists
            } else {
                Error::IncompatibleValue
            });
        }
        // Placeholder value: an empty inline bucket (what bbolt writes for a new bucket).
        // Commit replaces it with the real header.
        let mut v = vec![0u8; BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE];
        write_page_header(&mut v[BUCKET_HEADER_SIZE..], 0, LEAF_PAGE, 0, 0);
        self.root.put(
            &mut self.ctx,
            Bytes::copy_from_slice(name),
            Bytes::from(v),
            BUCKET_LEAF_FLAG,
        )?;
        self.buckets.insert(name.to_vec(), Tree::new_empty());
        self.bucket_mut(name)
    }

    /// Open bucket `name` for writing, creating it if needed.
    pub fn create_bucket_if_not_exists(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        check_bucket_name(name)?;
        match self.root.get(&self.ctx, name) {
            Some((flags, _)) if flags & BUCKET_LEAF_FLAG == 0 => Err(Error::IncompatibleValue),
            Some(_) => self.bucket_mut(name),
            None => self.create_bucket(name),
        }
    }

    /// Delete bucket `name` and free all its pages.
    pub fn delete_bucket(&mut self, name: &[u8]) -> Result<()> {
        let (flags, val) = self
            .root
            .get_bytes(&self.ctx, name)
            .ok_or(Error::BucketNotFound)?;
        if flags & BUCKET_LEAF_FLAG == 0 {
            return Err(Error::IncompatibleValue);
        }
        match self.buckets.remove(name) {
            Some(tree) => tree.free_all(&mut self.ctx),
            None => {
                let h = BucketHeader::decode(&val);
                let tree = Tree::from_header(h, &val);
                tree.free_all(&mut self.ctx);
            }
        }
        self.root.delete(&mut self.ctx, name);
        Ok(())
    }

    /// Discard all changes (same as dropping the transaction).
    pub fn rollback(self) {}

    /// Make the changes durable: write dirty pages, fdatasync, write the meta page,
    /// fdatasync. On an I/O failure the database is poisoned.
    pub fn commit(mut self) -> Result<()> {
        let inner = self.db.inner.clone();
        let ps = inner.ps;
        let buckets = std::mem::take(&mut self.buckets);
        let any_dirty = self.root.dirty || buckets.values().any(|t| t.dirty);
        if !any_dirty && self.ctx.freed.is_empty() {
            return Ok(());
        }
        let mut hw = self.meta.pgid;
        let w: &mut Writer = &mut self.w;
        let mut sp = Spiller {
            free: &mut w.free,
            hw: &mut hw,
            ps,
            out: Vec::new(),
            pool: &mut w.pool,
        };

        let mut names: Vec<(Vec<u8>, Tree)> =
            buckets.into_iter().filter(|(_, t)| t.dirty).collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut tree) in names {
            tree.rebalance(&mut self.ctx);
            let root = tree.spill(&mut sp);
            let h = BucketHeader {
                root,
                sequence: tree.sequence,
            };
            let r = self.root.put(
                &mut self.ctx,
                Bytes::from(name),
                Bytes::copy_from_slice(&h.encode()),
                BUCKET_LEAF_FLAG,
            );
            if let Err(e) = r {
                // Pages were already taken from the freelist: the in-memory state no
                // longer matches the file, so refuse further writes.
                inner.poison(&format!("commit aborted: {e}"));
                return Err(e);
            }
        }
        if self.root.dirty {
            self.root.rebalance(&mut self.ctx);
            self.meta.root.root = self.root.spill(&mut sp);
        }

        // Freelist: the old freelist page is freed by this tx; a new one lists every free
        // and pending page (after restart no reader can see the pending ones).
        if self.meta.freelist != PGID_NO_FREELIST {
            let n = self.ctx.src(&[]).span(self.meta.freelist);
            self.ctx.freed.push((self.meta.freelist, n));
        }
        let mut out = std::mem::take(&mut sp.out);
        drop(sp);
        if inner.opts.no_freelist_sync {
            self.meta.freelist = PGID_NO_FREELIST;
        } else {
            let pending: usize = w.pending.values().flatten().map(|&(_, n)| n as usize).sum();
            let freed: usize = self.ctx.freed.iter().map(|&(_, n)| n as usize).sum();
            let upper = w.free.free_count() as usize + pending + freed;
            let pages = freelist_pages(upper, ps);
            let mut sp = Spiller {
                free: &mut w.free,
                hw: &mut hw,
                ps,
                out: Vec::new(),
                pool: &mut w.pool,
            };
            let id = sp.alloc(pages as u64);
            let mut buf = sp.buffer(pages * ps);
            drop(sp);
            let ids = w.all_ids(&self.ctx.freed);
            write_freelist(&mut buf, id, (pages - 1) as u32, &ids);
            out.push((id, buf));
            self.meta.freelist = id;
        }
        self.meta.pgid = hw;

        // Write everything, then the meta.
        let result = write_commit(&inner, &mut out, &self.meta);
        // Keep page buffers for the next commit (bounded).
        for (_, b) in out {
            if w.pool.len() >= POOL_BUFFERS {
                break;
            }
            if b.capacity() <= 16 * ps {
                w.pool.push(b);
            }
        }
        if let Err(e) = result {
            inner.poison(&e.to_string());
            return Err(Error::Io(e));
        }

        // Publish: new readers see the new meta (and a bigger mapping if needed).
        let needed = self.meta.pgid * ps as u64;
        let (cur_map_len, file_len) = {
            let sh = inner.shared.lock();
            (sh.map.len() as u64, sh.file_len)
        };
        let file_len = file_len.max(needed);
        let new_map = if needed > cur_map_len {
            let len = inner.map_len(needed, file_len);
            match Map::new(inner.storage.file(), len as usize) {
                Ok(m) => Some(Arc::new(m)),
                Err(e) => {
                    inner.poison(&format!("remap failed: {e}"));
                    return Err(Error::Io(e));
                }
            }
        } else {
            None
        };
        let freed = std::mem::take(&mut self.ctx.freed);
        if !freed.is_empty() {
            w.pending.entry(self.meta.txid).or_default().extend(freed);
        }
        let mut sh = inner.shared.lock();
        if let Some(m) = new_map {
            sh.map = m;
        }
        sh.meta = self.meta;
        sh.file_len = sh.file_len.max(inner.storage.len().unwrap_or(file_len));
        sh.free_pages = w.free.free_count();
        sh.pending_pages = w.pending_pages();
        Ok(())
    }
}

/// Page buffers kept across commits (at most this many).
const POOL_BUFFERS: usize = 1024;

/// Grow the file if needed, write the pages (coalescing adjacent ones), sync, write the
/// meta page into slot txid % 2, sync.
fn write_commit(inner: &Inner, out: &mut [(Pgid, Vec<u8>)], meta: &Meta) -> io::Result<()> {
    let ps = inner.ps as u64;
    let st = inner.storage.as_ref();
    let needed = meta.pgid * ps;
    let file_len = inner.shared.lock().file_len;
    if needed > file_len {
        let new_len = grow_len(file_len, needed, ps);
        st.set_len(new_len)?;
        inner.shared.lock().file_len = new_len;
    }
    out.sort_unstable_by_key(|(p, _)| *p);
    let mut i = 0;
    let mut run: Vec<&[u8]> = Vec::new();
    while i < out.len() {
        let start = out[i].0;
        let mut j = i + 1;
        let mut end = start + (out[i].1.len() as u64) / ps;
        while j < out.len() && out[j].0 == end {
            end += (out[j].1.len() as u64) / ps;
            j += 1;
        }
        if j == i + 1 {
            st.write_at(&out[i].1, start * ps)?;
        } else {
            run.clear();
            run.extend(out[i..j].iter().map(|(_, b)| &b[..]));
            st.write_vectored_at(&run, start * ps)?;
        }
        i = j;
    }
    if !inner.opts.no_sync {
        st.sync()?;
    }
    let slot = meta.txid % 2;
    st.write_at(&meta.to_page(slot, inner.ps), slot * ps)?;
    if !inner.opts.no_sync {
        st.sync()?;
    }
    Ok(())
}

/// A bucket opened for writing inside a [`WriteTx`].
pub struct BucketMut<'tx> {
    tree: &'tx mut Tree,
    ctx: &'tx mut Ctx,
}

impl BucketMut<'_> {
    /// Insert or replace `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_put_lengths(key.len(), value.len())?;
        self.put_bytes(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value))
    }

    /// Insert or replace `key`, taking ownership of the buffers (no copy).
    pub fn put_bytes(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        check_put_lengths(key.len(), value.len())?;
        self.tree.put(self.ctx, key, value, 0)
    }

    /// Remove `key`; returns whether it was present.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        match self.tree.get(self.ctx, key) {
            None => Ok(false),
            Some((flags, _)) if flags & BUCKET_LEAF_FLAG != 0 => Err(Error::IncompatibleValue),
            Some(_) => Ok(self.tree.delete(self.ctx, key).is_some()),
        }
    }

    /// The value of `key`, including this transaction's writes.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        match self.tree.get(self.ctx, key) {
            Some((flags, v)) if flags & BUCKET_LEAF_FLAG == 0 => Some(v),
            _ => None,
        }
    }

    /// A cursor over the bucket as this transaction sees it.
    pub fn cursor(&self) -> Cursor<'_> {
        let (src, root) = self.tree.view(self.ctx);
        Bucket {
            src,
            root,
            seq: self.tree.sequence,
        }
        .cursor()
    }

    /// The bucket's sequence number.
    pub fn sequence(&self) -> u64 {
        self.tree.sequence
    }

    /// Set the bucket's sequence number.
    pub fn set_sequence(&mut self, seq: u64) {
        if self.tree.sequence != seq {
            self.tree.sequence = seq;
            self.tree.dirty = true;
        }
    }

    /// Increment and return the sequence number (bbolt's `NextSequence`).
    pub fn next_sequence(&mut self) -> u64 {
        self.tree.sequence += 1;
        self.tree.dirty = true;
        self.tree.sequence
    }

    /// How full (0.1..=1.0) split pages are filled; 1.0 (default) splits evenly into
    /// pages filled as much as possible — good for appends, like bbolt's FillPercent.
    pub fn set_fill_percent(&mut self, fill: f64) {
        self.tree.fill = fill.clamp(0.1, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_length_limits() {
        assert!(matches!(check_put_lengths(0, 0), Err(Error::KeyEmpty)));
        assert!(check_put_lengths(1, 0).is_ok());
        assert!(check_put_lengths(MAX_KEY_SIZE, MAX_VALUE_SIZE).is_ok());
        assert!(matches!(
            check_put_lengths(MAX_KEY_SIZE + 1, 0),
            Err(Error::KeyTooLarge)
        ));
        assert!(matches!(
            check_put_lengths(1, MAX_VALUE_SIZE + 1),
            Err(Error::ValueTooLarge)
        ));
        assert!(matches!(
            check_put_lengths(1, usize::MAX),
            Err(Error::ValueTooLarge)
        ));
        assert_eq!(MAX_VALUE_SIZE, (1 << 31) - 2);
    }
}
