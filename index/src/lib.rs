//! Cairn's revision index: for every user key, the revisions at which it was written and
//! deleted, so the store can answer reads at any revision and compact old ones.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
//!
//! # Semantics
//! Those of etcd's `treeIndex`/`keyIndex`. Each key has *generations*: a generation starts
//! with the put that creates the key and ends with the tombstone that deletes it.
//! - [`Index::put`] appends a revision (starting a new generation if the key is not live);
//!   [`Index::tombstone`] ends the live generation ([`Error::RevisionNotFound`] if none).
//! - [`Index::get`] finds the generation alive at a revision and returns the latest change
//!   at or below it, the creation revision and the version.
//! - [`Index::range`], [`Index::revisions`] (with limit and total count) and
//!   [`Index::count_revisions`] do the same over a key range; [`Index::range_since`] lists
//!   all revisions from a point on (watch catch-up).
//! - [`Index::compact`] at revision `C`: a generation whose tombstone is below `C` is
//!   dropped; in the first remaining generation the latest revision at or below `C` stays
//!   (so reads at `C` keep working) and older ones go; a key left without generations is
//!   removed. A tombstone exactly at `C` stays until a later compaction. It returns the
//!   revisions the backend must keep; [`Index::keep`] computes the same set without
//!   compacting, minus tombstones exactly at `C` (for the KV hash).
//!
//! Key ranges follow etcd: an empty `end` selects the single key `start`; `end == b"\0"`
//! selects every key `>= start`; otherwise `[start, end)` (empty if `end <= start`).
//!
//! # Split with the store
//! The index, like etcd's, knows nothing of the compaction revision: a read below it gets
//! whatever remains of the compacted histories (often `RevisionNotFound`, sometimes the
//! single kept revision). The store must check `at_rev < compact_rev` itself and answer
//! `ErrCompacted` (and `at_rev > current` → `ErrFutureRev`) before asking the index.
//!
//! # Concurrency and the visibility rule
//! Keys live in a lock-free ordered skiplist; each key's history has its own small mutex.
//! Writers on different keys never wait for each other; readers take no global lock and
//! hold at most one key's lock at a time, for a few instructions.
//!
//! A read at revision `R` sees every write with revision `<= R` whose index update
//! finished before the read began, and ignores every write with revision `> R`, whenever
//! it is applied. So the store must publish `R` as readable only after *all* index
//! updates of revision `R` (every op of the txn) are done; then a read at any published
//! revision is consistent across keys even while later writes and compactions run. A
//! compaction at `C` must not run concurrently with reads at `R < C` (the store rejects
//! those reads once it has raised its compaction revision, as etcd does under its store
//! lock); reads at `R >= C` are unaffected by it.
//!
//! Puts to one key must come with increasing revisions ([`Error::StaleRevision`]
//! otherwise); the store's single apply loop guarantees it.
//!
//! # Example
//! ```
//! use cairn_index::{Error, Index, Revision};
//!
//! let index = Index::new();
//! index.put(b"foo", Revision::new(2, 0)).unwrap();
//! index.put(b"fop", Revision::new(3, 0)).unwrap();
//! index.tombstone(b"foo", Revision::new(4, 0)).unwrap();
//!
//! assert_eq!(index.get(b"foo", 3).unwrap().modified, Revision::new(2, 0));
//! assert_eq!(index.get(b"foo", 4), Err(Error::RevisionNotFound));
//! // Prefix "fo": end is the prefix with its last byte incremented.
//! let (revs, total) = index.revisions(b"fo", b"fp", 3, 0);
//! assert_eq!((revs, total), (vec![Revision::new(2, 0), Revision::new(3, 0)], 2));
//! assert_eq!(index.count_revisions(b"fo", b"\0", 4), 1);
//!
//! let keep = index.compact(4);
//! assert!(keep.contains(&Revision::new(4, 0))); // the tombstone at the compaction revision
//! ```

mod dump;
mod error;
mod history;
mod index;
mod range;
mod revision;

pub use dump::{GenerationDump, KeyDump};
pub use error::Error;
pub use index::Index;
pub use revision::{KeyAt, Revision};
