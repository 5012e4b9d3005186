//! In-memory nodes of a write transaction: only the pages a writer touches are parsed into
//! [`Node`]s (keys and values stay zero-copy slices of the mapping); at commit the tree is
//! rebalanced (underfilled nodes merge into a sibling), then spilled bottom-up into freshly
//! allocated pages, splitting nodes that outgrow a page.

use bytes::Bytes;

use crate::format::{
    put_u32, put_u64, write_page_header, PageRef, Pgid, BRANCH_PAGE, ELEM_SIZE, LEAF_PAGE,
    PAGE_HEADER_SIZE,
};

/// Where a branch element points: a clean page, or a node materialized in this tx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Child {
    Page(Pgid),
    Node(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct Inode {
    pub key: Bytes,
    /// Leaf element flags (bucket flag); 0 for branches.
    pub flags: u32,
    /// Leaf value; empty for branches.
    pub val: Bytes,
    /// Branch child; unused (`Page(0)`) for leaves.
    pub child: Child,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    pub leaf: bool,
    pub inodes: Vec<Inode>,
    /// Lost entries in this tx: a candidate for merging at commit.
    pub unbalanced: bool,
}

impl Node {
    pub(crate) fn empty_leaf() -> Node {
        Node {
            leaf: true,
            inodes: Vec::new(),
            unbalanced: false,
        }
    }

    /// Parse a page (mapped, or an inline page inside a value). `owner` must contain the
    /// page's bytes: keys and values become slices of it.
    pub(crate) fn from_page(page: PageRef<'_>, owner: &Bytes) -> Node {
        let leaf = page.is_leaf();
        let n = page.count();
        let mut inodes = Vec::with_capacity(n + 1);
        for i in 0..n {
            if leaf {
                let (flags, k, v) = page.leaf(i);
                inodes.push(Inode {
                    key: owner.slice_ref(k),
                    flags,
                    val: owner.slice_ref(v),
                    child: Child::Page(0),
                });
            } else {
                inodes.push(Inode {
                    key: owner.slice_ref(page.key(i)),
                    flags: 0,
                    val: Bytes::new(),
                    child: Child::Page(page.child(i)),
                });
            }
        }
        Node {
            leaf,
            inodes,
            unbalanced: false,
        }
    }

    pub(crate) fn size(&self) -> usize {
        PAGE_HEADER_SIZE + self.inodes.iter().map(elem_size).sum::<usize>()
    }

    pub(crate) fn lower_bound(&self, key: &[u8]) -> usize {
        self.inodes.partition_point(|i| i.key.as_ref() < key)
    }

    pub(crate) fn branch_index(&self, key: &[u8]) -> usize {
        self.inodes
            .partition_point(|i| i.key.as_ref() <= key)
            .saturating_sub(1)
    }
}

#[inline]
pub(crate) fn elem_size(i: &Inode) -> usize {
    ELEM_SIZE + i.key.len() + i.val.len()
}

/// Serialize `inodes` as one page (plus overflow) with id `id`, appending to `buf`
/// (which must be empty) and zero-padding to `pages` pages of `page_size` bytes. Bytes
/// are written once, in order: header, elements, then keys and values.
pub(crate) fn write_node(
    buf: &mut Vec<u8>,
    id: Pgid,
    leaf: bool,
    inodes: &[Inode],
    pages: usize,
    page_size: usize,
) {
    debug_assert!(buf.is_empty());
    let flags = if leaf { LEAF_PAGE } else { BRANCH_PAGE };
    let mut hdr = [0u8; PAGE_HEADER_SIZE];
    write_page_header(&mut hdr, id, flags, inodes.len() as u16, (pages - 1) as u32);
    buf.extend_from_slice(&hdr);
    let mut data = PAGE_HEADER_SIZE + inodes.len() * ELEM_SIZE;
    for (i, ino) in inodes.iter().enumerate() {
        let e = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        let pos = (data - e) as u32;
        let mut el = [0u8; ELEM_SIZE];
        if leaf {
            put_u32(&mut el, 0, ino.flags);
            put_u32(&mut el, 4, pos);
            put_u32(&mut el, 8, ino.key.len() as u32);
            put_u32(&mut el, 12, ino.val.len() as u32);
            data += ino.key.len() + ino.val.len();
        } else {
            let pgid = match ino.child {
                Child::Page(p) => p,
                Child::Node(_) => 0, // spilled before; never reached
            };
            put_u32(&mut el, 0, pos);
            put_u32(&mut el, 4, ino.key.len() as u32);
            put_u64(&mut el, 8, pgid);
            data += ino.key.len();
        }
        buf.extend_from_slice(&el);
    }
    for ino in inodes {
        buf.extend_from_slice(&ino.key);
        if leaf {
            buf.extend_from_slice(&ino.val);
        }
    }
    buf.resize(pages * page_size, 0);
}

#[allow(clippy::single_range_in_vec_init)]
/// Split points for a node of `inodes`: ranges, each fitting a page where possible.
/// `fill` (0.1..=1.0) caps how full a piece gets before a cut; pieces are balanced.
pub(crate) fn split_ranges(
    inodes: &[Inode],
    leaf: bool,
    page_size: usize,
    fill: f64,
) -> Vec<std::ops::Range<usize>> {
    let n = inodes.len();
    let total = PAGE_HEADER_SIZE + inodes.iter().map(elem_size).sum::<usize>();
    let min_keys = if leaf { 1 } else { 2 };
    if total <= page_size || n < 2 * min_keys {
        return vec![0..n];
    }
    let cap = ((page_size as f64) * fill.clamp(0.1, 1.0)) as usize;
    let cap = cap.max(PAGE_HEADER_SIZE + ELEM_SIZE);
    let pieces = total.div_ceil(cap);
    let target = total / pieces;
    let mut out = Vec::with_capacity(pieces + 1);
    let mut start = 0;
    let mut cur = PAGE_HEADER_SIZE;
    for (i, ino) in inodes.iter().enumerate() {
        let es = elem_size(ino);
        let have = i - start;
        if have >= min_keys && n - i >= min_keys && (cur + es > page_size || cur >= target) {
            out.push(start..i);
            start = i;
            cur = PAGE_HEADER_SIZE;
        }
        cur += es;
    }
    out.push(start..n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_inodes(n: usize, vlen: usize) -> Vec<Inode> {
        (0..n)
            .map(|i| Inode {
                key: Bytes::from(format!("key{i:06}")),
                flags: 0,
                val: Bytes::from(vec![7u8; vlen]),
                child: Child::Page(0),
            })
            .collect()
    }

    #[test]
    fn split_respects_page_size_and_covers_all() {
        for (n, vlen) in [(1000usize, 10usize), (50, 300), (3, 9000), (200, 1)] {
            let inodes = leaf_inodes(n, vlen);
            let r = split_ranges(&inodes, true, 4096, 1.0);
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, n);
            for w in r.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            for piece in &r {
                let size =
                    PAGE_HEADER_SIZE + inodes[piece.clone()].iter().map(elem_size).sum::<usize>();
                assert!(!piece.is_empty());
                assert!(
                    size <= 4096 || piece.len() == 1,
                    "piece {piece:?} size {size}"
                );
            }
        }
    }

    #[test]
    fn node_roundtrip_through_page() {
        let inodes = leaf_inodes(20, 5);
        let mut buf = Vec::new();
        write_node(&mut buf, 42, true, &inodes, 1, 4096);
        assert_eq!(buf.len(), 4096);
        let owner = Bytes::from(buf);
        let node = Node::from_page(PageRef::new(&owner), &owner);
        assert!(node.leaf);
        assert_eq!(node.inodes.len(), 20);
        for (a, b) in node.inodes.iter().zip(&inodes) {
            assert_eq!(a.key, b.key);
            assert_eq!(a.val, b.val);
        }
        assert_eq!(PageRef::new(&owner).id(), 42);
    }
}
