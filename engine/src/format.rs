//! The bbolt v2 on-disk format: constants, the meta page, and read-only views of
//! branch/leaf/freelist pages. Everything is little-endian. See `docs/format.md`.
//!
//! Views never panic on malformed input: out-of-range offsets read as empty slices or zero,
//! and `Db::check` reports the inconsistency.

/// Page identifier (index of a page in the file).
pub type Pgid = u64;

pub(crate) const MAGIC: u32 = 0xED0C_DAED;
/// Format version 2: the only version bbolt has ever written.
pub(crate) const VERSION: u32 = 2;

pub(crate) const PAGE_HEADER_SIZE: usize = 16;
pub(crate) const ELEM_SIZE: usize = 16;
pub(crate) const META_SIZE: usize = 64;
pub(crate) const BUCKET_HEADER_SIZE: usize = 16;

pub(crate) const BRANCH_PAGE: u16 = 0x01;
pub(crate) const LEAF_PAGE: u16 = 0x02;
pub(crate) const META_PAGE: u16 = 0x04;
pub(crate) const FREELIST_PAGE: u16 = 0x10;

/// Leaf element flag: the value is a bucket header (+ inline page).
pub(crate) const BUCKET_LEAF_FLAG: u32 = 0x01;

/// Freelist page id meaning "freelist not persisted; rebuild by scanning".
pub(crate) const PGID_NO_FREELIST: Pgid = u64::MAX;

/// Largest key accepted by `put` (bbolt's MaxKeySize).
pub const MAX_KEY_SIZE: usize = 32768;
/// Largest value accepted by `put` (bbolt's MaxValueSize).
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;

#[inline]
pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    match b.get(off..off + 8) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        }
        None => 0,
    }
}

#[inline]
pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// FNV-1a, 64-bit (the checksum bbolt stores in the meta page).
pub(crate) fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Root pointer of a bucket: `{root pgid u64, sequence u64}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BucketHeader {
    pub root: Pgid,
    pub sequence: u64,
}

impl BucketHeader {
    pub(crate) fn decode(b: &[u8]) -> BucketHeader {
        BucketHeader {
            root: u64_at(b, 0),
            sequence: u64_at(b, 8),
        }
    }
    pub(crate) fn encode(&self) -> [u8; BUCKET_HEADER_SIZE] {
        let mut b = [0u8; BUCKET_HEADER_SIZE];
        put_u64(&mut b, 0, self.root);
        put_u64(&mut b, 8, self.sequence);
        b
    }
}

/// The meta record stored at offset 16 of pages 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    pub root: BucketHeader,
    pub freelist: Pgid,
    /// High-water mark: the number of pages in use (next page id at the end of the file).
    pub pgid: Pgid,
    pub txid: u64,
    pub checksum: u64,
}

/// Why a meta page was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaFault {
    Magic,
    Version,
    Checksum,
}

impl Meta {
    /// Decode the meta record from a whole meta page (header included).
    pub(crate) fn decode(page: &[u8]) -> Meta {
        let m = page.get(PAGE_HEADER_SIZE..).unwrap_or(&[]);
        Meta {
            magic: u32_at(m, 0),
            version: u32_at(m, 4),
            page_size: u32_at(m, 8),
            flags: u32_at(m, 12),
            root: BucketHeader {
                root: u64_at(m, 16),
                sequence: u64_at(m, 24),
            },
            freelist: u64_at(m, 32),
            pgid: u64_at(m, 40),
            txid: u64_at(m, 48),
            checksum: u64_at(m, 56),
        }
    }

    fn encode_fields(&self) -> [u8; META_SIZE] {
        let mut m = [0u8; META_SIZE];
        put_u32(&mut m, 0, self.magic);
        put_u32(&mut m, 4, self.version);
        put_u32(&mut m, 8, self.page_size);
        put_u32(&mut m, 12, self.flags);
        put_u64(&mut m, 16, self.root.root);
        put_u64(&mut m, 24, self.root.sequence);
        put_u64(&mut m, 32, self.freelist);
        put_u64(&mut m, 40, self.pgid);
        put_u64(&mut m, 48, self.txid);
        put_u64(&mut m, 56, self.checksum);
        m
    }

    /// Checksum over the 56 bytes that precede the checksum field.
    pub(crate) fn sum(&self) -> u64 {
        fnv64a(&self.encode_fields()[..56])
    }

    pub(crate) fn validate(&self) -> Result<(), MetaFault> {
        if self.magic != MAGIC {
            Err(MetaFault::Magic)
        } else if self.version != VERSION {
            Err(MetaFault::Version)
        } else if self.checksum != self.sum() {
            Err(MetaFault::Checksum)
        } else {
            Ok(())
        }
    }

    /// A full page (`page_size` bytes) holding this meta with a fresh checksum, page id `id`.
    pub(crate) fn to_page(self, id: Pgid, page_size: usize) -> Vec<u8> {
        let mut meta = self;
        meta.checksum = meta.sum();
        let mut page = vec![0u8; page_size];
        write_page_header(&mut page, id, META_PAGE, 0, 0);
        page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE].copy_from_slice(&meta.encode_fields());
        page
    }
}

pub(crate) fn write_page_header(b: &mut [u8], id: Pgid, flags: u16, count: u16, overflow: u32) {
    put_u64(b, 0, id);
    put_u16(b, 8, flags);
    put_u16(b, 10, count);
    put_u32(b, 12, overflow);
}

/// A read-only view of one page (branch, leaf, freelist or meta), possibly spanning
/// overflow pages, or an inline page stored in a bucket value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageRef<'a> {
    pub data: &'a [u8],
}

impl<'a> PageRef<'a> {
    #[inline]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        PageRef { data }
    }
    #[inline]
    pub(crate) fn id(&self) -> Pgid {
        u64_at(self.data, 0)
    }
    #[inline]
    pub(crate) fn flags(&self) -> u16 {
        u16_at(self.data, 8)
    }
    #[inline]
    pub(crate) fn count(&self) -> usize {
        u16_at(self.data, 10) as usize
    }
    #[inline]
    pub(crate) fn overflow(&self) -> u32 {
        u32_at(self.data, 12)
    }
    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        self.flags() & LEAF_PAGE != 0
    }
    #[inline]
    pub(crate) fn is_branch(&self) -> bool {
        self.flags() & BRANCH_PAGE != 0
    }

    #[inline]
    fn slice(&self, off: usize, len: usize) -> &'a [u8] {
        let d: &'a [u8] = self.data;
        match off.checked_add(len) {
            Some(end) => d.get(off..end).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Key of element `i` (branch or leaf).
    #[inline]
    pub(crate) fn key(&self, i: usize) -> &'a [u8] {
        let e = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        if self.is_branch() {
            let pos = u32_at(self.data, e) as usize;
            let ksize = u32_at(self.data, e + 4) as usize;
            self.slice(e + pos, ksize)
        } else {
            let pos = u32_at(self.data, e + 4) as usize;
            let ksize = u32_at(self.data, e + 8) as usize;
            self.slice(e + pos, ksize)
        }
    }

    /// Key of leaf element `i`.
    #[inline]
    fn leaf_key(&self, i: usize) -> &'a [u8] {
        let e = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        self.slice(
            e + u32_at(self.data, e + 4) as usize,
            u32_at(self.data, e + 8) as usize,
        )
    }

    /// Key of branch element `i`.
    #[inline]
    fn branch_key(&self, i: usize) -> &'a [u8] {
        let e = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        self.slice(
            e + u32_at(self.data, e) as usize,
            u32_at(self.data, e + 4) as usize,
        )
    }

    /// Leaf element `i`: (flags, key, value).
    #[inline]
    pub(crate) fn leaf(&self, i: usize) -> (u32, &'a [u8], &'a [u8]) {
        let e = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        let flags = u32_at(self.data, e);
        let pos = u32_at(self.data, e + 4) as usize;
        let ksize = u32_at(self.data, e + 8) as usize;
        let vsize = u32_at(self.data, e + 12) as usize;
        let key = self.slice(e + pos, ksize);
        let val = self.slice(e + pos + ksize, vsize);
        (flags, key, val)
    }

    /// Child page id of branch element `i`.
    #[inline]
    pub(crate) fn child(&self, i: usize) -> Pgid {
        u64_at(self.data, PAGE_HEADER_SIZE + i * ELEM_SIZE + 8)
    }

    /// Index of the first element whose key is >= `key` (leaf pages).
    #[inline]
    pub(crate) fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.leaf_key(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Index of the child to descend into for `key` (branch pages): the last element
    /// whose key is <= `key`, or 0.
    #[inline]
    pub(crate) fn branch_index(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.branch_key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.saturating_sub(1)
    }

    /// Page ids listed on a freelist page (count 0xFFFF means the real count is in the
    /// first u64 after the header).
    pub(crate) fn freelist_ids(&self) -> Vec<Pgid> {
        let mut count = self.count();
        let mut off = PAGE_HEADER_SIZE;
        if count == 0xFFFF {
            count = u64_at(self.data, off) as usize;
            off += 8;
        }
        let avail = self.data.len().saturating_sub(off) / 8;
        let count = count.min(avail);
        (0..count).map(|i| u64_at(self.data, off + i * 8)).collect()
    }
}

/// Bytes a freelist page needs for `n` ids.
pub(crate) fn freelist_bytes(n: usize) -> usize {
    let extra = if n >= 0xFFFF { 8 } else { 0 };
    PAGE_HEADER_SIZE + extra + n * 8
}

/// Serialize a freelist page (ids must be sorted) into `buf` (already sized, zeroed).
pub(crate) fn write_freelist(buf: &mut [u8], id: Pgid, overflow: u32, ids: &[Pgid]) {
    let mut off = PAGE_HEADER_SIZE;
    if ids.len() >= 0xFFFF {
        write_page_header(buf, id, FREELIST_PAGE, 0xFFFF, overflow);
        put_u64(buf, off, ids.len() as u64);
        off += 8;
    } else {
        write_page_header(buf, id, FREELIST_PAGE, ids.len() as u16, overflow);
    }
    for (i, &p) in ids.iter().enumerate() {
        put_u64(buf, off + i * 8, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_vectors() {
        assert_eq!(fnv64a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn meta_roundtrip_and_checksum() {
        let m = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: 4096,
            flags: 0,
            root: BucketHeader {
                root: 3,
                sequence: 0,
            },
            freelist: 2,
            pgid: 4,
            txid: 7,
            checksum: 0,
        };
        let page = m.to_page(1, 4096);
        assert_eq!(u64_at(&page, 0), 1);
        assert_eq!(u16_at(&page, 8), META_PAGE);
        assert_eq!(u32_at(&page, 16), MAGIC);
        let d = Meta::decode(&page);
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.txid, 7);
        let mut bad = page.clone();
        bad[60] ^= 1;
        assert_eq!(Meta::decode(&bad).validate(), Err(MetaFault::Checksum));
        let mut bad = page;
        bad[16] ^= 1;
        assert_eq!(Meta::decode(&bad).validate(), Err(MetaFault::Magic));
    }

    #[test]
    fn freelist_page_roundtrip_small_and_large() {
        for n in [0usize, 3, 0xFFFE, 0xFFFF, 70000] {
            let ids: Vec<Pgid> = (0..n as u64).map(|i| i * 2 + 5).collect();
            let mut buf = vec![0u8; freelist_bytes(n)];
            write_freelist(&mut buf, 9, 0, &ids);
            let p = PageRef::new(&buf);
            assert_eq!(p.flags(), FREELIST_PAGE);
            assert_eq!(p.freelist_ids(), ids);
        }
    }
}
