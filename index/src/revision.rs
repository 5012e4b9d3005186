//! Revisions and the per-key answer of a point lookup.

use std::fmt;

/// A revision of the store: `main` is the revision of the write request (one per
/// request or txn), `sub` orders the individual changes inside that request.
///
/// Ordered by `main`, then `sub`, exactly like etcd's `Revision`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The store revision of the write request.
    pub main: i64,
    /// The position of the change inside its request (0 for a single-op request).
    pub sub: i64,
}

impl Revision {
    /// Builds a revision.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

/// What [`Index::get`](crate::Index::get) reports for a key that exists at the asked revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyAt {
    /// The revision of the latest change to the key at or below the asked revision
    /// (`mod_revision`).
    pub modified: Revision,
    /// The revision that created the current generation of the key (`create_revision`).
    pub created: Revision,
    /// Number of changes since the key was created, 1 for the creating put (`version`).
    pub version: i64,
}
