//! Every system call that needs `unsafe`: the io_uring backend, `pwritev`, `fallocate` and
//! `flock`. Nothing else in the crate uses `unsafe`.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use crate::io::{BackendKind, WalIo};
use crate::limits::{BATCH_BUFFERS_MAX, RING_ENTRIES};

const _: () = assert!(
    RING_ENTRIES >= 2,
    "a batch needs a write and a linked fsync"
);
const _: () = assert!(
    BATCH_BUFFERS_MAX <= 1024,
    "Linux rejects more than IOV_MAX iovecs"
);

// `IoSlice` is documented to be ABI-compatible with `struct iovec` on Unix; the pointer
// casts below rely on it, so pin its size here too.
const _: () = assert!(size_of::<IoSlice<'static>>() == size_of::<libc::iovec>());

const USER_DATA_WRITE: u64 = 1;
const USER_DATA_SYNC: u64 = 2;

/// The io_uring backend: each batch is one `Writev` linked (`IO_LINK`) to one
/// `Fsync(DATASYNC)`, submitted with a single `io_uring_enter`.
pub struct UringIo {
    ring: IoUring,
    /// Set after the ring misbehaved; the ring is never entered again, so SQEs left in it
    /// can never reach the kernel.
    broken: bool,
}

impl UringIo {
    /// Sets up a ring and checks that it supports vectored writes and fsync.
    pub fn new() -> io::Result<UringIo> {
        let ring = IoUring::new(RING_ENTRIES)?;
        let mut probe = io_uring::Probe::new();
        // A kernel without IORING_REGISTER_PROBE (< 5.6) still has Writev and Fsync (5.1).
        if ring.submitter().register_probe(&mut probe).is_ok() {
            for code in [opcode::Writev::CODE, opcode::Fsync::CODE] {
                if !probe.is_supported(code) {
                    return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
                }
            }
        }
        Ok(UringIo {
            ring,
            broken: false,
        })
    }

    /// Submits `iovecs` as one write at `offset`, linked to an fdatasync when `sync` is set,
    /// and waits for every completion. Returns the bytes written.
    fn write_once(
        &mut self,
        file: &File,
        offset: u64,
        iovecs: &[IoSlice<'_>],
        sync: bool,
    ) -> io::Result<(usize, io::Result<()>)> {
        let fd = types::Fd(file.as_raw_fd());
        // Cast is lossless: callers pass at most BATCH_BUFFERS_MAX iovecs.
        let write = opcode::Writev::new(
            fd,
            iovecs.as_ptr().cast::<libc::iovec>(),
            iovecs.len() as u32,
        )
        .offset(offset)
        .build()
        .user_data(USER_DATA_WRITE);
        let fsync = opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(USER_DATA_SYNC);
        let count = if sync { 2 } else { 1 };
        {
            let mut queue = self.ring.submission();
            let write = if sync {
                write.flags(squeue::Flags::IO_LINK)
            } else {
                write
            };
            // SAFETY: the SQE points at `iovecs` and, through it, at the caller's buffers;
            // both are borrowed for this whole call, and `reap` below does not return until
            // the kernel has completed every submitted SQE (or the process aborts), so the
            // memory outlives the kernel's use of it. The fd is borrowed from `file`, which
            // likewise outlives the call.
            let pushed = unsafe { queue.push(&write) };
            pushed.map_err(|_| io::Error::other("io_uring submission queue full"))?;
            if sync {
                // SAFETY: an fsync SQE references no memory; the fd outlives the call (above).
                let pushed = unsafe { queue.push(&fsync) };
                pushed.map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
        }
        self.reap(count)
    }

    /// Submits what is queued and waits for `count` completions, returning the write's
    /// byte count and the fsync's outcome.
    fn reap(&mut self, count: usize) -> io::Result<(usize, io::Result<()>)> {
        let mut written: Option<io::Result<usize>> = None;
        let mut synced: io::Result<()> = Ok(());
        let mut completed = 0;
        let mut submitted = false;
        while completed < count {
            match self.ring.submit_and_wait(count - completed) {
                Ok(_) => submitted = true,
                Err(error) if retryable(&error) => {}
                Err(error) => {
                    self.broken = true;
                    if submitted {
                        // The kernel may still be writing from the caller's buffers; freeing
                        // them now could corrupt memory, and waiting is impossible.
                        eprintln!("cairn-wal: io_uring wait failed with I/O in flight: {error}");
                        std::process::abort();
                    }
                    return Err(error);
                }
            }
            for entry in self.ring.completion() {
                completed += 1;
                let result = entry.result();
                match entry.user_data() {
                    USER_DATA_WRITE if result >= 0 => written = Some(Ok(result as usize)),
                    USER_DATA_WRITE => written = Some(Err(io::Error::from_raw_os_error(-result))),
                    _ if result < 0 => synced = Err(io::Error::from_raw_os_error(-result)),
                    _ => {}
                }
            }
        }
        let written = written.unwrap_or_else(|| Err(io::Error::other("no write completion")))?;
        Ok((written, synced))
    }
}

fn retryable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

impl WalIo for UringIo {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }

    fn write_durable(
        &mut self,
        file: &File,
        mut offset: u64,
        buffers: &[IoSlice<'_>],
    ) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "io_uring ring is unusable after an earlier failure",
            ));
        }
        let mut remaining: Vec<IoSlice<'_>> = buffers.to_vec();
        let mut slices: &mut [IoSlice<'_>] = &mut remaining;
        loop {
            let window = slices.len().min(BATCH_BUFFERS_MAX);
            let last = window == slices.len();
            let wanted: usize = slices[..window].iter().map(|slice| slice.len()).sum();
            let (written, synced) = self.write_once(file, offset, &slices[..window], last)?;
            if written == 0 && wanted > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring wrote nothing",
                ));
            }
            if last && written == wanted {
                return synced;
            }
            // A short write breaks the link (the fsync completes with ECANCELED): write the
            // rest and sync after it.
            offset += written as u64;
            IoSlice::advance_slices(&mut slices, written);
            if slices.is_empty() {
                return self.sync(file);
            }
        }
    }

    fn sync(&mut self, file: &File) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "io_uring ring is unusable after an earlier failure",
            ));
        }
        let fsync = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(USER_DATA_SYNC);
        {
            let mut queue = self.ring.submission();
            // SAFETY: an fsync SQE references no memory; the fd is borrowed from `file` for
            // the whole call and `reap` waits for the completion.
            let pushed = unsafe { queue.push(&fsync) };
            pushed.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        // Reap expects a write completion; an fsync alone reports through `synced`.
        let mut completed = false;
        let mut outcome = Ok(());
        while !completed {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(error) if retryable(&error) => {}
                Err(error) => {
                    self.broken = true;
                    return Err(error);
                }
            }
            for entry in self.ring.completion() {
                completed = true;
                if entry.result() < 0 {
                    outcome = Err(io::Error::from_raw_os_error(-entry.result()));
                }
            }
        }
        outcome
    }
}

/// Says in words why io_uring setup probably failed.
pub(crate) fn explain_uring_error(error: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|_| "absent".to_string());
    let sysctl = format!("/proc/sys/kernel/io_uring_disabled (currently {disabled})");
    match error.raw_os_error() {
        Some(libc::ENOSYS) => format!(
            "the kernel is older than 5.1 or built without io_uring, or a seccomp filter \
             answers ENOSYS; also check {sysctl}"
        ),
        Some(libc::EPERM | libc::EACCES) => format!(
            "io_uring is disabled by {sysctl} (1 = only for the io_uring_group, 2 = for \
             everyone) or blocked by a seccomp profile (container runtimes block it by default)"
        ),
        Some(libc::ENOMEM) => "RLIMIT_MEMLOCK is too low for the ring (kernels before 5.12 \
             charge ring memory against it)"
            .to_string(),
        Some(libc::EOPNOTSUPP | libc::EINVAL) => "the kernel's io_uring lacks vectored \
             writes or fsync (kernel too old)"
            .to_string(),
        _ => format!("unexpected error; check the kernel version, seccomp and {sysctl}"),
    }
}

/// Writes all `buffers` back to back at `offset` with `pwritev`, looping over short writes
/// and `EINTR`.
pub(crate) fn pwritev_all(file: &File, mut offset: u64, buffers: &[IoSlice<'_>]) -> io::Result<()> {
    let mut remaining: Vec<IoSlice<'_>> = buffers.to_vec();
    let mut slices: &mut [IoSlice<'_>] = &mut remaining;
    while !slices.is_empty() {
        let window = slices.len().min(BATCH_BUFFERS_MAX);
        let position = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: `slices` is a live slice of `IoSlice`, which is ABI-compatible with
        // `iovec`; `window` never exceeds its length; the kernel only reads the buffers
        // during the call, and they are borrowed for longer than that.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                window as libc::c_int,
                position,
            )
        };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        offset += written as u64;
        IoSlice::advance_slices(&mut slices, written as usize);
    }
    Ok(())
}

/// Reserves `length` bytes for `file` so later writes need no block allocation; falls back
/// to `set_len` (a sparse file) where the file system cannot preallocate.
pub(crate) fn preallocate(file: &File, length: u64) -> io::Result<()> {
    let size = libc::off_t::try_from(length)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    loop {
        // SAFETY: fallocate only reads its integer arguments; the fd is borrowed from `file`.
        let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size) };
        if result == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => return file.set_len(length),
            _ => return Err(error),
        }
    }
}

/// Takes an exclusive, non-blocking `flock` on `file`; `Ok(false)` if another holder has it.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock only reads its integer arguments; the fd is borrowed from `file`.
        let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if result == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn check_backend(io: &mut dyn WalIo) {
        let directory = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(directory.path().join("f"))
            .unwrap();
        preallocate(&file, 1 << 16).unwrap();
        let buffers: Vec<Vec<u8>> = (0..1500u32)
            .map(|i| vec![(i % 251) as u8; 3 + i as usize % 7])
            .collect();
        let slices: Vec<IoSlice<'_>> = buffers.iter().map(|b| IoSlice::new(b)).collect();
        io.write_durable(&file, 100, &slices).unwrap();
        io.sync(&file).unwrap();
        let expected: Vec<u8> = buffers.concat();
        let mut actual = vec![0u8; expected.len()];
        file.read_exact_at(&mut actual, 100).unwrap();
        assert_eq!(actual, expected);
        assert_eq!(file.metadata().unwrap().len(), 1 << 16);
    }

    #[test]
    fn pwritev_writes_more_than_iov_max_buffers() {
        check_backend(&mut crate::io::PwritevIo);
    }

    #[test]
    fn io_uring_writes_more_than_iov_max_buffers_or_explains_why_not() {
        match UringIo::new() {
            Ok(mut ring) => check_backend(&mut ring),
            Err(error) => {
                let cause = explain_uring_error(&error);
                assert!(!cause.is_empty());
                eprintln!("io_uring unavailable here: {error}: {cause}");
            }
        }
    }
}
