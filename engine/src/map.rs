//! The only module with `unsafe`: the read-only memory map of the database file, the
//! advisory file lock and the OS page size query.
//!
//! Soundness argument for the mapping as a whole: the map is `PROT_READ` and `MAP_SHARED`;
//! the process holds an exclusive `flock` on the file (shared for read-only opens) so no
//! other cooperating process writes it; inside the process, the writer only `pwrite`s pages
//! that no live reader can reach (copy-on-write: new pages come from the freelist, which
//! only holds pages unreachable from every open snapshot, or from beyond the high-water
//! mark) and the two meta pages, which are never read through a mapping after open.
//! Readers only touch pages below their snapshot's high-water mark, which lie inside the
//! file (checked at open), so no access faults with SIGBUS.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A read-only shared mapping of the first `len` bytes of the file.
pub(crate) struct Map {
    mmap: memmap2::Mmap,
}

impl Map {
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Map> {
        // SAFETY: see the module comment: the mapped bytes are never modified while any
        // slice into them that could be affected is alive (copy-on-write discipline), and
        // accesses stay below the high-water mark, inside the file.
        let mmap = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        // Random access pattern: B+tree descent; readahead only wastes page cache.
        let _ = mmap.advise(memmap2::Advice::Random);
        Ok(Map { mmap })
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.mmap
    }

    pub(crate) fn len(&self) -> usize {
        self.mmap.len()
    }
}

impl AsRef<[u8]> for Map {
    fn as_ref(&self) -> &[u8] {
        &self.mmap
    }
}

/// Take an advisory lock (exclusive for writers, shared for read-only), without blocking.
pub(crate) fn lock_file(file: &File, exclusive: bool) -> io::Result<()> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: flock only takes a valid open file descriptor (borrowed from `file`, alive for
    // the call) and an integer operation; it touches no memory of ours.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The OS page size (the default database page size).
pub(crate) fn os_page_size() -> usize {
    // SAFETY: sysconf with a valid name constant has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}
