//! The index's error type.

use std::fmt;

use crate::Revision;

/// Errors returned by the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The key has no revision at the asked point: it does not exist there, it was
    /// deleted, its history there was compacted away, or (for a tombstone) the key is not
    /// live. Same meaning and text as etcd's `mvcc.ErrRevisionNotFound`.
    RevisionNotFound,
    /// A put or tombstone carried a revision not greater than the key's latest revision.
    /// The store hands out increasing revisions, so this is a caller bug; etcd panics here,
    /// Cairn reports it and leaves the key unchanged.
    StaleRevision {
        /// The revision that was given.
        given: Revision,
        /// The key's latest revision.
        latest: Revision,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RevisionNotFound => f.write_str("mvcc: revision not found"),
            Error::StaleRevision { given, latest } => write!(
                f,
                "index: revision {given} is not greater than the key's latest revision {latest}"
            ),
        }
    }
}

impl std::error::Error for Error {}
