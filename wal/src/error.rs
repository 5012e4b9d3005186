//! The one error type of the log.

use std::fmt;
use std::io;
use std::sync::Arc;

/// Everything that can go wrong in the write-ahead log.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed outside the append path (open, scan, release).
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The log holds a damaged record that is not a torn tail: a bad record followed by
    /// valid later records, a broken chain between segments, or a missing segment.
    Corrupt {
        /// File name of the segment.
        segment: String,
        /// Byte offset of the damage within the segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fdatasync failed; the log accepts nothing more. Reopen it (which
    /// re-reads what is really on disk) after fixing the cause.
    Poisoned(Arc<io::Error>),
    /// `BackendChoice::IoUring` was requested and io_uring cannot be set up here.
    IoUringUnavailable {
        /// The error from io_uring setup.
        source: io::Error,
        /// The likely reason, in words (kernel, seccomp, sysctl).
        likely_cause: String,
    },
    /// One record is larger than a segment can hold (or than the format allows).
    RecordTooLarge {
        /// Framed size of the record.
        bytes: u64,
        /// Largest framed size accepted.
        max: u64,
    },
    /// The options passed to `Wal::open` are invalid.
    InvalidOptions(String),
    /// Another `Wal` (in this or another process) holds the directory lock.
    Locked(String),
    /// `release_before` was asked to drop entries not covered by a durable snapshot marker.
    ReleaseBeyondSnapshot {
        /// The index asked for.
        requested: u64,
        /// Index of the newest snapshot marker in the log, if any.
        snapshot: Option<u64>,
    },
    /// The log was closed.
    Closed,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupt(segment: &str, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            segment: segment.to_string(),
            offset,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "wal: {context}: {source}"),
            Error::Corrupt { segment, offset, reason } => {
                write!(f, "wal: corrupt segment {segment} at offset {offset}: {reason}")
            }
            Error::Poisoned(cause) => write!(
                f,
                "wal: poisoned by an earlier I/O failure, no further writes accepted: {cause}"
            ),
            Error::IoUringUnavailable { source, likely_cause } => {
                write!(f, "wal: io_uring cannot be set up ({source}); likely cause: {likely_cause}")
            }
            Error::RecordTooLarge { bytes, max } => {
                write!(f, "wal: record of {bytes} bytes exceeds the limit of {max} bytes")
            }
            Error::InvalidOptions(message) => write!(f, "wal: invalid options: {message}"),
            Error::Locked(message) => write!(f, "wal: {message}"),
            Error::ReleaseBeyondSnapshot { requested, snapshot } => match snapshot {
                Some(index) => write!(
                    f,
                    "wal: cannot release entries before {requested}: newest snapshot marker is at {index}"
                ),
                None => write!(
                    f,
                    "wal: cannot release entries before {requested}: the log has no snapshot marker"
                ),
            },
            Error::Closed => write!(f, "wal: closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::IoUringUnavailable { source, .. } => Some(source),
            Error::Poisoned(cause) => Some(cause.as_ref()),
            _ => None,
        }
    }
}
