//! Cairn's write-ahead log.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
//!
//! Raft hard state, entries and snapshot markers go into preallocated segment files
//! (`<sequence>-<first index>.wal`, hex). Each record is framed with its length, type,
//! sequence number and a CRC32 chained to the record before it (`docs/format.md`), so open
//! cuts off a torn tail but refuses a log damaged in the middle.
//!
//! Appends from any number of tasks or threads are group-committed by one writer thread:
//! one vectored write plus one fdatasync per batch, on io_uring (a `Writev` linked to an
//! `Fsync`) or, where io_uring cannot be set up, on `pwritev` + `fdatasync`. A caller's
//! future resolves only once its records are durable. A failed write or fdatasync poisons
//! the log for good.
//!
//! ```no_run
//! use cairn_wal::{Entry, HardState, Options, Record, Wal};
//!
//! let (wal, replay) = Wal::open("/var/lib/cairn/member/wal", Options::default())?;
//! println!("backend {} ({:?}), {} entries", wal.backend(), wal.fallback_reason(), replay.entries.len());
//! let entry = Entry { index: 1, term: 1, kind: 0, data: bytes::Bytes::from_static(b"put") };
//! let state = HardState { term: 1, vote: 1, commit: 0 };
//! wal.append_blocking(vec![Record::Entry(entry), Record::HardState(state)])?; // durable now
//! wal.close()?;
//! # Ok::<(), cairn_wal::Error>(())
//! ```
//!
//! # Layout
//! - [`wal`](Wal): the handle: open, append, sync, release, close, stats.
//! - `record`: the records ([`Record`], [`Entry`], [`HardState`], [`SnapshotMarker`]).
//! - `frame`: the record header, chunking, sealing and parsing.
//! - `segment`: segment names, header, creation and listing.
//! - `scan`: recovery at open: chain checks, torn tail vs corruption, raft replay rules;
//!   also [`read_records`], the raw reader for tools and tests.
//! - `writer`: the writer thread and its group commit.
//! - `io`: the [`WalIo`] disk trait, backend choice and the pwritev backend.
//! - `sys`: every `unsafe` call (io_uring, pwritev, fallocate, flock).
//! - `fault`: [`FaultyIo`], a fault-injecting backend for tests.
//! - `limits`: every limit, with its reason.

mod error;
mod fault;
mod frame;
mod io;
mod limits;
mod record;
mod scan;
mod segment;
mod sys;
mod wal;
mod writer;

pub use error::Error;
pub use fault::{FaultPlan, FaultyIo};
pub use io::{BackendChoice, BackendKind, PwritevIo, WalIo};
pub use limits::SEGMENT_BYTES_DEFAULT;
pub use record::{Entry, HardState, Record, SnapshotMarker};
pub use scan::{read_records, Replay, TornTail};
pub use sys::UringIo;
pub use wal::{Options, Stats, Wal};
