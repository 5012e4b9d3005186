//! cairn-engine: Cairn's backend store, a copy-on-write B+tree in the bbolt v2 file
//! format, read through a read-only memory map and written with `pwrite` + `fdatasync`.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
//!
//! - [`Db`]: open/recover a file, begin transactions, [`Db::stats`], [`Db::check`],
//!   [`Db::compact_into`].
//! - [`ReadTx`]: a pinned snapshot (`Send + 'static`); [`ReadTx::write_to`] streams it
//!   as a complete bbolt file.
//! - [`WriteTx`]: the single writer; [`BucketMut`] for puts and deletes.
//! - [`Bucket`] and [`Cursor`]: zero-copy reads.
//! - [`Storage`]: the disk I/O seam ([`FileStorage`] is the real file).
//!
//! The file format is described in `docs/format.md`.
//!
//! ```
//! use cairn_engine::{Db, Options};
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
//! let mut tx = db.begin_write().unwrap();
//! tx.create_bucket_if_not_exists(b"key").unwrap().put(b"k", b"v").unwrap();
//! tx.commit().unwrap();
//! let rtx = db.begin_read().unwrap();
//! assert_eq!(rtx.bucket(b"key").unwrap().get(b"k"), Some(&b"v"[..]));
//! ```
//!
//! Writes through a read transaction do not compile (there is no write API on it):
//!
//! ```compile_fail
//! use cairn_engine::{Db, Options};
//! let db = Db::open("/nonexistent/db", Options::default()).unwrap();
//! let rtx = db.begin_read().unwrap();
//! rtx.bucket(b"key").unwrap().put(b"k", b"v");
//! ```

mod check;
mod cursor;
mod db;
mod error;
mod format;
mod map;
mod node;
mod storage;
mod tree;
mod tx;

/// Free-page sets (exposed for benchmarks; not a stable API).
#[doc(hidden)]
pub mod freelist;

pub use check::CheckError;
pub use cursor::{Bucket, Cursor};
pub use db::{Db, Options, Stats};
pub use error::{Error, Result};
pub use format::{Pgid, MAX_KEY_SIZE, MAX_VALUE_SIZE};
pub use storage::{FileStorage, Storage};
pub use tx::{BucketMut, ReadTx, WriteTx};
