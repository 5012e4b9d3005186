//! Consistency walk: every page reachable from the meta page, the freelist, key order.
//! Also used at open to rebuild the free set of a file written without a freelist.

use std::fmt;

use crate::cursor::Src;
use crate::format::{
    BucketHeader, Meta, PageRef, Pgid, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, PGID_NO_FREELIST,
};

/// One inconsistency found by [`crate::Db::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// A page id at or beyond the high-water mark is referenced.
    OutOfBounds { pgid: Pgid, high_water: Pgid },
    /// A page is referenced more than once (tree, freelist page or meta).
    MultipleReferences { pgid: Pgid },
    /// A page is both reachable and on the freelist.
    ReachableFreed { pgid: Pgid },
    /// A page below the high-water mark is neither reachable nor free.
    Unreachable { pgid: Pgid },
    /// A page id appears twice in the free/pending set.
    DoubleFreed { pgid: Pgid },
    /// A free page id lies at or beyond the high-water mark.
    FreedOutOfBounds { pgid: Pgid },
    /// A tree page is not a branch or leaf page.
    InvalidPageType { pgid: Pgid, flags: u16 },
    /// The page header's id differs from its position.
    PageIdMismatch { pgid: Pgid, found: Pgid },
    /// Keys out of order within a page or outside the range given by the parent.
    KeyOrder { pgid: Pgid, index: usize },
    /// A non-root page with no elements.
    EmptyPage { pgid: Pgid },
    /// The persisted freelist differs from the in-memory free + pending set.
    FreelistMismatch { on_disk: usize, in_memory: usize },
    /// Tree deeper than any sane tree (a cycle).
    TooDeep { pgid: Pgid },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::OutOfBounds { pgid, high_water } => {
                write!(f, "page {pgid}: out of bounds: {high_water}")
            }
            CheckError::MultipleReferences { pgid } => {
                write!(f, "page {pgid}: multiple references")
            }
            CheckError::ReachableFreed { pgid } => write!(f, "page {pgid}: reachable freed"),
            CheckError::Unreachable { pgid } => write!(f, "page {pgid}: unreachable unfreed"),
            CheckError::DoubleFreed { pgid } => write!(f, "page {pgid}: already freed"),
            CheckError::FreedOutOfBounds { pgid } => {
                write!(f, "page {pgid}: freed beyond high water")
            }
            CheckError::InvalidPageType { pgid, flags } => {
                write!(f, "page {pgid}: invalid type: flags {flags:#x}")
            }
            CheckError::PageIdMismatch { pgid, found } => {
                write!(f, "page {pgid}: header says page {found}")
            }
            CheckError::KeyOrder { pgid, index } => {
                write!(f, "page {pgid}: key {index} out of order")
            }
            CheckError::EmptyPage { pgid } => write!(f, "page {pgid}: empty non-root page"),
            CheckError::FreelistMismatch { on_disk, in_memory } => write!(
                f,
                "freelist: {on_disk} ids on disk, {in_memory} free+pending in memory, sets differ"
            ),
            CheckError::TooDeep { pgid } => write!(f, "page {pgid}: tree too deep (cycle?)"),
        }
    }
}

const NONE: u8 = 0;
const REACHABLE: u8 = 1;
const FREE: u8 = 2;

pub(crate) struct Walker<'a> {
    src: Src<'a>,
    hw: Pgid,
    state: Vec<u8>,
    pub errors: Vec<CheckError>,
    /// Check key order too (off when only reachability is needed, e.g. at open).
    pub keys: bool,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(src: Src<'a>, meta: &Meta) -> Walker<'a> {
        Walker {
            src,
            hw: meta.pgid,
            state: vec![NONE; meta.pgid as usize],
            errors: Vec::new(),
            keys: true,
        }
    }

    fn mark(&mut self, pgid: Pgid) -> bool {
        if pgid >= self.hw {
            self.errors.push(CheckError::OutOfBounds {
                pgid,
                high_water: self.hw,
            });
            return false;
        }
        let s = &mut self.state[pgid as usize];
        match *s {
            REACHABLE => {
                self.errors.push(CheckError::MultipleReferences { pgid });
                false
            }
            FREE => {
                self.errors.push(CheckError::ReachableFreed { pgid });
                *s = REACHABLE;
                true
            }
            _ => {
                *s = REACHABLE;
                true
            }
        }
    }

    /// Mark page `pgid` and its overflow pages; false if `pgid` itself was already
    /// reachable or out of bounds. An overflow reaching past the high-water mark is one
    /// error, not one per page.
    fn mark_span(&mut self, pgid: Pgid) -> bool {
        let want = u64::from(self.src.page(pgid).overflow()) + 1;
        let span = self.src.span(pgid);
        if want > span {
            self.errors.push(CheckError::OutOfBounds {
                pgid: pgid.saturating_add(want - 1),
                high_water: self.hw,
            });
        }
        let fresh = self.mark(pgid);
        for i in 1..span {
            self.mark(pgid + i);
        }
        fresh
    }

    pub(crate) fn mark_free(&mut self, ids: &[Pgid]) {
        for &pgid in ids {
            if pgid >= self.hw {
                self.errors.push(CheckError::FreedOutOfBounds { pgid });
                continue;
            }
            let s = &mut self.state[pgid as usize];
            match *s {
                FREE => self.errors.push(CheckError::DoubleFreed { pgid }),
                REACHABLE => self.errors.push(CheckError::ReachableFreed { pgid }),
                _ => *s = FREE,
            }
        }
    }

    /// Mark meta pages, the freelist page(s) and every tree page reachable from `meta`.
    pub(crate) fn walk(&mut self, meta: &Meta) {
        self.mark(0);
        self.mark(1);
        if meta.freelist != PGID_NO_FREELIST {
            self.mark_span(meta.freelist);
        }
        self.walk_tree(meta.root.root, None, None, 0, true);
    }

    /// Free page ids implied by reachability (pages 2..hw not reachable).
    pub(crate) fn unreachable(&self) -> Vec<Pgid> {
        (2..self.hw)
            .filter(|&p| self.state[p as usize] == NONE)
            .collect()
    }

    pub(crate) fn report_unreachable(&mut self) {
        for p in 0..self.hw {
            if self.state[p as usize] == NONE {
                self.errors.push(CheckError::Unreachable { pgid: p });
            }
        }
    }

    fn walk_tree(
        &mut self,
        pgid: Pgid,
        lo: Option<&'a [u8]>,
        hi: Option<&'a [u8]>,
        depth: usize,
        root: bool,
    ) {
        if depth > 64 {
            self.errors.push(CheckError::TooDeep { pgid });
            return;
        }
        let p = self.src.page(pgid);
        if p.data.is_empty() {
            self.mark(pgid);
            return;
        }
        if !self.mark_span(pgid) {
            return;
        }
        if p.id() != pgid {
            self.errors.push(CheckError::PageIdMismatch {
                pgid,
                found: p.id(),
            });
        }
        if !p.is_branch() && !p.is_leaf() {
            self.errors.push(CheckError::InvalidPageType {
                pgid,
                flags: p.flags(),
            });
            return;
        }
        if p.count() == 0 && !root {
            self.errors.push(CheckError::EmptyPage { pgid });
        }
        if self.keys {
            self.check_keys(pgid, p, lo, hi);
        }
        if p.is_branch() {
            for i in 0..p.count() {
                let k = p.key(i);
                let next = if i + 1 < p.count() {
                    Some(p.key(i + 1))
                } else {
                    hi
                };
                self.walk_tree(p.child(i), Some(k), next, depth + 1, false);
            }
        } else {
            self.walk_buckets(p, depth);
        }
    }

    fn check_keys(&mut self, pgid: Pgid, p: PageRef<'a>, lo: Option<&[u8]>, hi: Option<&[u8]>) {
        let mut prev: Option<&[u8]> = lo;
        for i in 0..p.count() {
            let k = p.key(i);
            let bad_prev = match prev {
                Some(pk) => {
                    if i == 0 {
                        pk > k
                    } else {
                        pk >= k
                    }
                }
                None => false,
            };
            let bad_hi = matches!(hi, Some(h) if k >= h);
            if bad_prev || bad_hi {
                self.errors.push(CheckError::KeyOrder { pgid, index: i });
            }
            prev = Some(k);
        }
    }

    fn walk_buckets(&mut self, p: PageRef<'a>, depth: usize) {
        for i in 0..p.count() {
            let (flags, _, v) = p.leaf(i);
            if flags & BUCKET_LEAF_FLAG == 0 {
                continue;
            }
            let h = BucketHeader::decode(v);
            if h.root == 0 {
                let inline = PageRef::new(v.get(BUCKET_HEADER_SIZE..).unwrap_or(&[]));
                if self.keys {
                    self.check_keys(p.id(), inline, None, None);
                }
                self.walk_buckets(inline, depth + 1);
            } else {
                self.walk_tree(h.root, None, None, depth + 1, true);
            }
        }
    }
}
