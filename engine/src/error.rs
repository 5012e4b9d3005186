//! The engine's error type.

use std::fmt;
use std::io;

/// Every failure the engine reports. Bad input and bad files map to a variant here,
/// never to a panic.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `put` with an empty key.
    KeyEmpty,
    /// Key longer than [`crate::MAX_KEY_SIZE`].
    KeyTooLarge,
    /// Value longer than [`crate::MAX_VALUE_SIZE`].
    ValueTooLarge,
    /// A write attempted through a read-only transaction.
    TxReadOnly,
    /// A write transaction requested on a database opened read-only.
    DatabaseReadOnly,
    /// The named bucket does not exist.
    BucketNotFound,
    /// `create_bucket` on a name that already exists.
    BucketExists,
    /// Bucket name empty or too long.
    BucketNameRequired,
    /// The key exists but holds a bucket (or a bucket name holds a plain value).
    IncompatibleValue,
    /// Not a bbolt file (bad magic, or too short to hold the meta pages).
    Invalid,
    /// Meta page checksum mismatch on both meta pages.
    Checksum,
    /// Meta pages carry a format version other than 2.
    VersionMismatch,
    /// The file is shorter than its meta page says.
    Truncated { file_len: u64, needed: u64 },
    /// Structural corruption found while reading.
    Corrupted(String),
    /// The database file is locked by another process.
    Locked,
    /// An I/O error.
    Io(io::Error),
    /// An earlier write or fsync failed; the database refuses further writes.
    /// Close and reopen it (recovery picks the last durable commit).
    Poisoned(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyEmpty => f.write_str("key required"),
            Error::KeyTooLarge => f.write_str("key too large"),
            Error::ValueTooLarge => f.write_str("value too large"),
            Error::TxReadOnly => f.write_str("tx not writable"),
            Error::DatabaseReadOnly => f.write_str("database is in read-only mode"),
            Error::BucketNotFound => f.write_str("bucket not found"),
            Error::BucketExists => f.write_str("bucket already exists"),
            Error::BucketNameRequired => f.write_str("bucket name required"),
            Error::IncompatibleValue => f.write_str("incompatible value"),
            Error::Invalid => f.write_str("invalid database"),
            Error::Checksum => f.write_str("checksum error"),
            Error::VersionMismatch => f.write_str("version mismatch"),
            Error::Truncated { file_len, needed } => {
                write!(
                    f,
                    "database file truncated: {file_len} bytes, meta needs {needed}"
                )
            }
            Error::Corrupted(s) => write!(f, "database corrupted: {s}"),
            Error::Locked => f.write_str("database file is locked by another process"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Poisoned(s) => {
                write!(
                    f,
                    "database poisoned by an earlier i/o failure ({s}); reopen it"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result alias for engine operations.
pub type Result<T> = std::result::Result<T, Error>;
