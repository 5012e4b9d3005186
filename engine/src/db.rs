//! The database handle: open/recovery, the shared state readers pin, the writer lock,
//! statistics, the consistency check and compaction.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::check::{CheckError, Walker};
use crate::cursor::Src;
use crate::error::{Error, Result};
use crate::format::{
    freelist_bytes, write_freelist, write_page_header, BucketHeader, Meta, MetaFault, PageRef,
    Pgid, LEAF_PAGE, MAGIC, PGID_NO_FREELIST, VERSION,
};
use crate::freelist::{Freelist, SpanFreelist};
use crate::map::{lock_file, os_page_size, Map};
use crate::storage::{FileStorage, Storage};
use crate::tx::{ReadTx, WriteTx};

/// How to open a database.
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a new file (default: the OS page size). Existing files keep theirs.
    pub page_size: Option<usize>,
    /// Map at least this many bytes up front, so the file can grow without remapping.
    pub initial_mmap_size: u64,
    /// Open read-only (shared lock; `begin_write` fails with `DatabaseReadOnly`).
    pub read_only: bool,
    /// Skip fdatasync (tests and benchmarks only: a crash can lose or corrupt data).
    pub no_sync: bool,
    /// Do not persist the freelist (meta freelist = 0xFFFF_FFFF_FFFF_FFFF); it is rebuilt
    /// by scanning at open, as etcd configures bbolt.
    pub no_freelist_sync: bool,
    /// How long `open` keeps retrying while another holder has the file locked (bbolt's
    /// `Timeout`) before it fails with [`Error::Locked`]; zero tries once. The default, one
    /// second, rides out short-lived holders such as a child process forked by another
    /// thread that still carries a copy of a closed descriptor until it execs.
    pub lock_timeout: std::time::Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            page_size: None,
            initial_mmap_size: 0,
            read_only: false,
            no_sync: false,
            no_freelist_sync: false,
            lock_timeout: std::time::Duration::from_secs(1),
        }
    }
}

/// A snapshot of the database's space accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// File length in bytes.
    pub file_size: u64,
    pub page_size: usize,
    /// High-water mark: pages in use or free below it.
    pub high_water: u64,
    /// Free pages, reusable now.
    pub free_pages: u64,
    /// Pages freed by commits that older open readers may still see.
    pub pending_pages: u64,
    /// Bytes of reachable pages: (high_water - free - pending) * page_size.
    pub in_use_bytes: u64,
    /// Last committed transaction id.
    pub txid: u64,
    /// Bytes currently mapped.
    pub mmap_size: u64,
    /// Open read transactions.
    pub open_readers: usize,
}

pub(crate) struct Shared {
    pub map: Arc<Map>,
    pub meta: Meta,
    /// Open readers by snapshot txid.
    pub readers: BTreeMap<u64, usize>,
    pub poison: Option<String>,
    pub file_len: u64,
    pub free_pages: u64,
    pub pending_pages: u64,
}

pub(crate) struct Writer {
    pub free: SpanFreelist,
    /// Pages freed by the commit with this txid, not reusable while an older reader lives.
    pub pending: BTreeMap<u64, Vec<(Pgid, u64)>>,
    /// Page buffers recycled across commits.
    pub pool: Vec<Vec<u8>>,
}

impl Writer {
    pub(crate) fn pending_pages(&self) -> u64 {
        self.pending.values().flatten().map(|&(_, n)| n).sum()
    }

    /// Move to the free set every pending batch no open reader can see.
    pub(crate) fn release(&mut self, min_reader: u64) {
        while let Some((&txid, _)) = self.pending.first_key_value() {
            if txid > min_reader {
                break;
            }
            if let Some(spans) = self.pending.remove(&txid) {
                for (s, n) in spans {
                    self.free.free(s, n);
                }
            }
        }
    }

    /// All free and pending page ids, sorted.
    pub(crate) fn all_ids(&self, extra: &[(Pgid, u64)]) -> Vec<Pgid> {
        let mut ids = self.free.ids();
        for &(s, n) in self.pending.values().flatten().chain(extra) {
            ids.extend(s..s + n);
        }
        ids.sort_unstable();
        ids
    }
}

/// The single-writer lock. The writer state moves into the write transaction (so a
/// `WriteTx` is `Send`) and comes back when it ends.
pub(crate) struct WriterSlot {
    state: Mutex<Option<Writer>>,
    cv: Condvar,
}

impl WriterSlot {
    fn new(w: Writer) -> WriterSlot {
        WriterSlot {
            state: Mutex::new(Some(w)),
            cv: Condvar::new(),
        }
    }

    /// Wait for the writer state and take it; it returns when the guard drops.
    pub(crate) fn acquire(&self) -> WriterGuard<'_> {
        let mut g = self.state.lock();
        loop {
            if let Some(w) = g.take() {
                return WriterGuard {
                    slot: self,
                    w: Some(w),
                };
            }
            self.cv.wait(&mut g);
        }
    }
}

/// Exclusive ownership of the writer state; gives it back on drop.
pub(crate) struct WriterGuard<'a> {
    slot: &'a WriterSlot,
    w: Option<Writer>,
}

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        self.w.as_ref().expect("writer state present until drop")
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        self.w.as_mut().expect("writer state present until drop")
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.w.take() {
            *self.slot.state.lock() = Some(w);
            self.slot.cv.notify_one();
        }
    }
}

pub(crate) struct Inner {
    pub path: PathBuf,
    pub storage: Box<dyn Storage>,
    pub opts: Options,
    pub ps: usize,
    pub shared: Mutex<Shared>,
    pub writer: WriterSlot,
}

impl Inner {
    pub(crate) fn poison(&self, what: &str) {
        let mut sh = self.shared.lock();
        if sh.poison.is_none() {
            sh.poison = Some(what.to_string());
        }
    }

    /// Size of the mapping for a file needing `needed` bytes.
    pub(crate) fn map_len(&self, needed: u64, file_len: u64) -> u64 {
        grow_len(
            self.opts.initial_mmap_size.max(file_len),
            needed,
            self.ps as u64,
        )
    }
}

/// Growth policy: double up to 1 GiB, then 1 GiB steps; at least 32 KiB, page aligned.
pub(crate) fn grow_len(current: u64, needed: u64, ps: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let mut n = current.max(32 * 1024);
    while n < needed {
        n = if n < GIB { n * 2 } else { n + GIB };
    }
    n.div_ceil(ps) * ps
}

/// A database file. `Send + Sync` and cheap to clone (clones share one open file); many
/// read transactions, one write transaction at a time. The file stays open (and locked)
/// until every clone and every read transaction is dropped.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn meta_error(f: MetaFault) -> Error {
    match f {
        MetaFault::Magic => Error::Invalid,
        MetaFault::Version => Error::VersionMismatch,
        MetaFault::Checksum => Error::Checksum,
    }
}

impl Db {
    /// Open (or create) the database file at `path`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let path = path.as_ref();
        let mut oo = OpenOptions::new();
        oo.read(true);
        if !opts.read_only {
            // etcd's PrivateFileMode: only the owner reads the data.
            std::os::unix::fs::OpenOptionsExt::mode(&mut oo, 0o600);
            oo.write(true).create(true);
        }
        let file = oo.open(path)?;
        Db::open_with_storage(path, Box::new(FileStorage::new(file)), opts)
    }

    /// Open with a custom [`Storage`] (fault injection in tests). `path` is informational.
    pub fn open_with_storage(
        path: impl AsRef<Path>,
        storage: Box<dyn Storage>,
        opts: Options,
    ) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        let give_up = std::time::Instant::now() + opts.lock_timeout;
        loop {
            match lock_file(storage.file(), !opts.read_only) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= give_up {
                        return Err(Error::Locked);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
        let mut file_len = storage.len()?;
        if file_len == 0 {
            if opts.read_only {
                return Err(Error::Invalid);
            }
            let ps = opts.page_size.unwrap_or_else(os_page_size);
            if !(1024..=65536).contains(&ps) || !ps.is_power_of_two() {
                return Err(Error::Invalid);
            }
            init_file(storage.as_ref(), ps, opts.no_sync)?;
            file_len = storage.len()?;
        }
        let (meta, ps) = read_meta(storage.as_ref(), file_len)?;
        let map_len = grow_len(opts.initial_mmap_size.max(file_len), file_len, ps as u64);
        let map = Arc::new(Map::new(storage.file(), map_len as usize)?);
        let free = {
            let src = Src {
                map: map.as_slice(),
                ps,
                hw: meta.pgid,
                arena: &[],
            };
            let ids = if meta.freelist == PGID_NO_FREELIST {
                let mut w = Walker::new(src, &meta);
                w.keys = false;
                w.walk(&meta);
                w.unreachable()
            } else {
                let p = src.page(meta.freelist);
                if p.flags() & crate::format::FREELIST_PAGE == 0 {
                    return Err(Error::Corrupted(format!(
                        "page {} is not a freelist page",
                        meta.freelist
                    )));
                }
                let ids = p.freelist_ids();
                if let Some(&bad) = ids.iter().find(|&&id| id < 2 || id >= meta.pgid) {
                    return Err(Error::Corrupted(format!("freelist holds page {bad}")));
                }
                ids
            };
            SpanFreelist::from_ids(&ids)
        };
        let free_pages = free.free_count();
        let inner = Inner {
            path,
            storage,
            ps,
            shared: Mutex::new(Shared {
                map,
                meta,
                readers: BTreeMap::new(),
                poison: None,
                file_len,
                free_pages,
                pending_pages: 0,
            }),
            writer: WriterSlot::new(Writer {
                free,
                pending: BTreeMap::new(),
                pool: Vec::new(),
            }),
            opts,
        };
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    /// Start a read transaction on the latest committed snapshot. Never blocks on the writer.
    pub fn begin_read(&self) -> Result<ReadTx> {
        let (map, meta) = {
            let mut sh = self.inner.shared.lock();
            let txid = sh.meta.txid;
            *sh.readers.entry(txid).or_default() += 1;
            (sh.map.clone(), sh.meta)
        };
        Ok(ReadTx::new(self.inner.clone(), map, meta))
    }

    /// Start the write transaction (waits for the current writer to finish).
    pub fn begin_write(&self) -> Result<WriteTx<'_>> {
        if self.inner.opts.read_only {
            return Err(Error::DatabaseReadOnly);
        }
        let mut w = self.inner.writer.acquire();
        let (map, meta) = {
            let mut sh = self.inner.shared.lock();
            if let Some(p) = &sh.poison {
                return Err(Error::Poisoned(p.clone()));
            }
            let min_reader = sh.readers.keys().next().copied().unwrap_or(u64::MAX);
            w.release(min_reader);
            sh.free_pages = w.free.free_count();
            sh.pending_pages = w.pending_pages();
            (sh.map.clone(), sh.meta)
        };
        Ok(WriteTx::new(self, w, map, meta))
    }

    /// Space accounting (does not wait for the writer).
    pub fn stats(&self) -> Stats {
        let sh = self.inner.shared.lock();
        let ps = self.inner.ps as u64;
        let used = sh
            .meta
            .pgid
            .saturating_sub(sh.free_pages + sh.pending_pages);
        Stats {
            file_size: sh.file_len,
            page_size: self.inner.ps,
            high_water: sh.meta.pgid,
            free_pages: sh.free_pages,
            pending_pages: sh.pending_pages,
            in_use_bytes: used * ps,
            txid: sh.meta.txid,
            mmap_size: sh.map.len() as u64,
            open_readers: sh.readers.values().sum(),
        }
    }

    /// Walk every reachable page and the freelist of the latest commit; returns every
    /// inconsistency found (empty = consistent). Waits for the current writer; do not call
    /// it while holding a `WriteTx` on the same thread.
    pub fn check(&self) -> Vec<CheckError> {
        let w = self.inner.writer.acquire();
        let (map, meta) = {
            let sh = self.inner.shared.lock();
            (sh.map.clone(), sh.meta)
        };
        let ps = self.inner.ps;
        let src = Src {
            map: map.as_slice(),
            ps,
            hw: meta.pgid,
            arena: &[],
        };
        let ids = w.all_ids(&[]);
        let mut walker = Walker::new(src, &meta);
        walker.mark_free(&ids);
        walker.walk(&meta);
        walker.report_unreachable();
        let mut errors = std::mem::take(&mut walker.errors);
        if meta.freelist != PGID_NO_FREELIST {
            let mut on_disk = src.page(meta.freelist).freelist_ids();
            on_disk.sort_unstable();
            if on_disk != ids {
                errors.push(CheckError::FreelistMismatch {
                    on_disk: on_disk.len(),
                    in_memory: ids.len(),
                });
            }
        }
        errors
    }

    /// Copy every bucket into a fresh, defragmented database file at `path` (which must
    /// not exist or be empty), with the same page size.
    pub fn compact_into(&self, path: impl AsRef<Path>) -> Result<()> {
        let dst = Db::open(
            path,
            Options {
                page_size: Some(self.inner.ps),
                no_freelist_sync: self.inner.opts.no_freelist_sync,
                ..Options::default()
            },
        )?;
        if dst.begin_read()?.bucket_names().next().is_some() {
            return Err(Error::BucketExists);
        }
        let src = self.begin_read()?;
        const BATCH_BYTES: usize = 8 << 20;
        for name in src.bucket_names() {
            let Some(b) = src.bucket(name) else { continue };
            let mut tx = dst.begin_write()?;
            {
                let mut bm = tx.create_bucket(name)?;
                bm.set_sequence(b.sequence());
            }
            let mut pending = 0usize;
            let mut c = b.cursor();
            let mut item = c.first();
            while let Some((k, v)) = item {
                let mut bm = tx.bucket_mut(name)?;
                bm.put(k, v)?;
                pending += k.len() + v.len();
                if pending >= BATCH_BYTES {
                    tx.commit()?;
                    tx = dst.begin_write()?;
                    pending = 0;
                }
                item = c.next();
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// The path this database was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.shared.lock().file_len
    }

    /// Page size of this file.
    pub fn page_size(&self) -> usize {
        self.inner.ps
    }
}

/// Write the four pages of an empty database: two metas, an empty freelist, an empty
/// root leaf.
fn init_file(storage: &dyn Storage, ps: usize, no_sync: bool) -> Result<()> {
    let mut buf = vec![0u8; ps * 4];
    for i in 0..2u64 {
        let meta = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: ps as u32,
            flags: 0,
            root: BucketHeader {
                root: 3,
                sequence: 0,
            },
            freelist: 2,
            pgid: 4,
            txid: i,
            checksum: 0,
        };
        let page = meta.to_page(i, ps);
        buf[i as usize * ps..(i as usize + 1) * ps].copy_from_slice(&page);
    }
    write_freelist(&mut buf[2 * ps..3 * ps], 2, 0, &[]);
    write_page_header(&mut buf[3 * ps..4 * ps], 3, LEAF_PAGE, 0, 0);
    storage.write_at(&buf, 0)?;
    if !no_sync {
        storage.sync()?;
    }
    Ok(())
}

/// Find the page size and pick the valid meta page with the highest txid.
fn read_meta(storage: &dyn Storage, file_len: u64) -> Result<(Meta, usize)> {
    let read_page = |off: u64, len: usize| -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        if off + len as u64 > file_len {
            return Err(Error::Invalid);
        }
        storage.read_at(&mut b, off)?;
        Ok(b)
    };
    if file_len < 2 * 1024 {
        return Err(Error::Invalid);
    }
    // Page size from meta 0 if valid, else probe meta 1 at common page sizes.
    let first = read_page(0, (file_len as usize).min(4096))?;
    let m0 = Meta::decode(&first);
    let mut first_fault = None;
    let ps = match m0.validate() {
        Ok(()) => m0.page_size as usize,
        Err(f) => {
            first_fault = Some(f);
            let mut found = None;
            for ps in [4096usize, 8192, 16384, 32768, 65536, 1024, 2048] {
                if let Ok(p) = read_page(ps as u64, ps) {
                    let m = Meta::decode(&p);
                    if m.validate().is_ok() && m.page_size as usize == ps {
                        found = Some(ps);
                        break;
                    }
                }
            }
            match found {
                Some(ps) => ps,
                None => return Err(meta_error(first_fault.unwrap_or(MetaFault::Magic))),
            }
        }
    };
    if !(1024..=65536).contains(&ps) || !ps.is_power_of_two() {
        return Err(Error::Invalid);
    }
    let mut best: Option<Meta> = None;
    let mut fault: Option<Error> = None;
    for id in 0..2u64 {
        let page = match read_page(id * ps as u64, ps) {
            Ok(p) => p,
            Err(e) => {
                fault.get_or_insert(e);
                continue;
            }
        };
        let m = Meta::decode(&page);
        if let Err(f) = m.validate() {
            fault.get_or_insert(meta_error(f));
            continue;
        }
        let needed = m.pgid.saturating_mul(ps as u64);
        if m.page_size as usize != ps
            || m.pgid < 3
            || m.root.root < 2
            || m.root.root >= m.pgid
            || (m.freelist != PGID_NO_FREELIST && (m.freelist < 2 || m.freelist >= m.pgid))
        {
            fault.get_or_insert(Error::Corrupted(format!(
                "meta page {id} fields out of range"
            )));
            continue;
        }
        if needed > file_len {
            fault.get_or_insert(Error::Truncated { file_len, needed });
            continue;
        }
        if best.is_none_or(|b| m.txid > b.txid) {
            best = Some(m);
        }
    }
    let _ = first_fault;
    match best {
        Some(m) => Ok((m, ps)),
        None => Err(fault.unwrap_or(Error::Invalid)),
    }
}

/// Bytes needed by a freelist page listing `n` ids, in whole pages.
pub(crate) fn freelist_pages(n: usize, ps: usize) -> usize {
    freelist_bytes(n).div_ceil(ps).max(1)
}

#[allow(dead_code)]
pub(crate) fn page_of(map: &[u8], ps: usize, pgid: Pgid) -> PageRef<'_> {
    let s = pgid as usize * ps;
    PageRef::new(map.get(s..s + ps).unwrap_or(&[]))
}
