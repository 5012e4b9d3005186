//! The disk I/O seam: the `WalIo` trait, the two real backends behind it, and the choice
//! between them at open.

use std::fs::File;
use std::io::{self, IoSlice};

use crate::error::Error;
use crate::sys;

/// How the writer thread reaches the disk. One call of `write_durable` is one group commit:
/// all buffers written back to back at `offset`, then fdatasync. Implementations must not
/// return while the kernel may still read the buffers, and must report any failure (the
/// log then poisons itself; it never retries).
pub trait WalIo: Send {
    /// Which backend this is (a wrapper reports the backend it wraps).
    fn kind(&self) -> BackendKind;

    /// Writes `buffers`, back to back, at `offset` of `file`, then makes them durable with
    /// fdatasync. Returns only when both have completed.
    fn write_durable(
        &mut self,
        file: &File,
        offset: u64,
        buffers: &[IoSlice<'_>],
    ) -> io::Result<()>;

    /// Makes everything written to `file` durable (fdatasync).
    fn sync(&mut self, file: &File) -> io::Result<()>;
}

/// The backend a log runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// io_uring: one `Writev` submission linked to an `Fsync(DATASYNC)`.
    IoUring,
    /// `pwritev(2)` then `fdatasync(2)`.
    Pwritev,
}

impl BackendKind {
    /// Name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Pwritev => "pwritev",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which backend `Wal::open` should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when it can be set up, else pwritev (the reason is kept, see
    /// `Wal::fallback_reason`).
    #[default]
    Auto,
    /// io_uring or the typed error `Error::IoUringUnavailable`.
    IoUring,
    /// pwritev + fdatasync.
    Pwritev,
}

/// The portable backend: `pwritev` (looping over short writes) then `fdatasync`.
#[derive(Debug, Default)]
pub struct PwritevIo;

impl WalIo for PwritevIo {
    fn kind(&self) -> BackendKind {
        BackendKind::Pwritev
    }

    fn write_durable(
        &mut self,
        file: &File,
        offset: u64,
        buffers: &[IoSlice<'_>],
    ) -> io::Result<()> {
        sys::pwritev_all(file, offset, buffers)?;
        file.sync_data()
    }

    fn sync(&mut self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// Picks the backend for `choice`. `setup_uring` is a parameter so the fallback path can be
/// tested on machines where io_uring works. The string is the reason Auto fell back.
pub(crate) fn select_backend(
    choice: BackendChoice,
    setup_uring: impl FnOnce() -> io::Result<sys::UringIo>,
) -> Result<(Box<dyn WalIo>, Option<String>), Error> {
    match choice {
        BackendChoice::Pwritev => Ok((Box::new(PwritevIo), None)),
        BackendChoice::IoUring => match setup_uring() {
            Ok(ring) => Ok((Box::new(ring), None)),
            Err(source) => {
                let likely_cause = sys::explain_uring_error(&source);
                Err(Error::IoUringUnavailable {
                    source,
                    likely_cause,
                })
            }
        },
        BackendChoice::Auto => match setup_uring() {
            Ok(ring) => Ok((Box::new(ring), None)),
            Err(source) => {
                let error = Error::IoUringUnavailable {
                    likely_cause: sys::explain_uring_error(&source),
                    source,
                };
                Ok((Box::new(PwritevIo), Some(error.to_string())))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> io::Result<sys::UringIo> {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }

    #[test]
    fn auto_falls_back_to_pwritev_with_a_reason() {
        let (io, reason) = select_backend(BackendChoice::Auto, refused).unwrap();
        assert_eq!(io.kind(), BackendKind::Pwritev);
        let reason = reason.expect("fallback must say why");
        assert!(reason.contains("io_uring_disabled"), "{reason}");
        assert!(reason.contains("seccomp"), "{reason}");
    }

    #[test]
    fn explicit_io_uring_returns_the_typed_error() {
        let error = select_backend(BackendChoice::IoUring, refused)
            .err()
            .unwrap();
        match error {
            Error::IoUringUnavailable {
                source,
                likely_cause,
            } => {
                assert_eq!(source.raw_os_error(), Some(libc::EPERM));
                assert!(likely_cause.contains("seccomp"));
            }
            other => panic!("unexpected error {other}"),
        }
        let too_old =
            || -> io::Result<sys::UringIo> { Err(io::Error::from_raw_os_error(libc::ENOSYS)) };
        let error = select_backend(BackendChoice::IoUring, too_old)
            .err()
            .unwrap();
        assert!(error.to_string().contains("kernel"), "{error}");
    }

    #[test]
    fn explicit_pwritev_never_touches_io_uring() {
        let (io, reason) = select_backend(BackendChoice::Pwritev, || {
            panic!("must not set up io_uring")
        })
        .unwrap();
        assert_eq!(io.kind(), BackendKind::Pwritev);
        assert!(reason.is_none());
    }
}
