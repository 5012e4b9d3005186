//! A linearizability checker for histories of etcd KV calls, with a model of etcd's KV store.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
//!
//! Clients record every call they make with a [`Recorder`] (or build [`Op`]s by hand), then
//! [`check`] decides whether there is one total order of the operations that
//! 1. respects real time: an operation that returned before another one was called comes first;
//! 2. replayed through the model of etcd's KV store (values, create/mod revisions, versions, the
//!    store revision in every response header) gives exactly the responses the clients saw.
//!
//! # Ambiguous operations
//! A call that timed out or failed in a way that leaves its outcome unknown is recorded with no
//! return time and no output ([`Recorder::fail`], or a [`Pending`] that is simply dropped, e.g. by
//! a timeout). It may have taken effect at any moment after its call, or never. (Taking effect
//! after everything else is the same as never, so "never" needs no special case.) A failed read
//! changes nothing and is dropped before the search. A call known NOT to have been applied
//! (refused before it reached the server) can be removed with [`Recorder::discard`]; when in
//! doubt, `fail` is always sound.
//!
//! # Search
//! Wing & Gong's backtracking over the time-ordered call/return entries, with Lowe's memoization
//! (porcupine's algorithm): a search node is the set of operations linearized so far plus the
//! model state, and a node already explored is never entered again. Nodes are remembered by
//! 128-bit fingerprints of the set and of the state (a collision could only prune a branch, that
//! is report a violation that is not one, with a probability around 2^-100; it can never hide one).
//!
//! etcd's revisions make almost every move forced, which keeps the search linear in practice:
//! * a completed operation the model accepts without moving the revision (a read, a delete that
//!   found nothing, a txn that wrote nothing) changes no state, so it can be moved in front of
//!   everything still pending: it is taken at once and never tried elsewhere;
//! * otherwise a completed write the model accepts claims revision `r + 1`; no other state change
//!   can come first (that write could never be placed afterwards), so it is taken at once too;
//! * only when no completed operation fits does the search branch, over ambiguous writes (one
//!   that would change nothing is skipped: the same as never happening).
//!
//! So the cost grows with the number of ambiguous writes, not with the number of clients.
//! Splitting the history by key is not valid for etcd (revisions are global) and is not done.
//!
//! Not modelled: leases, compaction, historical reads (`revision` in a range), `limit`, sort
//! options, `prev_kv`, nested txns (rejected as an invalid history), serializable reads (which are
//! not linearizable and must not be recorded).
//!
//! # Public API
//! * History: [`Op`] (one call: [`Input`], [`Output`], call and return times), with
//!   [`Compare`], [`CmpOp`], [`Target`], [`Kv`], [`TxnResult`]; [`resolve_puts`] settles
//!   ambiguous puts from a list of writes known to have happened.
//! * Recording: [`Recorder`] and its [`Pending`] calls; [`execute`] and [`to_etcd_txn`] send
//!   an [`Input`] with `etcd_client` (and `Output::from_*` convert its responses).
//! * Checking: [`check`] / [`check_with`] ([`Options`]) return a [`Report`] whose
//!   [`Verdict`] is `Ok`, `Illegal` (with a [`Violation`] explaining it), `Unknown` or
//!   `Invalid`.
//! * [`Model`]: the sequential store the checker replays, for generating histories in tests.
//!
//! # Modules
//! `history` (the types above and how they print), `recorder`, `etcd` (client glue),
//! `check` (entry points and report), `model` (the store, compiled requests, comparing
//! answers), `txn` (the one walk over txn branches), `compile` (a history made ready for the
//! search, with what reads saw of each key), `search`, `explain` (why a history is not
//! linearizable).

mod check;
mod compile;
mod etcd;
mod explain;
mod history;
mod model;
mod recorder;
mod search;
mod txn;

pub use check::{check, check_with, Options, Report, Verdict, Violation};
pub use etcd::{execute, to_etcd_txn};
pub use history::{resolve_puts, CmpOp, Compare, Input, Kv, Op, Output, Target, TxnResult};
pub use model::Model;
pub use recorder::{Pending, Recorder};
