//! A bucket's B+tree as a write transaction sees it: clean subtrees stay pages in the
//! mapping; the paths the writer touches become [`Node`]s in an arena. Commit rebalances
//! the dirty nodes and spills them into new pages ([`Spiller`]).

use bytes::Bytes;

use crate::cursor::{lookup, Src, View};
use crate::error::{Error, Result};
use crate::format::{BucketHeader, PageRef, Pgid, BUCKET_LEAF_FLAG, PAGE_HEADER_SIZE};
use crate::freelist::{Freelist, SpanFreelist};
use crate::node::{elem_size, split_ranges, write_node, Child, Inode, Node};

/// Per-transaction context shared by all trees: the mapping (as a zero-copy `Bytes`
/// owner), the page size, the snapshot high-water mark and the pages freed so far.
pub(crate) struct Ctx {
    pub map: Bytes,
    pub ps: usize,
    pub hw: Pgid,
    /// Pages (start, count) freed by this transaction; pending until commit.
    pub freed: Vec<(Pgid, u64)>,
}

impl Ctx {
    #[inline]
    pub(crate) fn src<'a>(&'a self, arena: &'a [Node]) -> Src<'a> {
        Src {
            map: &self.map,
            ps: self.ps,
            hw: self.hw,
            arena,
        }
    }

    /// Free a whole subtree of pages (a deleted bucket), nested buckets included.
    pub(crate) fn free_subtree(&mut self, pgid: Pgid, depth: usize) {
        if depth > 64 {
            return;
        }
        let mut nested = Vec::new();
        let mut children = Vec::new();
        let pages;
        {
            let src = self.src(&[]);
            let p = src.page(pgid);
            if p.data.is_empty() {
                return;
            }
            pages = src.span(pgid);
            if p.is_branch() {
                children.extend((0..p.count()).map(|i| p.child(i)));
            } else if p.is_leaf() {
                for i in 0..p.count() {
                    let (flags, _, v) = p.leaf(i);
                    if flags & BUCKET_LEAF_FLAG != 0 {
                        let h = BucketHeader::decode(v);
                        if h.root != 0 {
                            nested.push(h.root);
                        }
                    }
                }
            }
        }
        self.freed.push((pgid, pages));
        for c in children.into_iter().chain(nested) {
            self.free_subtree(c, depth + 1);
        }
    }
}

pub(crate) struct Tree {
    pub root: Child,
    pub arena: Vec<Node>,
    pub sequence: u64,
    pub dirty: bool,
    pub fill: f64,
    /// Scratch: the branch path of the last descent.
    path: Vec<(usize, usize)>,
}

/// In-memory node size cap (entries), see [`Tree::split_up`].
const MAX_NODE_INODES: usize = 128;

impl Tree {
    pub(crate) fn new_empty() -> Tree {
        Tree {
            root: Child::Node(0),
            arena: vec![Node::empty_leaf()],
            sequence: 0,
            dirty: true,
            fill: 1.0,
            path: Vec::new(),
        }
    }

    pub(crate) fn from_header(h: BucketHeader, value: &Bytes) -> Tree {
        if h.root == 0 {
            // Inline bucket: parse the page stored after the header; it is rewritten as a
            // regular page at commit.
            let page = value.slice(value.len().min(crate::format::BUCKET_HEADER_SIZE)..);
            let node = Node::from_page(PageRef::new(&page), &page);
            let mut node = node;
            node.leaf = true;
            Tree {
                root: Child::Node(0),
                arena: vec![node],
                sequence: h.sequence,
                dirty: true,
                fill: 1.0,
                path: Vec::new(),
            }
        } else {
            Tree {
                root: Child::Page(h.root),
                arena: Vec::new(),
                sequence: h.sequence,
                dirty: false,
                fill: 1.0,
                path: Vec::new(),
            }
        }
    }

    #[inline]
    pub(crate) fn view<'a>(&'a self, ctx: &'a Ctx) -> (Src<'a>, View<'a>) {
        let src = ctx.src(&self.arena);
        let root = src.resolve(self.root);
        (src, root)
    }

    pub(crate) fn get<'a>(&'a self, ctx: &'a Ctx, key: &[u8]) -> Option<(u32, &'a [u8])> {
        let (src, root) = self.view(ctx);
        lookup(&src, root, key)
    }

    /// Like `get`, as an owned zero-copy `Bytes`.
    pub(crate) fn get_bytes(&self, ctx: &Ctx, key: &[u8]) -> Option<(u32, Bytes)> {
        let (flags, v) = self.get(ctx, key)?;
        if v.is_empty() {
            return Some((flags, Bytes::new()));
        }
        let m: &[u8] = &ctx.map;
        let inside = v.as_ptr() as usize >= m.as_ptr() as usize
            && v.as_ptr() as usize + v.len() <= m.as_ptr() as usize + m.len();
        if inside {
            Some((flags, ctx.map.slice_ref(v)))
        } else {
            Some((flags, Bytes::copy_from_slice(v)))
        }
    }

    fn materialize(&mut self, ctx: &mut Ctx, child: Child) -> usize {
        match child {
            Child::Node(i) => i,
            Child::Page(p) => {
                let (node, pages) = {
                    let src = ctx.src(&[]);
                    let page = src.page(p);
                    let pages = if page.data.is_empty() { 0 } else { src.span(p) };
                    (Node::from_page(page, &ctx.map), pages)
                };
                if pages > 0 {
                    ctx.freed.push((p, pages));
                }
                self.arena.push(node);
                self.arena.len() - 1
            }
        }
    }

    /// Materialize the path to the leaf for `key`; returns the leaf's arena index. The
    /// branch nodes passed on the way, with the child position taken, are left in
    /// `self.path` (root first).
    fn leaf_for(&mut self, ctx: &mut Ctx, key: &[u8]) -> (usize, bool) {
        self.dirty = true;
        self.path.clear();
        let append = self.is_append(ctx, key);
        let mut idx = self.materialize(ctx, self.root);
        self.root = Child::Node(idx);
        while !self.arena[idx].leaf && self.path.len() < 64 {
            if self.arena[idx].inodes.is_empty() {
                // Degenerate empty branch: turn it into a leaf.
                self.arena[idx].leaf = true;
                break;
            }
            let i = if append {
                self.arena[idx].inodes.len() - 1
            } else {
                self.arena[idx].branch_index(key)
            };
            let c = self.materialize(ctx, self.arena[idx].inodes[i].child);
            self.arena[idx].inodes[i].child = Child::Node(c);
            self.path.push((idx, i));
            idx = c;
        }
        (idx, append)
    }

    /// Whether `key` is greater than every key in the tree (the common case of appending
    /// revisions): then the rightmost path is the right one, found without comparisons.
    fn is_append(&self, ctx: &Ctx, key: &[u8]) -> bool {
        let (src, mut v) = self.view(ctx);
        let mut depth = 0;
        while !v.is_leaf() && depth < 64 {
            let n = v.count();
            if n == 0 {
                return false;
            }
            v = v.child(&src, n - 1);
            depth += 1;
        }
        let n = v.count();
        n > 0 && v.is_leaf() && v.leaf(n - 1).1 < key
    }

    /// Insert or replace `key`. Replacing a bucket with a plain value (or the reverse)
    /// is refused.
    pub(crate) fn put(&mut self, ctx: &mut Ctx, key: Bytes, val: Bytes, flags: u32) -> Result<()> {
        let (leaf, append) = self.leaf_for(ctx, &key);
        let node = &mut self.arena[leaf];
        let i = if append {
            node.inodes.len()
        } else {
            node.lower_bound(&key)
        };
        if i < node.inodes.len() && node.inodes[i].key == key {
            let old = &mut node.inodes[i];
            if (old.flags ^ flags) & BUCKET_LEAF_FLAG != 0 {
                return Err(Error::IncompatibleValue);
            }
            old.val = val;
            old.flags = flags;
        } else {
            node.inodes.insert(
                i,
                Inode {
                    key,
                    flags,
                    val,
                    child: Child::Page(0),
                },
            );
            if node.inodes.len() > MAX_NODE_INODES {
                let at_end = i + 1 == node.inodes.len();
                self.split_up(leaf, at_end);
            }
        }
        Ok(())
    }

    /// Keep in-memory nodes small (so inserts stay cheap in big transactions): split the
    /// node in two, inserting the new half into its parent, recursively up to the root.
    /// Pages are still cut to size at spill. When the insert went to the end of the node
    /// (appends), the split leaves the left node full and starts a new right node.
    fn split_up(&mut self, mut cur: usize, mut at_end: bool) {
        while self.arena[cur].inodes.len() > MAX_NODE_INODES {
            let n = self.arena[cur].inodes.len();
            let at = if at_end { n - 1 } else { n / 2 };
            let right = self.arena[cur].inodes.split_off(at);
            let rkey = right[0].key.clone();
            let leaf = self.arena[cur].leaf;
            self.arena.push(Node {
                leaf,
                inodes: right,
                unbalanced: false,
            });
            let r = self.arena.len() - 1;
            let branch = |key: Bytes, c: usize| Inode {
                key,
                flags: 0,
                val: Bytes::new(),
                child: Child::Node(c),
            };
            match self.path.pop() {
                Some((parent, pos)) => {
                    self.arena[parent].inodes.insert(pos + 1, branch(rkey, r));
                    at_end = pos + 2 == self.arena[parent].inodes.len();
                    cur = parent;
                }
                None => {
                    let lkey = self.arena[cur].inodes[0].key.clone();
                    self.arena.push(Node {
                        leaf: false,
                        inodes: vec![branch(lkey, cur), branch(rkey, r)],
                        unbalanced: false,
                    });
                    self.root = Child::Node(self.arena.len() - 1);
                    return;
                }
            }
        }
    }

    /// Remove `key`; returns the flags of the removed entry.
    pub(crate) fn delete(&mut self, ctx: &mut Ctx, key: &[u8]) -> Option<u32> {
        self.get(ctx, key)?;
        let (leaf, _) = self.leaf_for(ctx, key);
        let node = &mut self.arena[leaf];
        let i = node.lower_bound(key);
        if i < node.inodes.len() && node.inodes[i].key.as_ref() == key {
            let ino = node.inodes.remove(i);
            node.unbalanced = true;
            Some(ino.flags)
        } else {
            None
        }
    }

    /// Free every page still referenced by this tree (the bucket is being deleted).
    pub(crate) fn free_all(&self, ctx: &mut Ctx) {
        let mut stack = vec![self.root];
        while let Some(c) = stack.pop() {
            match c {
                Child::Page(p) => ctx.free_subtree(p, 0),
                Child::Node(i) => {
                    if let Some(n) = self.arena.get(i) {
                        for ino in &n.inodes {
                            if n.leaf {
                                if ino.flags & BUCKET_LEAF_FLAG != 0 {
                                    let h = BucketHeader::decode(&ino.val);
                                    if h.root != 0 {
                                        stack.push(Child::Page(h.root));
                                    }
                                }
                            } else {
                                stack.push(ino.child);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Merge underfilled dirty nodes into a sibling; collapse a single-child root.
    pub(crate) fn rebalance(&mut self, ctx: &mut Ctx) {
        if let Child::Node(r) = self.root {
            self.rebalance_node(ctx, r, 0);
        }
        while let Child::Node(r) = self.root {
            let n = &self.arena[r];
            if n.leaf {
                break;
            }
            match n.inodes.len() {
                0 => {
                    self.arena[r] = Node::empty_leaf();
                    break;
                }
                1 => self.root = n.inodes[0].child,
                _ => break,
            }
        }
    }

    fn rebalance_node(&mut self, ctx: &mut Ctx, idx: usize, depth: usize) {
        if self.arena[idx].leaf || depth > 64 {
            return;
        }
        let kids: Vec<usize> = self.arena[idx]
            .inodes
            .iter()
            .filter_map(|i| match i.child {
                Child::Node(c) => Some(c),
                Child::Page(_) => None,
            })
            .collect();
        for c in kids {
            self.rebalance_node(ctx, c, depth + 1);
        }
        let threshold = ctx.ps / 4;
        let mut i = 0;
        while i < self.arena[idx].inodes.len() {
            let Child::Node(c) = self.arena[idx].inodes[i].child else {
                i += 1;
                continue;
            };
            if !self.arena[c].unbalanced {
                i += 1;
                continue;
            }
            if self.arena[c].inodes.is_empty() {
                self.arena[idx].inodes.remove(i);
                self.arena[idx].unbalanced = true;
                continue;
            }
            let n = &self.arena[c];
            let min = if n.leaf { 1 } else { 2 };
            if (n.size() >= threshold && n.inodes.len() >= min) || self.arena[idx].inodes.len() < 2
            {
                self.arena[c].unbalanced = false;
                i += 1;
                continue;
            }
            let (t, s) = if i > 0 { (i - 1, i) } else { (0, 1) };
            let tc = self.materialize(ctx, self.arena[idx].inodes[t].child);
            self.arena[idx].inodes[t].child = Child::Node(tc);
            let sc = self.materialize(ctx, self.arena[idx].inodes[s].child);
            self.arena[idx].inodes[s].child = Child::Node(sc);
            if self.arena[tc].leaf != self.arena[sc].leaf {
                // Corrupt tree (siblings at different depths): leave it to check().
                self.arena[c].unbalanced = false;
                i += 1;
                continue;
            }
            let moved = std::mem::take(&mut self.arena[sc].inodes);
            self.arena[tc].inodes.extend(moved);
            self.arena[tc].unbalanced = true;
            self.arena[idx].inodes.remove(s);
            self.arena[idx].unbalanced = true;
            i = t;
        }
    }

    /// Write the dirty part of the tree into new pages; returns the root page id.
    pub(crate) fn spill(&mut self, sp: &mut Spiller<'_>) -> Pgid {
        let r = match self.root {
            Child::Page(p) => return p,
            Child::Node(r) => r,
        };
        let mut pieces = self.spill_node(r, sp, 0);
        let mut guard = 0;
        while pieces.len() > 1 && guard < 64 {
            let inodes: Vec<Inode> = pieces
                .into_iter()
                .map(|(key, p)| Inode {
                    key,
                    flags: 0,
                    val: Bytes::new(),
                    child: Child::Page(p),
                })
                .collect();
            pieces = sp.write(&inodes, false, self.fill);
            guard += 1;
        }
        let root = match pieces.first() {
            Some(&(_, p)) => p,
            None => sp.write(&[], true, self.fill)[0].1,
        };
        self.root = Child::Page(root);
        self.arena.clear();
        root
    }

    fn spill_node(&mut self, idx: usize, sp: &mut Spiller<'_>, depth: usize) -> Vec<(Bytes, Pgid)> {
        let mut node = std::mem::take(&mut self.arena[idx]);
        if !node.leaf && depth < 64 {
            let mut out = Vec::with_capacity(node.inodes.len() + 4);
            for ino in node.inodes.drain(..) {
                match ino.child {
                    Child::Page(_) => out.push(ino),
                    Child::Node(c) => {
                        for (key, p) in self.spill_node(c, sp, depth + 1) {
                            out.push(Inode {
                                key,
                                flags: 0,
                                val: Bytes::new(),
                                child: Child::Page(p),
                            });
                        }
                    }
                }
            }
            node.inodes = out;
        }
        if node.inodes.is_empty() {
            return Vec::new();
        }
        sp.write(&node.inodes, node.leaf, self.fill)
    }
}

/// Allocates pages (freelist first, then the high-water mark) and serializes nodes into
/// page buffers, collected for one batched write at commit.
pub(crate) struct Spiller<'a> {
    pub free: &'a mut SpanFreelist,
    pub hw: &'a mut Pgid,
    pub ps: usize,
    pub out: Vec<(Pgid, Vec<u8>)>,
    /// Recycled page buffers (kept by the writer across commits).
    pub pool: &'a mut Vec<Vec<u8>>,
}

impl Spiller<'_> {
    pub(crate) fn alloc(&mut self, n: u64) -> Pgid {
        match self.free.allocate(n) {
            Some(p) => p,
            None => {
                let p = *self.hw;
                *self.hw += n;
                p
            }
        }
    }

    /// A zeroed buffer of `len` bytes, recycled when possible.
    pub(crate) fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = match self.pool.pop() {
            Some(b) => b,
            None => Vec::with_capacity(len),
        };
        b.clear();
        b.resize(len, 0);
        b
    }

    /// An empty buffer with room for `len` bytes, recycled when possible.
    fn empty_buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.clear();
        b.reserve(len);
        b
    }

    #[allow(clippy::single_range_in_vec_init)]
    fn write(&mut self, inodes: &[Inode], leaf: bool, fill: f64) -> Vec<(Bytes, Pgid)> {
        let mut res = Vec::new();
        let ranges = if inodes.is_empty() {
            vec![0..0]
        } else {
            split_ranges(inodes, leaf, self.ps, fill)
        };
        for r in ranges {
            let part = &inodes[r];
            let size = PAGE_HEADER_SIZE + part.iter().map(elem_size).sum::<usize>();
            let pages = size.div_ceil(self.ps).max(1);
            let id = self.alloc(pages as u64);
            let mut buf = self.empty_buffer(pages * self.ps);
            write_node(&mut buf, id, leaf, part, pages, self.ps);
            self.out.push((id, buf));
            let key = part.first().map(|i| i.key.clone()).unwrap_or_default();
            res.push((key, id));
        }
        res
    }
}
