//! Read access to a tree: [`Bucket`] lookups and [`Cursor`] iteration, over mapped pages
//! (read transactions) or a mix of pages and dirty nodes (inside a write transaction).
//! Lookups binary-search the mapped page bytes in place: no copies, no allocation.

use crate::format::{PageRef, Pgid, BUCKET_LEAF_FLAG};
use crate::node::{Child, Node};

/// What a tree reads from: the mapping, the page size, the snapshot's high-water mark
/// (pages at or beyond it read as empty) and the writer's dirty nodes.
#[derive(Clone, Copy)]
pub(crate) struct Src<'a> {
    pub map: &'a [u8],
    pub ps: usize,
    pub hw: Pgid,
    pub arena: &'a [Node],
}

impl<'a> Src<'a> {
    /// The page `pgid` including its overflow pages; an empty view when out of bounds.
    #[inline]
    pub(crate) fn page(&self, pgid: Pgid) -> PageRef<'a> {
        if pgid >= self.hw {
            return PageRef::new(&[]);
        }
        let start = pgid as usize * self.ps;
        let map: &'a [u8] = self.map;
        let Some(first) = map.get(start..start + self.ps) else {
            return PageRef::new(&[]);
        };
        let overflow = PageRef::new(first).overflow() as usize;
        if overflow == 0 {
            return PageRef::new(first);
        }
        let end = (pgid as usize + 1 + overflow).min(self.hw as usize) * self.ps;
        PageRef::new(map.get(start..end).unwrap_or(first))
    }

    /// Number of physical pages of page `pgid` (1 + overflow), clamped to the high-water
    /// mark so a corrupt overflow count cannot reach beyond the snapshot.
    pub(crate) fn span(&self, pgid: Pgid) -> u64 {
        let p = self.page(pgid);
        (u64::from(p.overflow()) + 1)
            .min(self.hw.saturating_sub(pgid))
            .max(1)
    }

    #[inline]
    pub(crate) fn resolve(&self, child: Child) -> View<'a> {
        match child {
            Child::Page(p) => View::Page(self.page(p)),
            Child::Node(i) => match self.arena.get(i) {
                Some(n) => View::Node(n),
                None => View::Page(PageRef::new(&[])),
            },
        }
    }
}

/// One tree node as seen by a reader.
#[derive(Clone, Copy)]
pub(crate) enum View<'a> {
    Page(PageRef<'a>),
    Node(&'a Node),
}

impl<'a> View<'a> {
    /// Same node (same bytes), for cycle detection.
    fn same(&self, other: &View<'_>) -> bool {
        match (self, other) {
            (View::Page(a), View::Page(b)) => {
                !a.data.is_empty() && std::ptr::eq(a.data.as_ptr(), b.data.as_ptr())
            }
            (View::Node(a), View::Node(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }

    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        match self {
            View::Page(p) => !p.is_branch(),
            View::Node(n) => n.leaf,
        }
    }
    #[inline]
    pub(crate) fn count(&self) -> usize {
        match self {
            View::Page(p) => {
                if p.is_branch() || p.is_leaf() {
                    p.count()
                } else {
                    0
                }
            }
            View::Node(n) => n.inodes.len(),
        }
    }
    #[inline]
    pub(crate) fn leaf(&self, i: usize) -> (u32, &'a [u8], &'a [u8]) {
        match self {
            View::Page(p) => p.leaf(i),
            View::Node(n) => {
                let ino = &n.inodes[i];
                (ino.flags, &ino.key[..], &ino.val[..])
            }
        }
    }
    #[inline]
    pub(crate) fn child(&self, src: &Src<'a>, i: usize) -> View<'a> {
        match self {
            View::Page(p) => View::Page(src.page(p.child(i))),
            View::Node(n) => src.resolve(n.inodes[i].child),
        }
    }
    #[inline]
    pub(crate) fn lower_bound(&self, key: &[u8]) -> usize {
        match self {
            View::Page(p) => p.lower_bound(key),
            View::Node(n) => n.lower_bound(key),
        }
    }
    #[inline]
    pub(crate) fn branch_index(&self, key: &[u8]) -> usize {
        match self {
            View::Page(p) => p.branch_index(key),
            View::Node(n) => n.branch_index(key),
        }
    }
}

/// Descend to the leaf that would hold `key`; returns (flags, value) on an exact match.
#[inline]
pub(crate) fn lookup<'a>(src: &Src<'a>, root: View<'a>, key: &[u8]) -> Option<(u32, &'a [u8])> {
    let mut v = root;
    let mut depth = 0;
    while !v.is_leaf() {
        if v.count() == 0 || depth > 64 {
            return None;
        }
        let i = v.branch_index(key);
        v = v.child(src, i);
        depth += 1;
    }
    let i = v.lower_bound(key);
    if i < v.count() {
        let (flags, k, val) = v.leaf(i);
        if k == key {
            return Some((flags, val));
        }
    }
    None
}

/// A read-only handle on one bucket, valid for the transaction that produced it.
#[derive(Clone, Copy)]
pub struct Bucket<'a> {
    pub(crate) src: Src<'a>,
    pub(crate) root: View<'a>,
    pub(crate) seq: u64,
}

impl<'a> Bucket<'a> {
    /// Build from a bucket value (header + optional inline page).
    pub(crate) fn from_value(src: Src<'a>, value: &'a [u8]) -> Bucket<'a> {
        let hdr = crate::format::BucketHeader::decode(value);
        let root = if hdr.root == 0 {
            View::Page(PageRef::new(
                value
                    .get(crate::format::BUCKET_HEADER_SIZE..)
                    .unwrap_or(&[]),
            ))
        } else {
            View::Page(src.page(hdr.root))
        };
        Bucket {
            src,
            root,
            seq: hdr.sequence,
        }
    }

    /// The bucket's sequence number (bbolt's `Bucket.Sequence`).
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// The value stored under `key` (`None` if absent or if `key` names a nested bucket).
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        match lookup(&self.src, self.root, key) {
            Some((flags, v)) if flags & BUCKET_LEAF_FLAG == 0 => Some(v),
            _ => None,
        }
    }

    /// A cursor over the bucket's keys in ascending byte order.
    pub fn cursor(&self) -> Cursor<'a> {
        Cursor {
            src: self.src,
            root: self.root,
            stack: Vec::with_capacity(8),
        }
    }
}

/// Ordered iteration over a bucket. Every positioning method returns the entry it lands
/// on, or `None` when it runs off either end. Entries holding nested buckets are returned
/// with their raw bucket header as the value.
pub struct Cursor<'a> {
    src: Src<'a>,
    root: View<'a>,
    stack: Vec<(View<'a>, usize)>,
}

#[allow(clippy::should_implement_trait)] // next/prev mirror bbolt's Cursor API
impl<'a> Cursor<'a> {
    fn current(&self) -> Option<(&'a [u8], &'a [u8])> {
        let &(v, i) = self.stack.last()?;
        if i < v.count() {
            let (_, k, val) = v.leaf(i);
            Some((k, val))
        } else {
            None
        }
    }

    /// From the top of the stack, descend to the first (or last) leaf entry.
    fn descend(&mut self, last: bool) {
        while let Some(&(v, i)) = self.stack.last() {
            if v.is_leaf() || self.stack.len() > 64 || i >= v.count() {
                return;
            }
            let mut c = v.child(&self.src, i);
            if self.stack.iter().any(|(a, _)| a.same(&c)) {
                // A child pointing back at an ancestor (corrupt file): treat as empty.
                c = View::Page(PageRef::new(&[]));
            }
            let ci = if last { c.count().saturating_sub(1) } else { 0 };
            self.stack.push((c, ci));
        }
    }

    fn at_valid_leaf(&self) -> bool {
        match self.stack.last() {
            Some(&(v, i)) => v.is_leaf() && i < v.count(),
            None => false,
        }
    }

    /// Position on the first entry.
    pub fn first(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        self.stack.clear();
        self.stack.push((self.root, 0));
        self.descend(false);
        if !self.at_valid_leaf() {
            return self.advance();
        }
        self.current()
    }

    /// Position on the last entry.
    pub fn last(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        self.stack.clear();
        self.stack
            .push((self.root, self.root.count().saturating_sub(1)));
        self.descend(true);
        if !self.at_valid_leaf() {
            return self.retreat();
        }
        self.current()
    }

    /// Position on the first entry with key >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
        self.stack.clear();
        let mut v = self.root;
        while !v.is_leaf() && self.stack.len() < 64 {
            if v.count() == 0 {
                break;
            }
            let i = v.branch_index(key);
            self.stack.push((v, i));
            v = v.child(&self.src, i);
        }
        let i = v.lower_bound(key);
        self.stack.push((v, i));
        if !self.at_valid_leaf() {
            return self.advance();
        }
        self.current()
    }

    /// Move to the next entry.
    pub fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.stack.is_empty() {
            return None;
        }
        if let Some(top) = self.stack.last_mut() {
            top.1 += 1;
        }
        if !self.at_valid_leaf() {
            return self.advance();
        }
        self.current()
    }

    /// Move to the previous entry.
    pub fn prev(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.stack.is_empty() {
            return None;
        }
        self.retreat()
    }

    /// The top leaf is exhausted (index at/after its end): climb to the next subtree with
    /// entries left and descend to its first entry, skipping empty leaves.
    fn advance(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        loop {
            self.stack.pop();
            loop {
                let top = self.stack.last_mut()?;
                if top.1 + 1 < top.0.count() {
                    top.1 += 1;
                    break;
                }
                self.stack.pop();
            }
            self.descend(false);
            if self.at_valid_leaf() {
                return self.current();
            }
        }
    }

    /// Step back one entry: move left within the leaf, or climb to the previous subtree
    /// and descend to its last entry, skipping empty leaves.
    fn retreat(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        loop {
            loop {
                let top = self.stack.last_mut()?;
                let idx = top.1.min(top.0.count());
                if idx > 0 {
                    top.1 = idx - 1;
                    break;
                }
                self.stack.pop();
            }
            self.descend(true);
            if self.at_valid_leaf() {
                return self.current();
            }
            if let Some(top) = self.stack.last_mut() {
                top.1 = 0;
            }
        }
    }
}
