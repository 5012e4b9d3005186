//! Disk I/O behind a small trait, so tests can plug in a fault-injecting file.
//!
//! Reads of tree pages go through the memory map of [`Storage::file`]; every write goes
//! through [`Storage::write_at`] and becomes durable at [`Storage::sync`].

use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// The file operations the engine performs. Implementations must write through to
/// [`Storage::file`] (the engine maps that file to read pages back).
#[allow(clippy::len_without_is_empty)]
pub trait Storage: Send + Sync {
    /// Fill `buf` from `offset`; a short file is an error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset` (not yet durable).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Write `bufs` back to back starting at `offset` (one `pwritev`-like call where the
    /// backend can; the default writes them one by one).
    fn write_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        let mut off = offset;
        for b in bufs {
            self.write_at(b, off)?;
            off += b.len() as u64;
        }
        Ok(())
    }
    /// Make every completed write durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Current file length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Grow or shrink the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The real file behind this storage (mapped read-only for page reads).
    fn file(&self) -> &File;
}

/// The real thing: `pread`/`pwrite`/`fdatasync` on a file.
pub struct FileStorage {
    file: File,
}

impl FileStorage {
    pub fn new(file: File) -> FileStorage {
        FileStorage { file }
    }
}

impl Storage for FileStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn write_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        // The engine has a single writer and reads with pread/mmap, so the file cursor
        // is ours: seek, then writev until everything is written.
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))?;
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = f.write_vectored(rest)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "writev wrote nothing",
                ));
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn file(&self) -> &File {
        &self.file
    }
}
